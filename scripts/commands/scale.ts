import { KIND_DEFAULTS } from '../../lib/k8s/index.ts';
import { ScaleOptionError, formatScaleTable, parseBackendList, parseModeList, parseSyncLimits, parseSizeList, resolveScaleOptions, runScaleSweep } from '../../lib/scale/index.ts';
import { progressLine } from '../../lib/scale/live.ts';
import { UsageError, intOption, printJson, stringOption, type CommandSpec } from '../cli.ts';

/** A thin wrapper over lib/scale's runScaleSweep: options in, progress on stderr, table or JSON out. */
export const scale: CommandSpec = {
  summary: 'time syncs and changes, first-packet latency and kernel counts per mode as services grow, beside a fitted cost model (root)',
  usage: 'scale [--modes iptables,nftables[,ipvs]] [--iptables-backends legacy,nft] [--services 10,100,1000] [--endpoints 10] [--samples 200] [--repeats 3] [--fit-max 1000] [--max-sync-seconds 60[,VARIANT=SECONDS…]] [--pod-subnet CIDR] [--echo] [--json]',
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
  },
  async run(args, io) {
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
    const ac = new AbortController();
    const stop = (sig: NodeJS.Signals) => ac.abort(new Error(`interrupted by ${sig}`));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
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
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  },
};
