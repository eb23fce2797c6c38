/**
 * Where each external binary the project runs comes from: a Debian/Ubuntu package, or (for
 * kind and kubectl, which Debian does not ship) the upstream install page.
 */
export interface ToolSource {
  apt?: string;
  elsewhere?: string;
}

export const TOOL_SOURCES: Readonly<Record<string, ToolSource>> = {
  ip: { apt: 'iproute2' },
  bridge: { apt: 'iproute2' },
  iptables: { apt: 'iptables' },
  'iptables-save': { apt: 'iptables' },
  'iptables-restore': { apt: 'iptables' },
  ipset: { apt: 'ipset' },
  ipvsadm: { apt: 'ipvsadm' },
  nft: { apt: 'nftables' },
  conntrack: { apt: 'conntrack' },
  sysctl: { apt: 'procps' },
  pgrep: { apt: 'procps' },
  unshare: { apt: 'util-linux' },
  nsenter: { apt: 'util-linux' },
  docker: { apt: 'docker.io', elsewhere: 'or Docker Engine from docs.docker.com/engine/install' },
  kubectl: { elsewhere: 'kubernetes.io/docs/tasks/tools' },
  kind: { elsewhere: 'kind.sigs.k8s.io/docs/user/quick-start (v0.29.0 or later)' },
  jupyter: { apt: 'jupyter-nbconvert jupyter-client python3-ipykernel' },
  curl: { apt: 'curl' },
};

/** The Debian/Ubuntu package that provides a binary, if Debian ships it. */
export function packageFor(binary: string): string | undefined {
  return TOOL_SOURCES[binary]?.apt;
}

/** What to do about a missing binary: "install it with `apt-get install -y iproute2`", or where to get it. */
export function installHint(binary: string): string | undefined {
  const s = TOOL_SOURCES[binary];
  if (!s) return undefined;
  if (s.apt) return `install it with \`apt-get install -y ${s.apt}\`${s.elsewhere ? ` (${s.elsewhere})` : ''}`;
  return `install it from ${s.elsewhere}`;
}
