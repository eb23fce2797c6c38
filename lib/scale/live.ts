/**
 * A scale sweep run live, as a lesson does: which modes this kernel can time, the command line
 * that does the same, progress in a line per step, and the sweep's own soundness checks.
 */
import { existsSync } from 'node:fs';
import type { Runner } from '../exec/index.ts';
import { listNamespaces } from '../lab/netns/topology.ts';
import type { IptablesBackend } from '../proxy/iptables-backend.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import { PUBLISHED_CLAIMS, checkPublishedClaims, type ClaimCheckPoint, type PublishedSource } from '../sim/published.ts';
import type { ScaleOptions, ScaleProgress, ScaleResult } from './types.ts';

export interface SweepModes {
  modes: ProxyMode[];
  /** Why a mode is left out, or null when every mode is in. */
  note: string | null;
}

/** iptables and nftables, and IPVS where the kernel has IP_VS (`/proc/net/ip_vs`). */
export function sweepModes(procIpVs = '/proc/net/ip_vs'): SweepModes {
  if (existsSync(procIpVs)) return { modes: ['iptables', 'ipvs', 'nftables'], note: null };
  return {
    modes: ['iptables', 'nftables'],
    note: `IPVS is left out: this kernel has no IP_VS (${procIpVs} is absent), so its virtual servers cannot be loaded or timed`,
  };
}

export type SweepCommandOptions = Pick<ScaleOptions, 'modes' | 'iptablesBackends' | 'services' | 'endpoints' | 'samples' | 'repeats' | 'fitMaxServices'>;

/** The `kube-netlab scale` command that runs the same sweep. */
export function scaleCommandLine(o: SweepCommandOptions): string {
  const flags = [
    `--modes ${o.modes.join(',')}`,
    ...(o.iptablesBackends !== undefined ? [`--iptables-backends ${o.iptablesBackends.join(',')}`] : []),
    `--services ${o.services.join(',')}`, `--endpoints ${o.endpoints}`,
    ...(o.samples !== undefined ? [`--samples ${o.samples}`] : []),
    ...(o.repeats !== undefined ? [`--repeats ${o.repeats}`] : []),
    ...(o.fitMaxServices !== undefined ? [`--fit-max ${o.fitMaxServices}`] : []),
  ];
  return `npx kube-netlab scale ${flags.join(' ')}`;
}

/** A line for a step that starts or is skipped, as `kube-netlab scale` prints it; null for the rest. */
export function progressLine(e: ScaleProgress): string | null {
  if (e.phase === 'step') return `[${e.step}/${e.steps}] ${e.variant}, ${e.services} services × ${e.endpoints} endpoints: ${e.message}`;
  if (e.phase === 'done' && e.message.startsWith('skipped')) return `[${e.step}/${e.steps}] ${e.variant}, ${e.services} services: ${e.message}`;
  return null;
}

/** Steps whose kernel counts differ from lib/sim's, as `mode services`. */
export function countMismatches(res: ScaleResult): string[] {
  return res.points.filter((p) => !p.measured.countsMatch).map((p) => `${p.variant} ${p.services}`);
}

/**
 * Latency measurements that are not sound, and why: every connection must have been DNATed to an
 * endpoint, and 0 < p50 ≤ p99.
 */
export function unsoundLatencies(res: ScaleResult): string[] {
  const out: string[] = [];
  for (const p of res.points) {
    for (const [which, l] of [['first', p.measured.firstServiceLatencyUs], ['last', p.measured.lastServiceLatencyUs]] as const) {
      if (!l) continue;
      const what = `${p.variant} ${p.services}, ${which} service`;
      if (l.dnatVerified !== true) out.push(`${what}: not every connection was checked to be DNATed`);
      if (!(l.p50 > 0)) out.push(`${what}: p50 ${l.p50} µs is not positive`);
      if (!(l.p99 >= l.p50)) out.push(`${what}: p99 ${l.p99} µs is below p50 ${l.p50} µs`);
    }
  }
  return out;
}

/**
 * The parts of a sweep the published claims are checked against (see checkPublishedClaims), with
 * iptables mode on one backend: the claims compare one iptables against nftables.
 */
export function claimCheckPoints(res: Pick<ScaleResult, 'points'>, iptablesBackend?: IptablesBackend): ClaimCheckPoint[] {
  const backends = new Set(res.points.filter((p) => p.mode === 'iptables').map((p) => p.iptablesBackend ?? 'nft'));
  if (iptablesBackend === undefined && backends.size > 1) throw new Error(`the sweep ran iptables on ${[...backends].join(' and ')}: say which backend the claims are checked on`);
  const kept = res.points.filter((p) => p.mode !== 'iptables' || iptablesBackend === undefined || (p.iptablesBackend ?? 'nft') === iptablesBackend);
  return kept.map((p) => ({
    mode: p.mode,
    services: p.services,
    firstP50Us: p.measured.firstServiceLatencyUs?.p50,
    lastP50Us: p.measured.lastServiceLatencyUs?.p50,
    syncMs: p.measured.syncMs,
    changeMs: p.measured.changeMs ?? undefined,
  }));
}

export interface ClaimVerdict {
  claim: string;
  statement: string;
  /** `iptables-legacy vs nftables`: which iptables the claim was checked on. */
  compared: string;
  verdict: 'holds' | 'does not hold' | 'cannot tell';
  /** The figures, and the threshold that decided. */
  evidence: string;
}

/** The claims (of one source, or all) against a sweep, once per iptables backend it ran. */
export function claimVerdicts(res: Pick<ScaleResult, 'points'>, source?: PublishedSource['id']): ClaimVerdict[] {
  const backends = [...new Set(res.points.filter((p) => p.mode === 'iptables').map((p) => p.iptablesBackend ?? 'nft'))];
  const out: ClaimVerdict[] = [];
  for (const b of backends.length > 0 ? backends : [undefined]) {
    for (const c of checkPublishedClaims(claimCheckPoints(res, b))) {
      const claim = PUBLISHED_CLAIMS.find((x) => x.id === c.claim)!;
      if (source !== undefined && claim.source !== source) continue;
      const verdict = c.holds === null ? 'cannot tell' : c.holds ? 'holds' : 'does not hold';
      out.push({ claim: c.claim, statement: claim.statement, compared: `${b ? `iptables-${b}` : 'iptables'} vs nftables`, verdict, evidence: c.evidence });
    }
  }
  return out;
}

/** Network namespaces whose name starts with `prefix` (a sweep's are `<prefix>-<pid>-<hex>`). */
export async function namespacesNamed(r: Runner, prefix: string): Promise<string[]> {
  return (await listNamespaces(r)).filter((n) => n.startsWith(prefix));
}
