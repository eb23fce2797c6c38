/**
 * kube-proxy's load balancing read back from a capture: which endpoint chains a Service chain
 * picks from, with what chance, and where each one sends the packet. The inverse of what the
 * generators write, for parsed `iptables-save` and `nft list ruleset` output.
 */
import { findChain, matchOption, targetOption, type IptTable } from '../parse/index.ts';
import { findNftChain, type NftChain, type NftNumgen, type NftTable } from '../parse/index.ts';

export interface IptablesEndpointJump {
  /** The KUBE-SEP chain the rule jumps to. */
  chain: string;
  /** `--probability` as the kernel lists it (`0.33333333349`); null for the last, unconditional jump. */
  probability: string | null;
  /** The endpoint chain's `DNAT --to-destination`; null when it has none. */
  dnat: string | null;
  /** Rules in the endpoint chain; 0 when the capture lacks it. */
  rules: number;
}

/** The jumps of a KUBE-SVC chain to its KUBE-SEP chains, in rule order. */
export function iptablesEndpointJumps(nat: IptTable, serviceChain: string): IptablesEndpointJump[] {
  const svc = findChain(nat, serviceChain);
  if (!svc) throw new Error(`the nat table has no chain ${serviceChain}`);
  return svc.rules.filter((r) => r.target?.name.startsWith('KUBE-SEP-')).map((r) => {
    const chain = r.target?.name ?? '';
    const sep = findChain(nat, chain);
    const dnat = sep?.rules.find((x) => x.target?.name === 'DNAT');
    return {
      chain,
      probability: matchOption(r, 'statistic', 'probability')?.args[0] ?? null,
      dnat: (dnat && targetOption(dnat, 'to-destination')?.args[0]) ?? null,
      rules: sep?.rules.length ?? 0,
    };
  });
}

export interface NftEndpointEntry {
  /** The numbers `numgen` maps to this chain: `0`, or a range `0-1`. */
  numbers: string;
  /** How many of the `mod` numbers that is. */
  count: number;
  /** The endpoint chain the verdict goes to. */
  chain: string;
  /** The endpoint chain's `dnat to` target; null when it has none. */
  dnat: string | null;
  /** Rules in the endpoint chain; 0 when the capture lacks it. */
  rules: number;
}

/** The first `numgen … vmap` of a chain, or undefined. */
export function chainNumgen(chain: NftChain): NftNumgen | undefined {
  return chain.rules.find((r) => r.numgen)?.numgen ?? undefined;
}

/** The `numgen … vmap` dispatch of an nftables Service chain: its mode and modulus, and one entry per endpoint. */
export function nftEndpointEntries(table: NftTable, serviceChain: string): { mode: string; mod: number; entries: NftEndpointEntry[] } {
  const svc = findNftChain(table, serviceChain);
  if (!svc) throw new Error(`table ${table.family} ${table.name} has no chain ${serviceChain}`);
  const numgen = chainNumgen(svc);
  if (!numgen) throw new Error(`chain ${serviceChain} has no numgen rule`);
  const entries = numgen.entries.map((e) => {
    const chain = e.verdict.target ?? '';
    const ep = findNftChain(table, chain);
    return {
      numbers: e.index === e.last ? String(e.index) : `${e.index}-${e.last}`,
      count: e.last - e.index + 1,
      chain,
      dnat: ep?.rules.find((r) => r.verdict?.kind === 'dnat')?.verdict?.target ?? null,
      rules: ep?.rules.length ?? 0,
    };
  });
  return { mode: numgen.mode, mod: numgen.mod, entries };
}
