import type { TableCounts as TableCount } from '../proxy/iptables-restore.ts';
import { IPVS_IPSETS } from '../proxy/ipvs.ts';
import type { NftablesCounts } from '../proxy/nftables.ts';
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
  /** The node's own addresses kube-proxy knows (a kind node has one). */
  nodeIPs?: number;
  /**
   * Endpoints running on the node itself (IPVS mode's KUBE-LOOP-BACK). Default: pods spread
   * round-robin over kind's three nodes, as syntheticCluster places them, seen from kind-worker.
   */
  localEndpoints?: number;
}

export type { TableCounts as TableCount } from '../proxy/iptables-restore.ts';
export type { NftablesCounts } from '../proxy/nftables.ts';

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

export interface ModeCounts {
  iptables?: IptablesCounts;
  ipvs?: IpvsCounts;
  nftables?: NftablesCounts;
}

/**
 * Largest S × E the closed forms take: every count stays an exact integer (far below 2^53) and
 * is computed in constant time, so this bounds nothing but nonsense.
 */
export const MAX_COUNT_SERVICE_ENDPOINTS = 1e12;
export const MAX_COUNT_SERVICES = 1e9;

function check({ services: S, endpoints: E, nodePorts: N = 0 }: CountInput): [number, number, number] {
  for (const [k, v] of [['services', S], ['endpoints', E], ['nodePorts', N]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`${k} must be a whole number ≥ 0, got ${v}`);
  }
  if (N > S) throw new Error(`nodePorts (${N}) cannot exceed services (${S})`);
  if (S > MAX_COUNT_SERVICES) throw new Error(`services must be at most ${MAX_COUNT_SERVICES.toExponential()}, got ${S}`);
  if (S * E > MAX_COUNT_SERVICE_ENDPOINTS) {
    throw new Error(`services × endpoints must be at most 10^12 so every count stays exact, got ${S} × ${E}`);
  }
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

/**
 * nftables mode. Fixed: 16 chains (8 base, 8 helpers) with 23 rules, 5 verdict maps, the
 * cluster-ips set and, when the node's addresses are known, the nodeport-ips set holding them.
 * Per service: a service chain (masquerade rule + numgen dispatch) and E endpoint chains of 2
 * rules; elements in cluster-ips and service-ips. Per NodePort: an external chain of 2 rules and
 * a service-nodeports element. Without endpoints: no chains, and an element in
 * no-endpoint-services (and no-endpoint-nodeports) instead of service-ips.
 */
export function nftablesCounts(input: CountInput): NftablesCounts {
  const [S, E, N] = check(input);
  const nodeIPs = input.nodeIPs ?? 1;
  const base = { sets: nodeIPs > 0 ? 2 : 1, maps: 5, elements: nodeIPs + 2 * S + N };
  if (E === 0) return { chains: 16, rules: 23, ...base };
  return { chains: 16 + S * (1 + E) + N, rules: 23 + S * (2 + 2 * E) + 2 * N, ...base };
}

/**
 * IPVS mode. Per service: a ClusterIP in KUBE-CLUSTER-IP and KUBE-IPVS-IPS and on kube-ipvs0, one
 * virtual server with E real servers. Per NodePort: a KUBE-NODE-PORT-TCP member and a virtual
 * server on each node address. Per local endpoint: a KUBE-LOOP-BACK member. The iptables part
 * has 5 nat chains and 7 rules, plus 2 once any ClusterIP exists, 1 for loop-back hairpins and 1
 * for node ports: it does not grow with the number of services.
 */
export function ipvsCounts(input: CountInput): IpvsCounts {
  const [S, E, N] = check(input);
  const nodeIPs = input.nodeIPs ?? 1;
  const local = input.localEndpoints ?? Math.floor((S * E + 1) / 3);
  const virtualServers = S + N * nodeIPs;
  const members: Record<string, number> = Object.fromEntries(IPVS_IPSETS.map((set) => [set.name, 0]));
  Object.assign(members, { 'KUBE-CLUSTER-IP': S, 'KUBE-IPVS-IPS': S, 'KUBE-LOOP-BACK': local, 'KUBE-NODE-PORT-TCP': N });
  return {
    ipsetMembers: members,
    virtualServers,
    realServers: E * virtualServers,
    dummyAddresses: S,
    iptables: {
      filter: { chains: 6, rules: 10 },
      nat: { chains: 5, rules: 7 + (S > 0 ? 2 : 0) + (local > 0 ? 1 : 0) + (N > 0 ? 1 : 0) },
    },
  };
}

export function predictCounts(mode: ProxyMode | 'all', input: CountInput): ModeCounts {
  const out: ModeCounts = {};
  if (mode === 'iptables' || mode === 'all') out.iptables = iptablesCounts(input);
  if (mode === 'ipvs' || mode === 'all') out.ipvs = ipvsCounts(input);
  if (mode === 'nftables' || mode === 'all') out.nftables = nftablesCounts(input);
  return out;
}
