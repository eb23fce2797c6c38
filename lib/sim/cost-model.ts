import type { ProxyMode } from '../proxy/modes.ts';
import { predictCounts } from './counts.ts';

/**
 * A small cost model for kube-proxy's data plane, fitted on measurements of small clusters and
 * used to predict large ones (the scale lab, lib/scale). Two straight lines per mode:
 *
 * - sync and change time = a·objects^b, a power law fitted as a line in log-log space, where
 *   objects is what a full sync writes, as lib/sim counts it (see syncObjects). A straight line
 *   would predict negative times for small sizes once a large one grows faster than linear, as
 *   restores of tens of thousands of chains do; the exponent b says how fast it grows;
 * - first-packet latency = a + b·rulesTraversed, where rulesTraversed is how many rules a new
 *   connection's first packet evaluates before it is DNATed (see rulesTraversed). iptables walks
 *   KUBE-SERVICES top to bottom, so the last service costs more; nftables and IPVS look the
 *   service up in a hash, so the count does not depend on position or size and the fit
 *   collapses to the mean.
 *
 * Pure: numbers in, numbers out.
 */

export interface LineFit {
  intercept: number;
  slope: number;
  /** Points fitted. */
  n: number;
  /** Coefficient of determination; null when y (or x) does not vary. */
  r2: number | null;
  /** `log-log`: fitted on ln x and ln y, so y = e^intercept · x^slope (r2 is in log space). */
  space?: 'linear' | 'log-log';
}

/**
 * Ordinary least squares y = intercept + slope·x. When x does not vary the best line is flat
 * through the mean (slope 0), which is the model for a cost that does not depend on x.
 */
export function fitLine(xs: readonly number[], ys: readonly number[]): LineFit {
  if (xs.length !== ys.length) throw new Error(`fitLine: ${xs.length} x values but ${ys.length} y values`);
  const n = xs.length;
  if (n === 0) throw new Error('fitLine: no points to fit');
  for (const v of [...xs, ...ys]) if (!Number.isFinite(v)) throw new Error(`fitLine: ${v} is not a finite number`);
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i] - mx) ** 2;
    sxy += (xs[i] - mx) * (ys[i] - my);
    syy += (ys[i] - my) ** 2;
  }
  if (sxx === 0) return { intercept: my, slope: 0, n, r2: null };
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let ssr = 0;
  for (let i = 0; i < n; i++) ssr += (ys[i] - (intercept + slope * xs[i])) ** 2;
  return { intercept, slope, n, r2: syy === 0 ? null : 1 - ssr / syy };
}

export function evalLine(fit: LineFit, x: number): number {
  if (fit.space === 'log-log') return Math.exp(fit.intercept + fit.slope * Math.log(x));
  return fit.intercept + fit.slope * x;
}

/** y = a·x^b by least squares on ln x, ln y; every x and y must be positive. */
export function fitPower(xs: readonly number[], ys: readonly number[]): LineFit {
  for (const v of [...xs, ...ys]) if (!(v > 0)) throw new Error(`fitPower: ${v} is not positive`);
  return { ...fitLine(xs.map(Math.log), ys.map(Math.log)), space: 'log-log' };
}

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of no values');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nearest-rank quantile: the smallest value with at least q of the list at or below it. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) throw new Error('quantile of no values');
  if (!(q > 0 && q <= 1)) throw new Error(`quantile must be in (0, 1], got ${q}`);
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(q * s.length) - 1)];
}

export interface Percentiles {
  p50: number;
  p99: number;
}

/** p50 and p99 (nearest rank; with fewer than 100 samples p99 is the largest). */
export function percentiles(xs: readonly number[]): Percentiles {
  return { p50: quantile(xs, 0.5), p99: quantile(xs, 0.99) };
}

/**
 * What a full sync writes, counted by lib/sim for S ClusterIP services × E endpoints:
 * iptables: nat + filter rules; nftables: rules; ipvs: ipset members + iptables rules (virtual
 * and real servers are left out because kernels without IP_VS cannot load them). With E fixed
 * across a sweep every choice that grows linearly in S predicts the same; this one keeps the
 * slope in the units a reader knows.
 */
export function syncObjects(mode: ProxyMode, services: number, endpoints: number): number {
  const c = predictCounts(mode, { services, endpoints });
  if (mode === 'iptables') return c.iptables!.nat.rules + c.iptables!.filter.rules;
  if (mode === 'nftables') return c.nftables!.rules;
  const v = c.ipvs!;
  return Object.values(v.ipsetMembers).reduce((a, b) => a + b, 0) + v.iptables.nat.rules + v.iptables.filter.rules;
}

/**
 * Rules a new connection's first packet evaluates on nat OUTPUT (or PREROUTING) until it is
 * DNATed, for the service at `position` in kube-proxy's order (the first or the last of S):
 * - iptables: the jump into KUBE-SERVICES, `position` rules of KUBE-SERVICES, the SVC chain's
 *   masquerade rule, (E+1)/2 probability jumps on average (each endpoint is equally likely, and
 *   the k-th costs k), and the SEP chain's 2 rules;
 * - nftables: the jump into `services`, its one map lookup, the service chain's 2 rules and the
 *   endpoint chain's 2: 6, whatever the size;
 * - ipvs: the jump and KUBE-SERVICES' 3 ipset rules (4), then IPVS's own hash lookup.
 */
export function rulesTraversed(mode: ProxyMode, services: number, endpoints: number, position: 'first' | 'last'): number {
  if (!Number.isInteger(services) || services < 1) throw new Error(`services must be a whole number ≥ 1, got ${services}`);
  if (!Number.isInteger(endpoints) || endpoints < 1) throw new Error(`endpoints must be a whole number ≥ 1, got ${endpoints}`);
  if (mode === 'iptables') return 1 + (position === 'first' ? 1 : services) + 1 + (endpoints + 1) / 2 + 2;
  if (mode === 'nftables') return 6;
  return 4;
}

/** One measured point, as the scale lab records it (null where it could not be measured). */
export interface CostObservation {
  mode: ProxyMode;
  /** Points of one variant are fitted together (the scale lab's `iptables-legacy`, `iptables-nft`, `nftables`); default the mode. */
  variant?: string;
  services: number;
  endpoints: number;
  syncMs: number | null;
  changeMs: number | null;
  firstServiceLatencyUs: Percentiles | null;
  lastServiceLatencyUs: Percentiles | null;
}

export interface ModeCostModel {
  mode: ProxyMode;
  /** What was fitted: the mode, or the mode on one iptables backend. */
  variant: string;
  /** Service counts whose points were fitted; the model predicts the others. */
  fittedOn: number[];
  /** Full sync ms against syncObjects, a power law (log-log). */
  syncMs: LineFit | null;
  /** One-endpoint change ms against syncObjects, a power law (log-log). */
  changeMs: LineFit | null;
  /** Connect p50 µs against rulesTraversed (first and last service of each fitted size). */
  latencyP50Us: LineFit | null;
  latencyP99Us: LineFit | null;
  /** Why a fit is missing, when one is. */
  notes: string[];
}

export interface FitOptions {
  /** Points with at most this many services are fitted (default 1000). */
  maxServices?: number;
}

/**
 * Fit each variant's (mode's) lines on its points with services ≤ maxServices. A line needs points from at
 * least two sizes: one size cannot tell a fixed cost from a per-rule cost.
 */
export function fitCostModels(observations: readonly CostObservation[], opts: FitOptions = {}): Partial<Record<string, ModeCostModel>> {
  const max = opts.maxServices ?? 1000;
  const out: Partial<Record<string, ModeCostModel>> = {};
  const variantOf = (o: CostObservation) => o.variant ?? o.mode;
  const variants = [...new Set(observations.map(variantOf))];
  for (const variant of variants) {
    const all = observations.filter((o) => variantOf(o) === variant);
    const mode = all[0].mode;
    if (all.some((o) => o.mode !== mode)) throw new Error(`variant ${variant} holds points of two modes`);
    const mine = all.filter((o) => o.services <= max);
    const notes: string[] = [];
    const line = (what: string, pts: { x: number; y: number; services: number }[], power = false): LineFit | null => {
      const sizes = new Set(pts.map((p) => p.services));
      if (sizes.size < 2) {
        notes.push(`${what}: needs measurements at two or more sizes ≤ ${max} services, has ${sizes.size}`);
        return null;
      }
      if (power && pts.every((p) => p.x > 0 && p.y > 0)) return fitPower(pts.map((p) => p.x), pts.map((p) => p.y));
      return fitLine(pts.map((p) => p.x), pts.map((p) => p.y));
    };
    const timed = (key: 'syncMs' | 'changeMs') =>
      mine.filter((o) => o[key] !== null).map((o) => ({ x: syncObjects(mode, o.services, o.endpoints), y: o[key] as number, services: o.services }));
    const lat = (q: keyof Percentiles) =>
      mine.flatMap((o) => [
        ...(o.firstServiceLatencyUs ? [{ x: rulesTraversed(mode, o.services, o.endpoints, 'first'), y: o.firstServiceLatencyUs[q], services: o.services }] : []),
        ...(o.lastServiceLatencyUs ? [{ x: rulesTraversed(mode, o.services, o.endpoints, 'last'), y: o.lastServiceLatencyUs[q], services: o.services }] : []),
      ]);
    out[variant] = {
      mode,
      variant,
      fittedOn: [...new Set(mine.map((o) => o.services))].sort((a, b) => a - b),
      syncMs: line('sync', timed('syncMs'), true),
      changeMs: line('change', timed('changeMs'), true),
      latencyP50Us: line('latency p50', lat('p50')),
      latencyP99Us: line('latency p99', lat('p99')),
      notes,
    };
  }
  return out;
}

export interface CostPrediction {
  syncMs: number | null;
  changeMs: number | null;
  firstServiceLatencyUs: Percentiles | null;
  lastServiceLatencyUs: Percentiles | null;
  /** The model's inputs for this point. */
  x: { syncObjects: number; firstRulesTraversed: number; lastRulesTraversed: number };
}

/** The model's values for S services × E endpoints; null where the model has no line. */
export function predictCost(model: ModeCostModel, services: number, endpoints: number): CostPrediction {
  const objects = syncObjects(model.mode, services, endpoints);
  const first = rulesTraversed(model.mode, services, endpoints, 'first');
  const last = rulesTraversed(model.mode, services, endpoints, 'last');
  const at = (fit: LineFit | null, x: number) => (fit ? evalLine(fit, x) : null);
  const lat = (x: number): Percentiles | null =>
    model.latencyP50Us && model.latencyP99Us ? { p50: evalLine(model.latencyP50Us, x), p99: evalLine(model.latencyP99Us, x) } : null;
  return {
    syncMs: at(model.syncMs, objects),
    changeMs: at(model.changeMs, objects),
    firstServiceLatencyUs: lat(first),
    lastServiceLatencyUs: lat(last),
    x: { syncObjects: objects, firstRulesTraversed: first, lastRulesTraversed: last },
  };
}
