/**
 * What a scale changed on a node, sorted by kind of line: the lines of kube-proxy's state a resync
 * added and removed (a lab's SyncReport), beside the same diff of the kit's generator run on the
 * cluster before and after. Pure.
 */
import { KIND_DEFAULTS } from '../k8s/synthetic.ts';
import { resolveServicePorts } from '../k8s/resolve.ts';
import type { Cluster, ServicePortInfo } from '../k8s/types.ts';
import { generateIptables } from '../proxy/iptables.ts';
import { generateIpvs } from '../proxy/ipvs.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import type { ProxyOptions } from '../proxy/options.ts';
import { generateNftables } from '../proxy/nftables.ts';
import { diffLines } from './diff.ts';

/** Lines only after (added) and only before (removed). */
export interface LineDiff {
  added: string[];
  removed: string[];
}

/** The kinds of line counted per mode, in the order tables show them. */
export const LINE_KINDS: { readonly [M in ProxyMode]: readonly string[] } = {
  iptables: ['KUBE-SVC jumps', 'KUBE-SEP rules', 'other iptables rules'],
  // ipset members and virtual servers are compared apart (setDiff, the IPVS table), not as lines.
  ipvs: ['iptables rules'],
  nftables: ['endpoint chains', 'endpoint-chain rules', 'numgen dispatch rules', 'other chains', 'other statements'],
};

/**
 * What a line of kube-proxy's state is: an `iptables-save` rule (a netns report prefixes the
 * table: `nat -A …`) or an nft statement (`chain X {` opens a chain). null: not counted
 * (braces, chain declarations, and in IPVS mode anything but an iptables rule).
 */
export function lineKind(mode: ProxyMode, raw: string): string | null {
  const line = raw.replace(/^(nat|filter|mangle|raw) (?=-A )/, '').trim();
  if (line === '' || line === '{' || line === '}' || line.startsWith(':')) return null;
  if (mode === 'nftables') {
    if (line.startsWith('chain endpoint-')) return 'endpoint chains';
    if (line.startsWith('chain ')) return 'other chains';
    if (line.includes('numgen ')) return 'numgen dispatch rules';
    if (/^ip saddr \S+ jump mark-for-masquerade/.test(line) || /^meta l4proto \S+ dnat to /.test(line)) return 'endpoint-chain rules';
    return 'other statements';
  }
  const chain = /^-A (\S+)/.exec(line)?.[1];
  if (!chain) return mode === 'ipvs' ? null : 'other lines';
  if (mode === 'ipvs') return 'iptables rules';
  if (chain.startsWith('KUBE-SVC-')) return 'KUBE-SVC jumps';
  if (chain.startsWith('KUBE-SEP-')) return 'KUBE-SEP rules';
  return 'other iptables rules';
}

export interface KindCount {
  added: number;
  removed: number;
}

/** A diff counted by kind: every kind of the mode, zeros included, then any other kind met. */
export function countKinds(mode: ProxyMode, diff: LineDiff): Map<string, KindCount> {
  const out = new Map<string, KindCount>(LINE_KINDS[mode].map((k) => [k, { added: 0, removed: 0 }]));
  const tally = (lines: readonly string[], field: keyof KindCount) => {
    for (const l of lines) {
      const k = lineKind(mode, l);
      if (k === null) continue;
      const c = out.get(k) ?? { added: 0, removed: 0 };
      c[field]++;
      out.set(k, c);
    }
  };
  tally(diff.added, 'added');
  tally(diff.removed, 'removed');
  return out;
}

/** A node as the generator needs it. */
export interface DiffNode {
  name: string;
  ip: string;
}

/** The generator's options for one node of a lab: its name and address, kind's pod subnet. */
export function generatorOptions(node: DiffNode): ProxyOptions {
  return { nodeName: node.name, nodeIPs: [node.ip], clusterCIDR: KIND_DEFAULTS.podSubnet };
}

/** The generator's state for one node, as lines comparable with what the kernel shows. */
export function generatedLines(mode: ProxyMode, ports: readonly ServicePortInfo[], node: DiffNode): string[] {
  const opts = generatorOptions(node);
  const rules = (text: string) => text.split('\n').filter((l) => l.startsWith('-A '));
  if (mode === 'iptables') return rules(generateIptables(ports, opts).restore);
  if (mode === 'ipvs') return rules(generateIpvs(ports, opts).iptablesRestore);
  return generateNftables(ports, opts).nft.split('\n').flatMap((l) => {
    const chain = /^add chain ip kube-proxy (\S+)/.exec(l);
    if (chain) return [`chain ${chain[1]} {`];
    const rule = /^add rule ip kube-proxy \S+ (.*)$/.exec(l);
    return rule ? [rule[1]] : [];
  });
}

/** What the generator changes on `node` between two states of the cluster. */
export function predictedDiff(mode: ProxyMode, before: Cluster, after: Cluster, node: DiffNode): LineDiff {
  const lines = (c: Cluster) => generatedLines(mode, resolveServicePorts(c, { nodeName: node.name }), node);
  return diffLines(lines(before), lines(after));
}

/** One kind of line: how many the kernel gained and lost, and how many the generator did. */
export interface KindRow {
  kind: string;
  captured: KindCount;
  predicted: KindCount;
}

/** A captured diff beside a predicted one, kind by kind. */
export function compareKinds(mode: ProxyMode, captured: LineDiff, predicted: LineDiff): KindRow[] {
  const c = countKinds(mode, captured);
  const p = countKinds(mode, predicted);
  const zero = { added: 0, removed: 0 };
  return [...new Set([...c.keys(), ...p.keys()])].map((kind) => ({
    kind, captured: c.get(kind) ?? zero, predicted: p.get(kind) ?? zero,
  }));
}

/** The kinds whose captured and predicted counts differ, each said in a line; [] when all agree. */
export function kindMismatches(rows: readonly KindRow[]): string[] {
  return rows
    .filter((r) => r.captured.added !== r.predicted.added || r.captured.removed !== r.predicted.removed)
    .map((r) => `${r.kind}: captured +${r.captured.added} −${r.captured.removed}, predicted +${r.predicted.added} −${r.predicted.removed}`);
}

/** Added minus removed over the captured side of the kinds `pick` selects (all by default). */
export function netChange(rows: readonly KindRow[], pick: (kind: string) => boolean = () => true): number {
  return rows.filter((r) => pick(r.kind)).reduce((n, r) => n + r.captured.added - r.captured.removed, 0);
}

/** Lines changed at all (added plus removed), captured side. */
export function linesChanged(rows: readonly KindRow[]): number {
  return rows.reduce((n, r) => n + r.captured.added + r.captured.removed, 0);
}

/** Bars for a figure: "kind added" and "kind removed", leaving out those with nothing on either side. */
export function diffBars(rows: readonly KindRow[]): { label: string; captured: number; predicted: number }[] {
  return rows
    .flatMap((r) => [
      { label: `${r.kind} added`, captured: r.captured.added, predicted: r.predicted.added },
      { label: `${r.kind} removed`, captured: r.captured.removed, predicted: r.predicted.removed },
    ])
    .filter((b) => b.captured + b.predicted > 0);
}

/** Per set (sorted by name): members only after and only before. */
export function setDiff(before: Readonly<Record<string, readonly string[]>>, after: Readonly<Record<string, readonly string[]>>): ({ name: string } & LineDiff)[] {
  return Object.keys({ ...before, ...after }).sort().map((name) => ({
    name, ...diffLines([...(before[name] ?? [])], [...(after[name] ?? [])]),
  }));
}
