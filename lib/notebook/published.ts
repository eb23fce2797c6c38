/**
 * What others published about kube-proxy at scale, as tables beside our own sweeps: the sources,
 * their figures with ours at the same size, and the blog's claims checked against each sweep.
 */
import { claimVerdicts } from '../scale/live.ts';
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

/**
 * What our sweep says at the size of a published figure, per variant of the mode (iptables on
 * each backend): measured there, not run and why, or not a size of it.
 */
export function oursAt(sweep: ScaleResult | null, mode: string, services: number): string {
  if (!sweep) return 'no recorded sweep (npm run bench)';
  if (!(sweep.options.modes as string[]).includes(mode)) return `${mode} is not in the recorded sweep`;
  if (!sweep.options.services.includes(services)) return 'not a size of the recorded sweep';
  const variants = [...new Set([...sweep.points, ...(sweep.skippedSteps ?? [])].filter((p) => p.mode === mode).map((p) => p.variant ?? p.mode))];
  const one = (variant: string) => {
    const exact = sweep.points.find((p) => (p.variant ?? p.mode) === variant && p.services === services);
    if (exact) return exact.measured.changeMs === null ? 'the change was not measured' : `${num(exact.measured.changeMs)} ms measured (one-endpoint change)`;
    const skipped = (sweep.skippedSteps ?? []).find((s) => (s.variant ?? s.mode) === variant && s.services === services);
    if (skipped) return `not run: ${skipped.reason}`;
    return 'not a size of the recorded sweep';
  };
  if (variants.length <= 1) return one(variants[0] ?? mode);
  return variants.map((v) => `${v}: ${one(v)}`).join('; ');
}

/** One row per published figure, with ours at the same size beside it. */
export function publishedFigureRows(sweep: ScaleResult | null): (string | number)[][] {
  return PUBLISHED_FIGURES.map((f) => [f.source, f.mode, f.services, formatDuration(f.value), f.note, oursAt(sweep, f.mode, f.services)]);
}

export const CLAIM_HEADER = ['sweep', 'claim', 'here', 'evidence'];


/**
 * Each claim of the sources checked against each sweep given (labelled `live`, `recorded`, …),
 * once per iptables backend the sweep ran; null sweeps are left out.
 */
export function claimRows(sweeps: readonly { label: string; sweep: Pick<ScaleResult, 'points'> | null }[]): string[][] {
  const rows: string[][] = [];
  for (const { label, sweep } of sweeps) {
    if (!sweep) continue;
    for (const v of claimVerdicts(sweep)) rows.push([`${label}, ${v.compared}`, v.statement, v.verdict, v.evidence]);
  }
  return rows;
}

export const SIDE_BY_SIDE_HEADER = ['variant', 'Services', 'full sync ms', 'change ms', 'last Service p50 µs', 'published at this size'];

/**
 * Measured, modelled and published side by side, for the sizes the model was not fitted on:
 * each cell `measured [model]`, and what a source says at that size and mode, with how we know it.
 */
export function sideBySideRows(sweep: ScaleResult | null): string[][] {
  if (!sweep) return [];
  const cell = (m: number | null | undefined, p: number | null | undefined) => `${m === null || m === undefined ? '–' : num(m)} [${p === null || p === undefined ? '–' : num(p)}]`;
  const claims = claimVerdicts(sweep, 'k8s-blog-nftables-2025');
  return sweep.points.filter((p) => !p.predicted.inFit).map((p) => {
    const variant = p.variant ?? p.mode;
    const figures = PUBLISHED_FIGURES.filter((f) => f.mode === p.mode && f.services === p.services).map((f) => {
      const src = PUBLISHED_SOURCES.find((s) => s.id === f.source);
      return `${src?.title ?? f.source}: ${formatDuration(f.value)}, ${f.note} (${src?.verification ?? 'unverified'})`;
    });
    // The blog's one claim tied to sizes: nftables' p50 at 5,000 and 10,000 against iptables' best case.
    const at = p.services === 5_000 || p.services === 10_000
      ? claims.filter((c) => c.claim === 'nftables-p50-vs-iptables-best' && (p.mode === 'nftables' || c.compared.startsWith(variant)))
        .map((c) => `blog (source text): nftables p50 ≈ iptables p01 — ${c.verdict} here (${c.compared})`)
      : [];
    return [
      variant, String(p.services), cell(p.measured.syncMs, p.predicted.syncMs), cell(p.measured.changeMs, p.predicted.changeMs),
      cell(p.measured.lastServiceLatencyUs?.p50, p.predicted.lastServiceLatencyUs?.p50), [...figures, ...at].join('; ') || '–',
    ];
  });
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
