/**
 * The packet's path as the kernel saw it, beside the predicted one: on the node that picks the
 * backend, a tracing rule of the kit's own (trace-rules.ts) marks the chosen client's new
 * connections to the chosen Service, a monitor (the kit's reader of the kernel's trace events,
 * nftrace-reader.ts; or `nft monitor trace`; or `xtables-monitor --trace` where the node has
 * neither) reports every rule each packet meets, N connections are sent, and the
 * walks are counted against lib/trace's outcomes for the same packet through the same rules.
 * Works through Lab.exec, so on netns (`ip netns exec`) and kind (`docker exec`) alike; the rules
 * are removed on the way out whatever happens, and `gc` removes those of a trace that was killed.
 * In IPVS mode the walks stop where IPVS takes the packet, and the split over the real servers is
 * read from IPVS's per-server connection counters (lib/trace/live-ipvs.ts).
 */
import { CommandError, MissingToolError, type ExecResult, type ProcessRef } from '../exec/index.ts';
import type { Lab, LabNode, LoadResult } from '../lab/types.ts';
import { parseIpsetAuto, parseIptablesSave, parseIpvsAuto, parseIpvsadm, parseNftRuleset } from '../parse/index.ts';
import type { IpvsState } from '../parse/ipvs-types.ts';
import { generateIpvs } from '../proxy/ipvs.ts';
import type { IptablesSave } from '../parse/iptables-types.ts';
import type { NftRuleset } from '../parse/nft-types.ts';
import { TraceEventReader, nameRulesByHandle, type TraceEvent } from '../parse/trace-events.ts';
import { provenance, type Provenance } from '../provenance/index.ts';
import { traceIptables } from '../trace/iptables.ts';
import { IPTABLES_BUILTIN, buildWalks, compareWalks, connectionWalks, type CompareOptions, type LiveComparison } from '../trace/live.ts';
import { iptablesPartOf, ipvsConnDeltas, pastIpvs, splitByIpvsCounters, type IpvsServerDelta } from '../trace/live-ipvs.ts';
import { traceNftables } from '../trace/nftables.ts';
import type { Hook, Packet, TraceResult } from '../trace/types.ts';
import { checkTrafficOptions, resolveTarget, type TrafficDestination } from '../traffic/index.ts';
import { newNetlinkListener, untilListening } from './conntrack-watch.ts';
import type { NodeExec } from './capture.ts';
import { NFTRACE_READER_ARGV, NFTRACE_READER_LABEL, NFTRACE_READER_OVERRUN, NFTRACE_READER_PROGRAM } from './nftrace-reader.ts';
import { TRACE_TABLE_PREFIX, gcTraceMonitors, gcTraceRules, installTraceRules, removeTraceRules, traceMonitorEnv, type TraceGcDecision, type TraceRules } from './trace-rules.ts';

export interface LiveTraceOptions {
  namespace?: string;
  service?: string;
  /** The Service port's name, when it has several. */
  portName?: string;
  /** Where the connections start: the client pod (default), another pod, or a node. */
  from?: { pod: string } | { node: string };
  /** Where they go: the ClusterIP (default), a node port on a node, a load balancer's IP. */
  to?: TrafficDestination;
  /** New connections to send (each one request). */
  requests: number;
  concurrency?: number;
  /** Per connection; a dropped one waits this long (default 5000 ms). */
  timeoutMs?: number;
  /**
   * Which monitor reads the events. Default: the kit's netlink reader where the node has
   * /usr/bin/python3 and nft (it keeps pace with the connections), else nft monitor trace, else
   * xtables-monitor (iptables mode).
   */
  monitor?: LiveTraceMonitor;
  /** Aborting stops the trace; its rules are removed before this throws. */
  signal?: AbortSignal;
  onProgress?: (step: string) => void;
  /** Called once the tracing rules are in place (tests kill the process here). */
  onRulesInstalled?: (rules: TraceRules) => void;
}

/** netlink: the kit's reader (nftrace-reader.ts); nft: `nft -a monitor trace`; xtables: `xtables-monitor --trace`. */
export type LiveTraceMonitor = 'netlink' | 'nft' | 'xtables';

/** The trace cannot run here: the reason, in words, with what to do where there is something. */
export class LiveTraceUnavailable extends Error {
  override readonly name = 'LiveTraceUnavailable';
}

export interface LiveTraceReport extends LiveComparison {
  /** The observed walks: captured on `node` by the kernel's tracer. */
  provenance: Provenance;
  /**
   * The tracer's outcomes for the same packet through the rules the node held just before (IPVS
   * mode where the split was not read: only its iptables part, which is all that was observed).
   */
  prediction: { provenance: Provenance; result: TraceResult };
  service: { namespace: string; name: string; ip: string; port: number; via: 'clusterIP' | 'nodePort' | 'loadBalancer' };
  client: string;
  /** The node whose kernel was traced: the one that picks the backend. */
  node: string;
  hook: Hook;
  requests: number;
  answered: number;
  /** The load generator's own time for the connections, while traced. */
  connectionsMs: number;
  /** Later SYNs of a connection already counted (the client retried): traced, not counted. */
  retransmissions: number;
  /** What ran on the node, for the audience. */
  commands: { rules: string; monitor: string };
  /** Walks cut short (their end never printed before the monitor stopped), not counted. */
  incomplete: number;
  notes: string[];
  /**
   * IPVS mode (null otherwise): the kernel traced the iptables part (paths, unexplained; each
   * path's `outcome` and `predicted` refer to ipvs.part), the split comes from the IPVS counters
   * (counts and chiSquare over prediction.result's outcomes; chiSquare null where not read).
   */
  ipvs: LiveIpvsSplit | null;
}

/** IPVS mode: where the virtual servers of the prediction come from. */
interface IpvsPrediction {
  /** Whether the node's kernel has IP_VS (then they are read from it, and so is the split). */
  kernel: boolean;
  /** Whether the node has ipvsadm: the per-server counters are its (else /proc/net/ip_vs, no split). */
  ipvsadm: boolean;
  /** kube-proxy's virtual servers for the node, as generated: the prediction where the kernel has none. */
  generated: IpvsState;
}

/** IPVS mode: the scheduler's split, read from the virtual server's counters, or why it was not. */
export interface LiveIpvsSplit {
  /** The virtual server the connections went to: `TCP 10.96.0.10:80`. */
  virtualServer: string;
  /** The iptables part of the prediction (cut where IPVS takes over): what the walks are compared with. */
  part: TraceResult;
  /** Per part outcome, the walks it explains. */
  partCounts: number[];
  /** Per real server the prediction names: its predicted share and the connections IPVS gave it (null: not read). */
  servers: { server: string; predicted: number; observed: number | null }[];
  /** The counters' growth beyond the walks traced (other connections to the virtual server). */
  extra: number | null;
  /** Where the observed split comes from; null where it was not read. */
  provenance: Provenance | null;
  /** Why the split was not read (no IP_VS in the kernel, counters that did not move); null where it was. */
  unavailable: string | null;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether a tool runs on the node (netns: MissingToolError; docker exec: exit 126/127). */
async function nodeHas(exec: NodeExec, tool: string, arg = '--version'): Promise<ExecResult | null> {
  try {
    const r = await exec([tool, arg], { allowFailure: true, timeoutMs: 10_000 });
    return r.exitCode === 126 || r.exitCode === 127 ? null : r;
  } catch (e) {
    if (e instanceof MissingToolError) return null;
    throw e;
  }
}

/**
 * The monitor to read the node's trace events with, or LiveTraceUnavailable with the reason: the
 * tools are looked for on the node itself (netns: `ip netns exec`; kind: `docker exec` into the
 * node container, whose image may lack them).
 */
export async function probeLiveTrace(lab: Pick<Lab, 'mode' | 'capabilities' | 'iptablesBackend'>, exec: NodeExec, node: string, wanted?: LiveTraceOptions['monitor']): Promise<LiveTraceMonitor> {
  const nft = await nodeHas(exec, 'nft');
  // The netlink reader names rules by handle from nft's listing, so it needs nft as well.
  const netlink = async () => {
    if (!nft) return false;
    const python = await nodeHas(exec, NFTRACE_READER_ARGV[0], '--version');
    // The reader needs Python 3.7 (time.clock_gettime_ns).
    const minor = /^Python 3\.(\d+)/.exec(`${python?.stdout ?? ''}${python?.stderr ?? ''}`.trim())?.[1];
    if (python && python.exitCode === 0 && minor !== undefined && Number(minor) >= 7) return true;
    if (wanted === 'netlink') throw new LiveTraceUnavailable(`node ${node} has no ${NFTRACE_READER_ARGV[0]} of Python 3.7 or later, which runs the kit's trace reader (apt-get install -y python3-minimal on the node; --monitor nft reads the same events)`);
    return false;
  };
  if (lab.mode === 'nftables') {
    if (!nft) throw new LiveTraceUnavailable(`node ${node} has no nft, which the trace needs to add its table and to read the events (apt-get install -y nftables in the node image)`);
    if (wanted === 'xtables') throw new LiveTraceUnavailable('xtables-monitor prints iptables rules; an nftables lab is traced with nft monitor trace');
    return wanted !== 'nft' && (await netlink()) ? 'netlink' : 'nft';
  }
  // A netns lab says which backend holds its rules; `iptables` on the node may be the other one.
  if (lab.iptablesBackend === 'legacy') {
    throw new LiveTraceUnavailable(`the lab programs its nodes with iptables-legacy: the TRACE target there logs to the kernel log (nf_log), which the kit does not read; a lab on iptables-nft (the default) is traced through nf_tables`);
  }
  const ipt = await nodeHas(exec, 'iptables');
  if (!ipt) throw new LiveTraceUnavailable(`node ${node} has no iptables`);
  if (/legacy/.test(ipt.stdout + ipt.stderr)) {
    throw new LiveTraceUnavailable(`node ${node} runs iptables-legacy: its TRACE target logs to the kernel log (nf_log), which the kit does not read; a node on iptables-nft is traced through nf_tables`);
  }
  if (wanted === 'netlink' && !nft) throw new LiveTraceUnavailable(`node ${node} has no nft, whose listing names the rules the kit's trace reader reports by handle (apt-get install -y nftables on the node)`);
  if (wanted !== 'xtables' && wanted !== 'nft' && (await netlink())) return 'netlink';
  if (wanted !== 'xtables' && nft) return 'nft';
  if (await nodeHas(exec, 'xtables-monitor', '--help')) return 'xtables';
  throw new LiveTraceUnavailable(`node ${node} has neither nft nor xtables-monitor to read the trace events (kind's node image may lack both; apt-get install -y nftables on the node)`);
}

/** The command that prints the trace events (started under `timeout`, on the node). */
export function monitorCommand(monitor: LiveTraceMonitor): string[] {
  return monitor === 'netlink' ? [...NFTRACE_READER_ARGV] : monitor === 'nft' ? ['nft', '-a', 'monitor', 'trace'] : ['xtables-monitor', '--trace'];
}

/** What the prediction reads on the node, in the words the progress and the provenance use. */
function predictionSource(mode: Lab['mode'], ipvs: IpvsPrediction | null): string {
  if (mode === 'nftables') return 'nft -a list ruleset';
  if (!ipvs) return 'iptables-save';
  const servers = ipvs.kernel ? (ipvs.ipvsadm ? 'ipvsadm -Ln' : 'cat /proc/net/ip_vs') : 'the virtual servers kube-proxy would program (this kernel holds none)';
  return `iptables-save, ipset save, ${servers}`;
}

/** The prediction for the packet, from what the node holds now. */
async function predict(lab: Lab, exec: NodeExec, packet: Packet, hook: Hook, local: string[], ipvs: IpvsPrediction | null): Promise<{ result: TraceResult; dump: IptablesSave | null; ruleset: NftRuleset | null; command: string }> {
  if (lab.mode === 'nftables') {
    // With handles: the netlink reader names each rule by its handle.
    const text = (await exec(['nft', '-a', 'list', 'ruleset'], { timeoutMs: 60_000 })).stdout;
    const ruleset = parseNftRuleset(text);
    const tables = ruleset.tables.filter((t) => (t.family === 'ip' || t.family === 'inet') && !t.name.startsWith(TRACE_TABLE_PREFIX)).map((t) => `${t.family} ${t.name}`);
    return { result: traceNftables({ ruleset, packet, hook, localAddresses: local, tables }), dump: null, ruleset, command: predictionSource(lab.mode, ipvs) };
  }
  const dump = parseIptablesSave((await exec(['iptables-save'], { timeoutMs: 60_000 })).stdout);
  if (ipvs) {
    const ipsets = parseIpsetAuto((await exec(['ipset', 'save'], { timeoutMs: 60_000 })).stdout);
    const read = ipvs.ipvsadm ? ['ipvsadm', '-Ln'] : ['cat', '/proc/net/ip_vs'];
    const state = ipvs.kernel ? parseIpvsAuto((await exec(read, { timeoutMs: 60_000 })).stdout) : ipvs.generated;
    return { result: traceIptables({ dump, ipsets, ipvs: state, packet, hook, localAddresses: local }), dump, ruleset: null, command: predictionSource(lab.mode, ipvs) };
  }
  return { result: traceIptables({ dump, packet, hook, localAddresses: local }), dump, ruleset: null, command: predictionSource(lab.mode, ipvs) };
}

/**
 * iptables rules as iptables-save prints them, by nft rule handle: nft monitor names a rule of
 * iptables-nft's tables by handle, and `nft -a list table` lists the handles in the order
 * iptables-save lists the rules.
 */
async function iptablesTextByHandle(exec: NodeExec, dump: IptablesSave): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const table of dump.tables) {
    if (table.name !== 'nat' && table.name !== 'filter') continue;
    const r = await exec(['nft', '-a', 'list', 'table', 'ip', table.name], { allowFailure: true, timeoutMs: 60_000 });
    if (r.exitCode !== 0) continue;
    const listed = parseNftRuleset(r.stdout).tables[0];
    for (const chain of listed?.chains ?? []) {
      const saved = table.chains.find((c) => c.name === chain.name);
      if (!saved || saved.rules.length !== chain.rules.length) continue; // changed since: keep nft's text
      chain.rules.forEach((rule, i) => {
        if (rule.handle !== null) out.set(`${table.name} ${chain.name} ${rule.handle}`, saved.rules[i].text);
      });
    }
  }
  return out;
}

/** nft base chains: the key under which the kernel, not a listing, orders them (nat chains of a hook). */
function nftOrder(ruleset: NftRuleset): CompareOptions {
  const NAT: Record<string, number> = { prerouting: -100, output: -100, input: 100, postrouting: 100 };
  const key = new Map<string, string>();
  for (const t of ruleset.tables) {
    for (const c of t.chains) {
      if (c.hook === null) continue;
      key.set(c.name, `${c.hook}:${c.type === 'nat' ? (NAT[c.hook] ?? c.priority) : c.priority}`);
    }
  }
  return { isBase: (c) => key.has(c), orderKey: (c) => key.get(c) ?? null };
}

/**
 * Trace N new connections through the kernel of the node that picks their backend, and count each
 * packet's path against the predicted outcomes. Throws LiveTraceUnavailable, with the reason,
 * where the node or mode cannot be traced.
 */
export async function traceLive(lab: Lab, options: LiveTraceOptions): Promise<LiveTraceReport> {
  const checked = checkTrafficOptions({
    requests: options.requests,
    ...(options.namespace !== undefined ? { namespace: options.namespace } : {}),
    ...(options.service !== undefined ? { service: options.service } : {}),
    ...(options.portName !== undefined ? { portName: options.portName } : {}),
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    ...(options.from !== undefined ? { from: options.from } : {}),
    ...(options.to !== undefined ? { to: options.to } : {}),
  });
  const say = options.onProgress ?? (() => undefined);
  const { nodes, client, ports, sp, target } = await resolveTarget(lab, checked);
  if (target.node === null) throw new LiveTraceUnavailable(`${target.ip} belongs to the load balancer's proxy (ipMode Proxy): it connects to the node ports of any node, so no one node's kernel sees every connection`);
  const node = nodes.find((n) => n.name === target.node) as LabNode;
  const exec: NodeExec = (argv, opts) => lab.exec(node.name, argv, opts);
  const fromNode = 'node' in client.from;
  const hook: Hook = fromNode && client.node === node.name ? 'OUTPUT' : 'PREROUTING';
  let srcIp = fromNode ? (nodes.find((n) => n.name === client.name) as LabNode).ip : (await lab.pods()).find((p) => p.name === client.name)?.ip;
  if (!srcIp) throw new Error(`lab ${lab.name}: pod ${client.name} has no address`);
  if (hook === 'OUTPUT' && lab.mode === 'ipvs') {
    // In IPVS mode a ClusterIP is the node's own (kube-ipvs0): the node sends to it from that
    // address, not from its node IP, so the tracing rule matches the source the kernel picks.
    const route = await lab.exec(node.name, ['ip', '-j', 'route', 'get', target.ip], { allowFailure: true, timeoutMs: 10_000 });
    const prefsrc = route.exitCode === 0 ? (JSON.parse(route.stdout) as { prefsrc?: string }[])[0]?.prefsrc : undefined;
    if (prefsrc) srcIp = prefsrc;
  }
  const protocol = sp.protocol.toLowerCase() as Packet['protocol'];
  if (protocol !== 'tcp') throw new LiveTraceUnavailable(`Service port ${sp.servicePortName} is ${sp.protocol}: the live trace sends HTTP requests, so it traces TCP Services only`);
  const packet: Packet = { protocol, src: srcIp, dst: target.ip, dport: target.port };

  const monitor = await probeLiveTrace(lab, exec, node.name, options.monitor);
  const ipvsKernel = lab.mode === 'ipvs' ? (await lab.capabilities()).ipvs : false;
  let ipvs: IpvsPrediction | null = null;
  if (lab.mode === 'ipvs') {
    if (!(await nodeHas(exec, 'ipset', '--version'))) throw new LiveTraceUnavailable(`node ${node.name} has no ipset, which the prediction needs to read kube-proxy's sets (apt-get install -y ipset on the node)`);
    const ipvsadm = ipvsKernel && (await nodeHas(exec, 'ipvsadm', '--version')) !== null;
    ipvs = { kernel: ipvsKernel, ipvsadm, generated: generateIpvs(ports, { nodeName: node.name, nodeIPs: [node.ip] }).ipvs };
  }
  const virtualServer = `${sp.protocol.toUpperCase()} ${target.ip}:${target.port}`;
  // IPVS mode on a kernel without IP_VS: nothing answers (the node's stack resets the connection,
  // or it times out), so a short wait per connection is enough to trace its iptables part.
  const timeoutMs = options.timeoutMs ?? (ipvs && !ipvs.kernel ? 1000 : undefined);
  // xtables-monitor asks the kernel for each rule's text as it prints: at 10 connections at once
  // its socket overflows (No buffer space available), one at a time it keeps up.
  const concurrency = options.concurrency ?? (monitor === 'xtables' ? 1 : checked.concurrency);
  say(`predicted: ${lab.mode} rules of ${node.name} (${predictionSource(lab.mode, ipvs)}), a packet ${srcIp} → ${target.ip}:${target.port} from ${hook}`);
  const predicted = await predict(lab, exec, packet, hook, [node.ip], ipvs);
  const kind = lab.mode === 'nftables' ? 'nftables' : 'iptables';
  // Read while the connections run: nft monitor and the netlink reader name iptables-nft's rules by handle.
  const handles = kind === 'iptables' && monitor !== 'xtables' ? iptablesTextByHandle(exec, predicted.dump as IptablesSave) : null;
  handles?.catch(() => undefined);
  const match = { protocol, src: srcIp, dst: target.ip, dport: target.port, hook };
  options.signal?.throwIfAborted();

  const monitorArgv = monitorCommand(monitor);
  // Bounded even where stopping the client does not stop it (docker exec leaves it running).
  const maxSeconds = Math.ceil(60 + (checked.requests * ((timeoutMs ?? 5000) / 1000 + 0.05)) / concurrency);
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let rules: TraceRules | null = null;
  let reader: TraceEventReader | null = null;
  let readError: unknown = null;
  let chars = 0;
  let lastData = performance.now();
  let load: LoadResult;
  let monitorRun: Promise<ExecResult> | null = null;
  let startMark = '';
  let statsBefore: IpvsState | null = null;
  let statsAfter: IpvsState | null = null;
  const readStats = async () => parseIpvsadm((await exec(['ipvsadm', '-Ln', '--stats', '--exact'], { timeoutMs: 60_000 })).stdout);
  try {
    // nft and xtables-monitor print nothing until an event: they listen once their netlink socket
    // appears. The kit's reader says when it listens.
    const newListener = monitor === 'netlink' ? null : await newNetlinkListener((argv) => exec(argv, { timeoutMs: 10_000 }));
    rules = await installTraceRules(exec, kind, match);
    options.onRulesInstalled?.(rules);
    // One line per traced packet: where it meets the kit's rule.
    const ourChain = rules.kind === 'nftables' ? { table: rules.table, chain: `trace-${hook.toLowerCase()}` } : { table: 'raw', chain: rules.chain };
    startMark = monitor === 'netlink' ? `\tip\t${ourChain.table}\t${ourChain.chain}\t` : monitor === 'nft' ? ` ip ${ourChain.table} ${ourChain.chain} packet: ` : ` raw:${ourChain.chain}:rule:`;
    say(`tracing on ${node.name}: ${rules.kind === 'iptables' ? `raw chain ${rules.chain} (-j TRACE)` : `table ip ${rules.table} (meta nftrace set 1)`}, read by ${monitor === 'netlink' ? `the kit's netlink reader (${monitorArgv.join(' ')})` : monitorArgv.join(' ')}`);
    // Events are parsed as the monitor prints them, so little is left to do once it stops.
    const events = new TraceEventReader(monitor, startMark);
    reader = events;
    monitorRun = exec(['timeout', String(maxSeconds), ...monitorArgv], {
      allowFailure: true, timeoutMs: (maxSeconds + 30) * 1000, signal: stop.signal, env: traceMonitorEnv(rules.owner as ProcessRef),
      ...(monitor === 'netlink' ? { input: NFTRACE_READER_PROGRAM } : {}),
      onStdout: (chunk) => {
        chars += chunk.length;
        lastData = performance.now();
        try {
          events.push(chunk);
        } catch (e) {
          readError ??= e; // thrown after the monitor stops, the rules removed
        }
      },
    });
    monitorRun.catch(() => undefined);
    let ended = false;
    monitorRun.finally(() => { ended = true; }).catch(() => undefined);
    await untilListening({
      run: monitorRun, what: `${monitorArgv.join(' ')} on ${node.name}`, readyMs: 5000, pollMs: newListener ? 20 : 2, signal: options.signal,
      listening: newListener ?? (async () => events.clock.listeningAt !== null),
    });
    // The reader's clock is this process's (CLOCK_MONOTONIC) unless the node is in another time
    // namespace: then its 'drained' lines cannot be compared with ours.
    const readerAt = events.clock.listeningAt;
    const sharedClock = readerAt !== null && readerAt <= process.hrtime.bigint() && process.hrtime.bigint() - readerAt < 60_000_000_000n;
    if (ipvs?.ipvsadm) statsBefore = await readStats();
    say(`${checked.requests} new connections from ${client.name} to ${target.ip}:${target.port}`);
    load = await lab.load({
      url: `http://${target.ip}:${target.port}${checked.path}`, requests: checked.requests, concurrency,
      from: client.from, ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(ipvs && !ipvs.kernel ? { unanswered: true } : {}),
    });
    if (ipvs?.ipvsadm) statsAfter = await readStats();
    options.signal?.throwIfAborted();
    say(`${load.ok} of ${load.total} answered in ${(load.durationMs / 1000).toFixed(2)} s; ${reader?.marked ?? 0} packets traced so far`);
    // Every connection's packets have been through the rules, so the kernel has sent all their
    // events: wait until the monitor has printed them. The kit's reader says when it has read
    // everything sent before a moment; of the others only silence tells.
    const loadEnd = process.hrtime.bigint();
    const drainBy = performance.now() + 5000 + checked.requests * 5;
    const drained = () => (sharedClock
      ? (events.clock.drainedAt ?? 0n) >= loadEnd
      : (reader?.marked ?? 0) >= load.total && performance.now() - lastData > 150);
    while (performance.now() < drainBy && !drained()) {
      if (ended) break;
      options.signal?.throwIfAborted();
      await sleep(sharedClock ? 2 : 25);
    }
  } finally {
    stop.abort();
    // The rules come out while the monitor stops; both are awaited before anything is thrown.
    const [ran, removed] = await Promise.allSettled([
      monitorRun ? monitorRun.catch((e: unknown) => e as Error) : Promise.resolve(null),
      rules ? removeTraceRules(exec, rules) : Promise.resolve(true),
    ]);
    options.signal?.removeEventListener('abort', onAbort);
    if (removed.status === 'rejected') throw removed.reason;
    if (ran.status === 'fulfilled' && ran.value instanceof CommandError && ran.value.reason !== 'signal') throw ran.value;
  }
  options.signal?.throwIfAborted();
  const ran = await monitorRun;
  if (monitor === 'netlink' && ran.exitCode !== 0 && ran.exitCode !== -1 && ran.exitCode !== 124 && ran.exitCode !== NFTRACE_READER_OVERRUN) {
    throw new Error(`the kit's trace reader (${monitorArgv.join(' ')}) on ${node.name} failed (exit ${ran.exitCode}): ${ran.stderr.trim() || '(no stderr)'}`);
  }
  if (/No buffer space available/.test(ran.stderr)) {
    throw new Error(`${monitorArgv.join(' ')} on ${node.name} fell behind and the kernel dropped events (No buffer space available): trace fewer connections, or fewer at once (--concurrency)`);
  }

  if (readError !== null) throw readError;
  const events: TraceEvent[] = (reader as TraceEventReader | null)?.end() ?? [];
  say(`monitor stopped: ${(reader as TraceEventReader | null)?.marked ?? 0} packets traced, ${chars} characters of events`);
  const installed = rules as TraceRules;
  let compare: CompareOptions;
  let ours: (e: TraceEvent) => boolean;
  let ignore: (e: TraceEvent) => boolean;
  if (installed.kind === 'nftables') {
    if (monitor === 'netlink') {
      const texts = new Map<string, string>();
      for (const t of (predicted.ruleset as NftRuleset).tables) {
        for (const c of t.chains) for (const r of c.rules) if (r.handle !== null) texts.set(`${t.family} ${t.name} ${c.name} ${r.handle}`, r.text);
      }
      nameRulesByHandle(events, (table, chain, handle) => texts.get(`${table} ${chain} ${handle}`));
    }
    compare = nftOrder(predicted.ruleset as NftRuleset);
    const ourTable = `ip ${installed.table}`;
    ours = (e) => e.table === ourTable;
    // Any trace table (another trace's too) is not the rules under test.
    const traceTables = `ip ${TRACE_TABLE_PREFIX}`;
    ignore = (e) => e.table.startsWith(traceTables);
  } else {
    if (monitor !== 'xtables') {
      // iptables-nft's tables as iptables names them, each rule in iptables-save's words.
      const byHandle = await (handles as Promise<Map<string, string>>);
      for (const e of events) if (e.table.startsWith('ip ')) e.table = e.table.slice(3);
      nameRulesByHandle(events, (table, chain, handle) => byHandle.get(`${table} ${chain} ${handle}`));
    }
    compare = { isBase: (c) => IPTABLES_BUILTIN.test(c) };
    ours = (e) => e.table === 'raw' && e.chain === installed.chain;
    // The tracer follows nat and filter; raw (where the kit's rule is) and mangle are not compared.
    ignore = (e) => e.table !== 'nat' && e.table !== 'filter';
  }
  const walks = buildWalks(events, { startsWalk: (e) => e.kind === 'packet' && ours(e), ignore, ...(ipvs ? { stopAt: pastIpvs(hook) } : {}) });
  const natBase = new Set((predicted.ruleset?.tables ?? []).flatMap((t) => t.chains.filter((c) => c.type === 'nat').map((c) => c.name)));
  const { firsts, incomplete, retransmissions } = connectionWalks(walks, (w) => w.path.some((c, i) => (installed.kind === 'iptables' ? w.tables[i] === 'nat' : w.base[i] && natBase.has(c))));
  const cut = ipvs ? iptablesPartOf(predicted.result) : null;
  let comparison = compareWalks(firsts, cut ? cut.part : predicted.result, compare);
  const notes: string[] = [...(predicted.result.warnings ?? [])];
  let split: LiveIpvsSplit | null = null;
  if (ipvs && cut) {
    // The walks end where IPVS takes the packet; the part's counts go to the real servers by the
    // connections IPVS's counters show it handed each.
    const partCounts = comparison.counts;
    const predictedServers = predicted.result.outcomes.filter((o) => o.ipvs && o.dnat !== null).map((o) => ({ server: o.dnat as string, predicted: o.probability }));
    let deltas: IpvsServerDelta[] | null = null;
    let unavailable: string | null = null;
    if (!ipvs.kernel) {
      unavailable = 'this kernel has no IP_VS (/proc/net/ip_vs is absent): no virtual server took the connections, so there is no split to read; the real servers and shares shown are predicted from the virtual servers kube-proxy would program';
    } else if (!ipvs.ipvsadm) {
      unavailable = `node ${node.name} has no ipvsadm, whose --stats listing holds the per-server connection counters (/proc/net/ip_vs has none): apt-get install -y ipvsadm on the node`;
    } else {
      deltas = ipvsConnDeltas(statsBefore as IpvsState, statsAfter as IpvsState, { protocol: sp.protocol, address: target.ip, port: target.port });
      if (!deltas) unavailable = `ipvsadm -Ln --stats on ${node.name} lists no virtual server ${virtualServer}`;
      else if (deltas.every((d) => d.conns === 0)) unavailable = `the counters of ${virtualServer} did not move: IPVS took none of the connections`;
    }
    let observed: Map<string, number> | null = null;
    let extra: number | null = null;
    if (unavailable === null && deltas) {
      const shared = splitByIpvsCounters(predicted.result, cut, partCounts, deltas);
      comparison = { ...comparison, counts: shared.counts, chiSquare: shared.chiSquare };
      observed = new Map(deltas.map((d) => [d.server, d.conns]));
      extra = shared.extra;
      if (shared.extra > 0) notes.push(`the counters of ${virtualServer} grew by ${shared.extra} connections more than were traced (other clients, or retries)`);
    } else {
      comparison = { ...comparison, chiSquare: null };
    }
    split = {
      virtualServer, part: cut.part, partCounts,
      servers: predictedServers.map((s) => ({ ...s, observed: observed ? (observed.get(s.server) ?? 0) : null })),
      extra,
      provenance: observed ? provenance({ source: 'measured', backend: lab.backend, mode: lab.mode, node: node.name, lab: lab.name, command: 'ipvsadm -Ln --stats --exact, before and after the connections' }) : null,
      unavailable,
    };
    notes.push(`IPVS mode: the kernel traced the iptables part (up to where IPVS takes the packet, at ${hook === 'PREROUTING' ? 'LOCAL_IN after filter INPUT' : 'LOCAL_OUT after nat OUTPUT'}); ${observed ? 'the split over the real servers is read from the IPVS counters' : 'the split over the real servers was not read'}`);
  }
  if (installed.kind === 'iptables') notes.push('the raw table (the kit\'s TRACE rule) and mangle are not compared: the tracer follows nat and filter');
  if (firsts.length < load.total) notes.push(`${load.total - firsts.length} of the ${load.total} connections left no walk the monitor had printed when it stopped; the counts cover ${firsts.length}`);
  if (incomplete > 0) notes.push(`${incomplete} traced packets printed nothing past the kit's rule before the monitor stopped; not counted`);
  const mark = installed.kind === 'iptables' ? `-m comment --comment ${installed.comment}` : '';
  const ruleDesc = installed.kind === 'iptables'
    ? `iptables -t raw -N ${installed.chain}; iptables -t raw -A ${installed.chain} -s ${srcIp} -d ${target.ip} -p tcp --dport ${target.port} --syn ${mark} -j TRACE; iptables -t raw -I ${hook} ${mark} -j ${installed.chain}`
    : `nft add table ip ${installed.table}; nft 'add chain ip ${installed.table} trace-${hook.toLowerCase()} { type filter hook ${hook.toLowerCase()} priority -300; }'; nft add rule ip ${installed.table} trace-${hook.toLowerCase()} ip saddr ${srcIp} ip daddr ${target.ip} tcp dport ${target.port} tcp flags syn / fin,syn,rst,ack meta nftrace set 1`;
  const svcFlag = `${checked.namespace}/${checked.service}${checked.portName ? `:${checked.portName}` : ''}`;
  const fromFlag = checked.from ? ` --from ${client.name}` : '';
  const toFlag = typeof checked.to === 'object' ? ` --to ${checked.to.node}` : checked.to === 'loadBalancer' ? ' --to loadbalancer' : '';
  return {
    ...comparison,
    provenance: provenance({
      source: 'captured', backend: lab.backend, mode: lab.mode, node: node.name, lab: lab.name,
      command: `kube-netlab trace --live --name ${lab.name} --service ${svcFlag}${fromFlag}${toFlag} --requests ${checked.requests}`,
    }),
    prediction: { provenance: provenance({ source: 'predicted', backend: lab.backend, mode: lab.mode, node: node.name, lab: lab.name, command: predicted.command }), result: split && split.provenance === null ? split.part : predicted.result },
    service: { namespace: checked.namespace, name: checked.service, ip: target.ip, port: target.port, via: target.via },
    client: client.name,
    node: node.name,
    hook,
    requests: checked.requests,
    answered: load.ok,
    connectionsMs: load.durationMs,
    retransmissions,
    commands: { rules: ruleDesc, monitor: monitor === 'netlink' ? NFTRACE_READER_LABEL : monitorArgv.join(' ') },
    incomplete,
    notes,
    ipvs: split,
  };
}

export interface LiveTraceGcReport {
  /** Per lab node: the tracing rules removed or kept, and why. */
  rules: (TraceGcDecision & { lab: string })[];
  /** Monitors of dead traces ended (pids on this machine). */
  monitors: number[];
  /** Labs whose nodes could not be read, with the reason. */
  skipped: { lab: string; why: string }[];
}

/**
 * What killed live traces left: their rules on every node of the labs given (removed only when
 * they carry the mark of an owner that has died), and their monitors.
 */
export async function gcLiveTraces(labs: readonly Lab[]): Promise<LiveTraceGcReport> {
  const report: LiveTraceGcReport = { rules: [], monitors: await gcTraceMonitors(), skipped: [] };
  for (const lab of labs) {
    try {
      for (const node of await lab.nodes()) {
        const decisions = await gcTraceRules((argv, opts) => lab.exec(node.name, argv, opts), `${lab.name}/${node.name}`);
        report.rules.push(...decisions.map((d) => ({ ...d, lab: lab.name })));
      }
    } catch (e) {
      report.skipped.push({ lab: lab.name, why: (e as Error).message });
    }
  }
  return report;
}

/**
 * traceLive, or null where the node cannot be traced, with the reason given to `say` (a notebook
 * goes on without the section; a kind node without nft or xtables-monitor, an iptables-legacy node).
 */
export async function traceLiveOrSkip(lab: Lab, options: LiveTraceOptions, say: (line: string) => void = console.log): Promise<LiveTraceReport | null> {
  try {
    return await traceLive(lab, options);
  } catch (e) {
    if (!(e instanceof LiveTraceUnavailable)) throw e;
    say(`NOT TRACED: ${e.message}`);
    return null;
  }
}
