import { formatIpv4, parseCidrSloppy, parseIpSloppy } from './ip.ts';

/**
 * IPv4 address arithmetic for allocating pod and service addresses. Text is read as Kubernetes
 * reads it (ip.ts): `010.0.0.0/8` is 10.0.0.0/8, never octal 8.0.0.0/8.
 */
export interface Ipv4Cidr {
  network: number;
  prefix: number;
}

export function parseIpv4Cidr(cidr: string): Ipv4Cidr {
  const parsed = parseCidrSloppy(cidr);
  if (parsed === null) throw new Error(`${JSON.stringify(cidr)} is not a CIDR such as 10.244.0.0/16`);
  if (parsed.family !== 4) throw new Error(`${JSON.stringify(cidr)}: only IPv4 is supported`);
  return { network: parsed.network, prefix: parsed.prefix };
}

export function ipv4ToInt(ip: string): number {
  const parsed = parseIpSloppy(ip);
  if (parsed?.family !== 4) throw new Error(`${JSON.stringify(ip)} is not an IPv4 address`);
  return parsed.value;
}

export function intToIpv4(n: number): string {
  return formatIpv4(n >>> 0);
}

export function cidrSize(c: Ipv4Cidr): number {
  return 2 ** (32 - c.prefix);
}

/** The `index`-th address in the CIDR; throws when it falls outside. */
export function addressAt(c: Ipv4Cidr, index: number): string {
  if (index < 0 || index >= cidrSize(c)) throw new Error(`address #${index} is outside ${formatCidr(c)}`);
  return intToIpv4(c.network + index);
}

/** The `index`-th subnet of size /prefix inside the CIDR (kind gives node i the i-th /24). */
export function subnetAt(c: Ipv4Cidr, prefix: number, index: number): Ipv4Cidr {
  if (prefix < c.prefix) throw new Error(`/${prefix} is larger than ${formatCidr(c)}`);
  const count = 2 ** (prefix - c.prefix);
  if (index < 0 || index >= count) throw new Error(`${formatCidr(c)} has only ${count} /${prefix} subnets, asked for #${index}`);
  return { network: c.network + index * 2 ** (32 - prefix), prefix };
}

/**
 * Which subnet of `c` the CIDR `sub` is, counting subnets of sub's own size: the inverse of
 * subnetAt (`subnetIndex(c, subnetAt(c, 24, i)) === i`). Null when sub does not lie inside c.
 */
export function subnetIndex(c: Ipv4Cidr, sub: Ipv4Cidr): number | null {
  if (sub.prefix < c.prefix || sub.network < c.network || sub.network >= c.network + cidrSize(c)) return null;
  return (sub.network - c.network) / cidrSize(sub);
}

export function formatCidr(c: Ipv4Cidr): string {
  return `${intToIpv4(c.network)}/${c.prefix}`;
}

export function cidrContains(c: Ipv4Cidr, ip: string): boolean {
  const parsed = parseIpSloppy(ip);
  if (parsed?.family !== 4) return false;
  const n = parsed.value;
  return n >= c.network && n < c.network + cidrSize(c);
}
