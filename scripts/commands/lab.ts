import { join } from 'node:path';
import { captureNode, saveCapture } from '../../lib/capture/index.ts';
import { runner } from '../../lib/exec/index.ts';
import { chooseBackend, createLab, openLab, type BackendChoice } from '../../lib/lab/create.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { kindGetClusters, parseKindClusters } from '../../lib/lab/kind/commands.ts';
import { kindUnavailable } from '../../lib/lab/kind/index.ts';
import { destroyNetnsLab, gcNetns, listNetnsLabs } from '../../lib/lab/netns/index.ts';
import { isProxyMode } from '../../lib/proxy/modes.ts';
import { measureTraffic } from '../../lib/traffic/index.ts';
import { UsageError, intOption, printJson, stringOption, type CommandSpec, type Io, type ParsedArgs } from '../cli.ts';

function backendOption(args: ParsedArgs): BackendChoice {
  const b = stringOption(args, 'backend') ?? 'auto';
  if (b !== 'auto' && b !== 'netns' && b !== 'kind') throw new UsageError(`--backend must be netns, kind or auto, got ${JSON.stringify(b)}`);
  return b;
}

function nameOption(args: ParsedArgs): string {
  return stringOption(args, 'name') ?? 'netlab';
}

/** Progress lines for people go to stderr, so --json output stays clean. */
function progress(io: Io, args: ParsedArgs): (step: string) => void {
  const t0 = performance.now();
  return (step) => io.err(`[${((performance.now() - t0) / 1000).toFixed(2)}s] ${step}`);
}

export const up: CommandSpec = {
  summary: 'bring up a lab: nodes, kube-proxy in the chosen mode, httpbin and the curl client',
  usage: 'up [--backend netns|kind|auto] [--mode iptables|ipvs|nftables] [--workers N] [--replicas R] [--name NAME] [--echo] [--json]',
  options: {
    backend: { type: 'string' }, mode: { type: 'string' }, workers: { type: 'string' }, replicas: { type: 'string' },
    name: { type: 'string' }, echo: { type: 'boolean' },
  },
  async run(args, io) {
    const mode = stringOption(args, 'mode') ?? 'iptables';
    if (!isProxyMode(mode)) throw new UsageError(`--mode must be iptables, ipvs or nftables, got ${JSON.stringify(mode)}`);
    const replicas = intOption(args, 'replicas', 3);
    const say = progress(io, args);
    const r = args.values.echo ? runner.withEcho((c) => io.err(`  $ ${c}`)) : runner;
    const t0 = performance.now();
    const lab = await createLab({ backend: backendOption(args), mode, workers: intOption(args, 'workers', 2), name: nameOption(args), runner: r, onProgress: say });
    try {
      say(`deploy httpbin (${replicas} replicas) and the curl client`);
      const httpbin = (await loadManifest('httpbin')).map((o) => (o.kind === 'Deployment' ? { ...o, spec: { ...(o.spec as object), replicas } } : o));
      const reports = await lab.apply([...httpbin, ...(await loadManifest('curl'))]);
      const pods = await lab.pods();
      const services = await lab.services();
      const result = {
        name: lab.name, backend: lab.backend, mode: lab.mode, seconds: +((performance.now() - t0) / 1000).toFixed(2),
        nodes: await lab.nodes(),
        services: services.map((s) => ({ name: `${s.namespace}/${s.name}`, clusterIP: s.clusterIP, ports: s.ports.map((p) => `${p.port}/${p.protocol}→${p.targetPort}`) })),
        pods: pods.map((p) => ({ name: `${p.namespace}/${p.name}`, ip: p.ip, node: p.node })),
        sync: reports.map((s) => ({ node: s.node, added: s.added.length, removed: s.removed.length })),
        capabilities: await lab.capabilities(),
      };
      if (args.values.json) return printJson(io, result);
      io.out(`lab ${lab.name} is up on ${lab.backend} in ${result.seconds}s, kube-proxy mode ${lab.mode}`);
      for (const n of result.nodes) io.out(`  node ${n.name.padEnd(22)} ${n.ip.padEnd(12)} pods ${n.podCIDR}`);
      for (const s of result.services) io.out(`  svc  ${s.name.padEnd(22)} ${s.clusterIP.padEnd(12)} ${s.ports.join(' ')}`);
      for (const p of result.pods) io.out(`  pod  ${p.name.padEnd(40)} ${p.ip.padEnd(12)} on ${p.node}`);
      if (lab.mode === 'ipvs' && !result.capabilities.ipvs) {
        io.out('  note: this kernel has no IP_VS: the ipsets and iptables rules are loaded, the virtual servers are not, so every IPVS figure here is a prediction');
      }
      io.out(`next: kube-netlab traffic --name ${lab.name} --requests 3000`);
    } catch (e) {
      await lab.destroy().catch(() => undefined);
      throw e;
    }
  },
};

export const down: CommandSpec = {
  summary: 'remove a lab and everything it made, even after a crash',
  usage: 'down [--name NAME] [--backend netns|kind|auto] [--json]',
  options: { name: { type: 'string' }, backend: { type: 'string' } },
  async run(args, io) {
    const name = nameOption(args);
    const backend = backendOption(args);
    let removed: string[] = [];
    if (backend !== 'kind') removed = await destroyNetnsLab(name);
    if (backend === 'kind' || (backend === 'auto' && removed.length === 0 && (await chooseBackend('auto').catch(() => null)) === 'kind')) {
      const lab = await openLab(name, 'kind');
      await lab.destroy();
      removed = [`kind cluster ${name}`];
    }
    if (args.values.json) return printJson(io, { name, removed });
    io.out(removed.length ? `removed lab ${name}: ${removed.join(', ')}` : `no lab named ${name}; nothing to remove`);
  },
};

export const status: CommandSpec = {
  summary: 'list the labs on this machine',
  usage: 'status [--json]',
  options: {},
  async run(args, io) {
    const labs = await listNetnsLabs();
    const rows = labs.map((s) => ({
      name: s.name, backend: s.backend, mode: s.mode, status: s.status, createdAt: s.createdAt,
      nodes: s.nodes.length, pods: s.pods.length, services: s.services.length,
    }));
    // kind clusters, when kind and docker answer (their mode lives in the cluster, not here).
    const kindClusters = (await kindUnavailable(runner)) === null
      ? parseKindClusters((await runner.run(kindGetClusters(), { allowFailure: true })).stdout)
      : [];
    if (args.values.json) return printJson(io, { labs: rows, kindClusters });
    if (rows.length === 0 && kindClusters.length === 0) io.out('no labs; `kube-netlab up` brings one up');
    for (const l of rows) io.out(`${l.name.padEnd(16)} ${l.backend}/${l.mode.padEnd(9)} ${l.status.padEnd(9)} ${l.nodes} nodes, ${l.pods} pods, ${l.services} services, since ${l.createdAt}`);
    for (const c of kindClusters) io.out(`${c.padEnd(16)} kind cluster (kubectl --context kind-${c})`);
  },
};

export const gc: CommandSpec = {
  summary: 'remove what crashed runs left behind (labs whose creation died, orphaned namespaces)',
  usage: 'gc [--json]',
  options: {},
  async run(args, io) {
    const report = await gcNetns();
    if (args.values.json) return printJson(io, report);
    io.out(report.namespaces.length === 0 ? 'nothing to clean up' : `removed ${report.namespaces.length} namespaces${report.labs.length ? ` of labs ${report.labs.join(', ')}` : ''}: ${report.namespaces.join(', ')}`);
  },
};

export const traffic: CommandSpec = {
  summary: 'send N requests from the client pod to a Service and tally the answers per pod, beside the prediction',
  usage: 'traffic [--name NAME] [--requests N] [--concurrency C] [--service NS/NAME] [--json]',
  options: { name: { type: 'string' }, requests: { type: 'string' }, concurrency: { type: 'string' }, service: { type: 'string' } },
  async run(args, io) {
    const lab = await openLab(nameOption(args));
    const [namespace, service] = (stringOption(args, 'service') ?? 'default/httpbin').split('/');
    if (!service) throw new UsageError('--service must be NAMESPACE/NAME');
    const m = await measureTraffic(lab, { namespace, service, requests: intOption(args, 'requests', 1000), concurrency: intOption(args, 'concurrency', 10) });
    if (args.values.json) {
      // byPod as the issue's contract has it (pod → answers); the full tally, with the kernel's
      // own counts, under `pods`.
      const { byPod, ...rest } = m;
      return printJson(io, { ...rest, byPod: Object.fromEntries(byPod.map((p) => [p.pod, p.answers])), pods: byPod });
    }
    io.out(`${m.ok}/${m.total} answers from ${m.service.namespace}/${m.service.name} (${m.service.clusterIP}:${m.service.port}), ${m.requestsPerSecond.toFixed(0)} req/s, kernel on ${m.node} picked:`);
    for (const [i, p] of m.byPod.entries()) {
      const s = m.prediction.split.shares[i];
      io.out(`  ${p.pod.padEnd(28)} measured ${String(p.answers).padStart(6)}   conntrack ${String(p.conntrack ?? '-').padStart(6)}${p.sepPackets !== null ? `   KUBE-SEP packets ${String(p.sepPackets).padStart(6)}` : ''}   predicted ${s.expected.toFixed(0)} [${s.low}, ${s.high}]`);
    }
    if (m.chiSquare) io.out(`  chi-square ${m.chiSquare.statistic.toFixed(2)} on ${m.chiSquare.degreesOfFreedom} df, p = ${m.chiSquare.pValue.toFixed(3)}`);
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
      const cap = await captureNode((argv, o) => lab.exec(node.name, argv, o), { backend: lab.backend, mode: lab.mode, node: node.name, lab: lab.name });
      await saveCapture(cap, dir);
      results.push(cap);
    }
    if (args.values.json) {
      return printJson(io, { dir, nodes: results.map((c) => ({ provenance: c.provenance, items: Object.fromEntries(Object.entries(c.items).map(([k, v]) => [k, { command: v?.command, ok: !v?.error && !v?.skipped, skipped: v?.skipped ?? null, error: v?.error ?? null }])) })) });
    }
    io.out(`captured ${results.length} nodes of lab ${lab.name} (${lab.backend}/${lab.mode}) into ${dir}`);
    for (const c of results) {
      const parts = Object.entries(c.items).map(([k, v]) => `${k}${v?.skipped ? ' (skipped)' : v?.error ? ' (error)' : ''}`);
      io.out(`  ${c.provenance.node}: ${parts.join(', ')}`);
      for (const v of Object.values(c.items)) if (v?.skipped) io.out(`    ${v.command}: ${v.skipped}`);
    }
  },
};
