// Benchmark of the live trace: 1000 new connections traced by the kernel (traceLive: the tracing
// rule put in and taken out, the monitor, the prediction, every walk parsed and compared) against
// the same 1000 connections from the same client untraced, in the same lab, alternating. The
// issue's target: traced at most 3× untraced. Each monitor is measured: the kit's netlink reader
// (the default) and nft monitor trace (what it replaced, for reference). Needs root.
//
//   npm run bench:trace -- [--modes iptables,nftables] [--monitors netlink,nft] [--runs 5] [--requests 1000] [--json]
import { parseArgs } from 'node:util';
import { median } from '../lib/sim/cost-model.ts';
import { traceLive, type LiveTraceMonitor } from '../lib/capture/live-trace.ts';
import { loadManifest } from '../lib/lab/manifests.ts';
import { createNetnsLab } from '../lib/lab/netns/index.ts';
import { isProxyMode, type ProxyMode } from '../lib/proxy/modes.ts';

const { values } = parseArgs({
  options: {
    modes: { type: 'string', default: 'iptables,nftables' },
    monitors: { type: 'string', default: 'netlink,nft' },
    runs: { type: 'string', default: '5' },
    requests: { type: 'string', default: '1000' },
    json: { type: 'boolean', default: false },
  },
});
const modes = values.modes.split(',').map((m) => {
  if (!isProxyMode(m) || m === 'ipvs') throw new Error(`mode ${m}: the live trace runs in iptables and nftables labs`);
  return m;
});
const monitors = values.monitors.split(',').map((m) => {
  if (m !== 'netlink' && m !== 'nft') throw new Error(`monitor ${m}: the benchmark measures netlink and nft (xtables-monitor traces one connection at a time)`);
  return m as LiveTraceMonitor;
});
const runs = Number(values.runs);
const requests = Number(values.requests);
/** traceLive's default (checkTrafficOptions'), with the kit's reader and nft alike. */
const concurrency = 10;


interface ModeResult {
  mode: ProxyMode;
  monitor: LiveTraceMonitor;
  /** traceLive from call to report. */
  tracedMs: number;
  /** Of which: the connections themselves, while traced. */
  tracedLoadMs: number;
  /** The load generator's own time for the untraced connections: the reference. */
  untracedMs: number;
  /** The whole lab.load call for them (starting the generator in the pod included), for context. */
  untracedCallMs: number;
  ratio: number;
  unexplained: number;
  packets: number;
}

const results: ModeResult[] = [];
for (const mode of modes as ProxyMode[]) {
  const lab = await createNetnsLab({ name: `bench-tr${mode.slice(0, 1)}`, mode });
  const traced = new Map(monitors.map((m) => [m, [] as number[]]));
  const tracedLoad = new Map(monitors.map((m) => [m, [] as number[]]));
  const untraced = new Map(monitors.map((m) => [m, [] as number[]]));
  const untracedCall = new Map(monitors.map((m) => [m, [] as number[]]));
  const unexplained = new Map(monitors.map((m) => [m, 0]));
  const packets = new Map(monitors.map((m) => [m, 0]));
  try {
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
    const httpbin = (await lab.services()).find((s) => s.name === 'httpbin')!;
    const url = `http://${httpbin.clusterIP}:8000/hostname`;
    await lab.load({ url, requests: 100, concurrency }); // warm-up, not counted
    for (let r = 0; r < runs; r++) {
      for (const monitor of monitors) {
        const c0 = performance.now();
        const u = await lab.load({ url, requests, concurrency });
        untracedCall.get(monitor)!.push(performance.now() - c0);
        if (u.ok !== requests) throw new Error(`untraced: ${u.ok} of ${requests} answered`);
        untraced.get(monitor)!.push(u.durationMs);
        const t0 = performance.now();
        const report = await traceLive(lab, { requests, concurrency, monitor });
        traced.get(monitor)!.push(performance.now() - t0);
        tracedLoad.get(monitor)!.push(report.connectionsMs);
        unexplained.set(monitor, unexplained.get(monitor)! + report.unexplained);
        packets.set(monitor, packets.get(monitor)! + report.packets);
      }
    }
  } finally {
    await lab.destroy();
  }
  for (const monitor of monitors) {
    const tracedMs = median(traced.get(monitor)!);
    const untracedMs = median(untraced.get(monitor)!);
    results.push({
      mode, monitor, tracedMs, tracedLoadMs: median(tracedLoad.get(monitor)!), untracedMs, untracedCallMs: median(untracedCall.get(monitor)!),
      ratio: +(tracedMs / untracedMs).toFixed(2), unexplained: unexplained.get(monitor)!, packets: packets.get(monitor)!,
    });
  }
}

if (values.json) console.log(JSON.stringify({ runs, requests, concurrency, target: 3, results }, null, 2));
else {
  console.log(`netns lab, ${requests} new connections from the curl pod to httpbin's ClusterIP at concurrency ${concurrency}, median of ${runs} runs`);
  for (const r of results) {
    console.log(`${r.mode}, ${r.monitor === 'netlink' ? 'the kit\'s netlink reader' : 'nft monitor trace'}: traced ${r.tracedMs.toFixed(0)} ms (the connections ${r.tracedLoadMs.toFixed(0)} ms of it), untraced ${r.untracedMs.toFixed(0)} ms (the whole call ${r.untracedCallMs.toFixed(0)} ms): ${r.ratio}× (target ≤ 3×); ${r.unexplained} unexplained of ${r.packets} walks`);
  }
}
