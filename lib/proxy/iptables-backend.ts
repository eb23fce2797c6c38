/**
 * iptables has two kernel backends: the legacy x_tables one (`iptables-legacy`, one blob per table,
 * replaced whole on every restore) and nf_tables (`iptables-nft`, rules translated to nftables
 * objects). kube-proxy runs whichever the node uses: kind's node image and kube-proxy's image pick
 * one with kubernetes-sigs/iptables-wrappers, which looks at the rules already loaded by each.
 * Same rules, very different costs at scale, so the backend is a dimension of its own.
 */
export type IptablesBackend = 'legacy' | 'nft';

export const IPTABLES_BACKENDS: readonly IptablesBackend[] = ['legacy', 'nft'];

export function isIptablesBackend(s: string): s is IptablesBackend {
  return (IPTABLES_BACKENDS as readonly string[]).includes(s);
}

/** The binaries of one backend (Debian's xtables-legacy-multi / xtables-nft-multi links). */
export interface IptablesTools {
  iptables: string;
  restore: string;
  save: string;
}

export function iptablesTools(b: IptablesBackend): IptablesTools {
  return { iptables: `iptables-${b}`, restore: `iptables-${b}-restore`, save: `iptables-${b}-save` };
}

/** `iptables-nft` for one backend: how tables, notebooks and results name a mode on a backend. */
export function iptablesVariant(b: IptablesBackend): `iptables-${IptablesBackend}` {
  return `iptables-${b}`;
}

/** What each backend's save printed on a node, and what that says about the node's backend. */
export interface IptablesBackendReport {
  /** The backend the node uses; null when neither holds a rule. */
  backend: IptablesBackend | null;
  /** Rules (`-A` lines) each backend's save printed. */
  ruleLines: Record<IptablesBackend, number>;
  /** A save that could not be read, and why. */
  errors: Partial<Record<IptablesBackend, string>>;
  /** How it was decided, in a line. */
  evidence: string;
}

const KUBELET_CHAIN = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) /m;

/**
 * Decide a node's backend from both saves as kubernetes-sigs/iptables-wrappers does: the chain
 * kubelet leaves in the backend it uses (KUBE-IPTABLES-HINT since 1.24, KUBE-KUBELET-CANARY
 * since 1.17), looked for in nft first; failing that, the backend with more rules, nft on a tie.
 * A null save is a backend that could not be read; with no rule anywhere the answer is null.
 */
export function detectIptablesBackend(saves: Record<IptablesBackend, string | null>, errors: Partial<Record<IptablesBackend, string>> = {}): IptablesBackendReport {
  const ruleLines = { legacy: 0, nft: 0 } as Record<IptablesBackend, number>;
  for (const b of IPTABLES_BACKENDS) ruleLines[b] = ((saves[b] ?? '').match(/^-/gm) ?? []).length;
  const counts = `rules: legacy ${ruleLines.legacy}, nft ${ruleLines.nft}`;
  for (const b of ['nft', 'legacy'] as const) {
    if (KUBELET_CHAIN.test(saves[b] ?? '')) return { backend: b, ruleLines, errors, evidence: `kubelet's marker chain is in iptables-${b} (${counts})` };
  }
  if (ruleLines.legacy === 0 && ruleLines.nft === 0) return { backend: null, ruleLines, errors, evidence: `neither backend holds a rule (${counts})` };
  const b: IptablesBackend = ruleLines.legacy > ruleLines.nft ? 'legacy' : 'nft';
  return { backend: b, ruleLines, errors, evidence: `iptables-${b} holds more rules (${counts})` };
}
