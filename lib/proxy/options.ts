import { KIND_DEFAULTS } from '../k8s/synthetic.ts';
import { GeneratorInputError, ipv4CidrToken, ipv4Token } from './tokens.ts';

/** What kube-proxy is told about the node it runs on (its flags and node object). */
export interface ProxyOptions {
  /** The node rules are generated for; endpoints on it are local. */
  nodeName?: string | null;
  /** The node's own addresses (NodePorts, IPVS node-port services). */
  nodeIPs?: string[];
  /** kube-proxy --cluster-cidr: traffic from outside it is masqueraded. */
  clusterCIDR?: string;
  /** kube-proxy --iptables-masquerade-bit (14 gives mark 0x4000). */
  masqueradeBit?: number;
}

export interface ResolvedProxyOptions {
  nodeName: string | null;
  nodeIPs: string[];
  clusterCIDR: string;
  masqueradeMark: string;
}

/**
 * Options with defaults filled in and addresses re-formatted (tokens.ts): they reach the rule
 * text too, from CLI flags. IPv6 node IPs are dropped; an IPv6 cluster CIDR is refused.
 */
export function resolveProxyOptions(o: ProxyOptions = {}): ResolvedProxyOptions {
  const bit = o.masqueradeBit ?? 14;
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) throw new GeneratorInputError('options', 'masqueradeBit', `must be 0..31, got ${bit}`);
  const nodeIPs = (o.nodeIPs ?? []).map((ip, i) => ipv4Token(ip, 'options', `nodeIPs[${i}]`)).filter((ip): ip is string => ip !== null);
  const cidr = o.clusterCIDR ?? KIND_DEFAULTS.podSubnet;
  const clusterCIDR = cidr === '' ? '' : ipv4CidrToken(cidr, 'options', 'clusterCIDR');
  if (clusterCIDR === null) throw new GeneratorInputError('options', 'clusterCIDR', `${JSON.stringify(cidr)} is IPv6; the generators write the IPv4 proxier`);
  return {
    nodeName: o.nodeName ?? null,
    nodeIPs,
    clusterCIDR,
    masqueradeMark: `0x${(1 << bit >>> 0).toString(16)}`,
  };
}
