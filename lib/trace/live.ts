/**
 * Packets as the kernel traced them, set beside the tracer's prediction: trace events (from
 * lib/parse/trace-events.ts) grouped into one walk per packet, each walk reduced to what an
 * Outcome holds (chains entered, rules matched, verdict, DNAT), identical walks counted, and each
 * observed path matched to the predicted outcome it is, with a χ² of the counts against the
 * predicted probabilities. Pure: no I/O.
 */
import type { TraceEvent, TracePacketHeader } from '../parse/trace-events.ts';
import { chiSquareTest, type ChiSquareResult } from '../sim/stats.ts';
import { joinHostPort } from './addr.ts';
import type { Outcome, TraceResult } from './types.ts';

/** One packet's walk through the rules, as the kernel reported it. */
export interface ObservedWalk {
  id: string;
  /** The packet as it entered the first traced chain. */
  first: TracePacketHeader | null;
  /** Chains entered, in order (base chains included), as Outcome.path names them. */
  path: string[];
  /** For each entry of `path`: the table it belongs to, and whether it is a base (hooked) chain. */
  tables: string[];
  base: boolean[];
  /** Rules that matched, with the verdict each gave; a base chain's policy as `policy accept`. */
  rules: { table: string; chain: string; rule: string; verdict: string }[];
  verdict: Outcome['verdict'];
  /** The destination after DNAT, `ip:port`, or null when unchanged. */
  dnat: string | null;
  snat: string | null;
}

export interface WalkOptions {
  /** The event that starts a packet's walk: the tracing rule of the kit's own chain. */
  startsWalk(e: TraceEvent): boolean;
  /** Events not part of the comparison: the kit's own chain, tables the tracer does not model. */
  ignore(e: TraceEvent): boolean;
  /**
   * A base chain where the compared walk ends (IPVS mode: any the packet meets after IPVS took it
   * over); it and every event after it, headers included, are left out.
   */
  stopAt?(table: string, chain: string): boolean;
}

/**
 * Group events into walks. The kernel reuses trace ids, so a walk starts at the event `startsWalk`
 * picks (the kit's tracing rule, which every traced packet meets first) and runs to the next one
 * of the same id; events of an id with no walk started are dropped.
 */
export function buildWalks(events: readonly TraceEvent[], opts: WalkOptions): ObservedWalk[] {
  const open = new Map<string, TraceEvent[]>();
  const walks: { id: string; events: TraceEvent[] }[] = [];
  for (const e of events) {
    if (opts.startsWalk(e)) {
      const w = { id: e.id, events: [e] };
      walks.push(w);
      open.set(e.id, w.events);
      continue;
    }
    open.get(e.id)?.push(e);
  }
  return walks.map((w) => walkOf(w.events, w.id, opts.ignore, opts.stopAt));
}

function walkOf(events0: readonly TraceEvent[], id: string, ignore: (e: TraceEvent) => boolean, stopAt?: (table: string, chain: string) => boolean): ObservedWalk {
  const all = stopAt ? cutAt(events0, ignore, stopAt) : events0;
  // The packet's headers count wherever they were printed; rules only where compared.
  const headers = all.filter((e) => e.kind === 'packet' && e.packet).map((e) => e.packet as TracePacketHeader);
  const events = all.filter((e) => !ignore(e));
  const walk: ObservedWalk = { id, first: null, path: [], tables: [], base: [], rules: [], verdict: 'ACCEPT', dnat: null, snat: null };
  let stack: { table: string; chain: string }[] = [];
  let dnatRule: string | null = null;
  const enter = (table: string, chain: string, base: boolean) => {
    walk.path.push(chain);
    walk.tables.push(table);
    walk.base.push(base);
  };
  const startBase = (e: TraceEvent) => {
    stack = [{ table: e.table, chain: e.chain }];
    enter(e.table, e.chain, true);
  };
  let newBase = false;
  for (const e of events) {
    if (e.kind === 'packet') {
      newBase = true;
      continue;
    }
    const top = stack.at(-1);
    if (newBase || !top) {
      startBase(e);
      newBase = false;
    } else if (top.table !== e.table || top.chain !== e.chain) {
      // A chain that ended without a rule matching returns silently: back to its caller.
      let at = stack.length - 1;
      while (at >= 0 && !(stack[at].table === e.table && stack[at].chain === e.chain)) at--;
      if (at >= 0) stack = stack.slice(0, at + 1);
      else startBase(e);
    }
    if (e.kind === 'policy') {
      walk.rules.push({ table: e.table, chain: e.chain, rule: `policy ${e.verdict}`, verdict: e.verdict ?? '' });
      if (e.verdict === 'drop') walk.verdict = 'DROP';
      stack = [];
      continue;
    }
    if (e.kind === 'return') {
      stack.pop();
      continue;
    }
    const rule = e.rule ?? '';
    walk.rules.push({ table: e.table, chain: e.chain, rule, verdict: e.target ? `${e.verdict} ${e.target}` : (e.verdict ?? '') });
    switch (e.verdict) {
      case 'jump':
        if (e.target) {
          enter(e.table, e.target, false);
          stack.push({ table: e.table, chain: e.target });
        }
        break;
      case 'goto':
        if (e.target) {
          enter(e.table, e.target, false);
          stack[stack.length - 1] = { table: e.table, chain: e.target };
        }
        break;
      case 'return':
        stack.pop();
        break;
      case 'accept': {
        const to = /\bdnat to (\S+)/.exec(rule)?.[1] ?? /--to-destination (\S+)/.exec(rule)?.[1];
        if (to) dnatRule = to;
        if (/\bmasquerade\b/i.test(rule)) walk.snat = 'MASQUERADE';
        const snat = /\bsnat to (\S+)/.exec(rule)?.[1] ?? /--to-source (\S+)/.exec(rule)?.[1];
        if (snat) walk.snat = `SNAT to ${snat}`;
        stack = [];
        break;
      }
      case 'drop':
        walk.verdict = /\breject\b/i.test(rule) ? 'REJECT' : 'DROP';
        stack = [];
        break;
      default:
        break;
    }
  }
  walk.first = headers[0] ?? null;
  const last = headers.at(-1);
  if (walk.first && last && last.dst !== null && last.dport !== null && (last.dst !== walk.first.dst || last.dport !== walk.first.dport)) {
    walk.dnat = joinHostPort(last.dst, last.dport);
  } else if (dnatRule !== null) {
    walk.dnat = dnatRule.includes(':') || walk.first?.dport == null ? dnatRule : joinHostPort(dnatRule, walk.first.dport);
  }
  return walk;
}

/** The events before the first compared base chain `stopAt` picks (its packet line included out). */
function cutAt(all: readonly TraceEvent[], ignore: (e: TraceEvent) => boolean, stopAt: (table: string, chain: string) => boolean): readonly TraceEvent[] {
  const bases = new Set<string>();
  for (let i = 0; i < all.length; i++) {
    const e = all[i];
    if (ignore(e)) continue;
    // A base chain is one whose packet line the monitor prints on entry.
    if (e.kind === 'packet') bases.add(`${e.table} ${e.chain}`);
    if (bases.has(`${e.table} ${e.chain}`) && stopAt(e.table, e.chain)) return all.slice(0, i);
  }
  return all;
}

/**
 * One walk per connection. A SYN sent again is traced again: where the first was dropped it walks
 * the same rules (conntrack never confirmed the connection); where it was let through, conntrack
 * knows the connection and the nat chains are skipped. A later SYN from the same port that does
 * walk nat after an accepted one is a new connection reusing the port (after TIME_WAIT), and
 * counts. Walks with no chain at all (cut off when the monitor stopped) are left out.
 */
export function connectionWalks(walks: readonly ObservedWalk[], entersNat: (w: ObservedWalk) => boolean): { firsts: ObservedWalk[]; incomplete: number; retransmissions: number } {
  const last = new Map<string, ObservedWalk>();
  const firsts: ObservedWalk[] = [];
  let incomplete = 0;
  let retransmissions = 0;
  for (const w of walks) {
    if (w.path.length === 0) {
      incomplete++;
      continue;
    }
    const key = `${w.first?.src}:${w.first?.sport}`;
    const before = last.get(key);
    if (before && (before.verdict !== 'ACCEPT' || !entersNat(w))) {
      retransmissions++;
      continue;
    }
    last.set(key, w);
    firsts.push(w);
  }
  return { firsts, incomplete, retransmissions };
}

/** Where base chains run: the tracer's order among chains of one key is not the kernel's to show. */
export type OrderKey = (chain: string, table: string | null) => string | null;

export interface ObservedPath {
  path: string[];
  rules: ObservedWalk['rules'];
  verdict: Outcome['verdict'];
  dnat: string | null;
  snat: string | null;
  count: number;
  /** The predicted outcome this path is (its index in the prediction), or null: unexplained. */
  outcome: number | null;
  /** That outcome's probability, or null. */
  predicted: number | null;
}

export interface LiveComparison {
  /** Walks counted (one per connection: its first traced packet). */
  packets: number;
  paths: ObservedPath[];
  /** Walks no predicted outcome explains. */
  unexplained: number;
  /** Per predicted outcome (same order as prediction.outcomes), the walks it explains. */
  counts: number[];
  /** Explained counts against the predicted probabilities; null with fewer than two outcomes possible. */
  chiSquare: ChiSquareResult | null;
}

export interface CompareOptions {
  /**
   * Base chains whose relative order the kernel decides by registration, not by anything a listing
   * shows (nft nat chains of one hook): such runs of segments compare in any order. Returns the
   * group key of a base chain, or null for a chain that is not one.
   */
  orderKey?: OrderKey;
  /** Whether a chain is a base chain, for the predicted paths (which name chains only). */
  isBase(chain: string): boolean;
}

/** A path cut at its base chains: [[base, jumped, …], [base, …]]. */
function segments(path: readonly string[], base: (i: number) => boolean): string[][] {
  const out: string[][] = [];
  path.forEach((c, i) => {
    if (base(i) || out.length === 0) out.push([c]);
    else out[out.length - 1].push(c);
  });
  return out;
}

/** Runs of segments with one order key sorted, so either order compares equal. */
function canonical(segs: string[][], key: (seg: string[]) => string | null): string[][] {
  const out: string[][] = [];
  let run: string[][] = [];
  let runKey: string | null = null;
  const flush = () => {
    out.push(...[...run].sort((a, b) => (a.join('\0') < b.join('\0') ? -1 : a.join('\0') > b.join('\0') ? 1 : 0)));
    run = [];
  };
  for (const s of segs) {
    const k = key(s);
    if (k === null || k !== runKey) flush();
    run.push(s);
    runKey = k;
  }
  flush();
  return out;
}

/**
 * Whether an observed walk is a predicted outcome: the same verdict and DNAT, and the same chains
 * in the same order, up to (a) the order of base chains the kernel runs at one priority and (b) a
 * predicted base chain with nothing in it that the kernel never reported (iptables-nft registers a
 * built-in chain only once it holds a rule).
 */
export function explains(o: Outcome, w: ObservedWalk, opts: CompareOptions): boolean {
  if (o.verdict !== w.verdict || o.dnat !== w.dnat) return false;
  const key = (seg: string[]) => opts.orderKey?.(seg[0], null) ?? null;
  const seen = new Set(w.path.filter((_, i) => w.base[i]));
  const predicted = segments(o.path, (i) => opts.isBase(o.path[i])).filter((s) => s.length > 1 || seen.has(s[0]));
  const observed = segments(w.path, (i) => w.base[i]);
  const a = canonical(predicted, key);
  const b = canonical(observed, key);
  return a.length === b.length && a.every((s, i) => s.length === b[i].length && s.every((c, k) => c === b[i][k]));
}

/** Count identical walks, match each to the prediction, and test the counts against it. */
export function compareWalks(walks: readonly ObservedWalk[], prediction: TraceResult, opts: CompareOptions): LiveComparison {
  const groups = new Map<string, ObservedPath>();
  const counts = prediction.outcomes.map(() => 0);
  let unexplained = 0;
  for (const w of walks) {
    const key = JSON.stringify([w.path, w.verdict, w.dnat, w.snat]);
    let g = groups.get(key);
    if (!g) {
      const at = prediction.outcomes.findIndex((o) => explains(o, w, opts));
      g = {
        path: w.path, rules: w.rules, verdict: w.verdict, dnat: w.dnat, snat: w.snat, count: 0,
        outcome: at >= 0 ? at : null, predicted: at >= 0 ? prediction.outcomes[at].probability : null,
      };
      groups.set(key, g);
    }
    g.count++;
    if (g.outcome === null) unexplained++;
    else counts[g.outcome]++;
  }
  const chiSquare = chiSquareOf(prediction, counts);
  const paths = [...groups.values()].sort((a, b) => (a.outcome ?? Infinity) - (b.outcome ?? Infinity) || b.count - a.count);
  return { packets: walks.length, paths, unexplained, counts, chiSquare };
}

/** The counts against the predicted probabilities, over the outcomes that can happen; null with fewer than two, or no count. */
export function chiSquareOf(prediction: TraceResult, counts: readonly number[]): ChiSquareResult | null {
  const possible = prediction.outcomes.map((o, i) => ({ p: o.probability, n: counts[i] ?? 0 })).filter((x) => x.p > 0);
  const total = possible.reduce((a, x) => a + x.p, 0);
  const n = possible.reduce((a, x) => a + x.n, 0);
  return possible.length >= 2 && n > 0 ? chiSquareTest(possible.map((x) => x.n), possible.map((x) => x.p / total)) : null;
}

/** iptables' built-in chains (also the base chains iptables-nft registers). */
export const IPTABLES_BUILTIN = /^(?:PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING)$/;

/** One branch of the outcome tree: a run of chains, with the predicted share and the walks observed through it. */
export interface LiveTreeNode {
  chains: string[];
  predicted: number;
  observed: number;
  children: LiveTreeNode[];
  /** Set where a path ends: the outcome, and whether the prediction has it. */
  end: { verdict: Outcome['verdict']; dnat: string | null; snat: string | null; unexplained: boolean } | null;
}

/**
 * The predicted outcomes and the observed paths as one tree: chains shared by several paths once,
 * each branch with its predicted probability and its observed count. An explained walk counts
 * under the predicted path it matched (its own may lack an empty built-in chain); an unexplained
 * one hangs where its chains leave the predicted ones.
 */
export function liveOutcomeTree(prediction: TraceResult, comparison: Pick<LiveComparison, 'counts' | 'paths'>): LiveTreeNode {
  const root: LiveTreeNode = { chains: [], predicted: 0, observed: 0, children: [], end: null };
  const add = (path: readonly string[], end: NonNullable<LiveTreeNode['end']>, p: number, n: number) => {
    root.predicted += p;
    root.observed += n;
    let node = root;
    for (const chain of path) {
      let next = node.children.find((c) => c.end === null && c.chains[0] === chain);
      if (!next) node.children.push((next = { chains: [chain], predicted: 0, observed: 0, children: [], end: null }));
      next.predicted += p;
      next.observed += n;
      node = next;
    }
    node.children.push({ chains: [], predicted: p, observed: n, children: [], end });
  };
  prediction.outcomes.forEach((o, i) => add(o.path, { verdict: o.verdict, dnat: o.dnat, snat: o.snat, unexplained: false }, o.probability, comparison.counts[i] ?? 0));
  for (const p of comparison.paths) {
    if (p.outcome === null) add(p.path, { verdict: p.verdict, dnat: p.dnat, snat: p.snat, unexplained: true }, 0, p.count);
  }
  // A chain with one way on joins the run above it.
  const squash = (n: LiveTreeNode): LiveTreeNode => {
    let node = n;
    while (node.children.length === 1 && node.children[0].end === null) {
      const only = node.children[0];
      node = { ...node, chains: [...node.chains, ...only.chains], children: only.children };
    }
    if (node.children.length === 1 && node.end === null && node.children[0].end !== null && node.chains.length > 0) {
      node = { ...node, children: [], end: node.children[0].end };
    }
    return { ...node, children: node.children.map(squash) };
  };
  return squash(root);
}

const pct = (p: number) => `${(p * 100).toFixed(2)}%`;

/** The tree as text: each branch with its predicted percentage and, beside it, the count observed. */
export function liveTreeLines(tree: LiveTreeNode, packets: number): string[] {
  const lines: string[] = [];
  const endText = (e: NonNullable<LiveTreeNode['end']>) =>
    `⇒ ${e.verdict}${e.dnat ? `, DNAT → ${e.dnat}` : ''}${e.snat ? `, ${e.snat}` : ''}${e.unexplained ? '   UNEXPLAINED: no predicted outcome' : ''}`;
  const figures = (n: LiveTreeNode) => {
    const seen = packets > 0 ? ` (${pct(n.observed / packets)})` : '';
    return `predicted ${pct(n.predicted).padStart(7)} · observed ${String(n.observed).padStart(5)}${seen.padEnd(10)}`;
  };
  const walk = (n: LiveTreeNode, prefix: string, tail: boolean, top: boolean) => {
    const branch = top ? '' : tail ? '└─ ' : '├─ ';
    const text = [n.chains.join(' › '), n.end ? endText(n.end) : ''].filter(Boolean).join(' ');
    lines.push(`${figures(n)}  ${prefix}${branch}${text}`);
    const next = top ? '' : prefix + (tail ? '   ' : '│  ');
    n.children.forEach((c, i) => walk(c, next, i === n.children.length - 1, false));
  };
  if (tree.chains.length === 0 && tree.end === null) tree.children.forEach((c, i) => walk(c, '', i === tree.children.length - 1, tree.children.length === 1));
  else walk(tree, '', true, true);
  return lines;
}
