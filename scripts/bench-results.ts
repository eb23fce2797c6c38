// `npm run bench`: runs every benchmark, then writes labs/results/results.json and
// labs/results/README.md, the results file the README quotes. Each figure keeps the command that
// reproduces it and the machine it came from. Needs root (the lab and scale benchmarks use
// network namespaces); takes several minutes.
//
//   npm run bench -- [--only core,lab,scale] [--out labs/results]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { runner, shellQuote } from '../lib/exec/index.ts';
import { PROJECT_ROOT as ROOT, projectPath } from '../lib/project/index.ts';
import { claimVerdicts } from '../lib/scale/live.ts';
import { PUBLISHED_SOURCES } from '../lib/sim/published.ts';
import type { ScaleResult as SweepResult } from '../lib/scale/types.ts';

/** Each benchmark as a user would type it; `--json` is appended when it runs here. */
export const BENCHMARKS = {
  core: ['npm', 'run', 'bench:core'],
  lab: ['npm', 'run', 'bench:lab'],
  trace: ['npm', 'run', 'bench:trace'],
  // iptables on both backends; iptables-nft is held to 60 s a sync, so its 5,000 and 10,000 are
  // estimated, not run, and the sweep fits in about 10 minutes.
  scale: [
    'npx', 'kube-netlab', 'scale', '--modes', 'iptables,nftables', '--iptables-backends', 'legacy,nft',
    '--services', '10,100,1000,5000,10000', '--endpoints', '10', '--max-sync-seconds', '300,iptables-nft=60',
  ],
} as const;
export type BenchmarkName = keyof typeof BENCHMARKS;

/** The built script each `npm run` above runs, behind the build check, as package.json says. */
const NPM_SCRIPTS: Record<string, string> = {
  'bench:core': 'out/build/scripts/bench-core.js',
  'bench:lab': 'out/build/scripts/bench-lab.js',
  'bench:trace': 'out/build/scripts/bench-trace.js',
};

interface CoreResult {
  services: number; endpoints: number; natRules: number; restoreBytes: number; runs: number;
  medianMs: Record<'generate' | 'parse' | 'trace' | 'restoreTest', number>;
  ratioToRestoreTest: Record<'generate' | 'parse' | 'trace', number>;
}
interface LabResult {
  runs: number; requests: number; concurrency: number;
  results: { mode: string; upToFirstAnswerMs: number; bareNamespacesMs: number; namespaces: number; serviceRps: number; podRps: number }[];
}
interface TraceResult {
  runs: number; requests: number; concurrency: number; target: number;
  results: { mode: string; monitor?: string; tracedMs: number; tracedLoadMs: number; untracedMs: number; untracedCallMs?: number; ratio: number; unexplained: number; packets: number }[];
}
/** The fields of `kube-netlab scale --json` this page shows; the JSON file keeps all of it. */
interface ScaleResult {
  skippedSteps?: { mode: string; variant?: string; services: number; reason: string }[];
  durationMs?: number;
  points: {
    mode: string; variant?: string; iptablesBackend?: string | null; services: number; endpoints: number;
    measured: Record<string, unknown>;
    predicted: Record<string, unknown>;
  }[];
}

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: Object.keys(BENCHMARKS).join(',') },
    out: { type: 'string', default: join(ROOT, 'labs', 'results') },
  },
});

async function runBenchmark(name: BenchmarkName): Promise<unknown> {
  const bench: readonly string[] = BENCHMARKS[name];
  const npmScript = bench[0] === 'npm' && bench[1] === 'run' ? NPM_SCRIPTS[bench[2]] : undefined;
  // npm run passes arguments on only after `--`.
  const argv = [...bench, ...(npmScript ? ['--'] : []), '--json'];
  // Run what npm and npx would run, directly, so no npm or npx start-up is timed.
  const direct = npmScript ? [process.execPath, '--import', projectPath('scripts', 'build-guard.mjs'), projectPath(npmScript), '--json']
    : argv[0] === 'npx' && argv[1] === 'kube-netlab' ? [process.execPath, projectPath('scripts', 'kube-netlab.mjs'), ...argv.slice(2)]
    : [...argv];
  process.stderr.write(`==> ${shellQuote(argv)}\n`);
  const res = await runner.run(direct, { cwd: ROOT, timeoutMs: 60 * 60_000, teeStderr: true });
  return JSON.parse(res.stdout) as unknown;
}

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function coreSection(r: CoreResult): string[] {
  return [
    `## Core: ${fmt(r.services)} services × ${r.endpoints} endpoints`,
    '',
    `\`${shellQuote(BENCHMARKS.core)}\`: kube-proxy's iptables rules (${fmt(r.natRules)} nat rules, ${(r.restoreBytes / 1e6).toFixed(1)} MB of restore input), median of ${r.runs} runs, each step beside \`iptables-restore --test\` on the same text in the same run.`,
    '',
    '| step | time | ratio to `iptables-restore --test` |',
    '|---|---:|---:|',
    `| \`iptables-restore --test\` (reference) | ${fmt(r.medianMs.restoreTest)} ms | 1.00 |`,
    `| generate (lib/proxy) | ${fmt(r.medianMs.generate)} ms | ${r.ratioToRestoreTest.generate} |`,
    `| parse (lib/parse) | ${fmt(r.medianMs.parse)} ms | ${r.ratioToRestoreTest.parse} |`,
    `| trace a pod's packet to the last service through nat and filter (lib/trace) | ${fmt(r.medianMs.trace)} ms | ${r.ratioToRestoreTest.trace} |`,
    '',
  ];
}

function labSection(r: LabResult): string[] {
  const rows = r.results.map((m) => {
    const svc = m.serviceRps ? `${fmt(m.serviceRps)} req/s (${(m.serviceRps / m.podRps).toFixed(2)}× ${fmt(m.podRps)} straight to a pod)` : 'not measured (no IPVS data path)';
    return `| ${m.mode} | ${fmt(m.upToFirstAnswerMs)} ms (${(m.upToFirstAnswerMs / m.bareNamespacesMs).toFixed(2)}× ${m.namespaces} bare namespaces, ${fmt(m.bareNamespacesMs)} ms) | ${svc} |`;
  });
  return [
    '## Lab: bring-up and traffic (netns backend)',
    '',
    `\`${shellQuote(BENCHMARKS.lab)}\`: 3 nodes, 3 httpbin pods and a client, median of ${r.runs} runs; ${fmt(r.requests)} requests at concurrency ${r.concurrency}, one connection each.`,
    '',
    '| mode | up → first answer (reference: create and delete as many bare namespaces) | through the Service (reference: the same client straight to one pod) |',
    '|---|---|---|',
    ...rows,
    '',
  ];
}

function traceSection(r: TraceResult): string[] {
  const monitorName = (m: string | undefined) => (m === 'nft' ? '`nft -a monitor trace`' : 'the kit\'s netlink reader');
  const rows = r.results.map((m) => `| ${m.mode} | ${monitorName(m.monitor)} | ${fmt(m.tracedMs)} ms (the connections ${fmt(m.tracedLoadMs)} ms of it) | ${fmt(m.untracedMs)} ms${m.untracedCallMs !== undefined ? ` (the whole call ${fmt(m.untracedCallMs)} ms)` : ''} | ${m.ratio.toFixed(2)}× ${m.ratio <= r.target ? '(within' : '(over'} ${r.target}×) | ${m.unexplained} of ${fmt(m.packets)} |`);
  return [
    '## Live trace: the kernel tracing 1000 connections (netns backend)',
    '',
    `\`${shellQuote(BENCHMARKS.trace)}\`: ${fmt(r.requests)} new connections from the curl pod to httpbin's ClusterIP at concurrency ${r.concurrency}, traced (\`traceLive\`, from the call to the report: the prediction, the tracing rule in and out, the monitor, every walk parsed and compared) against the same connections untraced, alternating in one lab, median of ${r.runs} runs. Target: at most ${r.target}×. The kit's netlink reader (the default: \`/usr/bin/python3 -I -\` with lib/capture/nftrace-reader.ts's program, the kernel's trace events with rule handles, written in batches) is measured beside \`nft -a monitor trace\` (3.5–4.3 KB of text per traced connection, a line per write, against 1.3–1.9 KB from the reader), which reads the same events. The reference is the load generator's own time for the untraced connections; the whole \`lab.load\` call (starting the generator in the pod, which the traced run includes) is shown beside it.`,
    '',
    '| mode | monitor | traced | untraced (reference) | ratio | unexplained walks |',
    '|---|---|---:|---:|---:|---:|',
    ...rows,
    '',
  ];
}

const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
const pick = (o: unknown, ...path: string[]): number | undefined => {
  let cur = o;
  for (const k of path) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[k] : undefined;
  return num(cur);
};
const cell = (v: number | undefined, digits = 0) => (v === undefined ? '—' : fmt(v, digits));

function claimSection(r: ScaleResult): string[] {
  const blog = PUBLISHED_SOURCES.find((s) => s.id === 'k8s-blog-nftables-2025')!;
  const rows = claimVerdicts(r as unknown as SweepResult, blog.id).map((v) => `| ${v.statement} | ${v.compared} | **${v.verdict}** | ${v.evidence} |`);
  return [
    `### The claims of "${blog.title}" (${blog.url})`,
    '',
    'Each claim checked against this sweep, once per iptables backend; the evidence names the threshold that decides it.',
    '',
    '| claim | compared | verdict | evidence and threshold |',
    '|---|---|---|---|',
    ...rows,
    '',
  ];
}

function scaleSection(r: ScaleResult): string[] {
  const rows = r.points.map((p) => {
    const m = p.measured;
    const q = p.predicted;
    return `| ${p.variant ?? p.mode} | ${fmt(p.services)} | ${cell(pick(m, 'syncMs'), 1)} | ${cell(pick(q, 'syncMs'), 1)} | ${cell(pick(m, 'changeMs'), 1)} | ${cell(pick(m, 'firstServiceLatencyUs', 'p50'))} / ${cell(pick(m, 'lastServiceLatencyUs', 'p50'))} | ${cell(pick(q, 'lastServiceLatencyUs', 'p50'))} |`;
  });
  return [
    '## Scale: what rule counts cost on this kernel',
    '',
    `\`${shellQuote(BENCHMARKS.scale)}\`: each step in its own private namespace, iptables mode once per iptables backend (\`iptables-legacy-restore\` and \`iptables-nft-restore\`). Full syncs and one-endpoint changes are shaped as kube-proxy writes them: iptables-restore of every chain, then the partial restore of KEP-3453; nftables' full transaction (add and flush, never deleting the table) and its incremental one. The predictions come from lib/sim's cost model (times as power laws in the rules a sync writes, latency as a line in the rules a first packet walks), fitted per variant on the sizes up to 1,000 of the same run.${r.durationMs ? ` The sweep took ${fmt(r.durationMs / 60_000, 1)} minutes.` : ''}`,
    '',
    '| variant | services | full sync, measured (ms) | predicted (ms) | one-endpoint change (ms) | first-packet latency p50, first / last service (µs) | last service, predicted (µs) |',
    '|---|---:|---:|---:|---:|---|---:|',
    ...rows,
    '',
    ...((r.skippedSteps ?? []).length > 0
      ? ['Steps not run (nothing measured):', '', ...(r.skippedSteps ?? []).map((x) => `- ${x.variant ?? x.mode}, ${fmt(x.services)} services: ${x.reason}.`), '']
      : []),
    ...claimSection(r),
  ];
}

async function main(): Promise<void> {
  const names = values.only.split(',').map((n) => {
    if (!(n in BENCHMARKS)) throw new Error(`unknown benchmark ${n}: one of ${Object.keys(BENCHMARKS).join(', ')}`);
    return n as BenchmarkName;
  });
  const outDir = values.out;
  mkdirSync(outDir, { recursive: true });
  const jsonFile = join(outDir, 'results.json');
  // Keep the benchmarks not re-run this time, so `--only scale` updates one section.
  let previous: Record<string, unknown> = {};
  try { previous = (JSON.parse(readFileSync(jsonFile, 'utf8')) as { benchmarks?: Record<string, unknown> }).benchmarks ?? {}; } catch { /* first run */ }
  const benchmarks: Record<string, unknown> = { ...previous };
  for (const name of names) {
    // Timings are only as quiet as the machine: keep its load beside them.
    const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);
    const at = new Date().toISOString();
    const result = await runBenchmark(name);
    benchmarks[name] = { command: shellQuote(BENCHMARKS[name]), at, load: { before: loadBefore, after: loadavg().map((x) => Math.round(x * 100) / 100), cores: cpus().length }, result };
  }

  const machine = {
    kernel: release(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    node: process.version,
  };
  writeFileSync(jsonFile, `${JSON.stringify({ kind: 'measured', backend: 'netns', machine, benchmarks }, null, 2)}\n`);

  const section = (name: BenchmarkName, f: (r: never) => string[]) => {
    const b = benchmarks[name] as { at: string; load?: { before: number[]; after: number[]; cores: number }; result: never } | undefined;
    const load = b?.load ? ` Load average (1, 5, 15 min) on ${b.load.cores} cores: ${b.load.before.join(', ')} before, ${b.load.after.join(', ')} after.` : '';
    return b ? [...f(b.result), `_Measured ${b.at.slice(0, 10)}.${load}_`, ''] : [];
  };
  const md = [
    '# Benchmark results',
    '',
    'Measured, not predicted, except where a column says "predicted". Written by `npm run bench`',
    '(`scripts/bench-results.ts`), which runs each command below with `--json` and keeps its raw',
    'output in `results.json`. Speeds are ratios to a reference run on the same machine in the same',
    'run, so they carry over between machines better than the absolute times do.',
    '',
    `Machine: Linux ${machine.kernel}, ${machine.cores} × ${machine.cpu}, Node.js ${machine.node}.`,
    '',
    ...section('core', coreSection as (r: never) => string[]),
    ...section('lab', labSection as (r: never) => string[]),
    ...section('trace', traceSection as (r: never) => string[]),
    ...section('scale', scaleSection as (r: never) => string[]),
  ].join('\n');
  writeFileSync(join(outDir, 'README.md'), md);
  process.stderr.write(`wrote ${relative(ROOT, jsonFile)} and ${relative(ROOT, join(outDir, 'README.md'))}\n`);
}

await main();
