/** kube-proxy's data-plane modes, as kind's `networking.kubeProxyMode` names them. */
export type ProxyMode = 'iptables' | 'ipvs' | 'nftables';

export const PROXY_MODES: readonly ProxyMode[] = ['iptables', 'ipvs', 'nftables'];

export function isProxyMode(s: string): s is ProxyMode {
  return (PROXY_MODES as readonly string[]).includes(s);
}
