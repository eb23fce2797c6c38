import * as Plot from '@observablehq/plot';
import { provenance, provenanceLabel, type Provenance } from '../provenance/index.ts';
import type { Outcome, TraceResult } from '../trace/types.ts';
import { renderFigure, type Figure } from './figure.ts';
import { fmtPercent, textWidth } from './svg.ts';
import { THEME } from './theme.ts';

/** Answers per pod, as lib/traffic measures them: a TrafficMeasurement fits. */
export interface TraceTreeMeasured {
  provenance: Provenance;
  byPod: readonly { pod: string; ip: string; answers: number }[];
}

/**
 * Packets the kernel traced, counted per predicted outcome (lib/capture's LiveTraceReport fits):
 * drawn as bars beside each outcome, apart from the predicted share.
 */
export interface TraceTreeObserved {
  provenance: Provenance;
  /** Walks counted (one per connection). */
  packets: number;
  /** Per outcome of the traced result, in its order: the walks it explains. */
  counts: readonly number[];
  /** Walks no outcome explains. */
  unexplained: number;
}

export interface TraceTreeOptions {
  /** Where the traced rules came from; default: predicted by the model, in the trace's mode. */
  provenance?: Provenance;
  title?: string;
  /** Default 720: legible at 1:1 on a 1280×720 screen, and at 150% zoom still whole. */
  width?: number;
  /** Answers per pod: drawn as bars beside each outcome, apart from the predicted share. */
  measured?: TraceTreeMeasured;
  /** Paths the kernel traced, per outcome: bars and counts on every branch. Not with `measured`. */
  observed?: TraceTreeObserved;
}

function outcomeText(o: Outcome, pod: string | null): string {
  return [o.verdict, o.dnat ? `DNAT → ${o.dnat}` : null, o.snat, pod].filter(Boolean).join(' · ');
}

/** iptables' built-in chains: where a hook enters a table (also in iptables-nft's nft tables). */
const BUILTIN = /^(?:PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING)$/;
/** kube-proxy's nftables base chains, named after their type and hook. */
const NFT_BASE = /^(?:filter|nat)-(?:prerouting|input|forward|output|postrouting)\b/;
const startsHook = (chain: string) => BUILTIN.test(chain) || NFT_BASE.test(chain);

/**
 * The path's chains as shown: a built-in chain gets its table (`nat PREROUTING`, `filter
 * FORWARD`), taken from the first step the trace made in it after the previous built-in chain.
 */
export function traceChainLabels(o: Outcome): string[] {
  let from = 0;
  return o.path.map((name) => {
    if (!BUILTIN.test(name)) return name;
    const at = o.steps.findIndex((s, k) => k >= from && s.chain === name);
    if (at < 0) return name;
    const table = o.steps[at].table;
    // Past this visit's last step (its policy after a RETURN), so a second OUTPUT finds its own table.
    from = at + 1;
    for (let k = at + 1; k < o.steps.length; k++) {
      const s = o.steps[k];
      if (s.chain === name && s.table === table) from = k + 1;
      else if (BUILTIN.test(s.chain)) break;
    }
    return table ? `${table} ${name}` : name;
  });
}

interface TreeNode {
  chain: string;
  label: string;
  share: number;
  /** Observed walks through this chain (with `observed`). */
  seen: number;
  children: TreeNode[];
  /** Outcomes whose path ends here. */
  ends: Outcome[];
}

function buildTree(outcomes: readonly Outcome[], counts: readonly number[] = []): TreeNode {
  const root: TreeNode = { chain: '', label: '', share: 1, seen: 0, children: [], ends: [] };
  for (const [k, o] of outcomes.entries()) {
    const labels = traceChainLabels(o);
    let node = root;
    o.path.forEach((chain, i) => {
      let next = node.children.find((c) => c.chain === chain);
      if (!next) node.children.push((next = { chain, label: labels[i], share: 0, seen: 0, children: [], ends: [] }));
      next.share += o.probability;
      next.seen += counts[k] ?? 0;
      node = next;
    });
    node.ends.push(o);
  }
  return root;
}

const FONT = 12;
const LINE = 18;
const INDENT = 18;
const LEFT = 12;
const TEXT_DX = 10;
const BAR = 96;
const ARROW = ' › ';
const MONO = 'DejaVu Sans Mono, ui-monospace, monospace';

/** Cut a name too wide for a line after a `/`, `_` or `-`, so no text leaves the figure. */
function splitToken(token: string, width: number): string[] {
  const out: string[] = [];
  let rest = token;
  while (textWidth(rest, FONT) > width) {
    const max = Math.max(1, Math.floor(width / (FONT * 0.62)));
    const head = rest.slice(0, max);
    const cut = Math.max(head.lastIndexOf('/'), head.lastIndexOf('_'), head.lastIndexOf('-'));
    const at = cut > max / 3 ? cut + 1 : max;
    out.push(rest.slice(0, at));
    rest = rest.slice(at);
  }
  return [...out, rest];
}

/** Chains joined by " › ", a new line where a hook's chain starts, wrapped to the width. */
function chainLines(nodes: readonly TreeNode[], width: number, firstWidth: number): string[] {
  const lines: string[] = [];
  let line = '';
  const room = () => (lines.length === 0 ? firstWidth : width);
  for (const n of nodes) {
    splitToken(n.label, Math.min(width, firstWidth)).forEach((part, i) => {
      const next = `${line}${ARROW}${part}`;
      if (line === '') {
        line = part;
      } else if (i > 0 || startsHook(n.chain)) {
        lines.push(line);
        line = part;
      } else if (textWidth(next, FONT) > room()) {
        lines.push(line);
        line = `${ARROW.trimStart()}${part}`;
      } else {
        line = next;
      }
    });
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** Greedy wrap on " · ", for outcome labels. */
function wrapOn(text: string, sep: string, width: number): string[] {
  const lines: string[] = [];
  for (const part of text.split(sep)) {
    const last = lines.at(-1);
    if (last !== undefined && textWidth(`${last}${sep}${part}`, FONT) <= width) lines[lines.length - 1] = `${last}${sep}${part}`;
    else lines.push(part);
  }
  return lines;
}

interface TextMark {
  x: number;
  y: number;
  text: string;
}

interface Layout {
  height: number;
  chains: TextMark[];
  shares: TextMark[];
  outcomes: TextMark[];
  stems: { x1: number; y1: number; x2: number; y2: number }[];
  leaders: { x1: number; y1: number; x2: number; y2: number }[];
  nodes: { x: number; y: number }[];
  leaves: { x: number; y: number }[];
  predicted: { x1: number; x2: number; y1: number; y2: number }[];
  predictedLabels: TextMark[];
  measured: { x1: number; x2: number; y1: number; y2: number }[];
  measuredLabels: TextMark[];
}

/** The chains a traced packet can take, top to bottom, each outcome with its share beside it. */
export function traceTreeFigure(result: TraceResult, opts: TraceTreeOptions = {}): Figure {
  const prov = opts.provenance ?? provenance({ source: 'predicted', backend: null, mode: result.mode ?? 'iptables' });
  const width = opts.width ?? 720;
  const measured = opts.measured;
  const observed = opts.observed;
  if (measured && observed) throw new Error('traceTreeFigure: give measured (answers per pod) or observed (traced paths), not both');
  const answered = measured ? measured.byPod.reduce((a, p) => a + p.answers, 0) : 0;
  const countOf = (o: Outcome) => {
    const host = o.dnat?.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    return measured?.byPod.find((p) => p.ip === host) ?? null;
  };
  const seenOf = (o: Outcome) => observed?.counts[result.outcomes.indexOf(o)] ?? 0;
  const measuredShare = (o: Outcome) => observed
    ? (observed.packets > 0 ? seenOf(o) / observed.packets : 0)
    : (answered > 0 ? (countOf(o)?.answers ?? 0) / answered : 0);
  const compared = measured !== undefined || observed !== undefined;
  const top = Math.max(1e-9, ...result.outcomes.map((o) => Math.max(o.probability, compared ? measuredShare(o) : 0)));
  const barX = width - LEFT - BAR - textWidth(compared ? '00000 (100.00%)' : '100.00%', 11) - 8;
  const treeRight = barX - 16;

  const L: Layout = {
    height: 0, chains: [], shares: [], outcomes: [], stems: [], leaders: [], nodes: [], leaves: [],
    predicted: [], predictedLabels: [], measured: [], measuredLabels: [],
  };
  let y = 4;
  const x0 = (depth: number) => LEFT + depth * INDENT;

  /** Lay out one child (a run of chains, or an outcome) under a parent whose stem is at stemX. */
  const place = (start: TreeNode, depth: number, showShare: boolean, stemX: number | null, stemTop: number) => {
    const run = [start];
    while (run.at(-1)!.children.length === 1 && run.at(-1)!.ends.length === 0) run.push(run.at(-1)!.children[0]);
    const last = run.at(-1)!;
    const x = x0(depth);
    const share = showShare ? `${fmtPercent(start.share)}${observed ? ` · ${start.seen} seen` : ''} ` : '';
    const shareW = share ? textWidth(share, FONT) + 4 : 0;
    // Only outcome rows have bars beside them: chains may use the full width.
    const avail = width - LEFT - x - TEXT_DX;
    const lines = chainLines(run, avail, avail - shareW);
    const mid = y + LINE / 2;
    if (stemX !== null) L.stems.push({ x1: stemX, y1: stemTop, x2: stemX, y2: mid }, { x1: stemX, y1: mid, x2: x, y2: mid });
    L.nodes.push({ x: x + 2, y: mid });
    if (share) L.shares.push({ x: x + TEXT_DX, y: mid, text: share.trim() });
    lines.forEach((text, i) => L.chains.push({ x: x + TEXT_DX + (i === 0 ? shareW : 0), y: y + LINE / 2 + i * LINE, text }));
    if (lines.length > 1) L.stems.push({ x1: x + 2, y1: mid, x2: x + 2, y2: mid + (lines.length - 1) * LINE });
    y += lines.length * LINE;
    const branches = last.children.length + last.ends.length;
    const childStem = x + 2;
    const childTop = y - LINE / 2;
    for (const c of last.children) place(c, depth + 1, branches > 1, childStem, childTop);
    for (const o of last.ends) placeOutcome(o, depth + 1, childStem, childTop);
    if (depth <= 1 && branches > 1) y += 4;
  };

  const placeOutcome = (o: Outcome, depth: number, stemX: number | null, stemTop: number) => {
    const x = x0(depth);
    const lines = wrapOn(outcomeText(o, countOf(o)?.pod ?? null), ' · ', treeRight - x - TEXT_DX);
    const rowHeight = Math.max(lines.length * LINE, compared ? 32 : LINE);
    const mid = y + LINE / 2;
    if (stemX !== null) L.stems.push({ x1: stemX, y1: stemTop, x2: stemX, y2: mid }, { x1: stemX, y1: mid, x2: x, y2: mid });
    L.leaves.push({ x: x + 2, y: mid });
    lines.forEach((text, i) => L.outcomes.push({ x: x + TEXT_DX, y: mid + i * LINE, text }));
    const end = x + TEXT_DX + textWidth(lines[0], FONT) + 6;
    if (end < barX - 10) L.leaders.push({ x1: end, y1: mid, x2: barX - 6, y2: mid });
    const scale = (p: number) => (BAR * p) / top;
    const py = compared ? y + 3 : y + 4;
    L.predicted.push({ x1: barX, x2: barX + scale(o.probability), y1: py, y2: py + 10 });
    L.predictedLabels.push({ x: barX + scale(o.probability) + 6, y: py + 5, text: fmtPercent(o.probability) });
    if (compared) {
      const share = measuredShare(o);
      // Traced packets seen on this path, or answers from its pod (none when no pod has its address).
      const n = observed ? seenOf(o) : countOf(o)?.answers;
      L.measured.push({ x1: barX, x2: barX + scale(share), y1: py + 14, y2: py + 26 });
      L.measuredLabels.push({ x: barX + scale(share) + 6, y: py + 20, text: n === undefined ? 'no pod' : `${n} (${fmtPercent(share)})` });
    }
    y += rowHeight;
  };

  const root = buildTree(result.outcomes, observed?.counts);
  const rootBranches = root.children.length + root.ends.length;
  for (const c of root.children) place(c, 0, rootBranches > 1, null, 0);
  for (const o of root.ends) placeOutcome(o, 0, null, 0);
  L.height = y + 6;

  const pk = result.packet;
  const outcomes = result.outcomes.length;
  const unreached = measured ? measured.byPod.filter((p) => !result.outcomes.some((o) => countOf(o) === p)) : [];
  const text = (data: TextMark[], o: Plot.TextOptions) =>
    Plot.text(data, { x: 'x', y: 'y', text: 'text', textAnchor: 'start', lineAnchor: 'middle', fontSize: FONT, ...o });
  return renderFigure({
    title: opts.title ?? `Paths of a ${pk.protocol.toUpperCase()} packet to ${pk.dst}:${pk.dport}`,
    subtitle: `${provenanceLabel(prov)} · traced from ${result.hook}${measured ? `  vs  ${provenanceLabel(measured.provenance)}` : ''}${observed ? `  vs  ${provenanceLabel(observed.provenance)}` : ''}`,
    caption: `Packet ${pk.src}${pk.sport !== undefined ? `:${pk.sport}` : ''} → ${pk.dst}:${pk.dport}, entering at ${result.hook}; `
      + `chains top to bottom in the order the packet meets them, a new line where a hook's chain starts. `
      + `${outcomes} outcome${outcomes === 1 ? '' : 's'}; percentages are the chances the rules' random matches give each branch`
      + (measured ? `, bars compare them with the share of ${answered} answers per pod` : '')
      + (observed ? `, filled bars with the ${observed.packets} packets the kernel traced, path by path (${observed.unexplained} on a path no outcome predicts)` : '')
      + (unreached.length ? ` (${unreached.map((p) => p.pod).join(', ')} answered but no outcome reaches ${unreached.length === 1 ? 'it' : 'them'})` : '')
      + '.',
    legend: [
      { label: 'predicted share (traced rules)', swatch: 'outline', color: THEME.predicted },
      ...(measured ? [{ label: 'measured share of answers', swatch: 'bar' as const, color: THEME.measured }] : []),
      ...(observed ? [{ label: 'observed: packets the kernel traced on this path', swatch: 'bar' as const, color: THEME.measured }] : []),
    ],
    width,
    height: L.height,
    margin: 0,
    x: { type: 'identity' },
    y: { type: 'identity' },
    axis: null,
    marks: [
      Plot.link(L.stems, { x1: 'x1', y1: 'y1', x2: 'x2', y2: 'y2', stroke: THEME.interval, strokeWidth: 1.2 }),
      Plot.link(L.leaders, { x1: 'x1', y1: 'y1', x2: 'x2', y2: 'y2', stroke: THEME.interval, strokeWidth: 1, strokeDasharray: '1,3' }),
      Plot.dot(L.nodes, { x: 'x', y: 'y', r: 3, fill: THEME.predicted }),
      Plot.dot(L.leaves, { x: 'x', y: 'y', r: 3.5, symbol: 'square', fill: THEME.predicted }),
      text(L.shares, { fontWeight: 'bold', className: 'predicted-label' }),
      text(L.chains, { fontFamily: MONO, className: 'trace-chain' }),
      text(L.outcomes, { className: 'trace-outcome' }),
      Plot.rect(L.predicted, { x1: 'x1', x2: 'x2', y1: 'y1', y2: 'y2', fill: THEME.background, stroke: THEME.predicted, strokeWidth: 1.5, className: 'predicted' }),
      text(L.predictedLabels, { fontSize: 11, className: 'predicted-label' }),
      Plot.rect(L.measured, { x1: 'x1', x2: 'x2', y1: 'y1', y2: 'y2', fill: THEME.measured, className: 'measured' }),
      text(L.measuredLabels, { fontSize: 11, fill: THEME.measured, className: 'measured-label' }),
    ],
  });
}

/** What liveTraceFigure reads of a live trace (lib/capture's LiveTraceReport fits). */
export interface LiveTraceLike extends TraceTreeObserved {
  prediction: { provenance: Provenance; result: TraceResult };
  node: string;
  service: { namespace: string; name: string; ip: string; port: number };
}

/**
 * The outcome tree of a live trace: each branch with its predicted probability (outlined) and the
 * packets the kernel traced on it (filled), on separate bars so the two never merge.
 */
export function liveTraceFigure(report: LiveTraceLike, opts: Pick<TraceTreeOptions, 'title' | 'width'> = {}): Figure {
  const { service: s } = report;
  return traceTreeFigure(report.prediction.result, {
    provenance: report.prediction.provenance,
    observed: report,
    title: opts.title ?? `${report.packets} new connections to ${s.namespace}/${s.name} (${s.ip}:${s.port}), traced on ${report.node}: predicted and observed`,
    ...(opts.width !== undefined ? { width: opts.width } : {}),
  });
}
