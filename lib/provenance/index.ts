import type { ProxyMode } from '../proxy/modes.ts';

export type Backend = 'kind' | 'netns';

/**
 * Where a dataset came from. `captured`: read off a node (iptables-save, ipset, nft …);
 * `measured`: observed by running traffic; `predicted`: computed by our model (lib/proxy, lib/sim).
 */
export interface Provenance {
  source: 'captured' | 'measured' | 'predicted';
  /** null for predictions that no lab produced. */
  backend: Backend | null;
  mode: ProxyMode;
  node?: string;
  lab?: string;
  /** ISO 8601 time the data was taken or computed. */
  at: string;
  /** The command anyone can type to get the same data, when there is one. */
  command?: string;
}

export interface Dataset<T> {
  provenance: Provenance;
  data: T;
}

export function provenance(p: Omit<Provenance, 'at'> & { at?: string }): Provenance {
  return { ...p, at: p.at ?? new Date().toISOString() };
}

/** A short label for plots and tables: "captured · netns/iptables · kind-worker". */
export function provenanceLabel(p: Provenance): string {
  return [p.source, `${p.backend ?? 'model'}/${p.mode}`, p.node].filter(Boolean).join(' · ');
}
