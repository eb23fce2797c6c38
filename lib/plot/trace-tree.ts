import * as Plot from '@observablehq/plot';
import { provenance, provenanceLabel, type Provenance } from '../provenance/index.ts';
import type { Outcome, TraceResult } from '../trace/iptables.ts';
import { renderFigure, type Figure } from './figure.ts';
import { fmtPercent, textWidth } from './svg.ts';
import { THEME } from './theme.ts';

export interface TraceTreeOptions {
  /** Where the traced table came from; default: predicted by the model (iptables mode). */
  provenance?: Provenance;
  title?: string;
  width?: number;
}

const SEP = '/';
/** Tree paths split on "/", so a name holding one is shown with a look-alike. */
const seg = (s: string) => s.replaceAll(SEP, '∕');

function leafLabel(o: Outcome): string {
  const nat = [o.dnat ? `DNAT → ${o.dnat}` : null, o.snat].filter(Boolean).join(' · ');
  return `${nat || o.verdict} (${fmtPercent(o.probability)})`;
}

/**
 * One path per outcome, "PREROUTING/KUBE-SERVICES/KUBE-SVC-…/KUBE-SEP-… (33.33%)/…/DNAT → ip:port (33.33%)".
 * A chain's share (the sum over the outcomes through it) is shown where the path splits, and on
 * every leaf.
 */
export function tracePaths(result: TraceResult): string[] {
  const share = new Map<string, number>();
  for (const o of result.outcomes) {
    for (let i = 1; i <= o.path.length; i++) {
      const key = o.path.slice(0, i).join('\0');
      share.set(key, (share.get(key) ?? 0) + o.probability);
    }
  }
  return result.outcomes.map((o) => {
    let parent = 1;
    const chains = o.path.map((name, i) => {
      const p = share.get(o.path.slice(0, i + 1).join('\0')) ?? 1;
      // Shares are sums of multiples of 2^-31: a change below that is no split.
      const split = Math.abs(parent - p) > 1e-9;
      parent = p;
      return seg(split ? `${name} (${fmtPercent(p)})` : name);
    });
    return [...chains, seg(leafLabel(o))].join(SEP);
  });
}

/** Every prefix as its own row: d3.stratify drops imputed nodes at the root, which would hide PREROUTING. */
function withPrefixes(paths: readonly string[]): string[] {
  const out = new Set<string>();
  for (const p of paths) {
    const parts = p.split(SEP);
    for (let i = 1; i <= parts.length; i++) out.add(parts.slice(0, i).join(SEP));
  }
  return [...out];
}

/** The node's label, its share on a second line to keep levels narrow. */
const nodeLabel = (path: string) => path.slice(path.lastIndexOf(SEP) + 1).replace(/ \((\d+\.\d+%)\)$/, '\n$1');

/** The chains a traced packet can take, as a tree whose leaves say where it ends and how often. */
export function traceTreeFigure(result: TraceResult, opts: TraceTreeOptions = {}): Figure {
  const prov = opts.provenance ?? provenance({ source: 'predicted', backend: null, mode: 'iptables' });
  const paths = tracePaths(result);
  const rows = withPrefixes(paths);
  const lines = (path: string) => nodeLabel(path).split('\n');
  const w = (path: string) => Math.max(...lines(path).map((l) => textWidth(l, THEME.fontSize)));
  const depthOf = (path: string) => path.split(SEP).length;
  const depth = Math.max(...rows.map(depthOf));
  const leaves = new Set(paths);
  const rootWidth = Math.max(...rows.filter((r) => depthOf(r) === 1).map(w));
  const leafWidth = Math.max(...paths.map(w));
  const innerWidth = Math.max(0, ...rows.filter((r) => depthOf(r) > 1 && !leaves.has(r)).map(w));
  // Mirrored labels sit left of inner nodes and right of leaves: each level needs a label's room.
  const width = opts.width ?? Math.ceil(Math.max(THEME.width, rootWidth + leafWidth + (depth - 1) * (innerWidth + 28) + 40));
  const pk = result.packet;
  return renderFigure({
    title: opts.title ?? `Paths of a ${pk.protocol.toUpperCase()} packet to ${pk.dst}:${pk.dport}`,
    subtitle: `${provenanceLabel(prov)} · traced from ${result.hook}`,
    caption: `Packet ${pk.src}${pk.sport !== undefined ? `:${pk.sport}` : ''} → ${pk.dst}:${pk.dport}, entering nat ${result.hook}. `
      + `${result.outcomes.length} outcome${result.outcomes.length === 1 ? '' : 's'}; percentages are the chances the kernel's statistic matches give each branch.`,
    width,
    height: Math.max(120, 44 * result.outcomes.length + 60),
    marginTop: 24,
    marginBottom: 24,
    marginLeft: rootWidth + 16,
    marginRight: leafWidth + 16,
    axis: null,
    marks: [
      Plot.tree(rows, {
        delimiter: SEP,
        text: nodeLabel,
        stroke: THEME.interval,
        fill: THEME.predicted,
        textStroke: 'white',
        fontSize: THEME.fontSize,
        className: 'predicted',
      }),
    ],
  });
}
