import { cidrHolds, formatCidrParsed, formatIp, parseCidrSloppy, parseIpSloppy, type ParsedCidr, type ParsedIp } from '../k8s/ip.ts';
import { KIND_DEFAULTS } from '../k8s/synthetic.ts';
import type { IpFamily } from '../k8s/types.ts';
import { quoted } from '../k8s/validation.ts';
import { GeneratorInputError } from './tokens.ts';

export type { IpFamily } from '../k8s/types.ts';

/** What kube-proxy is told about the node it runs on (its flags and node object). */
export interface ProxyOptions {
  /** The proxier's IP family (kube-proxy runs one per family on a dual-stack node). Default IPv4. */
  ipFamily?: IpFamily;
  /** The node rules are generated for; endpoints on it are local. */
  nodeName?: string | null;
  /**
   * The node's own addresses, of either family. The first of the proxier's family is
   * kube-proxy's nodeIP (loadBalancerSourceRanges checks, `--nodeport-addresses primary`); all of
   * them stand for the node's interface addresses (NodePorts, IPVS node-port services).
   */
  nodeIPs?: string[];
  /**
   * kube-proxy --cluster-cidr (CIDR, or one per family as `v4,v6`): traffic from outside it is
   * masqueraded. null or '' = no local-traffic detector, as kube-proxy without --cluster-cidr.
   * Default: kind's pod subnet of the family.
   */
  clusterCIDR?: string | null;
  /** kube-proxy --masquerade-all: masquerade all traffic to cluster IPs. */
  masqueradeAll?: boolean;
  /**
   * kube-proxy --nodeport-addresses: CIDRs (either family; those of the other one are ignored)
   * or ['primary'] (the nodeIP of each family). Absent or []: every local address, except in
   * nftables mode, where kube-proxy defaults to 'primary'.
   */
  nodePortAddresses?: string[];
  /** kube-proxy --iptables-masquerade-bit (14 gives mark 0x4000). */
  masqueradeBit?: number;
}

/** kube-proxy's NodePortAddresses for one family, applied to the node's addresses. */
export interface NodePortAddresses {
  /** The CIDRs of this family, canonical; `0.0.0.0/0` or `::/0` when none was given. */
  cidrs: string[];
  /** A zero CIDR is among them: NodePorts answer on every local address. */
  matchAll: boolean;
  /** GetNodeIPs: the local addresses (loopback, then nodeIPs) inside the CIDRs, once each. */
  ips: string[];
  /** Some CIDR holds 127.0.0.0 (IPv4 only): localhost NodePorts are possible. */
  containsIPv4Loopback: boolean;
}

export interface ResolvedProxyOptions {
  ipFamily: IpFamily;
  nodeName: string | null;
  /** The node's addresses of this family, canonical, in the order given. */
  nodeIPs: string[];
  /** kube-proxy's nodeIP for this family: the first of nodeIPs, else loopback (its detectNodeIPs). */
  nodeIP: string;
  /** The local-traffic detector's CIDR for this family; null when there is none. */
  clusterCIDR: string | null;
  masqueradeAll: boolean;
  masqueradeBit: number;
  masqueradeMark: string;
  nodePorts: NodePortAddresses;
}

export const LOOPBACK: Record<IpFamily, string> = { IPv4: '127.0.0.1', IPv6: '::1' };
const ZERO_CIDR: Record<IpFamily, string> = { IPv4: '0.0.0.0/0', IPv6: '::/0' };
export const KIND_POD_SUBNET: Record<IpFamily, string> = { IPv4: KIND_DEFAULTS.podSubnet, IPv6: KIND_DEFAULTS.podSubnetIPv6 };
export const KIND_SERVICE_SUBNET: Record<IpFamily, string> = { IPv4: KIND_DEFAULTS.serviceSubnet, IPv6: KIND_DEFAULTS.serviceSubnetIPv6 };

const familyOf = (x: ParsedIp | ParsedCidr): IpFamily => (x.family === 4 ? 'IPv4' : 'IPv6');
const isLoopback = (ip: ParsedIp) => (ip.family === 4 ? ip.value >>> 24 === 127 : ip.bytes.every((b, i) => b === (i === 15 ? 1 : 0)));

/**
 * Options with defaults filled in, checked and re-formatted (tokens.ts): they reach the rule text
 * too, from CLI flags. `modeDefaults.nodePortAddresses` is the mode's default for
 * --nodeport-addresses (nftables: ['primary']).
 */
export function resolveProxyOptions(o: ProxyOptions = {}, modeDefaults: { nodePortAddresses?: string[] } = {}): ResolvedProxyOptions {
  const ipFamily = o.ipFamily ?? 'IPv4';
  if (ipFamily !== 'IPv4' && ipFamily !== 'IPv6') throw new GeneratorInputError('options', 'ipFamily', `expected IPv4 or IPv6, got ${quoted(ipFamily)}`);
  const bit = o.masqueradeBit ?? 14;
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) throw new GeneratorInputError('options', 'masqueradeBit', `must be 0..31, got ${quoted(bit)}`);
  const masqueradeAll = o.masqueradeAll ?? false;
  if (typeof masqueradeAll !== 'boolean') throw new GeneratorInputError('options', 'masqueradeAll', `expected true or false, got ${quoted(masqueradeAll)}`);
  const nodeName = o.nodeName ?? null;
  if (nodeName !== null && typeof nodeName !== 'string') throw new GeneratorInputError('options', 'nodeName', `expected a string, got ${quoted(nodeName)}`);

  const allNodeIPs = listOption(o.nodeIPs, 'nodeIPs').map((v, i) => {
    const ip = typeof v === 'string' ? parseIpSloppy(v) : null;
    if (ip === null) throw new GeneratorInputError('options', `nodeIPs[${i}]`, `${quoted(v)} is not an IP address`);
    return ip;
  });
  const mine = allNodeIPs.filter((ip) => familyOf(ip) === ipFamily);
  const nodeIPs = [...new Set(mine.map(formatIp))];
  const nodeIP = nodeIPs[0] ?? LOOPBACK[ipFamily];

  return {
    ipFamily,
    nodeName,
    nodeIPs,
    nodeIP,
    clusterCIDR: clusterCIDROption(o.clusterCIDR, ipFamily),
    masqueradeAll,
    masqueradeBit: bit,
    masqueradeMark: `0x${(2 ** bit).toString(16)}`,
    nodePorts: nodePortAddresses(o.nodePortAddresses ?? [], modeDefaults.nodePortAddresses ?? [], ipFamily, allNodeIPs, nodeIPs),
  };
}

function listOption(v: unknown, field: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new GeneratorInputError('options', field, `expected a list, got ${quoted(v)}`);
  return v;
}

/**
 * --cluster-cidr as kube-proxy validates and uses it: up to two CIDRs, one per family; the
 * detector of a family uses its CIDR, and a family without one has no detector.
 */
function clusterCIDROption(v: unknown, family: IpFamily): string | null {
  if (v === undefined) return KIND_POD_SUBNET[family];
  if (v === null || v === '') return null;
  if (typeof v !== 'string') throw new GeneratorInputError('options', 'clusterCIDR', `expected a CIDR, got ${quoted(v)}`);
  const parts = v.trim().split(',');
  if (parts.length > 2) throw new GeneratorInputError('options', 'clusterCIDR', `${quoted(v)}: at most two CIDRs, one per IP family`);
  const cidrs = parts.map((p) => {
    const c = parseCidrSloppy(p);
    if (c === null) throw new GeneratorInputError('options', 'clusterCIDR', `${quoted(p)} is not a CIDR such as 10.244.0.0/16 or fd00:10:244::/56`);
    return c;
  });
  if (cidrs.length === 2 && cidrs[0].family === cidrs[1].family) {
    throw new GeneratorInputError('options', 'clusterCIDR', `${quoted(v)}: two CIDRs must be one IPv4 and one IPv6`);
  }
  const c = cidrs.find((x) => familyOf(x) === family);
  return c ? formatCidrParsed(c) : null;
}

/**
 * kube-proxy's --nodeport-addresses for one family (pkg/proxy/util NewNodePortAddresses and
 * GetNodeIPs; `primary` as cmd/kube-proxy turns it into the node IPs' /32 and /128).
 */
function nodePortAddresses(given: unknown, modeDefault: string[], family: IpFamily, allNodeIPs: ParsedIp[], nodeIPs: string[]): NodePortAddresses {
  let values = listOption(given, 'nodePortAddresses');
  if (values.length === 0) values = modeDefault;
  let cidrs: ParsedCidr[];
  if (values.length === 1 && values[0] === 'primary') {
    // The first address of each family, unless it is loopback.
    cidrs = [];
    for (const f of ['IPv4', 'IPv6'] as const) {
      const first = allNodeIPs.find((ip) => familyOf(ip) === f);
      if (first && !isLoopback(first)) cidrs.push(parseCidrSloppy(`${formatIp(first)}/${f === 'IPv4' ? 32 : 128}`)!);
    }
  } else {
    cidrs = values.map((v, i) => {
      const c = typeof v === 'string' ? parseCidrSloppy(v) : null;
      if (c === null) throw new GeneratorInputError('options', `nodePortAddresses[${i}]`, `${quoted(v)} must be a valid CIDR (or the only value, primary)`);
      return c;
    });
  }
  cidrs = cidrs.filter((c) => familyOf(c) === family);
  if (cidrs.length === 0) cidrs = [parseCidrSloppy(ZERO_CIDR[family])!];
  const zero = cidrs.find((c) => c.prefix === 0);
  if (zero) cidrs = [zero];
  const loopbackStart = parseIpSloppy('127.0.0.0')!;
  const local = [LOOPBACK[family], ...nodeIPs].map((s) => parseIpSloppy(s)!);
  const ips: string[] = [];
  for (const c of cidrs) {
    for (const ip of local) {
      const text = formatIp(ip);
      if (cidrHolds(c, ip) && !ips.includes(text)) ips.push(text);
    }
  }
  return {
    cidrs: cidrs.map(formatCidrParsed),
    matchAll: zero !== undefined,
    ips,
    containsIPv4Loopback: cidrs.some((c) => c.family === 4 && (c.network >>> 24 === 127 || cidrHolds(c, loopbackStart))),
  };
}

/** Whether `ip` is a loopback address (127.0.0.0/8 or ::1). */
export function isLoopbackText(ip: string): boolean {
  const p = parseIpSloppy(ip);
  return p !== null && isLoopback(p);
}
