import { join } from 'node:path';
import { captureNode, saveCapture } from '../../lib/capture/index.ts';
import { runner, stillRuns, type Runner } from '../../lib/exec/index.ts';
import { CreateInterrupted, createLab, gcLabs, openLab, removeLab, type BackendChoice } from '../../lib/lab/create.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { gcLiveTraces } from '../../lib/capture/live-trace.ts';
import { kindGetClusters, parseKindClusters } from '../../lib/lab/kind/commands.ts';
import { kindClustersUnavailable } from '../../lib/lab/kind/index.ts';
import { creatorLiveness, listKindRecords } from '../../lib/lab/kind/state.ts';
import { inspectNetnsLabs } from '../../lib/lab/netns/index.ts';
import type { Capabilities, Lab, LabNode } from '../../lib/lab/types.ts';
import { checkLabName } from '../../lib/lab/types.ts';
import type { ProxyMode } from '../../lib/proxy/modes.ts';
import { isProxyMode } from '../../lib/proxy/modes.ts';
import { isIptablesBackend, type IptablesBackend } from '../../lib/proxy/iptables-backend.ts';
import { measureTraffic } from '../../lib/traffic/index.ts';
import { UsageError, intOption, printJson, stringOption, type CommandSpec, type Io, type ParsedArgs } from '../cli.ts';

/** Wait for a process to end: `PID`, or `PID:START` (its start time, so a reused pid is told apart). */
async function waitUntilGone(spec: string): Promise<void> {
  const m = /^(\d{1,10})(?::(\d{0,20}))?$/.exec(spec);
  if (!m) throw new UsageError(`--when-gone must be PID or PID:START, got ${JSON.stringify(spec)}`);
  const ref = { pid: Number(m[1]), start: m[2] ? m[2] : null };
  while (stillRuns(ref)) await new Promise((resolve) => setTimeout(resolve, 500));
}

/** Signals that stop a command from outside: Ctrl-C, `kill`, a closed terminal. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function backendOption(args: ParsedArgs): BackendChoice {
  const b = stringOption(args, 'backend') ?? 'auto';
  if (b !== 'auto' && b !== 'netns' && b !== 'kind') throw new UsageError(`--backend must be netns, kind or auto, got ${JSON.stringify(b)}`);
  return b;
}

/** Checked first with the lab-name rule, so a bad --name is a usage error in every command. */
function nameOption(args: ParsedArgs): string {
  try {
    return checkLabName(stringOption(args, 'name') ?? 'netlab');
  } catch (e) {
    throw new UsageError(`--name: ${(e as Error).message}`);
  }
}

/** Progress lines for people go to stderr, so --json output stays clean. */
function progress(io: Io, args: ParsedArgs): (step: string) => void {
  const t0 = performance.now();
  return (step) => io.err(`[${((performance.now() - t0) / 1000).toFixed(2)}s] ${step}`);
}

export interface UpOptions {
  backend: BackendChoice;
  mode: ProxyMode;
  /** netns: program the nodes with iptables-legacy or iptables-nft. */
  iptablesBackend?: IptablesBackend;
  workers: number;
  replicas: number;
  name: string;
  runner: Runner;
  onProgress: (step: string) => void;
  /** Ctrl-C: stops whatever runs and removes the lab, however far it got. */
  signal?: AbortSignal;
}

/** An `up` stopped by its signal; the lab is gone (or `gc` will remove what is left). */
export class UpInterrupted extends Error {
  override readonly name = 'UpInterrupted';
}

export interface UpResult {
  name: string;
  backend: Lab['backend'];
  mode: ProxyMode;
  seconds: number;
  nodes: LabNode[];
  services: { name: string; clusterIP: string; ports: string[] }[];
  pods: { name: string; ip: string; node: string }[];
  capabilities: Capabilities;
}

/**
 * What `up` does: create the lab with httpbin and the curl client deployed as part of it, then
 * read the result back. When `signal` aborts, whatever runs is stopped and the lab removed, and
 * this throws UpInterrupted.
 */
export async function upLab(o: UpOptions): Promise<{ lab: Lab; result: UpResult }> {
  const t0 = performance.now();
  const httpbin = (await loadManifest('httpbin')).map((x) => (x.kind === 'Deployment' ? { ...x, spec: { ...(x.spec as object), replicas: o.replicas } } : x));
  let lab: Lab;
  try {
    lab = await createLab({
      backend: o.backend, mode: o.mode, workers: o.workers, name: o.name, runner: o.runner,
      ...(o.iptablesBackend !== undefined ? { iptablesBackend: o.iptablesBackend } : {}),
      onProgress: o.onProgress, signal: o.signal, workloads: [...httpbin, ...(await loadManifest('curl'))],
    });
  } catch (e) {
    if (e instanceof CreateInterrupted || o.signal?.aborted) throw new UpInterrupted((e as Error).message);
    throw e;
  }
  const pods = await lab.pods();
  const services = await lab.services();
  return {
    lab,
    result: {
      name: lab.name, backend: lab.backend, mode: lab.mode, seconds: +((performance.now() - t0) / 1000).toFixed(2),
      nodes: await lab.nodes(),
      services: services.map((x) => ({ name: `${x.namespace}/${x.name}`, clusterIP: x.clusterIP, ports: x.ports.map((p) => `${p.port}/${p.protocol}→${p.targetPort}`) })),
      pods: pods.map((p) => ({ name: `${p.namespace}/${p.name}`, ip: p.ip, node: p.node })),
      capabilities: await lab.capabilities(),
    },
  };
}

export const up: CommandSpec = {
  summary: 'bring up a lab: nodes, kube-proxy in the chosen mode, httpbin and the curl client',
  usage: 'up [--backend netns|kind|auto] [--mode iptables|ipvs|nftables] [--iptables legacy|nft] [--workers N] [--replicas R] [--name NAME] [--echo] [--json]',
  options: {
    backend: { type: 'string' }, mode: { type: 'string' }, iptables: { type: 'string' }, workers: { type: 'string' }, replicas: { type: 'string' },
    name: { type: 'string' }, echo: { type: 'boolean' },
  },
  async run(args, io) {
    const mode = stringOption(args, 'mode') ?? 'iptables';
    if (!isProxyMode(mode)) throw new UsageError(`--mode must be iptables, ipvs or nftables, got ${JSON.stringify(mode)}`);
    const iptablesBackend = stringOption(args, 'iptables');
    if (iptablesBackend !== undefined && !isIptablesBackend(iptablesBackend)) {
      throw new UsageError(`--iptables must be legacy or nft (the nodes are programmed with iptables-legacy or iptables-nft), got ${JSON.stringify(iptablesBackend)}`);
    }
    if (iptablesBackend !== undefined && backendOption(args) === 'kind') {
      throw new UsageError('--iptables applies to the netns backend: kind\'s nodes pick their own backend (kube-netlab capture says which)');
    }
    const say = progress(io, args);
    const r = args.values.echo ? runner.withEcho((c) => io.err(`  $ ${c}`)) : runner;
    // Ctrl-C, SIGTERM or a closed terminal (SIGHUP) removes the lab however far `up` got; a second
    // signal exits at once, and `gc` removes what is left.
    const ac = new AbortController();
    const onSignal = (sig: NodeJS.Signals) => {
      if (ac.signal.aborted) process.exit(130);
      io.err(`${sig}: stopping, and removing what was made (again to quit at once)`);
      ac.abort();
    };
    for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
    let up: Awaited<ReturnType<typeof upLab>>;
    try {
      up = await upLab({
        backend: backendOption(args), mode, workers: intOption(args, 'workers', 2), replicas: intOption(args, 'replicas', 3),
        ...(iptablesBackend !== undefined ? { iptablesBackend } : {}),
        name: nameOption(args), runner: r, onProgress: say, signal: ac.signal,
      });
    } catch (e) {
      if (!(e instanceof UpInterrupted)) throw e;
      io.err(`kube-netlab up: ${e.message}`);
      return 130;
    } finally {
      for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    }
    const { lab, result } = up;
    if (args.values.json) return printJson(io, result);
    io.out(`lab ${lab.name} is up on ${lab.backend} in ${result.seconds}s, kube-proxy mode ${lab.mode}${lab.iptablesBackend && lab.mode !== 'nftables' ? ` on iptables-${lab.iptablesBackend}` : ''}`);
    for (const n of result.nodes) io.out(`  node ${n.name.padEnd(22)} ${n.ip.padEnd(12)} pods ${n.podCIDR}`);
    for (const x of result.services) io.out(`  svc  ${x.name.padEnd(22)} ${x.clusterIP.padEnd(12)} ${x.ports.join(' ')}`);
    for (const p of result.pods) io.out(`  pod  ${p.name.padEnd(40)} ${p.ip.padEnd(12)} on ${p.node}`);
    if (lab.mode === 'ipvs' && !result.capabilities.ipvs) {
      io.out('  note: this kernel has no IP_VS: the ipsets and iptables rules are loaded, the virtual servers are not, so every IPVS figure here is a prediction');
    }
    io.out(`next: kube-netlab traffic --name ${lab.name} --requests 3000`);
  },
};

export const down: CommandSpec = {
  summary: 'remove a lab and everything it made, even after a crash',
  usage: 'down [--name NAME] [--backend netns|kind|auto] [--force] [--echo] [--json]',
  options: { name: { type: 'string' }, backend: { type: 'string' }, force: { type: 'boolean' }, echo: { type: 'boolean' } },
  async run(args, io) {
    const name = nameOption(args);
    const r = args.values.echo ? runner.withEcho((c) => io.err(`  $ ${c}`)) : runner;
    // A removal half done is worse than one finished: signals are noted, the removal completes.
    const onSignal = (sig: NodeJS.Signals) => io.err(`${sig}: finishing the removal first (\`kube-netlab gc\` completes it if this process is killed)`);
    for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
    const leftAlone: { what: string; why: string }[] = [];
    let removed: string[];
    try {
      removed = await removeLab(name, backendOption(args), r, { force: args.values.force === true, report: (x) => leftAlone.push(...x.leftAlone) });
    } finally {
      for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    }
    if (args.values.json) return printJson(io, { name, removed, leftAlone });
    if (removed.length > 0) io.out(`removed lab ${name}: ${removed.join(', ')}`);
    else io.out(leftAlone.length > 0 ? `removed nothing of lab ${name}: nothing found is provably this lab's` : `no lab named ${name}; nothing to remove`);
    for (const l of leftAlone) io.out(`  left alone: ${l.what}: ${l.why}`);
  },
};

export const status: CommandSpec = {
  summary: 'list the labs on this machine, and what is wrong with a broken one',
  usage: 'status [--json]',
  options: {},
  async run(args, io) {
    const netns = process.platform === 'linux' && process.getuid?.() === 0 ? await inspectNetnsLabs(runner) : [];
    const rows = netns.map((h) => ({
      name: h.name, backend: 'netns' as const, mode: h.state?.mode ?? null, status: h.busy ? `busy (pid ${h.busy.pid}: ${h.busy.doing})` : h.problems.length ? 'broken' : h.phase,
      phase: h.phase, createdAt: h.state?.createdAt ?? null,
      nodes: h.state?.nodes.length ?? 0, pods: h.state?.pods.length ?? 0, services: h.state?.services.length ?? 0,
      heldBy: h.holder, problems: h.problems, fix: h.fix,
    }));
    // kind clusters, when kind and docker answer; kube-netlab's own are the ones it has a record of.
    const records = await listKindRecords();
    const kindClusters = (await kindClustersUnavailable(runner)) === null
      ? parseKindClusters((await runner.run(kindGetClusters(), { allowFailure: true })).stdout).map((c) => {
        const rec = records.find((x) => x.name === c);
        const heldBy = rec?.heldBy ? { pid: rec.heldBy.pid, alive: creatorLiveness(rec.heldBy) !== 'dead' } : null;
        return { name: c, kubeNetlab: rec !== undefined, mode: rec?.mode ?? null, status: rec?.status ?? null, createdAt: rec?.createdAt ?? null, heldBy };
      })
      : [];
    if (args.values.json) return printJson(io, { labs: rows, kindClusters });
    if (rows.length === 0 && kindClusters.length === 0) io.out(process.getuid?.() === 0 ? 'no labs; `kube-netlab up` brings one up' : 'no kind labs; netns labs are listed only as root (sudo kube-netlab status)');
    for (const l of rows) {
      const held = l.heldBy ? `, held by pid ${l.heldBy.pid} (${l.heldBy.alive ? 'running' : 'dead'})` : '';
      io.out(`${l.name.padEnd(16)} netns/${(l.mode ?? '?').padEnd(9)} ${l.status.padEnd(9)} ${l.nodes} nodes, ${l.pods} pods, ${l.services} services${l.createdAt ? `, since ${l.createdAt}` : ''}${held}`);
      for (const p of l.problems) io.out(`  problem: ${p}`);
      if (l.fix) io.out(`  fix: ${l.fix}`);
    }
    for (const c of kindClusters) {
      io.out(c.kubeNetlab
        ? `${c.name.padEnd(16)} kind/${(c.mode ?? '').padEnd(10)} ${(c.status ?? '').padEnd(9)} kind cluster (kubectl --context kind-${c.name}), since ${c.createdAt}${c.heldBy ? `, held by pid ${c.heldBy.pid} (${c.heldBy.alive ? 'running' : 'dead'})` : ''}`
        : `${c.name.padEnd(16)} kind cluster, no kube-netlab record of it (kubectl --context kind-${c.name})`);
    }
  },
};

export const gc: CommandSpec = {
  summary: 'remove what crashed runs and dead notebook kernels left: half-made labs, orphaned namespaces and kind clusters',
  usage: 'gc [--backend netns|kind|auto] [--when-gone PID[:START]] [--json]',
  options: { backend: { type: 'string' }, 'when-gone': { type: 'string' } },
  async run(args, io) {
    // A notebook kernel starts `gc --when-gone <its pid>`, so its lab goes when the kernel does.
    const whenGone = stringOption(args, 'when-gone');
    if (whenGone !== undefined) await waitUntilGone(whenGone);
    const backend = backendOption(args);
    const report = await gcLabs(runner, backend);
    // Live traces killed half-way: their rules in the labs still up, and their monitors.
    const traces = await gcLiveTraces(await labsUp(backend));
    if (args.values.json) return printJson(io, { ...report, traces });
    const n = report.netns;
    if ('skipped' in n) io.out(`netns: not checked: ${n.skipped}`);
    else {
      const removed = n.decisions.filter((d) => d.action === 'removed');
      if (removed.length === 0) io.out(`netns: nothing to clean up${n.decisions.length ? `; ${n.decisions.length} left alone:` : ''}`);
      for (const d of n.decisions) io.out(`netns: ${d.action === 'removed' ? 'removed' : 'kept'} ${d.name}: ${d.why}`);
    }
    const k = report.kind;
    if (k.skipped !== null) io.out(`kind:  not checked: ${k.skipped}`);
    else if (k.decisions.length === 0) io.out('kind:  no kind clusters');
    for (const d of k.decisions) io.out(`kind:  ${d.action === 'delete' ? 'deleted' : d.action === 'forget' ? 'forgot' : 'kept'} ${d.name}: ${d.why}`);
    for (const d of traces.rules) io.out(`trace: ${d.action} ${d.what}: ${d.why}`);
    if (traces.monitors.length) io.out(`trace: ended the monitors of traces that were killed (pids ${traces.monitors.join(', ')})`);
    for (const s of traces.skipped) io.out(`trace: not checked in lab ${s.lab}: ${s.why}`);
  },
};

/** The labs that are up (as far as their records say), opened, on the backends asked for. */
async function labsUp(backend: BackendChoice): Promise<Lab[]> {
  const names: { name: string; backend: 'netns' | 'kind' }[] = [];
  if (backend !== 'kind' && process.platform === 'linux' && process.getuid?.() === 0) {
    for (const h of await inspectNetnsLabs(runner)) if (h.state?.status === 'up') names.push({ name: h.name, backend: 'netns' });
  }
  if (backend !== 'netns' && (await kindClustersUnavailable(runner)) === null) {
    for (const r of await listKindRecords()) if (r.status === 'up') names.push({ name: r.name, backend: 'kind' });
  }
  const labs: Lab[] = [];
  for (const n of names) {
    try {
      labs.push(await openLab(n.name, n.backend, runner));
    } catch {
      // A lab that cannot be opened has no node to read; its own clean-up is gc's or down's.
    }
  }
  return labs;
}

export const traffic: CommandSpec = {
  summary: 'send N requests from the client pod to a Service and tally the answers per pod, beside the prediction',
  usage: 'traffic [--name NAME] [--requests N] [--concurrency C] [--service NS/NAME] [--from POD|NODE] [--to clusterip|loadbalancer|NODE] [--json]',
  options: {
    name: { type: 'string' }, requests: { type: 'string' }, concurrency: { type: 'string' }, service: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' },
  },
  async run(args, io) {
    const lab = await openLab(nameOption(args));
    const [namespace, service] = (stringOption(args, 'service') ?? 'default/httpbin').split('/');
    if (!service) throw new UsageError('--service must be NAMESPACE/NAME');
    const fromName = stringOption(args, 'from');
    const from = fromName === undefined ? undefined : (await lab.nodes()).some((n) => n.name === fromName) ? { node: fromName } : { pod: fromName };
    // --to NODE: the Service's node port on that node's address.
    const toName = stringOption(args, 'to');
    const to = toName === undefined || toName === 'clusterip' ? 'clusterIP' as const : toName === 'loadbalancer' ? 'loadBalancer' as const : { node: toName };
    const m = await measureTraffic(lab, { namespace, service, requests: intOption(args, 'requests', 1000), concurrency: intOption(args, 'concurrency', 10), ...(from ? { from } : {}), to });
    if (args.values.json) {
      // byPod as the issue's contract has it (pod → answers); the full tally, with the kernel's
      // own counts, under `pods`.
      const { byPod, ...rest } = m;
      return printJson(io, { ...rest, byPod: Object.fromEntries(byPod.map((p) => [p.pod, p.answers])), pods: byPod });
    }
    const picker = m.node === null ? 'the nodes the load balancer\'s proxy reached' : `kernel on ${m.node}`;
    io.out(`${m.ok}/${m.total} answers from ${m.service.namespace}/${m.service.name} (${m.to.via} ${m.to.ip}:${m.to.port}), ${m.requestsPerSecond.toFixed(0)} req/s, ${picker} picked:`);
    for (const [i, p] of m.byPod.entries()) {
      const s = m.prediction.split.shares[i];
      io.out(`  ${p.pod.padEnd(28)} measured ${String(p.answers).padStart(6)}   conntrack ${String(p.conntrack ?? '-').padStart(6)}${p.sepPackets !== null ? `   KUBE-SEP packets ${String(p.sepPackets).padStart(6)}` : ''}   predicted ${s.expected.toFixed(0)} [${s.low}, ${s.high}]`);
    }
    if (m.chiSquare) io.out(`  chi-square ${m.chiSquare.statistic.toFixed(2)} on ${m.chiSquare.degreesOfFreedom} df, p = ${m.chiSquare.pValue.toFixed(3)}`);
    if (m.repliesTo) io.out(`  conntrack on ${m.node}: the pods answered to ${m.repliesTo.join(', ')}${m.masqueraded !== null ? `; KUBE-POSTROUTING masqueraded ${m.masqueraded} packets` : ''}`);
    for (const why of m.skipped) io.out(`  not cross-checked: ${why}`);
  },
};


export const capture: CommandSpec = {
  summary: 'capture every node\'s state (iptables, ipsets, IPVS, nftables, routes, conntrack) into a run folder',
  usage: 'capture [--name NAME] [--node NODE] [--out DIR] [--json]',
  options: { name: { type: 'string' }, node: { type: 'string' }, out: { type: 'string' } },
  async run(args, io) {
    const lab = await openLab(nameOption(args));
    const wanted = stringOption(args, 'node');
    const nodes = (await lab.nodes()).filter((n) => wanted === undefined || n.name === wanted);
    if (nodes.length === 0) throw new UsageError(`lab ${lab.name} has no node ${wanted}`);
    const stamp = new Date().toISOString().replaceAll(':', '').replace(/\.\d+Z$/, 'Z');
    const dir = stringOption(args, 'out') ?? join('runs', `${lab.name}-${stamp}`);
    const results = [];
    for (const node of nodes) {
      // Read the rules where they are: the backend the lab chose, or on kind the one the node uses.
      const cap = await captureNode((argv, o) => lab.exec(node.name, argv, o), { backend: lab.backend, mode: lab.mode, node: node.name, lab: lab.name }, undefined, { iptablesBackend: 'detect' });
      await saveCapture(cap, dir);
      results.push(cap);
    }
    if (args.values.json) {
      return printJson(io, { dir, nodes: results.map((c) => ({ provenance: c.provenance, iptablesBackend: c.iptablesBackend ?? null, items: Object.fromEntries(Object.entries(c.items).map(([k, v]) => [k, { command: v?.command, ok: !v?.error && !v?.skipped, skipped: v?.skipped ?? null, error: v?.error ?? null }])) })) });
    }
    io.out(`captured ${results.length} nodes of lab ${lab.name} (${lab.backend}/${lab.mode}) into ${dir}`);
    for (const c of results) {
      const parts = Object.entries(c.items).map(([k, v]) => `${k}${v?.skipped ? ' (skipped)' : v?.error ? ' (error)' : ''}`);
      io.out(`  ${c.provenance.node}: ${parts.join(', ')}`);
      const b = c.iptablesBackend;
      if (b) io.out(`    iptables backend: ${b.backend ? `iptables-${b.backend}` : 'none holds kube-proxy rules'} (${b.evidence})`);
      for (const v of Object.values(c.items)) if (v?.skipped) io.out(`    ${v.command}: ${v.skipped}`);
    }
  },
};
