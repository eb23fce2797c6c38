import { LiveTraceUnavailable, traceLive, type LiveTraceOptions, type LiveTraceReport } from '../../lib/capture/live-trace.ts';
import { openLab } from '../../lib/lab/create.ts';
import { checkLabName } from '../../lib/lab/types.ts';
import { quoteForTerminal } from '../../lib/parse/errors.ts';
import { provenanceLabel } from '../../lib/provenance/index.ts';
import { liveOutcomeTree, liveTreeLines } from '../../lib/trace/live.ts';
import { UsageError, intOption, printJson, stringOption, type Io, type ParsedArgs } from '../cli.ts';

/** Options only `trace --live` takes, and only `trace --dump` takes: each refused in the other. */
export const LIVE_ONLY = ['name', 'service', 'from', 'to', 'requests', 'concurrency', 'monitor'] as const;
export const DUMP_ONLY = ['dump', 'ipsets', 'ipvs', 'proto', 'src', 'dst', 'sport', 'dport', 'hook', 'local', 'no-postrouting'] as const;

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** `NS/NAME`, `NS/NAME:PORT` or `NAME` (namespace default); PORT a port's name or number. */
export function parseServiceOption(v: string): { namespace: string; name: string; port: string | null } {
  const m = /^(?:([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\/)?([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)(?::([a-z0-9](?:[-a-z0-9]*[a-z0-9])?))?$/.exec(v);
  if (!m) throw new UsageError(`--service must be NAMESPACE/NAME or NAMESPACE/NAME:PORT (PORT a port's name or number), got ${quoteForTerminal(v)}`);
  return { namespace: m[1] ?? 'default', name: m[2], port: m[3] ?? null };
}

/** The JSON the issue fixes: packets, paths, unexplained, chiSquare; with where the numbers come from. */
export function liveTraceJson(r: LiveTraceReport) {
  return {
    packets: r.packets,
    paths: r.paths.map((p) => ({ path: p.path, rules: p.rules, verdict: p.verdict, dnat: p.dnat, count: p.count, predicted: p.predicted })),
    unexplained: r.unexplained,
    chiSquare: r.chiSquare ? { statistic: r.chiSquare.statistic, degreesOfFreedom: r.chiSquare.degreesOfFreedom, pValue: r.chiSquare.pValue } : null,
    provenance: { observed: r.provenance, predicted: r.prediction.provenance },
    // IPVS mode: paths are the iptables part the kernel traced; the split over the real servers
    // is read from IPVS's counters (observed null, with the reason, where it could not be).
    ...(r.ipvs ? {
      ipvs: {
        virtualServer: r.ipvs.virtualServer,
        servers: r.ipvs.servers,
        extra: r.ipvs.extra,
        unavailable: r.ipvs.unavailable,
        provenance: r.ipvs.provenance,
      },
    } : {}),
  };
}

/** IPVS mode: the real servers with their predicted share and the connections IPVS's counters gave each. */
function ipvsSplitLines(split: NonNullable<LiveTraceReport['ipvs']>): string[] {
  const width = Math.max(...split.servers.map((s) => s.server.length), 0);
  return [
    `${split.virtualServer}: the split over its real servers, ${split.provenance ? `from ${provenanceLabel(split.provenance)}` : 'not observed'}`,
    ...split.servers.map((s) => `  ${s.server.padEnd(width)}  predicted ${(s.predicted * 100).toFixed(2).padStart(6)}% · observed ${s.observed === null ? '    —' : String(s.observed).padStart(5)}`),
    ...(split.unavailable ? [`  not read: ${split.unavailable}`] : []),
  ];
}

export function liveTraceText(r: LiveTraceReport): string[] {
  const chi = r.chiSquare
    ? `χ² ${r.chiSquare.statistic.toFixed(2)} on ${r.chiSquare.degreesOfFreedom} df, p = ${r.chiSquare.pValue.toFixed(3)}`
    : r.ipvs?.unavailable ? 'χ²: not computed (the IPVS split was not read)' : 'χ²: not computed (fewer than two outcomes possible)';
  return [
    `${r.packets} new connections from ${r.client} to ${r.service.namespace}/${r.service.name} (${r.service.via} ${r.service.ip}:${r.service.port}), traced in the kernel of ${r.node} from ${r.hook}; ${r.answered} of ${r.requests} answered`,
    `observed: ${provenanceLabel(r.provenance)}; predicted: ${provenanceLabel(r.prediction.provenance)}`,
    `tracing rule: ${r.commands.rules}`,
    `read by: ${r.commands.monitor}`,
    '',
    ...liveTreeLines(liveOutcomeTree(r.prediction.result, r), r.packets),
    '',
    ...(r.ipvs ? [...ipvsSplitLines(r.ipvs), ''] : []),
    `unexplained: ${r.unexplained} of ${r.packets} paths are none the tracer predicts; ${chi}`,
    ...(r.retransmissions > 0 ? [`${r.retransmissions} SYNs sent again by the client were traced too, and counted once`] : []),
    ...r.notes.map((n) => `note: ${n}`),
  ];
}

/** `kube-netlab trace --live`: the kernel's trace of N new connections, beside the prediction. */
export async function runLiveTrace(args: ParsedArgs, io: Io): Promise<number | void> {
  for (const k of DUMP_ONLY) if (args.values[k] !== undefined) throw new UsageError(`--${k} goes with --dump; --live reads the rules from the lab's node`);
  let name: string;
  try {
    name = checkLabName(stringOption(args, 'name') ?? 'netlab');
  } catch (e) {
    throw new UsageError(`--name: ${(e as Error).message}`);
  }
  const svc = parseServiceOption(stringOption(args, 'service') ?? 'default/httpbin');
  const requests = intOption(args, 'requests', 1000, { min: 1, max: 100_000 });
  const concurrency = args.values.concurrency === undefined ? undefined : intOption(args, 'concurrency', 10, { min: 1, max: 1000 });
  const monitor = stringOption(args, 'monitor');
  if (monitor !== undefined && monitor !== 'netlink' && monitor !== 'nft' && monitor !== 'xtables') throw new UsageError(`--monitor must be netlink, nft or xtables, got ${quoteForTerminal(monitor)}`);
  const lab = await openLab(name);
  const fromName = stringOption(args, 'from');
  const nodes = await lab.nodes();
  const from = fromName === undefined ? undefined : nodes.some((n) => n.name === fromName) ? { node: fromName } : { pod: fromName };
  const toName = stringOption(args, 'to');
  const to = toName === undefined || toName === 'clusterip' ? 'clusterIP' as const : toName === 'loadbalancer' ? 'loadBalancer' as const : { node: toName };
  let portName: string | undefined;
  if (svc.port !== null) {
    const found = (await lab.services()).find((s) => s.namespace === svc.namespace && s.name === svc.name);
    const port = found?.ports.find((p) => p.name === svc.port || String(p.port) === svc.port);
    if (found && !port) throw new UsageError(`--service: ${svc.namespace}/${svc.name} has no port ${quoteForTerminal(svc.port)} (it has ${found.ports.map((p) => `${p.name || '(unnamed)'} ${p.port}`).join(', ')})`);
    portName = port?.name || undefined;
  }
  const t0 = performance.now();
  const say = (step: string) => io.err(`[${((performance.now() - t0) / 1000).toFixed(2)}s] ${step}`);
  // Ctrl-C, SIGTERM or a closed terminal: the tracing rules come off before the process ends; a
  // second signal exits at once, and `kube-netlab gc` removes what is left.
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(130);
    io.err(`${sig}: stopping the trace and removing its rules (again to quit at once)`);
    ac.abort();
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  const opts: LiveTraceOptions = {
    namespace: svc.namespace, service: svc.name, requests, signal: ac.signal, onProgress: say,
    ...(portName !== undefined ? { portName } : {}), ...(concurrency !== undefined ? { concurrency } : {}),
    ...(from ? { from } : {}), to, ...(monitor ? { monitor } : {}),
  };
  let report: LiveTraceReport;
  try {
    report = await traceLive(lab, opts);
  } catch (e) {
    if (ac.signal.aborted) {
      io.err('kube-netlab trace: stopped; the tracing rules were removed');
      return 130;
    }
    if (e instanceof LiveTraceUnavailable) {
      io.err(`kube-netlab trace: cannot trace live here: ${e.message}`);
      return 3;
    }
    throw e;
  } finally {
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
  }
  if (args.values.json) return printJson(io, liveTraceJson(report));
  for (const l of liveTraceText(report)) io.out(l);
}
