import { KIND_DEFAULTS } from '../../lib/k8s/index.ts';
import { ScaleOptionError, formatScaleTable, parseBackendList, parseModeList, parseSyncLimits, parseSizeList, resolveScaleOptions, runScaleSweep } from '../../lib/scale/index.ts';
import { progressLine } from '../../lib/scale/live.ts';
import { UsageError, intOption, printJson, stringOption, type CommandSpec, type Io, type ParsedArgs } from '../cli.ts';
import { runner } from '../../lib/exec/index.ts';
import { openLab } from '../../lib/lab/create.ts';
import { NoKindClusterError, labelSelector, type KindLab } from '../../lib/lab/kind/index.ts';
import { checkLabName } from '../../lib/lab/types.ts';
import { provenance } from '../../lib/provenance/index.ts';
import { KUBE_PROXY_METRICS_ARGV, SYNC_HISTOGRAMS, SweepCleanupError, kindSyncSweep, sweepSelector, type KindSyncStep } from '../../lib/scale/kube-proxy-metrics.ts';
import { shellQuote } from '../../lib/exec/runner.ts';

/** A thin wrapper over lib/scale's runScaleSweep: options in, progress on stderr, table or JSON out. */
export const scale: CommandSpec = {
  summary: 'time syncs and changes, first-packet latency and kernel counts per mode as services grow, beside a fitted cost model (root); with --kind, kube-proxy\'s own sync timings on a kind lab',
  usage: 'scale [--modes iptables,nftables[,ipvs]] [--iptables-backends legacy,nft] [--services 10,100,1000] [--endpoints 10] [--samples 200] [--repeats 3] [--fit-max 1000] [--max-sync-seconds 60[,VARIANT=SECONDS…]] [--pod-subnet CIDR] [--echo] [--json]\n'
    + '       kube-netlab scale --kind NAME [--services 10,100,1000] [--node NODE] [--echo] [--json]   (real kube-proxy\'s own sync timings on a kind lab)',
  options: {
    modes: { type: 'string' },
    'iptables-backends': { type: 'string' },
    services: { type: 'string' },
    endpoints: { type: 'string' },
    samples: { type: 'string' },
    repeats: { type: 'string' },
    'fit-max': { type: 'string' },
    'max-sync-seconds': { type: 'string' },
    'pod-subnet': { type: 'string' },
    echo: { type: 'boolean' },
    kind: { type: 'string' },
    node: { type: 'string' },
  },
  async run(args, io) {
    if (args.values.kind !== undefined) return runKindScale(args, io);
    if (args.values.node !== undefined) throw new UsageError('--node goes with --kind NAME: it picks the kind node whose kube-proxy is read');
    let opts;
    try {
      const endpoints = intOption(args, 'endpoints', 10);
      const samples = intOption(args, 'samples', 200);
      const repeats = intOption(args, 'repeats', 3);
      const fitMaxServices = intOption(args, 'fit-max', 1000);
      const limits = parseSyncLimits(stringOption(args, 'max-sync-seconds') ?? '60');
      for (const [k, v] of [['endpoints', endpoints], ['samples', samples], ['repeats', repeats], ['fit-max', fitMaxServices]] as const) {
        if (v < 1) throw new UsageError(`--${k} must be at least 1, got ${v}`);
      }
      opts = resolveScaleOptions({
        modes: parseModeList(stringOption(args, 'modes') ?? 'iptables,nftables'),
        iptablesBackends: parseBackendList(stringOption(args, 'iptables-backends') ?? 'nft'),
        services: parseSizeList(stringOption(args, 'services') ?? '10,100,1000'),
        endpoints, samples, repeats, fitMaxServices, ...limits,
        podSubnet: stringOption(args, 'pod-subnet'),
      });
    } catch (e) {
      if (e instanceof ScaleOptionError) throw new UsageError(e.message);
      throw e;
    }
    if (process.getuid?.() !== 0) throw new UsageError('the scale lab creates network namespaces and loads kube-proxy\'s rules into them, which needs root: run it with sudo');
    if (stringOption(args, 'pod-subnet') === undefined && opts.podSubnet !== KIND_DEFAULTS.podSubnet) {
      io.err(`pods are addressed from ${opts.podSubnet}: ${opts.services.at(-1)} services × ${opts.endpoints} endpoints do not fit kind's ${KIND_DEFAULTS.podSubnet} (pass --pod-subnet to choose)`);
    }

    // Ctrl-C stops the sweep between commands; the step's namespace is deleted before we exit.
    const ac = abortOnStop();
    try {
      const result = await runScaleSweep({
        ...opts,
        signal: ac.signal,
        echo: args.values.echo ? (cmd) => io.err(`    $ ${cmd}`) : undefined,
        onProgress: (e) => {
          const line = progressLine(e);
          if (line !== null) io.err(line);
        },
      });
      if (args.values.json) return printJson(io, result);
      io.out(formatScaleTable(result));
    } catch (e) {
      if (ac.signal.aborted) {
        io.err(`kube-netlab scale: ${(ac.signal.reason as Error).message}; the step's namespace was deleted, nothing was reported`);
        return 130;
      }
      throw e;
    } finally {
      ac.off();
    }
  },
};

/** SIGINT and SIGTERM abort with `interrupted by SIG` (`note` told of the first); `off` stops listening. */
function abortOnStop(note?: (sig: NodeJS.Signals) => void): { signal: AbortSignal; off: () => void } {
  const ac = new AbortController();
  const stop = (sig: NodeJS.Signals) => {
    if (!ac.signal.aborted) note?.(sig);
    ac.abort(new Error(`interrupted by ${sig}`));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return {
    signal: ac.signal,
    off: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}

/** The netns sweep's options: they shape rules the kit generates, which the kind sweep has none of. */
const NETNS_ONLY = ['modes', 'iptables-backends', 'endpoints', 'samples', 'repeats', 'fit-max', 'max-sync-seconds', 'pod-subnet'] as const;

const SOURCE = `kube-proxy's sync-proxy-rules duration histograms (${Object.values(SYNC_HISTOGRAMS).join(', ')}) from its metrics endpoint, ${KUBE_PROXY_METRICS_ARGV.at(-1)}`;

/**
 * `scale --kind NAME`: on a kind lab of the kit, create Services through kubectl and read what
 * real kube-proxy timed for its syncs; the Services are deleted at the end, Ctrl-C included.
 */
async function runKindScale(args: ParsedArgs, io: Io): Promise<number | void> {
  for (const k of NETNS_ONLY) {
    if (args.values[k] !== undefined) throw new UsageError(`--${k} is an option of the netns sweep; --kind reads what real kube-proxy timed, for --services only (leave out --${k}, or --kind)`);
  }
  let name: string;
  try {
    name = checkLabName(stringOption(args, 'kind') ?? '');
  } catch (e) {
    throw new UsageError(`--kind: ${(e as Error).message}`);
  }
  let sizes: number[];
  try {
    sizes = parseSizeList(stringOption(args, 'services') ?? '10,100,1000');
  } catch (e) {
    if (e instanceof ScaleOptionError) throw new UsageError(e.message);
    throw e;
  }
  const onNetns = () => new UsageError(`lab ${name} is on the netns backend, which runs no kube-proxy: \`kube-netlab scale\` (without --kind) sweeps the kit's rules in namespaces; for real kube-proxy bring up a kind lab (\`kube-netlab up --backend kind --name NAME\`) and pass --kind NAME`);
  const { listStates } = await import('../../lib/lab/netns/state.ts');
  if ((await listStates()).includes(name)) throw onNetns();

  // Ctrl-C stops the sweep's commands; its Services are deleted before we exit.
  const ac = abortOnStop((sig) => io.err(`${sig}: stopping the sweep and deleting its Services`));
  try {
    const r = runner.withEcho(args.values.echo ? (cmd) => io.err(`    $ ${cmd}`) : undefined).withSignal(ac.signal);
    let opened;
    try {
      opened = await openLab(name, 'kind', r);
    } catch (e) {
      if (e instanceof NoKindClusterError) throw new UsageError(e.message);
      throw e;
    }
    // KUBE_NETLAB_BACKEND=netns overrides the backend openLab is asked for.
    if (opened.backend !== 'kind') throw onNetns();
    const lab = opened as KindLab;
    const nodes = await lab.nodes();
    const wanted = stringOption(args, 'node');
    const node = wanted === undefined ? nodes.find((n) => n.role === 'worker')?.name : nodes.find((n) => n.name === wanted)?.name;
    if (node === undefined) {
      throw new UsageError(wanted === undefined ? `lab ${name} has no worker node: pass --node (one of ${nodes.map((n) => n.name).join(', ')})` : `lab ${name} has no node ${wanted} (it has ${nodes.map((n) => n.name).join(', ')})`);
    }
    const selector = labelSelector(sweepSelector(name));
    io.err(`kind lab ${name} (${lab.mode}): creating up to ${sizes.at(-1)} Services labelled ${selector}, reading kube-proxy's metrics on ${node}`);
    const steps = await kindSyncSweep(lab, node, sizes, {
      signal: ac.signal,
      onStep: (s) => io.err(`  ${s.services} services: ${s.all.syncs} syncs${s.settled ? '' : ' (still syncing when the wait ran out)'}`),
    });
    io.err(`deleted the Services labelled ${selector}`);
    const prov = provenance({ source: 'measured', backend: 'kind', mode: lab.mode, node, lab: name, command: shellQuote(['docker', 'exec', node, ...KUBE_PROXY_METRICS_ARGV]) });
    if (args.values.json) return printJson(io, { provenance: prov, source: SOURCE, steps });
    io.out(formatKindSteps(steps, `measured · kind/${lab.mode} · ${node}: ${SOURCE}`));
  } catch (e) {
    if (ac.signal.aborted) {
      io.err(`kube-netlab scale: ${(ac.signal.reason as Error).message}; ${e instanceof SweepCleanupError ? e.message : 'the sweep\'s Services were deleted'}, nothing was reported`);
      return 130;
    }
    throw e;
  } finally {
    ac.off();
  }
}

const seconds = (v: number | null | undefined) => (v === null || v === undefined ? '-' : v.toFixed(4));

/** One row per size: what kube-proxy ran and timed while that many Services were created. */
function formatKindSteps(steps: readonly KindSyncStep[], caption: string): string {
  const head = ['services', 'syncs', 'mean s', 'p50 s', 'p99 s', 'full', 'partial', 'settled'];
  const rows = steps.map((s) => [String(s.services), String(s.all.syncs), seconds(s.all.meanS), seconds(s.all.p50S), seconds(s.all.p99S),
    s.full ? String(s.full.syncs) : '-', s.partial ? String(s.partial.syncs) : '-', s.settled ? 'yes' : 'no']);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  return [caption, line(head), ...rows.map(line),
    'p50/p99: estimated from the histogram\'s buckets, as Prometheus\' histogram_quantile does; full/partial: "-" where this kube-proxy does not report them apart'].join('\n');
}
