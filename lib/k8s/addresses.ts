import ipaddr from 'ipaddr.js';

/** IPv4 address arithmetic over ipaddr.js, for allocating pod and service addresses. */
export interface Ipv4Cidr {
  network: number;
  prefix: number;
}

export function parseIpv4Cidr(cidr: string): Ipv4Cidr {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  let prefix: number;
  try {
    [addr, prefix] = ipaddr.parseCIDR(cidr);
  } catch {
    throw new Error(`${JSON.stringify(cidr)} is not a CIDR such as 10.244.0.0/16`);
  }
  if (addr.kind() !== 'ipv4') throw new Error(`${cidr}: only IPv4 is supported`);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { network: (ipv4ToInt(addr.toString()) & mask) >>> 0, prefix };
}

export function ipv4ToInt(ip: string): number {
  const b = ipaddr.IPv4.parse(ip).toByteArray();
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

export function intToIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
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

export function formatCidr(c: Ipv4Cidr): string {
  return `${intToIpv4(c.network)}/${c.prefix}`;
}

export function cidrContains(c: Ipv4Cidr, ip: string): boolean {
  if (!ipaddr.IPv4.isValid(ip)) return false;
  const n = ipv4ToInt(ip);
  return n >= c.network && n < c.network + cidrSize(c);
}
