/**
 * IPVS mode's live trace: the kernel's packet tracer sees only the iptables part of the path (nat
 * PREROUTING and filter INPUT, or nat OUTPUT, which run before IPVS hooks LOCAL_IN at priority 99
 * and LOCAL_OUT at -98); the virtual server's pick is no rule, so its split is read from IPVS's
 * own per-real-server connection counters. Here: the prediction cut where IPVS takes over, the
 * counter deltas, and the walks' counts distributed over the real servers by them. Pure: no I/O.
 */
import type { IpvsState } from '../parse/ipvs-types.ts';
import type { ChiSquareResult } from '../sim/stats.ts';
import { joinHostPort } from './addr.ts';
import { IPTABLES_BUILTIN, chiSquareOf } from './live.ts';
import type { Hook, Outcome, TraceResult } from './types.ts';

/** The pseudo-chain lib/trace names where IPVS takes the packet: `IPVS TCP 10.96.0.10:80 rr`. */
export const IPVS_PSEUDO_CHAIN = /^IPVS /;

/** Base chains (table, chain) the packet meets before IPVS, in the kernel's order. */
export function chainsBeforeIpvs(hook: Hook): [table: string, chain: string][] {
  return hook === 'PREROUTING' ? [['nat', 'PREROUTING'], ['filter', 'INPUT']] : [['nat', 'OUTPUT']];
}

/** For buildWalks' stopAt: a base chain the traced walk reaches only after IPVS's hook. */
export function pastIpvs(hook: Hook): (table: string, chain: string) => boolean {
  const before = new Set(chainsBeforeIpvs(hook).map(([t, c]) => `${t} ${c}`));
  return (table, chain) => !before.has(`${table} ${chain}`);
}

export interface IptablesPart {
  /** The predicted outcomes cut where IPVS takes over, identical ones merged. */
  part: TraceResult;
  /** For each full outcome (prediction.outcomes' order), the part outcome it continues. */
  partOf: number[];
}

/**
 * The prediction as far as the kernel's tracer can see it: each outcome's path cut at the IPVS
 * pseudo-chain or at the first base chain past the ones IPVS follows (a cut outcome is the
 * iptables part's ACCEPT, no DNAT yet), and outcomes cut alike merged, probabilities summed.
 */
export function iptablesPartOf(prediction: TraceResult): IptablesPart {
  const order = chainsBeforeIpvs(prediction.hook).map(([, c]) => c);
  const parts: Outcome[] = [];
  const keys = new Map<string, number>();
  const partOf = prediction.outcomes.map((o) => {
    let next = 0;
    let cut = o.path.length;
    for (let i = 0; i < o.path.length; i++) {
      const c = o.path[i];
      if (IPVS_PSEUDO_CHAIN.test(c)) {
        cut = i;
        break;
      }
      if (!IPTABLES_BUILTIN.test(c)) continue;
      const at = order.indexOf(c, next);
      if (at < 0) {
        cut = i;
        break;
      }
      next = at + 1;
    }
    const kept = o.path.slice(0, cut);
    const cutShort = cut < o.path.length;
    const chains = new Set(kept);
    const firstOut = o.steps.findIndex((s) => !chains.has(s.chain));
    const { ipvs: _ipvs, ...whole } = o;
    const p: Outcome = cutShort
      ? { probability: o.probability, verdict: 'ACCEPT', dnat: null, snat: null, mark: o.mark, path: kept, steps: firstOut < 0 ? o.steps : o.steps.slice(0, firstOut) }
      : whole;
    const key = JSON.stringify([p.path, p.verdict, p.dnat, p.snat]);
    const have = keys.get(key);
    if (have !== undefined) {
      parts[have].probability += o.probability;
      return have;
    }
    keys.set(key, parts.length);
    parts.push(p);
    return parts.length - 1;
  });
  return { part: { ...prediction, outcomes: parts }, partOf };
}

export interface IpvsServerDelta {
  /** `ip:port` of the real server. */
  server: string;
  /** New connections IPVS handed it between the two readings. */
  conns: number;
}

/**
 * Per real server of one virtual server, the growth of its connection counter between two
 * `ipvsadm -Ln --stats` readings (a server new in the second counts from 0); null when the
 * second reading lacks the virtual server.
 */
export function ipvsConnDeltas(before: IpvsState, after: IpvsState, vs: { protocol: string; address: string; port: number }): IpvsServerDelta[] | null {
  const find = (s: IpvsState) => s.services.find((x) => x.protocol === vs.protocol.toUpperCase() && x.address === vs.address && x.port === vs.port);
  const a = find(after);
  if (!a) return null;
  const b = find(before);
  const was = new Map((b?.destinations ?? []).map((d) => [joinHostPort(d.address, d.port), d.stats?.conns ?? 0]));
  return a.destinations.map((d) => {
    const server = joinHostPort(d.address, d.port);
    const now = d.stats?.conns;
    if (now === undefined || !Number.isFinite(now)) throw new Error(`ipvsadm reading of ${server} has no connection counter: read it with ipvsadm -Ln --stats --exact`);
    return { server, conns: Math.max(0, now - (was.get(server) ?? 0)) };
  });
}

/** n split in proportion to weights, in whole numbers summing to n (largest remainders). */
export function apportion(n: number, weights: readonly number[]): number[] {
  const total = weights.reduce((a, w) => a + w, 0);
  if (total <= 0) return weights.map(() => 0);
  const exact = weights.map((w) => (n * w) / total);
  const out = exact.map(Math.floor);
  let left = n - out.reduce((a, x) => a + x, 0);
  const order = exact.map((x, i) => ({ i, r: x - Math.floor(x) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    out[i]++;
    left--;
  }
  return out;
}

export interface IpvsSplit {
  /** Per full predicted outcome: walks through its iptables part, shared out by the counter deltas. */
  counts: number[];
  /** Those counts against the predicted probabilities; null with fewer than two outcomes possible. */
  chiSquare: ChiSquareResult | null;
  /** Connections the counters grew by beyond the walks traced (other clients, retries): 0 on a quiet lab. */
  extra: number;
}

/**
 * Count paths are the walks through the iptables part; branch counts are the IPVS counter deltas:
 * each part's walks are distributed over the outcomes that continue it, in proportion to the
 * connections IPVS handed each outcome's real server. An outcome IPVS does not choose (the part
 * ends before it) keeps its part's count whole.
 */
export function splitByIpvsCounters(prediction: TraceResult, cut: IptablesPart, partCounts: readonly number[], deltas: readonly IpvsServerDelta[]): IpvsSplit {
  const byServer = new Map(deltas.map((d) => [d.server, d.conns]));
  const counts = prediction.outcomes.map(() => 0);
  cut.part.outcomes.forEach((_, p) => {
    const continues = prediction.outcomes.map((o, i) => ({ o, i })).filter((x) => cut.partOf[x.i] === p);
    const scheduled = continues.filter((x) => x.o.ipvs && x.o.dnat !== null);
    if (scheduled.length === 0) {
      for (const x of continues) counts[x.i] += partCounts[p] ?? 0;
      return;
    }
    const shares = apportion(partCounts[p] ?? 0, scheduled.map((x) => byServer.get(x.o.dnat as string) ?? 0));
    scheduled.forEach((x, k) => {
      counts[x.i] += shares[k];
    });
  });
  const walks = partCounts.reduce((a, x) => a + x, 0);
  const extra = Math.max(0, deltas.reduce((a, d) => a + d.conns, 0) - walks);
  return { counts, chiSquare: chiSquareOf(prediction, counts), extra };
}

