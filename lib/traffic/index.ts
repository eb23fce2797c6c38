import { chainPackets, iptablesTable } from '../capture/iptables.ts';
import { endpointString, resolveServicePorts } from '../k8s/resolve.ts';
import type { EndpointInfo, ServicePortInfo } from '../k8s/types.ts';
import { MissingToolError } from '../exec/index.ts';
import type { Lab, LabNode, LoadResult } from '../lab/types.ts';
import { parseConntrack } from '../parse/conntrack.ts';
import type { IptTable } from '../parse/iptables-types.ts';
import { provenance, type Provenance } from '../provenance/index.ts';
import { sepChain } from '../proxy/names.ts';
import { predictSplit, type EndpointShare, type SplitPrediction } from '../sim/split.ts';
import { chiSquareTest, type ChiSquareResult } from '../sim/stats.ts';
import { OptionError, knownKeys, received, text, wholeNumber } from '../options/index.ts';

/**
 * Where the requests go: the Service's ClusterIP (default), its node port on a node's address
 * (`{ node: NAME }`), or its LoadBalancer ingress IP.
 */
export type TrafficDestination = 'clusterIP' | 'loadBalancer' | { node: string };

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
  /** Where they go (default the ClusterIP). */
  to?: TrafficDestination;
}

const TRAFFIC_KEYS = ['namespace', 'service', 'portName', 'path', 'requests', 'concurrency', 'from', 'to'] as const;
/** As many as one run of the load generator takes in a few minutes. */
export const MAX_REQUESTS = 1_000_000;

export type CheckedTrafficOptions = Required<Pick<TrafficOptions, 'namespace' | 'service' | 'path' | 'requests' | 'concurrency' | 'to'>>
  & Pick<TrafficOptions, 'portName' | 'from'>;

/** Options checked before anything runs: unknown keys and wrong values say what they received. */
export function checkTrafficOptions(opts: unknown): CheckedTrafficOptions {
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
  let to: TrafficDestination = 'clusterIP';
  if (o.to === 'clusterIP' || o.to === 'loadBalancer') to = o.to;
  else if (o.to !== undefined) {
    if (typeof o.to !== 'object' || o.to === null) throw new OptionError(`${where}: to: expected 'clusterIP', 'loadBalancer' or { node: NAME }, got ${received(o.to)}`);
    to = { node: text(where, 'to.node', knownKeys(`${where}: to`, o.to, ['node']).node) };
  }
  return {
    namespace: text(where, 'namespace', o.namespace, 'default'),
    service: text(where, 'service', o.service, 'httpbin'),
    ...(o.portName !== undefined ? { portName: text(where, 'portName', o.portName) } : {}),
    path,
    requests: wholeNumber(where, 'requests', o.requests, 1, MAX_REQUESTS),
    concurrency: wholeNumber(where, 'concurrency', o.concurrency, 1, 1000, 10),
    ...(from ? { from } : {}),
    to,
  };
}

export interface PodTally {
  pod: string;
  ip: string;
  node: string;
  /** Answers from this pod, by its /hostname. */
  answers: number;
  /**
   * conntrack entries on the deciding node whose reply comes from this pod. A connection that
   * reuses the ports of a flow still in TIME_WAIT takes over its entry, so this can fall short.
   */
  conntrack: number | null;
  /** First packets counted by the pod's KUBE-SEP DNAT rule for this Service port (iptables mode). */
  sepPackets: number | null;
}

export interface TrafficMeasurement {
  provenance: Provenance;
  service: { namespace: string; name: string; clusterIP: string; port: number };
  /** The address the requests were sent to, and what it is of the Service. */
  to: { via: 'clusterIP' | 'nodePort' | 'loadBalancer'; ip: string; port: number };
  /** Where the requests started: the client pod's name, or a node's. */
  client: string;
  /**
   * The node whose kernel picked the backends: the client's node for a ClusterIP or a load
   * balancer's virtual IP (its own rules catch the address on the way out), the node called for
   * a node port. null behind a proxying load balancer (ipMode Proxy), which connects to the node
   * ports of any node, so that each connection is picked on whichever node it reached.
   */
  node: string | null;
  /** The nodes whose kernel counts were read: `node`, or every node behind a proxy. */
  countedOn: string[];
  total: number;
  ok: number;
  errors: number;
  durationMs: number;
  firstOkMs: number | null;
  requestsPerSecond: number;
  /** In kube-proxy's endpoint order (sorted by ip:port), so it lines up with the prediction. */
  byPod: PodTally[];
  /**
   * With externalTrafficPolicy Local and a client outside the node called (another node), only
   * that node's endpoints are used: the others get a share of 0. Otherwise every ready endpoint.
   */
  endpointsUsed: 'all' | 'local to the node called';
  prediction: { provenance: Provenance; split: SplitPrediction };
  /** Goodness of fit of the answers per pod against the prediction (random modes, endpoints used). */
  chiSquare: ChiSquareResult | null;
  /**
   * Where the pods sent their answers: the distinct destinations of the reply tuples of
   * conntrack's entries on `node`. The client's own address when its source was kept, an address
   * of the node when the node masqueraded it. null when conntrack was not read.
   */
  repliesTo: string[] | null;
  /**
   * Packets KUBE-POSTROUTING's MASQUERADE rule counted on `node` during the run (iptables mode):
   * one per connection whose source the node rewrote. null in other modes or behind a proxy.
   */
  masqueraded: number | null;
  /** Cross-checks that could not be made, and why (a null count above has its reason here). */
  skipped: string[];
}

/** Where requests start, and the node whose kernel picks the backend for traffic it sends. */
export interface Client {
  /** The pod's or node's name. */
  name: string;
  node: string;
  from: { pod: string } | { node: string };
}

/** The address called, the node that decides, and whose counters tell. */
export interface Target {
  via: TrafficMeasurement['to']['via'];
  ip: string;
  port: number;
  node: string | null;
  counted: string[];
}

/**
 * Send N requests to a Service (its ClusterIP, a node port on a node, or its load balancer's
 * ingress IP) from the client pod, another pod or a node; tally the answers per pod from
 * /hostname, and cross-check them with the kernel's own counts on the node that picked the
 * backends: conntrack, the KUBE-SEP DNAT counters, and KUBE-POSTROUTING's masquerade counter.
 */
export async function measureTraffic(lab: Lab, options: TrafficOptions): Promise<TrafficMeasurement> {
  const opts = checkTrafficOptions(options);
  const namespace = opts.namespace;
  const name = opts.service;
  const { client, sp, target } = await resolveTarget(lab, opts);
  const endpoints = sp.endpoints.filter((e) => e.ready);
  if (endpoints.length === 0) throw new Error(`Service ${namespace}/${name} has no ready endpoints`);
  const localOnly = sp.externalTrafficPolicy === 'Local' && target.via === 'nodePort' && 'node' in client.from && client.node !== target.node;
  const used = localOnly ? endpoints.filter((e) => e.isLocal) : endpoints;

  const skipped: string[] = [];
  if (target.node === null) {
    skipped.push(`conntrack and masquerade counts: ${target.ip} belongs to the load balancer's proxy (ipMode Proxy), which connects to the node ports of any node, so no one node saw every connection; KUBE-SEP packets are summed over every node`);
  }
  // conntrack's view is a cross-check: without the tool the answers still count, the check is skipped.
  const conntrack = async (op: '-D' | '-L') => {
    if (target.node === null) return null;
    try {
      return await lab.exec(target.node, ['conntrack', op, '-p', sp.protocol.toLowerCase(), '--orig-dst', target.ip, '--orig-port-dst', String(target.port)], { allowFailure: true });
    } catch (e) {
      if (!(e instanceof MissingToolError)) throw e;
      if (!skipped.some((s) => s.startsWith('conntrack'))) skipped.push(`conntrack counts: ${e.message}`);
      return null;
    }
  };
  // Start from a clean conntrack slate for this address on the deciding node, then read it after.
  await conntrack('-D');
  const natOf = async () => (lab.mode === 'iptables' ? Promise.all(target.counted.map((n) => iptablesTable(lab, n, 'nat'))) : null);
  const natBefore = await natOf();
  const result: LoadResult = await lab.load({
    url: `http://${target.ip}:${target.port}${opts.path}`,
    requests: opts.requests,
    concurrency: opts.concurrency,
    from: client.from,
  });
  const natAfter = await natOf();
  const ct = await conntrack('-L');
  // `conntrack -L` exits 0 with zero entries too; any other exit means it could not read the table.
  if (ct && ct.exitCode !== 0) skipped.push(`conntrack counts: \`${ct.command}\` exited ${ct.exitCode}: ${ct.stderr.trim().split('\n').at(-1) ?? ''}`);
  const entries = ct !== null && ct.exitCode === 0 ? parseConntrack(ct.stdout).entries : null;
  const conntrackByIp = new Map<string, number>();
  for (const e of entries ?? []) conntrackByIp.set(e.reply.src, (conntrackByIp.get(e.reply.src) ?? 0) + 1);
  const delta = (count: (t: IptTable) => number) => (natBefore && natAfter ? natAfter.reduce((a, t, i) => a + count(t) - count(natBefore[i]), 0) : null);
  const isMasq = (r: { target: { name: string } | null }) => r.target?.name === 'MASQUERADE';

  const pods = await lab.pods();
  const byPod: PodTally[] = endpoints.map((e) => {
    const pod = pods.find((p) => p.ip === e.ip);
    const podName = e.podName ?? pod?.name ?? e.ip;
    const chain = sepChain(sp.servicePortName, sp.protocol, endpointString(e.ip, e.port));
    return {
      pod: podName,
      ip: e.ip,
      node: e.nodeName ?? pod?.node ?? '',
      answers: result.byPod[podName] ?? 0,
      conntrack: entries ? (conntrackByIp.get(e.ip) ?? 0) : null,
      sepPackets: delta((t) => chainPackets(t, chain, (r) => r.target?.name === 'DNAT')),
    };
  });
  const split = splitOver(lab.mode, endpoints, used, result.ok, localOnly);
  const inUse = byPod.filter((_, i) => used.includes(endpoints[i]));
  const random = lab.mode !== 'ipvs' && used.length > 1 && result.ok > 0;
  const usedShares = split.shares.filter((_, i) => used.includes(endpoints[i]));
  const fromFlag = options.from ? ` --from ${client.name}` : '';
  const toFlag = typeof opts.to === 'object' ? ` --to ${opts.to.node}` : opts.to === 'loadBalancer' ? ' --to loadbalancer' : '';
  const svcFlag = namespace !== 'default' || name !== 'httpbin' ? ` --service ${namespace}/${name}` : '';
  return {
    provenance: provenance({
      source: 'measured', backend: lab.backend, mode: lab.mode, node: target.node ?? client.node, lab: lab.name,
      command: `kube-netlab traffic --name ${lab.name}${svcFlag} --requests ${opts.requests}${fromFlag}${toFlag}`,
    }),
    service: { namespace, name, clusterIP: sp.clusterIP, port: sp.port },
    to: { via: target.via, ip: target.ip, port: target.port },
    client: client.name,
    node: target.node,
    countedOn: target.counted,
    total: result.total,
    ok: result.ok,
    errors: result.errors,
    durationMs: result.durationMs,
    firstOkMs: result.firstOkMs,
    requestsPerSecond: result.durationMs > 0 ? (result.ok * 1000) / result.durationMs : 0,
    byPod,
    endpointsUsed: localOnly ? 'local to the node called' : 'all',
    prediction: { provenance: provenance({ source: 'predicted', backend: null, mode: lab.mode }), split },
    chiSquare: random ? chiSquareTest(inUse.map((p) => p.answers), usedShares.map((s) => s.probability / usedShares.reduce((a, x) => a + x.probability, 0))) : null,
    repliesTo: entries ? [...new Set(entries.map((e) => e.reply.dst))] : null,
    masqueraded: target.node === null ? null : delta((t) => chainPackets(t, 'KUBE-POSTROUTING', isMasq)),
    skipped,
  };
}

/** The prediction over the endpoints used, every other endpoint with a share of 0. */
function splitOver(mode: Lab['mode'], endpoints: EndpointInfo[], used: EndpointInfo[], requests: number, localOnly: boolean): SplitPrediction {
  const zero = (index: number): EndpointShare => ({ index, probability: 0, expected: 0, low: 0, high: 0 });
  if (used.length === 0) {
    return {
      mode, endpoints: endpoints.length, requests, shares: endpoints.map((_, i) => zero(i)),
      basis: 'externalTrafficPolicy Local on a node without local endpoints: no endpoint is used, the node drops new connections',
    };
  }
  const over = predictSplit(mode, used.length, requests);
  if (used.length === endpoints.length) return over;
  let k = 0;
  return {
    ...over,
    endpoints: endpoints.length,
    basis: `${over.basis}${localOnly ? '; externalTrafficPolicy Local: only the endpoints on the node called, the others 0' : ''}`,
    shares: endpoints.map((e, i) => (used.includes(e) ? { ...over.shares[k++], index: i } : zero(i))),
  };
}

/**
 * What checked options point at: the client, the Service port as the node that picks the backend
 * resolves it (which endpoints are local depends on that node: the one called, for a node port),
 * with all the Service ports as that node sees them, and the address the requests go to.
 */
export async function resolveTarget(lab: Lab, opts: CheckedTrafficOptions): Promise<{ nodes: LabNode[]; client: Client; ports: ServicePortInfo[]; sp: ServicePortInfo; target: Target }> {
  const { namespace, service: name } = opts;
  const nodes = await lab.nodes();
  const client = await clientOf(lab, nodes, opts.from);
  const services = await lab.services();
  const svc = services.find((s) => s.namespace === namespace && s.name === name);
  if (!svc) throw new Error(`lab ${lab.name} has no Service ${namespace}/${name}`);
  const decider = typeof opts.to === 'object' ? opts.to.node : client.node;
  const ports = resolveServicePorts({ services, endpointSlices: await lab.endpointSlices() }, { nodeName: decider });
  const sp = ports.find((p) => p.namespace === namespace && p.name === name && (opts.portName === undefined || p.portName === opts.portName));
  if (!sp) throw new Error(`lab ${lab.name} has no Service ${namespace}/${name}${opts.portName ? ` with port ${opts.portName}` : ''}`);
  return { nodes, client, ports, sp, target: targetOf(lab, nodes, client, sp, svc.loadBalancerProxyIPs ?? [], opts.to) };
}

/** Where the requests go, and which node's kernel picks the backend for them. */
function targetOf(lab: Lab, nodes: LabNode[], client: Client, sp: ServicePortInfo, proxyIPs: string[], to: TrafficDestination): Target {
  const svc = `Service ${sp.namespace}/${sp.name}`;
  if (to === 'clusterIP') {
    if (sp.clusterIP === '' || sp.clusterIP === 'None') throw new Error(`${svc} has no ClusterIP to call`);
    return { via: 'clusterIP', ip: sp.clusterIP, port: sp.port, node: client.node, counted: [client.node] };
  }
  if (to === 'loadBalancer') {
    if (sp.type !== 'LoadBalancer') throw new Error(`${svc} is of type ${sp.type}: it has no load balancer to call`);
    if (sp.loadBalancerIPs[0]) return { via: 'loadBalancer', ip: sp.loadBalancerIPs[0], port: sp.port, node: client.node, counted: [client.node] };
    if (proxyIPs[0]) return { via: 'loadBalancer', ip: proxyIPs[0], port: sp.port, node: null, counted: nodes.map((n) => n.name) };
    throw new Error(`${svc}: its ingress IP is still <pending>: no load-balancer controller runs for lab ${lab.name}`);
  }
  const node = nodes.find((n) => n.name === to.node);
  if (!node) throw new OptionError(`measureTraffic: to.node: lab ${lab.name} has no node ${received(to.node)}`);
  if (sp.nodePort === null) throw new Error(`${svc} is of type ${sp.type}: it has no node port to call on ${node.name}`);
  return { via: 'nodePort', ip: node.ip, port: sp.nodePort, node: node.name, counted: [node.name] };
}

/** Where requests start, and the node whose kernel picks the backend for them. */
async function clientOf(lab: Lab, nodes: LabNode[], from: TrafficOptions['from']): Promise<Client> {
  if (from && 'node' in from) {
    const node = nodes.find((n) => n.name === from.node);
    if (!node) throw new OptionError(`measureTraffic: from.node: lab ${lab.name} has no node ${received(from.node)}`);
    return { name: node.name, node: node.name, from: { node: node.name } };
  }
  const pods = await lab.pods();
  const pod = from ? pods.find((p) => p.name === from.pod) : pods.find((p) => p.labels.app === 'curl' && p.ready);
  if (!pod) {
    throw new OptionError(from ? `measureTraffic: from.pod: lab ${lab.name} has no pod ${received(from.pod)}` : `lab ${lab.name} has no ready client pod (app=curl): apply labs/manifests/curl.yaml first`);
  }
  return { name: pod.name, node: pod.node, from: { pod: pod.name } };
}
