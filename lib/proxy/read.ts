/**
 * kube-proxy's structures read back from a node's parsed state: the KUBE-* chains of a nat
 * table, a Service chain's jumps with their probabilities, the `numgen` dispatch of an nftables
 * Service chain, a virtual server's real servers, the members of kube-proxy's ipsets. Pure: the
 * input is what lib/parse made of iptables-save, nft, ipvsadm or ipset output.
 */
import type { ServicePortInfo } from '../k8s/types.ts';
import {
  findChain, findNftChain, findNftTable, findTable,
  type IpsetSet, type IpsetState, type IptablesSave, type IptChain, type IptTable, type IpvsService,
  type IpvsState, type NftNumgen, type NftRuleset,
} from '../parse/index.ts';
import { savedProbability } from './iptables.ts';
import { chainNumgen, iptablesEndpointJumps } from './read-back.ts';
import { KUBE_PROXY_TABLE, nftServiceChain } from './nftables.ts';

/**
 * kube-proxy's chains in a table: KUBE-*, without KUBE-KUBELET-CANARY and KUBE-PROXY-CANARY,
 * the empty chains kubelet and kube-proxy keep only to notice a flushed table.
 */
export function kubeChains(table: IptTable): IptChain[] {
  return table.chains.filter((c) => c.name.startsWith('KUBE-') && !c.name.endsWith('-CANARY'));
}

/** Chain `name` of a table; throws, naming the chains there are, when it has none. */
export function chainNamed(table: IptTable, name: string): IptChain {
  const c = findChain(table, name);
  if (!c) throw new Error(`no chain ${name} in table ${table.name} (it has ${table.chains.map((x) => x.name).join(', ') || 'none'})`);
  return c;
}

/** Set `name`; throws, naming the sets there are, when there is none. */
export function ipsetNamed(state: IpsetState, name: string): IpsetSet {
  const s = state.sets.find((x) => x.name === name);
  if (!s) throw new Error(`no ipset ${name} (there are ${state.sets.map((x) => x.name).join(', ') || 'none'})`);
  return s;
}

/** All rules of these chains. */
export function ruleCount(chains: readonly IptChain[]): number {
  return chains.reduce((n, c) => n + c.rules.length, 0);
}

/** nftables mode's Service chain for a port: `service-<hash>-ns/name/proto/port`. */
export { nftServiceChain };

/**
 * What iptables-save prints for the n jumps of a Service chain with n endpoints: 1/n, 1/(n−1),
 * …, 1/2 as the kernel stores them, and none (null) on the last jump, which is unconditional.
 */
export function jumpProbabilities(n: number): (string | null)[] {
  return Array.from({ length: n }, (_, i) => (i < n - 1 ? savedProbability(n - i) : null));
}

/** `ip,proto:port`: how a Service port appears in IPVS mode's KUBE-CLUSTER-IP set. */
export function clusterIpMember(port: Pick<ServicePortInfo, 'clusterIP' | 'protocol' | 'port'>): string {
  return `${port.clusterIP},${port.protocol.toLowerCase()}:${port.port}`;
}

/** One jump of a KUBE-SVC chain: its endpoint chain, where that DNATs to, and the probability. */
export interface ServiceJump {
  sep: string;
  /** The endpoint chain's `--to-destination`, or `?` when the chain has no DNAT rule. */
  to: string;
  /** As iptables-save prints it (`0.20000000019`); null for the last jump, which has none. */
  probability: string | null;
}

/** The jumps of Service chain `chain` in the nat table of an iptables-save, in order. */
export function serviceJumps(save: IptablesSave, chain: string): ServiceJump[] {
  const nat = findTable(save, 'nat');
  if (!nat || !findChain(nat, chain)) throw new Error(`no chain ${chain} in the nat table`);
  return iptablesEndpointJumps(nat, chain).map((j) => ({ sep: j.chain, to: j.dnat ?? '?', probability: j.probability }));
}

/** The `numgen … vmap` of an nftables Service chain in table ip kube-proxy; null when there is none. */
export function numgenOf(ruleset: NftRuleset, chain: string): NftNumgen | null {
  const table = findNftTable(ruleset, 'ip', KUBE_PROXY_TABLE);
  const c = table && findNftChain(table, chain);
  return (c && chainNumgen(c)) ?? null;
}

/** The virtual server for address:port (TCP unless told), or undefined. */
export function virtualServer(state: IpvsState, address: string, port: number, protocol = 'TCP'): IpvsService | undefined {
  return state.services.find((s) => s.protocol === protocol && s.address === address && s.port === port);
}

/** Members of kube-proxy's KUBE-* ipsets, each list sorted. */
export function kubeSetMembers(state: IpsetState): Record<string, string[]> {
  return Object.fromEntries(state.sets.filter((s) => s.name.startsWith('KUBE-')).map((s) => [s.name, [...s.members].sort()]));
}
