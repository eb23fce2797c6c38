import { KIND_DEFAULTS } from '../k8s/synthetic.ts';

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

export function resolveProxyOptions(o: ProxyOptions = {}): ResolvedProxyOptions {
  const bit = o.masqueradeBit ?? 14;
  if (!Number.isInteger(bit) || bit < 0 || bit > 31) throw new Error(`masquerade bit must be 0..31, got ${bit}`);
  return {
    nodeName: o.nodeName ?? null,
    nodeIPs: o.nodeIPs ?? [],
    clusterCIDR: o.clusterCIDR ?? KIND_DEFAULTS.podSubnet,
    masqueradeMark: `0x${(1 << bit >>> 0).toString(16)}`,
  };
}
