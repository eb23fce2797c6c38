import { resolveServicePorts } from '../k8s/resolve.ts';
import { MissingToolError } from '../exec/index.ts';
import type { Lab, LoadResult } from '../lab/types.ts';
import { parseConntrack } from '../parse/conntrack.ts';
import { findTable, parseIptablesSave } from '../parse/index.ts';
import { provenance, type Provenance } from '../provenance/index.ts';
import { predictSplit, type SplitPrediction } from '../sim/split.ts';
import { chiSquareTest, type ChiSquareResult } from '../sim/stats.ts';
import { OptionError, knownKeys, received, text, wholeNumber } from '../options/index.ts';

export interface TrafficOptions {
  /** The Service to call (default: default/httpbin). */
  namespace?: string;
  service?: string;
  /** Port name, when the Service has several. */
  portName?: string;
  /** What to ask httpbin (default /hostname, whose answer names the pod). */
  path?: string;
  requests: number;
  concurrency?: number;
  /** Where the requests start: the client pod (default), another pod, or a node itself. */
  from?: { pod: string } | { node: string };
}

const TRAFFIC_KEYS = ['namespace', 'service', 'portName', 'path', 'requests', 'concurrency', 'from'] as const;
/** As many as one run of the load generator takes in a few minutes. */
export const MAX_REQUESTS = 1_000_000;

/** Options checked before anything runs: unknown keys and wrong values say what they received. */
export function checkTrafficOptions(opts: unknown): Required<Pick<TrafficOptions, 'namespace' | 'service' | 'path' | 'requests' | 'concurrency'>> & Pick<TrafficOptions, 'portName' | 'from'> {
  const where = 'measureTraffic';
  const o = knownKeys(where, opts, TRAFFIC_KEYS);
  const path = text(where, 'path', o.path, '/hostname');
  if (!path.startsWith('/')) throw new OptionError(`${where}: path: expected a path starting with /, got ${received(o.path)}`);
  let from: TrafficOptions['from'];
  if (o.from !== undefined) {
    const f = knownKeys(`${where}: from`, o.from, ['pod', 'node']);
    const keys = Object.keys(f);
    if (keys.length !== 1) throw new OptionError(`${where}: from: expected { pod: NAME } or { node: NAME }, got ${received(o.from)}`);
    from = keys[0] === 'pod' ? { pod: text(where, 'from.pod', f.pod) } : { node: text(where, 'from.node', f.node) };
  }
  return {
    namespace: text(where, 'namespace', o.namespace, 'default'),
    service: text(where, 'service', o.service, 'httpbin'),
    ...(o.portName !== undefined ? { portName: text(where, 'portName', o.portName) } : {}),
    path,
    requests: wholeNumber(where, 'requests', o.requests, 1, MAX_REQUESTS),
    concurrency: wholeNumber(where, 'concurrency', o.concurrency, 1, 1000, 10),
    ...(from ? { from } : {}),
  };
}

export interface PodTally {
  pod: string;
  ip: string;
  node: string;
  /** Answers from this pod, by its /hostname. */
  answers: number;
  /**
   * conntrack entries on the client's node whose reply comes from this pod. A connection that
   * reuses the ports of a flow still in TIME_WAIT takes over its entry, so this can fall short.
   */
  conntrack: number | null;
  /** First packets counted by the pod's KUBE-SEP DNAT rule (iptables mode). */
  sepPackets: number | null;
}

export interface TrafficMeasurement {
  provenance: Provenance;
  service: { namespace: string; name: string; clusterIP: string; port: number };
  /** The node whose kernel picked the backends: the client pod's node. */
  node: string;
  total: number;
  ok: number;
  errors: number;
  durationMs: number;
  firstOkMs: number | null;
  requestsPerSecond: number;
  /** In kube-proxy's endpoint order (sorted by ip:port), so it lines up with the prediction. */
  byPod: PodTally[];
  prediction: { provenance: Provenance; split: SplitPrediction };
  /** Goodness of fit of the answers per pod against the prediction (random modes). */
  chiSquare: ChiSquareResult | null;
  /** Cross-checks that could not be made, and why (a null count above has its reason here). */
  skipped: string[];
}

/**
 * Send N requests from the client pod to a Service's ClusterIP:port, tally the answers per pod
 * from /hostname, and cross-check them with the kernel's own counts on the client's node.
 */
export async function measureTraffic(lab: Lab, options: TrafficOptions): Promise<TrafficMeasurement> {
  const opts = checkTrafficOptions(options);
  const namespace = opts.namespace;
  const name = opts.service;
  const client = await clientOf(lab, opts.from);
  const ports = resolveServicePorts({ services: await lab.services(), endpointSlices: await lab.endpointSlices() }, { nodeName: client.node });
  const sp = ports.find((p) => p.namespace === namespace && p.name === name && (opts.portName === undefined || p.portName === opts.portName));
  if (!sp) throw new Error(`lab ${lab.name} has no Service ${namespace}/${name}${opts.portName ? ` with port ${opts.portName}` : ''}`);
  const endpoints = sp.endpoints.filter((e) => e.ready);
  if (endpoints.length === 0) throw new Error(`Service ${namespace}/${name} has no ready endpoints`);
  const vip = `${sp.clusterIP}:${sp.port}`;

  const skipped: string[] = [];
  // conntrack's view is a cross-check: without the tool the answers still count, the check is skipped.
  const conntrack = async (op: '-D' | '-L') => {
    try {
      return await lab.exec(client.node, ['conntrack', op, '-p', sp.protocol.toLowerCase(), '--orig-dst', sp.clusterIP, '--orig-port-dst', String(sp.port)], { allowFailure: true });
    } catch (e) {
      if (!(e instanceof MissingToolError)) throw e;
      if (!skipped.some((s) => s.startsWith('conntrack'))) skipped.push(`conntrack counts: ${e.message}`);
      return null;
    }
  };
  // Start from a clean conntrack slate for this VIP on the client's node, then read it after.
  await conntrack('-D');
  const sepBefore = lab.mode === 'iptables' ? await sepCounters(lab, client.node) : null;
  const result: LoadResult = await lab.load({
    url: `http://${vip}${opts.path}`,
    requests: opts.requests,
    concurrency: opts.concurrency,
    from: client.from,
  });
  const sepAfter = lab.mode === 'iptables' ? await sepCounters(lab, client.node) : null;
  const ct = await conntrack('-L');
  // `conntrack -L` exits 0 with zero entries too; any other exit means it could not read the table.
  if (ct && ct.exitCode !== 0) skipped.push(`conntrack counts: \`${ct.command}\` exited ${ct.exitCode}: ${ct.stderr.trim().split('\n').at(-1) ?? ''}`);
  const ctOk = ct !== null && ct.exitCode === 0;
  const conntrackByIp = new Map<string, number>();
  if (ctOk) for (const e of parseConntrack(ct.stdout).entries) conntrackByIp.set(e.reply.src, (conntrackByIp.get(e.reply.src) ?? 0) + 1);

  const pods = await lab.pods();
  const byPod: PodTally[] = endpoints.map((e) => {
    const pod = pods.find((p) => p.ip === e.ip);
    const podName = e.podName ?? pod?.name ?? e.ip;
    const dest = `${e.ip}:${e.port}`;
    return {
      pod: podName,
      ip: e.ip,
      node: e.nodeName ?? pod?.node ?? '',
      answers: result.byPod[podName] ?? 0,
      conntrack: ctOk ? (conntrackByIp.get(e.ip) ?? 0) : null,
      sepPackets: sepBefore && sepAfter ? (sepAfter.get(dest) ?? 0) - (sepBefore.get(dest) ?? 0) : null,
    };
  });
  const split = predictSplit(lab.mode, endpoints.length, result.ok);
  const random = lab.mode !== 'ipvs' && endpoints.length > 1 && result.ok > 0;
  return {
    provenance: provenance({ source: 'measured', backend: lab.backend, mode: lab.mode, node: client.node, lab: lab.name, command: `kube-netlab traffic --name ${lab.name} --requests ${opts.requests}${options.from ? ` --from ${'node' in client.from ? client.from.node : client.from.pod}` : ''}` }),
    service: { namespace, name, clusterIP: sp.clusterIP, port: sp.port },
    node: client.node,
    total: result.total,
    ok: result.ok,
    errors: result.errors,
    durationMs: result.durationMs,
    firstOkMs: result.firstOkMs,
    requestsPerSecond: result.durationMs > 0 ? (result.ok * 1000) / result.durationMs : 0,
    byPod,
    prediction: { provenance: provenance({ source: 'predicted', backend: null, mode: lab.mode }), split },
    chiSquare: random ? chiSquareTest(byPod.map((p) => p.answers), split.shares.map((s) => s.probability)) : null,
    skipped,
  };
}

/** Where requests start, and the node whose kernel picks the backend for them. */
async function clientOf(lab: Lab, from: TrafficOptions['from']): Promise<{ node: string; from: { pod: string } | { node: string } }> {
  if (from && 'node' in from) {
    const node = (await lab.nodes()).find((n) => n.name === from.node);
    if (!node) throw new OptionError(`measureTraffic: from.node: lab ${lab.name} has no node ${received(from.node)}`);
    return { node: node.name, from: { node: node.name } };
  }
  const pods = await lab.pods();
  const pod = from ? pods.find((p) => p.name === from.pod) : pods.find((p) => p.labels.app === 'curl' && p.ready);
  if (!pod) {
    throw new OptionError(from ? `measureTraffic: from.pod: lab ${lab.name} has no pod ${received(from.pod)}` : `lab ${lab.name} has no ready client pod (app=curl): apply labs/manifests/curl.yaml first`);
  }
  return { node: pod.node, from: { pod: pod.name } };
}

/** Packets counted by each KUBE-SEP chain's DNAT rule, keyed by its `ip:port` destination. */
async function sepCounters(lab: Lab, node: string): Promise<Map<string, number>> {
  const saved = await lab.exec(node, ['iptables-save', '-c', '-t', 'nat']);
  const nat = findTable(parseIptablesSave(saved.stdout), 'nat');
  const out = new Map<string, number>();
  for (const chain of nat?.chains ?? []) {
    if (!chain.name.startsWith('KUBE-SEP-')) continue;
    for (const rule of chain.rules) {
      if (rule.target?.name !== 'DNAT') continue;
      const to = rule.target.options.find((o) => o.name === 'to-destination')?.args[0];
      if (to) out.set(to, (out.get(to) ?? 0) + (rule.counters?.packets ?? 0));
    }
  }
  return out;
}
