import type { LineFit, Percentiles } from '../sim/cost-model.ts';
import type { KernelCounts, ScalePoint, ScaleResult } from './types.ts';
import type { ModeCounts } from '../sim/counts.ts';

const num = (x: number | null | undefined, digits?: number): string => {
  if (x === null || x === undefined) return '–';
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toFixed(d);
};

const pct = (p: Percentiles | null | undefined) => (p ? `${num(p.p50, 0)}/${num(p.p99, 0)}` : '–');

/** The main count of a mode, kernel against lib/sim. */
function countCell(p: ScalePoint): string {
  const k: KernelCounts = p.measured.kernel;
  const s: ModeCounts = p.predicted.counts;
  let kernel: number | undefined;
  let sim: number | undefined;
  let what = 'rules';
  if (p.mode === 'iptables') {
    kernel = k.iptables ? k.iptables.nat.rules + k.iptables.filter.rules : undefined;
    sim = s.iptables ? s.iptables.nat.rules + s.iptables.filter.rules : undefined;
  } else if (p.mode === 'nftables') {
    kernel = k.nftables?.rules;
    sim = s.nftables?.rules;
  } else {
    what = 'ipset members';
    kernel = k.ipvs ? Object.values(k.ipvs.ipsetMembers).reduce((a, b) => a + b, 0) : undefined;
    sim = s.ipvs ? Object.values(s.ipvs.ipsetMembers).reduce((a, b) => a + b, 0) : undefined;
  }
  const all = p.measured.countsMatch ? 'all counts equal' : 'COUNTS DIFFER';
  return `${kernel ?? '–'} ${kernel === sim ? '=' : '≠'} ${sim ?? '–'} ${what} (${all})`;
}

function line(fit: LineFit | null, x: string, unit: string): string {
  if (!fit) return 'no fit';
  if (fit.space === 'log-log') {
    const r2 = fit.r2 === null ? '' : `, r² ${fit.r2.toFixed(3)} in log space`;
    return `${Math.exp(fit.intercept).toPrecision(3)} ${unit} · ${x}^${fit.slope.toFixed(2)}${r2}`;
  }
  const r2 = fit.r2 === null ? '' : `, r² ${fit.r2.toFixed(3)}`;
  const b = Math.abs(fit.slope);
  const slope = b < 0.01 && b !== 0 ? b.toExponential(3) : b.toFixed(4);
  return `${fit.intercept.toFixed(2)} ${unit} ${fit.slope < 0 ? '−' : '+'} ${slope} ${unit}·${x}${r2}`;
}

export interface ScaleTable {
  /** What the rows are: endpoints per service, pod subnet, kernel. */
  caption: string;
  header: string[];
  rows: string[][];
}

/** The sweep's main table, one row per step: measured, then [predicted]. */
export function scaleTable(res: ScaleResult): ScaleTable {
  const o = res.options;
  const header = ['mode', 'services', 'fit', 'sync ms', 'change ms', 'first svc p50/p99 µs', 'last svc p50/p99 µs', 'kernel = lib/sim'];
  const rows = res.points.map((p) => [
    p.variant,
    String(p.services),
    p.predicted.inFit ? 'in' : 'out',
    `${num(p.measured.syncMs)} [${num(p.predicted.syncMs)}]`,
    `${num(p.measured.changeMs)} [${num(p.predicted.changeMs)}]`,
    `${pct(p.measured.firstServiceLatencyUs)} [${pct(p.predicted.firstServiceLatencyUs)}]`,
    `${pct(p.measured.lastServiceLatencyUs)} [${pct(p.predicted.lastServiceLatencyUs)}]`,
    countCell(p),
  ]);
  return { caption: `kube-proxy at scale: ${o.endpoints} endpoints per service, pod subnet ${o.podSubnet}, kernel ${res.kernel}`, header, rows };
}

/** How to read the table: what each column measured, and what "fit" means. */
export function scaleLegend(res: ScaleResult): string[] {
  const o = res.options;
  return [
    `measured [predicted]; sync and change: median of up to ${o.repeats} (fewer once a measurement passed ${Math.round(o.repeatBudgetMs / 1000)} s in a step; the samples are in --json); latency: connect() of ${o.samples} fresh connections per service from ${o.clientIP}, every one checked to be DNATed to an endpoint`,
    `fit "in": the model was fitted on this size (≤ ${res.model.fitMaxServices} services), so its value is in-sample; "out": a prediction`,
  ];
}

/** What follows the table: the model's lines, how each change was applied, what was skipped or not started. */
export function scaleNotes(res: ScaleResult): string {
  const out = ['Model, least squares per mode and iptables backend (times as power laws, latency as lines):'];
  for (const [mode, m] of Object.entries(res.model.modes)) {
    if (!m) continue;
    out.push(`  ${mode} (fitted on ${m.fittedOn.join(', ') || 'no sizes'} services)`);
    out.push(`    sync ms    = ${line(m.syncMs, 'rules', 'ms')}`);
    out.push(`    change ms  = ${line(m.changeMs, 'rules', 'ms')}`);
    out.push(`    p50 µs     = ${line(m.latencyP50Us, 'rules traversed', 'µs')}`);
    out.push(`    p99 µs     = ${line(m.latencyP99Us, 'rules traversed', 'µs')}`);
    for (const n of m.notes) out.push(`    note: ${n}`);
  }
  const methods = new Map<string, string>();
  for (const p of res.points) methods.set(p.variant, p.measured.changeMethod);
  out.push('', 'How each change was applied:');
  for (const [mode, text] of methods) out.push(`  ${mode}: ${text}`);
  const starts = res.points.map((p) => p.measured.toolStartMs);
  out.push('', `Every time includes starting the tool through ip netns exec: ${num(Math.min(...starts))}–${num(Math.max(...starts))} ms with empty input (toolStartMs in --json).`);
  const skipped = res.points.flatMap((p) => p.measured.skipped.map((s) => `  ${p.variant} ${p.services}: ${s.what}: ${s.reason}`));
  if (skipped.length > 0) out.push('', 'Skipped (not measured, nothing faked):', ...skipped);
  const notStarted = res.skippedSteps.map((s) => `  ${s.variant} ${s.services}: ${s.reason}`);
  if (notStarted.length > 0) out.push('', 'Steps not started (raise --max-sync-seconds to run them):', ...notStarted);
  out.push('', `${res.points.length} steps in ${(res.durationMs / 1000).toFixed(1)} s; every namespace the sweep made is gone.`);
  return out.join('\n');
}

/** The sweep as text for people: the table's caption and legend, the table, then scaleNotes. */
export function formatScaleTable(res: ScaleResult): string {
  const { caption, header, rows } = scaleTable(res);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 1 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [caption, ...scaleLegend(res), '', fmt(header), ...rows.map(fmt), '', scaleNotes(res)].join('\n');
}
