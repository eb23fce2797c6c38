/**
 * iptables has two kernel backends: the legacy x_tables one (`iptables-legacy`, one blob per table,
 * replaced whole on every restore) and nf_tables (`iptables-nft`, rules translated to nftables
 * objects). kube-proxy runs whichever the node uses: kind's node image and kube-proxy's image pick
 * one with iptables-wrapper, which looks at the rules already loaded by each. Same rules, very
 * different costs at scale, so the backend is a dimension of its own.
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
  /** The backend holding kube-proxy's rules; null when neither holds any. */
  backend: IptablesBackend | null;
  /** KUBE-* lines (chains and rules) each backend's save printed. */
  kubeLines: Record<IptablesBackend, number>;
  /** Neither save could run here (the missing tool's message). */
  errors: Partial<Record<IptablesBackend, string>>;
  /** How it was decided, in a line. */
  evidence: string;
}

/**
 * Decide a node's backend from both saves, as iptables-wrapper does: kubelet's and kube-proxy's
 * marker chains first (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY), then whichever holds more
 * KUBE- lines. A null save is a backend that could not be read.
 */
export function detectIptablesBackend(saves: Record<IptablesBackend, string | null>, errors: Partial<Record<IptablesBackend, string>> = {}): IptablesBackendReport {
  const kubeLines = { legacy: 0, nft: 0 } as Record<IptablesBackend, number>;
  const hint = { legacy: false, nft: false } as Record<IptablesBackend, boolean>;
  for (const b of IPTABLES_BACKENDS) {
    for (const line of (saves[b] ?? '').split('\n')) {
      // Chains, their rules, and the built-in chains' jumps into them.
      if (line.startsWith(':KUBE-') || line.startsWith('-A KUBE-') || (line.startsWith('-A ') && line.includes(' -j KUBE-'))) kubeLines[b]++;
      if (/^:KUBE-(IPTABLES-HINT|KUBELET-CANARY) /.test(line)) hint[b] = true;
    }
  }
  const counts = `KUBE- lines: legacy ${kubeLines.legacy}, nft ${kubeLines.nft}`;
  if (hint.legacy !== hint.nft) {
    const b: IptablesBackend = hint.legacy ? 'legacy' : 'nft';
    return { backend: b, kubeLines, errors, evidence: `kubelet's marker chain is in iptables-${b} (${counts})` };
  }
  if (kubeLines.legacy === 0 && kubeLines.nft === 0) return { backend: null, kubeLines, errors, evidence: `neither backend holds KUBE- rules (${counts})` };
  const b: IptablesBackend = kubeLines.legacy > kubeLines.nft ? 'legacy' : 'nft';
  return { backend: b, kubeLines, errors, evidence: `iptables-${b} holds more of them (${counts})` };
}
