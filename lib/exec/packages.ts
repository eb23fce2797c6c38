/** Which Debian/Ubuntu package provides each external binary the project runs. */
export const DEBIAN_PACKAGE: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  bridge: 'iproute2',
  iptables: 'iptables',
  'iptables-save': 'iptables',
  'iptables-restore': 'iptables',
  ipset: 'ipset',
  ipvsadm: 'ipvsadm',
  nft: 'nftables',
  conntrack: 'conntrack',
  unshare: 'util-linux',
  nsenter: 'util-linux',
  docker: 'docker.io (or Docker Engine from docker.com)',
  kubectl: 'kubectl (see kubernetes.io/docs/tasks/tools)',
  kind: 'kind (see kind.sigs.k8s.io/docs/user/quick-start)',
  jupyter: 'jupyter-nbconvert jupyter-client python3-ipykernel',
  curl: 'curl',
};

export function packageFor(binary: string): string | undefined {
  return DEBIAN_PACKAGE[binary];
}
