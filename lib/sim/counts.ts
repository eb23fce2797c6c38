import type { ProxyMode } from '../proxy/modes.ts';

/**
 * Closed-form counts of what kube-proxy programs for S ClusterIP services with E ready endpoints
 * each, N of them also NodePort services (TCP, single port, default options). Each formula is
 * checked against the generators in test/sim/counts.test.ts.
 */
export interface CountInput {
  services: number;
  endpoints: number;
  nodePorts?: number;
}

export interface TableCount {
  chains: number;
  rules: number;
}

export interface IptablesCounts {
  filter: TableCount;
  /** Rules kube-proxy writes into its own nat chains (the restore input, no built-in jumps). */
  nat: TableCount;
}

export interface IpvsCounts {
  /** Members per ipset. */
  ipsetMembers: Record<string, number>;
  virtualServers: number;
  realServers: number;
  /** kube-ipvs0 addresses. */
  dummyAddresses: number;
  iptables: IptablesCounts;
}

export interface NftablesCounts {
  chains: number;
  rules: number;
  sets: number;
  maps: number;
  elements: number;
}

export interface ModeCounts {
  iptables?: IptablesCounts;
  ipvs?: IpvsCounts;
  nftables?: NftablesCounts;
}

function check({ services: S, endpoints: E, nodePorts: N = 0 }: CountInput): [number, number, number] {
  for (const [k, v] of [['services', S], ['endpoints', E], ['nodePorts', N]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${k} must be a whole number ≥ 0, got ${v}`);
  }
  if (N > S) throw new Error(`nodePorts (${N}) cannot exceed services (${S})`);
  return [S, E, N];
}

/**
 * iptables mode. Fixed: nat KUBE-SERVICES, KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-MARK-MASQ with
 * 5 rules; filter's 6 chains with 4 rules. Per service: a KUBE-SERVICES rule, a KUBE-SVC chain
 * (masquerade rule + E jumps) and E KUBE-SEP chains of 2 rules. Per NodePort: a KUBE-NODEPORTS
 * rule and a KUBE-EXT chain of 2 rules. Without endpoints a service is one filter REJECT (two
 * with a NodePort) and nothing in nat.
 */
export function iptablesCounts(input: CountInput): IptablesCounts {
  const [S, E, N] = check(input);
  if (E === 0) return { filter: { chains: 6, rules: 4 + S + N }, nat: { chains: 4, rules: 5 } };
  return {
    filter: { chains: 6, rules: 4 },
    nat: { chains: 4 + S * (1 + E) + N, rules: 5 + S * (2 + 3 * E) + 3 * N },
  };
}

export function predictCounts(mode: ProxyMode | 'all', input: CountInput): ModeCounts {
  const out: ModeCounts = {};
  if (mode === 'iptables' || mode === 'all') out.iptables = iptablesCounts(input);
  return out;
}
