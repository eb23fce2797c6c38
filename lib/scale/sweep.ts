/**
 * The scale lab's effects: one private network namespace per step (mode × service count), in
 * which kube-proxy's rules are loaded, timed, counted and crossed by real connections. The pure
 * inputs come from plan.ts; predictions from lib/sim.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ownerEnv, processesMarked, runner as defaultRunner, shellQuote, stopProcesses, withScratchNetns, type ExecResult, type RunOptions, type Runner, type ScratchNetns } from '../exec/index.ts';
import { replaceSetMembers } from '../lab/netns/kube-proxy.ts';
import { ensureStateDir, stateDir } from '../lab/netns/state.ts';
import { ensurePrivateSubdir } from '../files/index.ts';
import { parseIpsetList, parseIptablesSave, parseIpvsadm, parseNftJson } from '../parse/index.ts';
import { builtinJumpsRestore } from '../proxy/iptables.ts';
import { IPVS_JUMPS } from '../proxy/ipvs.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import { iptablesTools, type IptablesBackend, type IptablesTools } from '../proxy/iptables-backend.ts';
import { provenance } from '../provenance/index.ts';
import { predictCounts, type ModeCounts } from '../sim/counts.ts';
import { fitCostModels, median, percentiles, predictCost, type CostObservation } from '../sim/cost-model.ts';
import {
  SCALE_NODE, SCALE_NODE_IP, TARGET_PORT, clientAddress, countIpsets, countIptables, countNftables, countsMatch,
  iptablesTargets, localEndpoints, orderTargets, resolveScaleOptions, scaleVariants, stepInputs, verifyDnat,
  type LatencyTarget, type ProbeTargetOutput, type ResolvedScaleOptions, type StepInputs,
  estimateSyncMs,
} from './plan.ts';
import type { KernelCounts, LatencyMeasurement, MeasuredPoint, ScaleOptions, ScalePoint, ScaleProgress, ScaleResult, Skipped, SkippedStep } from './types.ts';

/** The in-namespace server and client (plain JS, so each starts fast; the build copies it beside this module). */
export const PROBE_SCRIPT = fileURLToPath(new URL('./probe.mjs', import.meta.url));

/** iptables-nft restores of 100,000+ rules take many minutes (its cost grows faster than linearly). */
const BIG_TIMEOUT_MS = 3 * 3_600_000;
const WARMUP = 5;

/** The sweep needs root: it creates network namespaces and loads rules into them. */
export class ScaleRootError extends Error {
  override readonly name = 'ScaleRootError';
  constructor() {
    super('the scale lab creates network namespaces and loads kube-proxy\'s rules into them, which needs root: run it with sudo');
  }
}

const MODEL_X = {
  syncMs: 'rules a full sync writes (lib/sim: iptables nat+filter rules; nftables rules; ipvs ipset members + iptables rules)',
  changeMs: 'the same count: what kube-proxy rewrites on a change grows with it (KUBE-SERVICES in iptables mode)',
  latency: 'rules the first packet evaluates before DNAT (iptables: grows with the service\'s position in KUBE-SERVICES; nftables, ipvs: constant)',
};

/**
 * Run the sweep: for each mode and service count, a namespace with kube-proxy's rules for S
 * services × E endpoints, the full-sync and one-endpoint-change times, first-packet latency to
 * the first and last service, and the kernel's counts; then a cost model fitted on the small
 * sizes predicts every size. Rejects with the signal's reason when aborted, after deleting the
 * step's namespace.
 */
export async function runScaleSweep(opts: ScaleOptions, runner: Runner = defaultRunner): Promise<ScaleResult> {
  const o = resolveScaleOptions(opts);
  if (process.getuid?.() !== 0) throw new ScaleRootError();
  const signal = opts.signal;
  signal?.throwIfAborted();
  const r = opts.echo ? runner.withEcho(opts.echo) : runner;
  const started = performance.now();
  const at = new Date().toISOString();
  const ipvsKernel = existsSync('/proc/net/ip_vs');
  const variants = scaleVariants(o.modes, o.iptablesBackends);
  const tools = await toolVersions(r, variants.map((v) => ({ mode: v.mode, backend: v.iptablesBackend })), ipvsKernel);
  const backendsUsed = variants.some((v) => v.iptablesBackend !== null) ? ` --iptables-backends ${o.iptablesBackends.join(',')}` : '';
  const command = `kube-netlab scale --modes ${o.modes.join(',')}${backendsUsed} --services ${o.services.join(',')} --endpoints ${o.endpoints} --samples ${o.samples}`;
  // Root writes logs and ready files here: a private folder of the kit's, never $TMPDIR.
  await ensureStateDir();
  await ensurePrivateSubdir(join(stateDir(), 'scale'));
  const dir = await mkdtemp(join(stateDir(), 'scale', 'sweep-'));
  const measured: { mode: ProxyMode; backend: IptablesBackend | null; variant: string; services: number; m: MeasuredPoint; counts: ModeCounts }[] = [];
  const skippedSteps: SkippedStep[] = [];
  let clientIP = '';
  try {
    const steps = variants.length * o.services.length;
    let step = 0;
    for (const { mode, iptablesBackend: backend, name: variant } of variants) {
      for (const services of o.services) {
        signal?.throwIfAborted();
        step++;
        const progress = (phase: ScaleProgress['phase'], message: string, netns?: string) =>
          opts.onProgress?.({ step, steps, mode, variant, services, endpoints: o.endpoints, phase, message, ...(netns ? { netns } : {}) });
        // Don't start a step that would run for many minutes; say so, with the estimate.
        const estimate = estimateSyncMs(measured.filter((x) => x.variant === variant).map((x) => ({ services: x.services, syncMs: x.m.syncMs })), services);
        const limit = o.maxSyncMsByVariant[variant] ?? o.maxSyncMs;
        if (estimate && estimate.ms > limit) {
          const reason = `a full sync would take about ${Math.round(estimate.ms / 1000)} s (${estimate.basis}), over the ${Math.round(limit / 1000)} s limit (--max-sync-seconds)`;
          skippedSteps.push({ mode, variant, services, reason, estimatedSyncMs: Math.round(estimate.ms) });
          progress('done', `skipped: ${reason}`);
          continue;
        }
        const inputs = stepInputs(mode, services, o.endpoints, o.podSubnet);
        clientIP = clientAddress(o.podSubnet, inputs.ports);
        const { m, counts } = await withScratchNetns(o.netnsPrefix, async (ns) => {
          const ipt = backend === null ? null : iptablesTools(backend);
          const ctx: StepContext = { ns, r, o, mode, backend, ipt, variant, services, inputs, signal, dir, ipvsKernel, clientIP, progress, command };
          progress('step', describeStep(ctx), ns.name);
          try {
            const done = await runStep(ctx);
            await clearRules(ctx);
            return done;
          } finally {
            await stopMarked(ns.marker);
          }
        }, r).catch((e: unknown) => {
          // An abort surfaces as a killed command or a vanished namespace; report the abort.
          if (signal?.aborted) throw signal.reason;
          throw e;
        });
        measured.push({ mode, backend, variant, services, m, counts });
        progress('done', `done in ${(m.stepMs / 1000).toFixed(1)} s`, m.netns);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const observations: CostObservation[] = measured.map(({ mode, variant, services, m }) => ({
    mode, variant, services, endpoints: o.endpoints, syncMs: m.syncMs, changeMs: m.changeMs,
    firstServiceLatencyUs: m.firstServiceLatencyUs, lastServiceLatencyUs: m.lastServiceLatencyUs,
  }));
  const models = fitCostModels(observations, { maxServices: o.fitMaxServices });
  const points: ScalePoint[] = measured.map(({ mode, backend, variant, services, m, counts }) => {
    const model = models[variant]!;
    const p = predictCost(model, services, o.endpoints);
    return {
      mode, iptablesBackend: backend, variant, services, endpoints: o.endpoints,
      measured: m,
      predicted: {
        provenance: provenance({ source: 'predicted', backend: null, mode, node: SCALE_NODE, at, command }),
        counts,
        syncMs: p.syncMs, changeMs: p.changeMs,
        firstServiceLatencyUs: p.firstServiceLatencyUs, lastServiceLatencyUs: p.lastServiceLatencyUs,
        inFit: model.fittedOn.includes(services),
        x: p.x,
      },
    };
  });
  return {
    points,
    skippedSteps,
    model: { fitMaxServices: o.fitMaxServices, x: MODEL_X, modes: models },
    options: { modes: o.modes, iptablesBackends: o.iptablesBackends, services: o.services, endpoints: o.endpoints, samples: o.samples, repeats: o.repeats, repeatBudgetMs: o.repeatBudgetMs, maxSyncMs: o.maxSyncMs, maxSyncMsByVariant: o.maxSyncMsByVariant, podSubnet: o.podSubnet, node: SCALE_NODE, nodeIP: SCALE_NODE_IP, clientIP },
    kernel: release(),
    tools,
    at,
    durationMs: Math.round(performance.now() - started),
  };
}

interface StepContext {
  ns: ScratchNetns;
  r: Runner;
  o: ResolvedScaleOptions;
  mode: ProxyMode;
  backend: IptablesBackend | null;
  /** The backend's binaries; null in nftables mode. */
  ipt: IptablesTools | null;
  variant: string;
  services: number;
  inputs: StepInputs;
  signal: AbortSignal | undefined;
  dir: string;
  ipvsKernel: boolean;
  clientIP: string;
  progress: (phase: ScaleProgress['phase'], message: string, netns?: string) => void;
  command: string;
  serverPid?: number;
}

function describeStep(c: StepContext): string {
  const what = c.mode === 'iptables'
    ? `${c.inputs.iptables!.full.counts.nat.rules.toLocaleString('en-US')} nat rules`
    : c.mode === 'nftables'
      ? `${c.inputs.nftables!.full.counts.rules.toLocaleString('en-US')} nft rules`
      : `${c.inputs.ipvs!.full.counts.virtualServers.toLocaleString('en-US')} virtual servers`;
  return `${what}: full syncs (up to ${c.o.repeats}), kernel counts, 2×${c.o.samples} connections, one-endpoint changes (up to ${c.o.repeats}) (netns ${c.ns.name})`;
}

/** Run in the namespace, stopping first when aborted and passing the signal to the command. */
function runIn(c: StepContext, argv: string[], opts: RunOptions = {}): Promise<ExecResult> {
  c.signal?.throwIfAborted();
  return c.ns.run(argv, { timeoutMs: BIG_TIMEOUT_MS, ...opts, signal: c.signal });
}

/**
 * Up to `repeats` timed runs, at least one; no new run starts once this measurement has taken
 * the repeat budget (one full iptables sync of 10,000 services can take many minutes).
 * `between` runs untimed before every run but the first (undoing a change).
 */
async function repeat(c: StepContext, once: (i: number) => Promise<number>, between?: () => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < c.o.repeats; i++) {
    if (i > 0 && performance.now() - t0 > c.o.repeatBudgetMs) break;
    if (i > 0 && between) await between();
    out.push(await once(i));
  }
  return out;
}

async function timed(c: StepContext, argv: string[], input: string): Promise<number> {
  const res = await runIn(c, argv, { input });
  return res.durationMs;
}

const round = (ms: number, digits = 2) => Math.round(ms * 10 ** digits) / 10 ** digits;

async function runStep(c: StepContext): Promise<{ m: MeasuredPoint; counts: ModeCounts }> {
  const t0 = performance.now();
  const skipped: Skipped[] = [];
  await setupNetwork(c);
  let first: LatencyMeasurement | null = null;
  let last: LatencyMeasurement | null = null;
  // Latency is measured on the full sync's rules, before any change is applied.
  const measureLatency = async (targets: [LatencyTarget, LatencyTarget], skip: string | null) => {
    if (skip) {
      skipped.push({ what: 'first-packet latency', reason: skip });
      return;
    }
    c.progress('latency', `2×${c.o.samples} connections to the first and last service`, c.ns.name);
    [first, last] = await latency(c, targets);
    // The server is done; stop it now rather than let it idle through the changes.
    await stopMarked(c.ns.marker);
    c.serverPid = undefined;
  };
  const result = c.mode === 'iptables'
    ? await iptablesStep(c, measureLatency)
    : c.mode === 'nftables' ? await nftablesStep(c, measureLatency) : await ipvsStep(c, skipped, measureLatency);
  // The node's own endpoints are an input of IPVS's count (KUBE-LOOP-BACK), not an output.
  const predicted = predictCounts(c.mode, { services: c.services, endpoints: c.o.endpoints, nodeIPs: 1, localEndpoints: localEndpoints(c.inputs.ports) });
  const m: MeasuredPoint = {
    provenance: provenance({ source: 'measured', backend: 'netns', mode: c.mode, node: SCALE_NODE, command: c.command }),
    syncMs: round(median(result.syncSamples)),
    syncSamplesMs: result.syncSamples.map((x) => round(x)),
    firstSyncMs: round(result.syncSamples[0]),
    syncPartsMs: Object.fromEntries(Object.entries(result.syncParts).map(([k, v]) => [k, round(median(v))])),
    changeMs: result.changeSamples.length > 0 ? round(median(result.changeSamples)) : null,
    changeSamplesMs: result.changeSamples.map((x) => round(x)),
    changeMethod: result.changeMethod,
    toolStartMs: round(result.toolStart),
    firstServiceLatencyUs: first,
    lastServiceLatencyUs: last,
    kernel: result.kernel,
    countsMatch: countsMatch(c.mode, result.kernel, predicted),
    skipped: [...skipped, ...result.skipped],
    netns: c.ns.name,
    stepMs: Math.round(performance.now() - t0),
  };
  return { m, counts: predicted };
}

type MeasureLatency = (targets: [LatencyTarget, LatencyTarget], skip: string | null) => Promise<void>;

/**
 * A node-like namespace: lo up; an eth0 with the node's address and the default route (so
 * ClusterIPs are routable before DNAT); and the whole pod subnet as local addresses on lo, so
 * one server on 0.0.0.0 answers every endpoint IP and the client can use a pod address.
 */
async function setupNetwork(c: StepContext): Promise<void> {
  await runIn(c, ['ip', '-batch', '-'], {
    timeoutMs: 30_000,
    input: [
      'link set lo up',
      // A veth pair with both ends here: only the route matters, nothing crosses it.
      'link add eth0 type veth peer name eth0-peer',
      'link set eth0 up',
      'link set eth0-peer up',
      `addr add ${SCALE_NODE_IP}/16 dev eth0`,
      'route add default dev eth0',
      `route add local ${c.o.podSubnet} dev lo`,
    ].join('\n') + '\n',
  });
}

interface ModeResult {
  toolStart: number;
  /** Every full sync timed; the first went into an empty namespace, the rest over the rules it wrote. */
  syncSamples: number[];
  syncParts: Record<string, number[]>;
  changeSamples: number[];
  changeMethod: string;
  kernel: KernelCounts;
  skipped: Skipped[];
}

async function toolStart(c: StepContext, argvs: string[][]): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    let sum = 0;
    for (const argv of argvs) sum += await timed(c, argv, '');
    samples.push(sum);
  }
  return median(samples);
}

/** The backend's restore, as kube-proxy runs it: --noflush, so chains it does not write stay. */
const restoreArgv = (c: StepContext) => [c.ipt!.restore, '--noflush'];

async function iptablesStep(c: StepContext, measureLatency: MeasureLatency): Promise<ModeResult> {
  const g = c.inputs.iptables!;
  const IPT_RESTORE = restoreArgv(c);
  const start = await toolStart(c, [IPT_RESTORE]);
  // kube-proxy ensures its jumps from the built-in chains before the first restore (untimed:
  // they are a handful of `iptables -I` calls, whatever the size).
  await runIn(c, IPT_RESTORE, { input: builtinJumpsRestore(g.full.builtinJumps) });
  c.progress('sync', `${c.ipt!.restore} of ${g.full.counts.nat.rules} nat rules`, c.ns.name);
  const syncSamples = await repeat(c, () => timed(c, IPT_RESTORE, g.full.restore));

  c.progress('counts', `${c.ipt!.save}, parsed`, c.ns.name);
  const save = parseIptablesSave((await runIn(c, [c.ipt!.save])).stdout);
  const kernel: KernelCounts = { iptables: countIptables(save) };
  await measureLatency(iptablesTargets(save, c.inputs.ports), null);

  c.progress('change', `partial restore: KUBE-SERVICES and ${c.inputs.changed.service}'s chains`, c.ns.name);
  const changeSamples = await repeat(c, () => timed(c, IPT_RESTORE, g.change), async () => {
    await runIn(c, IPT_RESTORE, { input: g.revert });
  });
  return {
    toolStart: start, syncSamples, syncParts: { [c.ipt!.restore]: syncSamples }, changeSamples,
    changeMethod: `kube-proxy's partial sync (MinimizeIPTablesRestore, KEP-3453): ${c.ipt!.restore} --noflush of the filter table, nat's fixed chains (KUBE-SERVICES holds a rule per service, so this still grows with S), ${c.inputs.changed.service}'s KUBE-SVC/KUBE-SEP chains and the -X of the removed endpoint's chain; kube-proxy's iptables-save to find stale chains is not timed`,
    kernel, skipped: [],
  };
}

const NFT = ['nft', '-f', '-'];

async function nftablesStep(c: StepContext, measureLatency: MeasureLatency): Promise<ModeResult> {
  const g = c.inputs.nftables!;
  const start = await toolStart(c, [NFT]);
  c.progress('sync', `nft -f of ${g.full.counts.rules} rules, ${g.full.counts.elements} elements`, c.ns.name);
  // The first sync goes into an empty namespace; the rest are kube-proxy's periodic full syncs over it.
  const syncSamples = await repeat(c, (i) => timed(c, NFT, i === 0 ? g.first : g.resync));

  c.progress('counts', 'nft -j list ruleset, parsed', c.ns.name);
  const ruleset = parseNftJson((await runIn(c, ['nft', '-j', 'list', 'ruleset'])).stdout);
  const kernel: KernelCounts = { nftables: countNftables(ruleset) };
  await measureLatency(orderTargets(c.inputs.ports), null);

  c.progress('change', `incremental transaction: ${c.inputs.changed.service}'s chains and map elements`, c.ns.name);
  const changeSamples = await repeat(c, async () => {
    const ms = await timed(c, NFT, g.change.tx);
    if (g.change.followUp) await runIn(c, NFT, { input: g.change.followUp });
    return ms;
  }, async () => {
    await runIn(c, NFT, { input: g.revert.tx });
    if (g.revert.followUp) await runIn(c, NFT, { input: g.revert.followUp });
  });
  return {
    toolStart: start, syncSamples, syncParts: { nft: syncSamples }, changeSamples,
    changeMethod: `kube-proxy's incremental nftables transaction: ${c.inputs.changed.service}'s service and endpoint chains added and flushed and their rules re-added, the removed endpoint's chain flushed, no map element (an endpoint change keeps them), in one nft -f, as knftables writes it; deleting the flushed chain (kube-proxy does it a second later, in a transaction of its own) is not timed. The full sync is kube-proxy's too: add table (never delete), add + flush of every chain, set and map, then every rule and element; the first one also adds and deletes each base chain once`,
    kernel, skipped: [],
  };
}

async function ipvsStep(c: StepContext, skipped: Skipped[], measureLatency: MeasureLatency): Promise<ModeResult> {
  const g = c.inputs.ipvs!;
  const IPT_RESTORE = restoreArgv(c);
  const noIpvs = 'kernel has no IP_VS (/proc/net/ip_vs is absent)';
  const start = await toolStart(c, [['ipset', 'restore', '-exist'], IPT_RESTORE]);
  await runIn(c, IPT_RESTORE, { input: builtinJumpsRestore(IPVS_JUMPS.map((j) => ({ ...j, args: [...j.args] }))) });
  let latencySkip: string | null = c.ipvsKernel ? null : `${noIpvs}: no virtual servers to connect through`;
  if (c.ipvsKernel) {
    // kube-proxy binds every ClusterIP to kube-ipvs0 (netlink, untimed here).
    try {
      await runIn(c, ['ip', '-batch', '-'], {
        input: ['link add kube-ipvs0 type dummy', ...g.full.dummyAddresses.map((a) => `addr add ${a} dev kube-ipvs0`)].join('\n') + '\n',
      });
    } catch (e) {
      latencySkip = `cannot create kube-ipvs0 (${(e as Error).message.split('\n')[0]})`;
    }
  } else {
    skipped.push({ what: 'ipvsadm -R (virtual and real servers)', reason: noIpvs });
  }
  c.progress('sync', `ipset restore of ${Object.values(g.full.counts.ipsetMembers).reduce((a, b) => a + b, 0)} members + iptables-restore${c.ipvsKernel ? ' + ipvsadm -R' : ''}`, c.ns.name);
  const parts: Record<string, number[]> = { 'ipset restore': [], 'iptables-restore': [], ...(c.ipvsKernel ? { 'ipvsadm -R': [] } : {}) };
  const syncSamples = await repeat(c, async (i) => {
    let total = 0;
    const add = (k: string, ms: number) => { parts[k].push(ms); total += ms; };
    // The first sync creates the sets; later ones replace their members.
    add('ipset restore', await timed(c, ['ipset', 'restore', '-exist'], i === 0 ? g.full.ipsetRestore : replaceSetMembers(g.full.ipsetRestore)));
    add('iptables-restore', await timed(c, IPT_RESTORE, g.full.iptablesRestore));
    if (c.ipvsKernel) {
      if (i > 0) await runIn(c, ['ipvsadm', '-C']);
      add('ipvsadm -R', await timed(c, ['ipvsadm', '-R'], g.full.ipvsadmRestore));
    }
    return total;
  });

  c.progress('counts', 'ipset list, iptables-save, ipvsadm -Ln, parsed', c.ns.name);
  const sets = parseIpsetList((await runIn(c, ['ipset', 'list'])).stdout);
  const save = parseIptablesSave((await runIn(c, [c.ipt!.save])).stdout);
  let virtualServers: number | null = null;
  let realServers: number | null = null;
  if (c.ipvsKernel) {
    const ipvs = parseIpvsadm((await runIn(c, ['ipvsadm', '-Ln'])).stdout);
    virtualServers = ipvs.services.length;
    realServers = ipvs.services.reduce((n, s) => n + s.destinations.length, 0);
  }
  const kernel: KernelCounts = { ipvs: { ipsetMembers: countIpsets(sets), iptables: countIptables(save), virtualServers, realServers } };
  await measureLatency(orderTargets(c.inputs.ports), latencySkip);

  c.progress('change', `one real server of ${c.inputs.changed.service} removed`, c.ns.name);
  const apply = async (ch: typeof g.change) => {
    let total = 0;
    if (ch.ipset) total += await timed(c, ['ipset', 'restore', '-exist'], ch.ipset);
    total += await timed(c, IPT_RESTORE, ch.iptables);
    if (c.ipvsKernel && ch.ipvsadm) total += await timed(c, ['ipvsadm', '-R'], ch.ipvsadm);
    return total;
  };
  const changeSamples = await repeat(c, () => apply(g.change), async () => {
    await apply(g.revert);
  });
  return {
    toolStart: start, syncSamples, syncParts: parts, changeSamples,
    changeMethod: `the changed ipset entries (ipset restore -exist; kube-proxy runs one ipset command per entry), the proxier's fixed iptables input (iptables-restore --noflush)${c.ipvsKernel ? ' and the removed real server (ipvsadm -R of a -d line; kube-proxy uses netlink)' : `; the real server removal is skipped: ${noIpvs}`}. The full sync is ipset restore + iptables-restore${c.ipvsKernel ? ' + ipvsadm -R' : ''}`,
    kernel, skipped: [],
  };
}

async function waitForFile(c: StepContext, path: string, timeoutMs: number, message: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    c.signal?.throwIfAborted();
    if (Date.now() > deadline) throw new Error(message);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function latency(c: StepContext, targets: [LatencyTarget, LatencyTarget]): Promise<[LatencyMeasurement, LatencyMeasurement]> {
  const ready = join(c.dir, `${c.ns.name}.ready`);
  const log = join(c.dir, `${c.ns.name}.log`);
  c.signal?.throwIfAborted();
  c.serverPid = await c.r.spawnDetached(['ip', 'netns', 'exec', c.ns.name, process.execPath, PROBE_SCRIPT, 'serve', '--port', String(TARGET_PORT), '--ready-file', ready], log, { env: ownerEnv(c.ns.marker) });
  await waitForFile(c, ready, 10_000, `the probe server in ${c.ns.name} did not start (see ${log})`);
  const argv = [
    process.execPath, PROBE_SCRIPT, 'connect',
    '--targets', targets.map((t) => `${t.port.clusterIP}:${t.port.port}`).join(','),
    '--samples', String(c.o.samples), '--bind', c.clientIP, '--warmup', String(WARMUP),
  ];
  const res = await runIn(c, argv, { timeoutMs: 120_000 + c.o.samples * 2 * 1000 });
  let parsed: { targets: ProbeTargetOutput[] };
  try {
    parsed = JSON.parse(res.stdout.trim().split('\n').pop() ?? '');
  } catch {
    throw new Error(`\`${shellQuote(['ip', 'netns', 'exec', c.ns.name, ...argv])}\` printed no JSON line: ${JSON.stringify(res.stdout.slice(0, 300))} ${res.stderr.slice(0, 300)}`);
  }
  if (!Array.isArray(parsed.targets) || parsed.targets.length !== 2) throw new Error(`the probe client reported ${parsed.targets?.length ?? 0} targets, expected 2`);
  return targets.map((t, i) => {
    const out = parsed.targets[i];
    const reached = verifyDnat(out, t.port, c.clientIP);
    return {
      service: t.port.servicePortName, position: t.position, clusterIP: t.port.clusterIP, port: t.port.port,
      ...percentiles(out.samplesUs), samples: out.samplesUs.length, dnatVerified: true as const, endpointsReached: reached,
    };
  }) as [LatencyMeasurement, LatencyMeasurement];
}

/**
 * Empty the step's tables before its namespace is deleted (untimed). The kernel tears a deleted
 * namespace down in the background; with 100,000+ rules left in it that work, and the locks it
 * holds, overlap the next step and slowed its syncs several-fold. Flushed here, the cost stays in
 * the step that made the rules.
 */
async function clearRules(c: StepContext): Promise<void> {
  if (c.ipt) {
    // Without --noflush a restore flushes the tables it names and deletes their user chains.
    await runIn(c, [c.ipt.restore], { input: '*nat\nCOMMIT\n*filter\nCOMMIT\n' });
  }
  if (c.mode === 'nftables') await runIn(c, ['nft', 'flush', 'ruleset']);
  if (c.mode === 'ipvs') {
    if (c.ipvsKernel) await runIn(c, ['ipvsadm', '-C'], { allowFailure: true });
    await runIn(c, ['ipset', 'destroy'], { allowFailure: true });
  }
}

/** Stop what this step started in its namespace (the probe server, and any client left): they carry its marker. */
async function stopMarked(marker: string): Promise<void> {
  await stopProcesses(await processesMarked(marker), 2000);
}

async function toolVersions(r: Runner, variants: readonly { mode: ProxyMode; backend: IptablesBackend | null }[], ipvsKernel: boolean): Promise<Record<string, string>> {
  const want = new Set<string>();
  for (const { mode: m, backend } of variants) {
    const iptables = backend ? iptablesTools(backend).iptables : 'iptables';
    if (m === 'iptables') want.add(iptables);
    if (m === 'nftables') want.add('nft');
    if (m === 'ipvs') {
      want.add(iptables);
      want.add('ipset');
      if (ipvsKernel) want.add('ipvsadm');
    }
  }
  const out: Record<string, string> = {};
  for (const t of want) {
    const v = await r.run([t, '--version'], { allowFailure: true, timeoutMs: 10_000 });
    out[t] = (v.stdout || v.stderr).trim().split('\n')[0];
  }
  return out;
}
