/**
 * What others published about kube-proxy at scale, as tables beside our own sweeps: the sources,
 * their figures with ours at the same size, and the blog's claims checked against each sweep.
 */
import { claimCheckPoints } from '../scale/live.ts';
import type { ScaleResult } from '../scale/types.ts';
import { PUBLISHED_CLAIMS, PUBLISHED_FIGURES, PUBLISHED_SOURCES, checkPublishedClaims } from '../sim/published.ts';

/** A duration for people: `2 ms`, `11 min`, `5.0 h`. */
export function formatDuration(ms: number): string {
  if (ms >= 3_600_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  if (ms >= 60_000) return `${(ms / 60_000).toFixed(0)} min`;
  return `${ms} ms`;
}

const num = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

export const PUBLISHED_SOURCE_HEADER = ['source', 'where', 'checked against', 'their test bed'];

/** One row per source: title, where and its address, how we know what it says, its test bed. */
export function publishedSourceRows(): string[][] {
  return PUBLISHED_SOURCES.map((s) => [s.title, `${s.where} — ${s.url}`, s.verification, s.testbed]);
}

export const PUBLISHED_FIGURE_HEADER = ['source', 'mode', 'services', 'published', 'what', 'ours'];

/** What our sweep says at the size of a published figure: measured there, not run and why, or not a size of it. */
export function oursAt(sweep: ScaleResult | null, mode: string, services: number): string {
  if (!sweep) return 'no recorded sweep (npm run bench)';
  if (!(sweep.options.modes as string[]).includes(mode)) return `${mode} is not in the recorded sweep`;
  const exact = sweep.points.find((p) => p.mode === mode && p.services === services);
  if (exact) return exact.measured.changeMs === null ? 'the change was not measured' : `${num(exact.measured.changeMs)} ms measured (one-endpoint change)`;
  const skipped = (sweep.skippedSteps ?? []).find((s) => s.mode === mode && s.services === services);
  if (skipped) return `not run: ${skipped.reason}`;
  return 'not a size of the recorded sweep';
}

/** One row per published figure, with ours at the same size beside it. */
export function publishedFigureRows(sweep: ScaleResult | null): (string | number)[][] {
  return PUBLISHED_FIGURES.map((f) => [f.source, f.mode, f.services, formatDuration(f.value), f.note, oursAt(sweep, f.mode, f.services)]);
}

export const CLAIM_HEADER = ['sweep', 'claim', 'here', 'evidence'];

const verdict = (holds: boolean | null) => (holds === null ? 'cannot tell' : holds ? 'holds' : 'does not hold');

/** Each claim of the sources checked against each sweep given (labelled `live`, `recorded`, …); null sweeps are left out. */
export function claimRows(sweeps: readonly { label: string; sweep: Pick<ScaleResult, 'points'> | null }[]): string[][] {
  const rows: string[][] = [];
  for (const { label, sweep } of sweeps) {
    if (!sweep) continue;
    for (const c of checkPublishedClaims(claimCheckPoints(sweep))) {
      const claim = PUBLISHED_CLAIMS.find((x) => x.id === c.claim);
      rows.push([label, claim?.statement ?? c.claim, verdict(c.holds), c.evidence]);
    }
  }
  return rows;
}

/**
 * The claims no sweep of ours checks, each in a line with its source and why: they compare IPVS's
 * data path, and the checks compare iptables and nftables only.
 */
export function uncheckedClaimLines(kernelHasIpvs: boolean): string[] {
  const checked = new Set(checkPublishedClaims([]).map((c) => c.claim));
  return PUBLISHED_CLAIMS.filter((c) => !checked.has(c.id)).map((c) => {
    const src = PUBLISHED_SOURCES.find((x) => x.id === c.source);
    const why = kernelHasIpvs ? ': this kernel has it, but the checks compare iptables and nftables only' : ', which this kernel lacks';
    return `Not checked here: "${c.statement}" (${src?.title ?? c.source}, ${src?.verification ?? 'unverified'}) needs IPVS's data path${why}.`;
  });
}
