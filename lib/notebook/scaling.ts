/**
 * Scaling a Deployment in a notebook's lab and reading what changed: the client's node captured
 * before and after `lab.scale()`, its resync report beside the generator's diff, the ipsets and
 * real servers of IPVS mode, and the tables and figures that show them.
 */
import { isDeepStrictEqual } from 'node:util';
import { captureNode, parsedOf, type CaptureKind, type NodeCapture } from '../capture/index.ts';
import { resolveServicePorts } from '../k8s/resolve.ts';
import type { Cluster, ServicePortInfo } from '../k8s/types.ts';
import { compareKinds, generatorOptions, linesChanged, predictedDiff, setDiff, type KindRow, type LineDiff } from '../lab/scale-diff.ts';
import type { Lab, LabNode, Pod, SyncReport } from '../lab/types.ts';
import type { IpvsState } from '../parse/index.ts';
import { ruleCountsFigure, type Figure } from '../plot/index.ts';
import { provenance } from '../provenance/index.ts';
import { generateIpvs } from '../proxy/ipvs.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import { formatProbability } from '../proxy/iptables.ts';
import type { NftablesCounts } from '../proxy/nftables.ts';
import { jumpProbabilities, kubeSetMembers, virtualServer, type ServiceJump } from '../proxy/read.ts';
import type { LoadedRules } from '../scale/scratch-load.ts';
import { iptablesCounts, ipvsCounts, nftablesCounts, type IptablesCounts, type IpvsCounts } from '../sim/counts.ts';
import type { TrafficMeasurement } from '../traffic/index.ts';
import { whyNotParsed } from './node.ts';
import type { NotebookLab } from './setup.ts';
import { shell, showTable } from './show.ts';

/** What scaling needs of a notebook's lab: the lab and the client's node (setup() returns both). */
export type ScalableLab = Pick<NotebookLab, 'lab' | 'clientNode'>;

/** The client's node captured at one moment, with the cluster and httpbin's ready pods then. */
export interface Snapshot {
  cap: NodeCapture;
  cluster: Cluster;
  pods: Pod[];
}

/** Capture `kinds` on the client's node, and read the Services, EndpointSlices and httpbin's pods. */
export async function snapshot(nb: ScalableLab, kinds: readonly CaptureKind[]): Promise<Snapshot> {
  const { lab, clientNode: node } = nb;
  const ctx = { backend: lab.backend, mode: lab.mode, node: node.name, lab: lab.name };
  const cap = await captureNode((argv, o) => lab.exec(node.name, argv, o), ctx, kinds);
  const cluster = { services: await lab.services(), endpointSlices: await lab.endpointSlices() };
  const pods = (await lab.pods({ app: 'httpbin' })).filter((p) => p.ready);
  return { cap, cluster, pods };
}

/** One scale of httpbin in one lab: the client's node before and after, and every node's report. */
export interface ScaleRun {
  lab: Lab;
  mode: ProxyMode;
  /** The client's node, whose kernel picks the backend. */
  node: LabNode;
  from: number;
  to: number;
  before: Snapshot;
  after: Snapshot;
  /** What each node's resync changed, as lab.scale() reports it. */
  reports: SyncReport[];
  /** The client's node's report. */
  report: SyncReport;
  /** The pods the scale added. */
  added: Pod[];
}

const podList = (pods: readonly Pod[]) => pods.map((p) => `${p.name} ${p.ip} on ${p.node}`).join(', ');

/**
 * Capture the client's node, scale httpbin to `to` replicas with `lab.scale()` (which waits for
 * every node's resync and reports what it changed), capture again. Prints each step and shows
 * the per-node report as a table.
 */
export async function scaleRun(nb: ScalableLab, to: number, kinds: readonly CaptureKind[]): Promise<ScaleRun> {
  const { lab, clientNode: node } = nb;
  const before = await snapshot(nb, kinds);
  console.log(`before: httpbin × ${before.pods.length}; ${kinds.join(', ')} captured on ${node.name}, the client's node`);
  shell(`kubectl scale deployment httpbin --replicas=${to}`);
  const reports = await lab.scale('httpbin', to);
  const after = await snapshot(nb, kinds);
  const added = after.pods.filter((p) => !before.pods.some((q) => q.name === p.name));
  console.log(`after: httpbin × ${after.pods.length}, new: ${podList(added) || 'none'}`);
  const report = reports.find((r) => r.node === node.name);
  if (!report) throw new Error(`lab.scale() reported no resync on ${node.name}`);
  showTable(`What each node's resync changed (lab.scale(), ${lab.mode} mode)`, ['node', 'lines added', 'lines removed', ''],
    reports.map((r) => [r.node, r.added.length, r.removed.length, r.node === node.name ? "← the client's node" : '']));
  return { lab, mode: lab.mode, node, from: before.pods.length, to, before, after, reports, report, added };
}

/** The client node's captured diff beside the generator's for the same change, kind by kind. */
export function compareRun(run: ScaleRun): KindRow[] {
  return compareKinds(run.mode, run.report, predictedDiff(run.mode, run.before.cluster, run.after.cluster, run.node));
}

/** Show compareRun's rows as a table. */
export function showKinds(run: ScaleRun, rows: readonly KindRow[]): void {
  showTable(`${run.node.name}: what the scale changed, captured (lab.scale report) beside predicted (lib/proxy, before vs after)`,
    ['kind of line', 'captured: added', 'captured: removed', 'predicted: added', 'predicted: removed'],
    rows.map((r) => [r.kind, `+${r.captured.added}`, `−${r.captured.removed}`, `+${r.predicted.added}`, `−${r.predicted.removed}`]));
}

/** Print a report line by line: `+ added`, then `- removed`. */
export function printDiff(diff: LineDiff): void {
  for (const l of diff.added) console.log(`+ ${l}`);
  for (const l of diff.removed) console.log(`- ${l}`);
}

/** A Service port as `node` sees it in `cluster` (default/httpbin unless told). */
export function servicePortOf(cluster: Cluster, node: string, name = 'httpbin', namespace = 'default'): ServicePortInfo {
  return servicePortNamed(resolveServicePorts(cluster, { nodeName: node }), name, namespace);
}

/** The Service port `namespace/name` among ports already resolved (default/httpbin unless told). */
export function servicePortNamed(ports: readonly ServicePortInfo[], name = 'httpbin', namespace = 'default'): ServicePortInfo {
  const port = ports.find((p) => p.namespace === namespace && p.name === name);
  if (!port) throw new Error(`no Service port ${namespace}/${name}`);
  return port;
}

/** A figure of what the scale changed on the client's node: captured bars, predicted ticks. */
export function scaleDiffFigure(run: ScaleRun, bars: readonly { label: string; captured?: number; predicted: number }[]): Figure {
  const command = `lab.scale('httpbin', ${run.to}): the resync report`;
  const measured = provenance({ source: 'captured', backend: run.lab.backend, mode: run.mode, node: run.node.name, lab: run.lab.name, command });
  return ruleCountsFigure(bars.map((b) => ({ mode: run.mode, label: b.label, measured: b.captured, predicted: b.predicted })), {
    measured,
    predicted: provenance({ source: 'predicted', backend: null, mode: run.mode }),
    title: `httpbin ${run.from} → ${run.to} replicas in ${run.mode} mode: what ${run.node.name} gained and lost`,
  });
}

/** Answers per pod after the scale, beside the prediction and its 95% interval; new pods marked. */
export function showSplit(m: TrafficMeasurement, added: readonly Pod[]): void {
  const shares = m.prediction.split.shares;
  showTable(`${m.ok} connections, backends picked on ${m.node}`, ['pod', 'measured', 'predicted', '95% interval', ''],
    m.byPod.map((p, i) => [p.pod, p.answers, shares[i].expected.toFixed(0), `${shares[i].low}–${shares[i].high}`,
      added.some((q) => q.name === p.pod) ? 'new' : '']));
}

/** One ipset's change on the client's node: captured (null when ipset could not be read), and predicted. */
export interface SetChange {
  name: string;
  captured: LineDiff | null;
  predicted: LineDiff;
}

/**
 * IPVS mode: which of kube-proxy's ipsets changed, captured (`ipset list` before and after) beside
 * the generator's sets for the clusters before and after. Only sets that changed on either side.
 */
export function ipsetChanges(run: ScaleRun): SetChange[] {
  const setsOf = (s: Snapshot) => {
    const parsed = parsedOf(s.cap, 'ipset');
    return parsed ? kubeSetMembers(parsed) : null;
  };
  const [b, a] = [setsOf(run.before), setsOf(run.after)];
  const captured = b && a ? setDiff(b, a) : null;
  const predicted = setDiff(generatedIpvs(run, run.before).ipsets, generatedIpvs(run, run.after).ipsets);
  const none: LineDiff = { added: [], removed: [] };
  const changed = (d: LineDiff | null) => d !== null && d.added.length + d.removed.length > 0;
  const names = [...new Set([...predicted, ...(captured ?? [])].map((d) => d.name))].sort();
  return names
    .map((name) => ({
      name,
      captured: captured ? (captured.find((c) => c.name === name) ?? none) : null,
      predicted: predicted.find((p) => p.name === name) ?? none,
    }))
    .filter((s) => changed(s.predicted) || changed(s.captured));
}

/** The sets whose captured change differs from the predicted one, each said in a line; [] when all agree. */
export function setMismatches(changes: readonly SetChange[]): string[] {
  const same = (x: LineDiff, y: LineDiff) => isDeepStrictEqual([[...x.added].sort(), [...x.removed].sort()], [[...y.added].sort(), [...y.removed].sort()]);
  const say = (d: LineDiff) => `+[${d.added.join(' ')}] −[${d.removed.join(' ')}]`;
  return changes.filter((s) => s.captured && !same(s.captured, s.predicted))
    .map((s) => `ipset ${s.name}: captured ${say(s.captured as LineDiff)}, predicted ${say(s.predicted)}`);
}

/** Why a snapshot has no parsed `kind` (the tool or kernel feature it lacks, or the error); null when it has. */
export function notCaptured(s: Snapshot, kind: CaptureKind): string | null {
  return s.cap.items[kind] ? whyNotParsed(s.cap, kind) : `${kind} was not captured`;
}

function generatedIpvs(run: ScaleRun, s: Snapshot) {
  const ports = resolveServicePorts(s.cluster, { nodeName: run.node.name });
  return generateIpvs(ports, generatorOptions(run.node));
}

/** Real servers of httpbin's virtual server before and after: predicted, and captured where the kernel has IP_VS. */
export function realServerChange(run: ScaleRun): { captured: { before: number; after: number } | null; predicted: { before: number; after: number } } {
  const port = servicePortOf(run.after.cluster, run.node.name);
  const count = (state: IpvsState | null) => virtualServer(state ?? { services: [] }, port.clusterIP, port.port)?.destinations.length ?? 0;
  const [pb, pa] = [parsedOf(run.before.cap, 'proc-ip-vs'), parsedOf(run.after.cap, 'proc-ip-vs')];
  return {
    captured: pb && pa ? { before: count(pb), after: count(pa) } : null,
    predicted: { before: count(generatedIpvs(run, run.before).ipvs), after: count(generatedIpvs(run, run.after).ipvs) },
  };
}

/** A Service chain's jumps before and after a scale, each beside what kube-proxy writes and the kernel stores. */
export function showJumps(chain: string, node: string, before: readonly ServiceJump[], after: readonly ServiceJump[]): void {
  const n = after.length;
  const stored = jumpProbabilities(n);
  const last = (p: string | null) => p ?? 'none (last)';
  showTable(`${chain} on ${node}, before and after (captured) beside the prediction`,
    ['#', 'endpoint (DNAT to)', 'KUBE-SEP chain', `with ${before.length}: probability (captured)`, `with ${n}: probability (captured)`,
      'kube-proxy writes 1/(n−i)', 'kernel stores (predicted)'],
    after.map((j, i) => {
      const old = before.find((b) => b.sep === j.sep);
      return [i, j.to, j.sep, old ? last(old.probability) : 'new endpoint', last(j.probability),
        i < n - 1 ? `1/${n - i} = ${formatProbability(n - i)}` : '', last(stored[i])];
    }));
}

/** ipsetChanges as a table: members added and removed, captured beside predicted. */
export function showSetChanges(run: ScaleRun, changes: readonly SetChange[]): void {
  const list = (xs: readonly string[] | undefined) => (xs === undefined ? 'not captured' : xs.join(' ') || '—');
  showTable(`${run.node.name}: ipset members that changed`, ['set', 'captured: added', 'captured: removed', 'predicted: added', 'predicted: removed'],
    changes.map((s) => [s.name, list(s.captured?.added), list(s.captured?.removed), list(s.predicted.added), list(s.predicted.removed)]));
}

/** IPVS mode's scale as bars: iptables lines changed, KUBE-LOOP-BACK members added, real servers added. */
export function ipvsDiffBars(run: ScaleRun): { label: string; captured?: number; predicted: number }[] {
  const iptables = linesChanged(compareRun(run));
  const loop = ipsetChanges(run).find((s) => s.name === 'KUBE-LOOP-BACK');
  const setsCaptured = notCaptured(run.before, 'ipset') === null && notCaptured(run.after, 'ipset') === null;
  const servers = realServerChange(run);
  return [
    { label: 'iptables rules added or removed', captured: iptables, predicted: 0 },
    { label: 'KUBE-LOOP-BACK members added', captured: setsCaptured ? (loop?.captured?.added.length ?? 0) : undefined, predicted: loop?.predicted.added.length ?? 0 },
    {
      label: `real servers added${servers.captured ? '' : ' (no IP_VS: predicted only)'}`,
      captured: servers.captured ? servers.captured.after - servers.captured.before : undefined,
      predicted: servers.predicted.after - servers.predicted.before,
    },
  ];
}

/** What kube-proxy writes on one node of a cluster of `nodes` nodes with S Services × E pods, per mode (lib/sim). */
export interface NodeCounts {
  services: number;
  endpoints: number;
  nodes: number;
  iptables: IptablesCounts;
  ipvs: IpvsCounts;
  nftables: NftablesCounts;
  /** All of IPVS mode's ipset members together. */
  ipsetMembers: number;
}

export function nodeCounts(services: number, endpoints: number, nodes: number): NodeCounts {
  // Pods spread evenly: a node runs S·E/nodes of them, which only IPVS's KUBE-LOOP-BACK counts.
  const ipvs = ipvsCounts({ services, endpoints, localEndpoints: Math.round((services * endpoints) / nodes) });
  return {
    services, endpoints, nodes, ipvs,
    iptables: iptablesCounts({ services, endpoints }),
    nftables: nftablesCounts({ services, endpoints }),
    ipsetMembers: Object.values(ipvs.ipsetMembers).reduce((a, b) => a + b, 0),
  };
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** nodeCounts as a table, one row per mode. */
export function showNodeCounts(c: NodeCounts): void {
  const { iptables: ipt, ipvs, nftables: nft } = c;
  showTable(`Predicted (lib/sim): what kube-proxy writes on one node of a ${fmt(c.nodes)}-node cluster, ${fmt(c.services)} Services × ${c.endpoints} pods`,
    ['mode', 'rules', 'chains', 'set / map entries', 'IPVS servers', 'grows with the number of nodes?'], [
      ['iptables', `${fmt(ipt.nat.rules)} nat + ${ipt.filter.rules} filter`, fmt(ipt.nat.chains + ipt.filter.chains), '—', '—', 'no'],
      ['ipvs', `${ipvs.iptables.nat.rules} nat + ${ipvs.iptables.filter.rules} filter`, fmt(ipvs.iptables.nat.chains + ipvs.iptables.filter.chains),
        `${fmt(c.ipsetMembers)} ipset members`, `${fmt(ipvs.virtualServers)} virtual, ${fmt(ipvs.realServers)} real`, 'KUBE-LOOP-BACK only (local pods)'],
      ['nftables', fmt(nft.rules), fmt(nft.chains), `${fmt(nft.elements)} elements`, '—', 'no'],
    ]);
}

/** nodeCounts as a figure, with the iptables rules a kernel held (loadIptablesInScratch) where there are any. */
export function nodeCountsFigure(c: NodeCounts, loaded: LoadedRules | null, claimed?: { rules: number; by: string }): Figure {
  const ipt = c.iptables.nat;
  const factor = claimed ? ` ${claimed.by}'s "at least ${fmt(claimed.rules)}" for this cluster is ${(ipt.rules / claimed.rules).toFixed(1)}× too low.` : '';
  return ruleCountsFigure([
    { mode: 'iptables', label: 'nat rules', measured: loaded?.nat.rules, predicted: ipt.rules },
    { mode: 'iptables', label: 'nat chains', measured: loaded?.nat.chains, predicted: ipt.chains },
    { mode: 'nftables', label: 'rules', predicted: c.nftables.rules },
    { mode: 'nftables', label: 'chains', predicted: c.nftables.chains },
    { mode: 'ipvs', label: 'iptables nat rules', predicted: c.ipvs.iptables.nat.rules },
    { mode: 'ipvs', label: 'ipset members', predicted: c.ipsetMembers },
    { mode: 'ipvs', label: 'real servers', predicted: c.ipvs.realServers },
  ], {
    measured: loaded?.provenance,
    title: `One node, ${fmt(c.services)} Services × ${c.endpoints} pods: ${loaded ? 'captured (iptables) vs ' : ''}predicted, per mode`,
    caption: `${factor.trim()} Node count (${fmt(c.nodes)}) changes none of these; only IPVS's KUBE-LOOP-BACK depends on the pods per node.`.trim(),
  });
}
