import * as Plot from '@observablehq/plot';
import type { Provenance } from '../provenance/index.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import { renderFigure, type Figure } from './figure.ts';
import type { LegendItem } from './legend.ts';
import { MODE_COLORS, THEME } from './theme.ts';

export interface ScalingPoint {
  services: number;
  mode: ProxyMode;
  /** Rules, or any cost that grows with the cluster. */
  rules: number;
  source: 'predicted' | 'measured';
}

/** What a scale-sweep figure plots (see ScaleSweepLike). */
export type ScalingMetric = 'syncMs' | 'changeMs' | 'latencyP50' | 'latencyP99' | 'rules';

export interface ScalingOptions {
  title?: string;
  subtitle?: string;
  caption?: string;
  /** What `rules` counts (y-axis label). */
  yLabel?: string;
  /** Log scales (default: both axes for counts and times; x only for latency). */
  log?: boolean;
  width?: number;
  /** Height of the plot area, without title, legend and caption (default 380; a sweep's 280). */
  height?: number;
  /** Every text this many times its usual size (default 1; a sweep's 1.3, see SWEEP_FIGURE). */
  textScale?: number;
  /** For a scale sweep: what to plot (default syncMs). Ignored for ScalingPoint lists. */
  metric?: ScalingMetric;
}

/**
 * A sweep figure's default size: wide and short, with text 1.3 times the usual, so that each one
 * fits a 1280×720 screen whole (about 960×470) and its smallest text is 13 px.
 */
const SWEEP_FIGURE = { width: 960, height: 280, textScale: 1.3 } as const;

interface Pct {
  p50: number;
  p99: number;
}

interface SweepSide {
  syncMs: number | null;
  changeMs: number | null;
  firstServiceLatencyUs: Pct | null;
  lastServiceLatencyUs: Pct | null;
}

/**
 * The parts of a scale sweep (lib/scale's ScaleResult, `kube-netlab scale --json`) a figure
 * reads. Structural, so the pure plotting code does not import the lab that produced it.
 */
export interface ScaleSweepLike {
  points: readonly {
    mode: ProxyMode;
    /** The mode on its iptables backend (`iptables-legacy`): one series each. */
    variant?: string;
    services: number;
    endpoints: number;
    measured: SweepSide & { provenance?: Provenance; kernel?: unknown };
    predicted: SweepSide & { inFit?: boolean; counts?: unknown };
  }[];
  model?: { fitMaxServices: number };
}

/** Counts as the cluster grows: predictions as lines, measurements as dots, one colour per mode. */
export function scalingFigure(points: readonly ScalingPoint[], opts?: ScalingOptions): Figure;
/**
 * A scale sweep, measured against its cost model: `metric` syncMs or changeMs (ms vs services),
 * latencyP50 or latencyP99 (first and last service side by side), or rules (kernel vs lib/sim).
 */
export function scalingFigure(sweep: ScaleSweepLike, opts?: ScalingOptions): Figure;
export function scalingFigure(input: readonly ScalingPoint[] | ScaleSweepLike, opts: ScalingOptions = {}): Figure {
  if (!Array.isArray(input)) return sweepFigure(input as ScaleSweepLike, opts);
  const points = input as readonly ScalingPoint[];
  const log = opts.log ?? true;
  const modes = [...new Set(points.map((p) => p.mode))];
  const predicted = points.filter((p) => p.source === 'predicted').sort((a, b) => a.services - b.services);
  const measured = points.filter((p) => p.source === 'measured');
  // Log scales cannot show 0; nudge zeros onto the axis rather than lose them.
  const y = (p: ScalingPoint) => (log ? Math.max(p.rules, 1) : p.rules);
  const legend: LegendItem[] = [
    ...modes.map((m) => ({ label: m, swatch: 'bar' as const, color: MODE_COLORS[m] })),
    { label: 'predicted (model)', swatch: 'line', color: THEME.predicted },
    ...(measured.length > 0 ? [{ label: 'measured (lab)', swatch: 'dot' as const, color: THEME.predicted }] : []),
  ];
  const last = modes.map((m) => predicted.filter((p) => p.mode === m).at(-1)).filter((p): p is ScalingPoint => p !== undefined);
  return renderFigure({
    title: opts.title ?? 'How kube-proxy\'s rules grow with the cluster',
    subtitle: opts.subtitle ?? (measured.length > 0 ? 'predicted · model  vs  measured · lab' : 'predicted · model'),
    caption: opts.caption,
    width: opts.width,
    legend,
    height: opts.height ?? 380,
    textScale: opts.textScale,
    marginRight: 70,
    x: { type: log ? 'log' : 'linear', label: 'services →', grid: true },
    y: { type: log ? 'log' : 'linear', label: `↑ ${opts.yLabel ?? 'rules'}`, grid: true },
    color: { domain: modes, range: modes.map((m) => MODE_COLORS[m]) },
    marks: [
      Plot.line(predicted, { x: 'services', y, z: 'mode', stroke: 'mode', strokeWidth: 2, className: 'predicted' }),
      Plot.dot(measured, { x: 'services', y, fill: 'mode', stroke: 'white', r: 4.5, symbol: 'circle', className: 'measured' }),
      Plot.text(last, { x: 'services', y, text: 'mode', fill: 'mode', textAnchor: 'start', dx: 6, className: 'predicted-label' }),
    ],
  });
}

/** iptables-nft keeps iptables' colour (Debian's default); the legacy backend gets one of its own. */
const LEGACY_COLORS: Readonly<Record<string, string>> = { 'iptables-legacy': '#3ca951', 'ipvs-legacy': '#a463f2' };

export function seriesColor(series: string): string {
  if (LEGACY_COLORS[series]) return LEGACY_COLORS[series];
  const mode = series.replace(/-(nft|legacy)$/, '') as ProxyMode;
  return MODE_COLORS[mode] ?? THEME.predicted;
}

/** One value of a sweep, flattened for Plot. `panel` separates the first and last service. */
export interface SweepRow {
  mode: ProxyMode;
  /** What a line and its dots stand for: the variant, or the mode. */
  series: string;
  services: number;
  value: number;
  source: 'measured' | 'predicted';
  panel: string;
  /** Predicted rows: the model was fitted on this size (in-sample). */
  inFit?: boolean;
}

const LAT_PANELS = ['first service in kube-proxy\'s order', 'last service in kube-proxy\'s order'];

/** The rows a sweep figure draws, for a metric; null values (not measured, no model) are left out. */
export function scaleSweepRows(sweep: ScaleSweepLike, metric: ScalingMetric): SweepRow[] {
  const rows: SweepRow[] = [];
  for (const p of sweep.points) {
    for (const source of ['measured', 'predicted'] as const) {
      const side = p[source];
      const base = { mode: p.mode, series: p.variant ?? p.mode, services: p.services, source, ...(source === 'predicted' ? { inFit: p.predicted.inFit } : {}) };
      if (metric === 'syncMs' || metric === 'changeMs') {
        const v = side[metric];
        if (v !== null && v !== undefined) rows.push({ ...base, value: v, panel: '' });
      } else if (metric === 'latencyP50' || metric === 'latencyP99') {
        const q = metric === 'latencyP50' ? 'p50' : 'p99';
        const pair = [side.firstServiceLatencyUs, side.lastServiceLatencyUs];
        pair.forEach((l, i) => {
          if (l) rows.push({ ...base, value: l[q], panel: LAT_PANELS[i] });
        });
      } else {
        const v = mainCount(p.mode, source === 'measured' ? p.measured.kernel : p.predicted.counts);
        if (v !== null) rows.push({ ...base, value: v, panel: '' });
      }
    }
  }
  return rows;
}

/** The count a mode's cost follows: iptables nat+filter rules, nftables rules, ipvs ipset members. */
function mainCount(mode: ProxyMode, counts: unknown): number | null {
  const c = (counts ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const m = c[mode];
  if (!m) return null;
  if (mode === 'iptables') {
    const t = m as { nat: { rules: number }; filter: { rules: number } };
    return t.nat.rules + t.filter.rules;
  }
  if (mode === 'nftables') return (m as { rules: number }).rules;
  return Object.values((m as { ipsetMembers: Record<string, number> }).ipsetMembers).reduce((a, b) => a + b, 0);
}

const METRIC_TEXT: Record<ScalingMetric, { title: string; y: string }> = {
  syncMs: { title: 'Full sync time as services grow', y: 'ms to apply a full sync' },
  changeMs: { title: 'Time to apply a one-endpoint change as services grow', y: 'ms to apply one change' },
  latencyP50: { title: 'First-packet latency (median) as services grow', y: 'µs, connect() p50' },
  latencyP99: { title: 'First-packet latency (p99) as services grow', y: 'µs, connect() p99' },
  rules: { title: 'What the kernel holds as services grow', y: 'rules (ipvs: ipset members)' },
};

function sweepFigure(sweep: ScaleSweepLike, opts: ScalingOptions): Figure {
  const metric = opts.metric ?? 'syncMs';
  const text = METRIC_TEXT[metric];
  const rows = scaleSweepRows(sweep, metric);
  const modes = [...new Set(sweep.points.map((p) => p.mode))];
  const series = [...new Set(sweep.points.map((p) => p.variant ?? p.mode))];
  const latency = metric === 'latencyP50' || metric === 'latencyP99';
  const logX = opts.log ?? true;
  const logY = opts.log ?? !latency;
  const measured = rows.filter((r) => r.source === 'measured');
  const predicted = rows.filter((r) => r.source === 'predicted').sort((a, b) => a.services - b.services);
  const fitMax = sweep.model?.fitMaxServices;
  const showFit = metric !== 'rules' && fitMax !== undefined && sweep.points.some((p) => p.services > fitMax);
  const endpoints = sweep.points[0]?.endpoints;
  const prov = sweep.points.find((p) => p.measured.provenance)?.measured.provenance;
  const predictedName = metric === 'rules' ? 'predicted (lib/sim counts)' : 'predicted (cost model)';
  const measuredName = metric === 'rules' ? 'captured (kernel)' : 'measured (lab)';
  const legend: LegendItem[] = [
    ...series.map((m) => ({ label: m, swatch: 'bar' as const, color: seriesColor(m) })),
    { label: predictedName, swatch: 'line', color: THEME.predicted },
    { label: measuredName, swatch: 'dot', color: THEME.predicted },
    ...(showFit ? [{ label: `model fitted on ≤ ${fitMax} services`, swatch: 'dashed' as const, color: THEME.interval }] : []),
  ];
  const subtitle = opts.subtitle ?? [
    `${prov ? `measured · ${prov.backend ?? 'lab'}/${modes.join(', ')}${prov.node ? ` · ${prov.node}` : ''}` : 'measured · lab'}`,
    metric === 'rules' ? 'predicted · model (lib/sim)' : `predicted · model (least squares${fitMax !== undefined ? ` on ≤ ${fitMax} services` : ''})`,
  ].join('  vs  ') + (endpoints ? `; ${endpoints} endpoints per service` : '');
  const y = (r: SweepRow) => (logY ? Math.max(r.value, 1e-3) : r.value);
  const facet = latency ? { fx: 'panel' as const } : {};
  const marks: Plot.Markish[] = [
    Plot.line(predicted, { x: 'services', y, z: 'series', stroke: 'series', strokeWidth: 2, ...facet, className: 'predicted' }),
    Plot.dot(measured, { x: 'services', y, fill: 'series', stroke: 'white', r: 4.5, symbol: 'circle', ...facet, className: 'measured' }),
  ];
  if (showFit) {
    marks.push(
      Plot.ruleX([fitMax], { stroke: THEME.interval, strokeDasharray: '4,3', className: 'fit-boundary' }),
      // Centred, so that its bar sits on the boundary and it stays inside a panel whatever the boundary's place.
      Plot.text([fitMax], { x: (d: number) => d, frameAnchor: 'top', text: () => 'fitted ← | → predicted', dy: 4, textAnchor: 'middle', fill: THEME.muted, stroke: 'white', strokeWidth: 3, paintOrder: 'stroke', className: 'fit-boundary-label' }),
    );
  }
  return renderFigure({
    title: opts.title ?? text.title,
    subtitle,
    caption: opts.caption ?? (latency
      ? 'iptables walks KUBE-SERVICES rule by rule, so the last service pays for every rule above it; nftables looks the service up in a verdict map.'
      : undefined),
    width: opts.width ?? SWEEP_FIGURE.width,
    legend,
    height: opts.height ?? SWEEP_FIGURE.height,
    textScale: opts.textScale ?? SWEEP_FIGURE.textScale,
    marginLeft: 60,
    marginTop: 30,
    marginRight: latency ? 20 : 40,
    marginBottom: 40,
    // inset: the first and last sizes' dots stay whole inside the frame.
    x: { type: logX ? 'log' : 'linear', label: 'services →', grid: true, inset: 10 },
    // nice: a log axis ends on a power of ten, so the highest dot sits inside the frame.
    y: { type: logY ? 'log' : 'linear', label: `↑ ${opts.yLabel ?? text.y}`, grid: true, nice: true, ...(logY ? {} : { zero: true }) },
    ...(latency ? { fx: { label: null, domain: LAT_PANELS } } : {}),
    color: { domain: series, range: series.map(seriesColor) },
    marks,
  });
}
