// Benchmark of the netns lab: bring-up to the first answered request (3 nodes, 3 httpbin pods)
// and requests per second through the Service, each beside a reference measured in the same run:
// bring-up against creating and deleting as many bare namespaces, Service throughput against the
// same client talking to a pod's own address (no DNAT). Needs root.
//
//   npm run bench:lab -- [--modes iptables,nftables] [--runs 3] [--requests 3000] [--concurrency 50] [--json]
import { parseArgs } from 'node:util';
import { median } from '../lib/sim/cost-model.ts';
import { runner } from '../lib/exec/index.ts';
import { loadManifest } from '../lib/lab/manifests.ts';
import { createNetnsLab } from '../lib/lab/netns/index.ts';
import { labPrefix } from '../lib/lab/netns/names.ts';
import { listNamespaces } from '../lib/lab/netns/topology.ts';
import { isProxyMode, type ProxyMode } from '../lib/proxy/modes.ts';

const { values } = parseArgs({
  options: {
    modes: { type: 'string', default: 'iptables,nftables' },
    runs: { type: 'string', default: '3' },
    requests: { type: 'string', default: '3000' },
    concurrency: { type: 'string', default: '50' },
    json: { type: 'boolean', default: false },
  },
});
const modes = values.modes.split(',').map((m) => {
  if (!isProxyMode(m)) throw new Error(`unknown mode ${m}`);
  return m;
});
const runs = Number(values.runs);
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);


async function bareNamespaces(count: number): Promise<number> {
  const t0 = performance.now();
  const names = Array.from({ length: count }, (_, i) => `kn-bench-${process.pid}-ref${i}`);
  for (const n of names) await runner.run(['ip', 'netns', 'add', n]);
  for (const n of names) await runner.run(['ip', 'netns', 'del', n]);
  return performance.now() - t0;
}

interface ModeResult {
  mode: ProxyMode;
  upToFirstAnswerMs: number;
  bareNamespacesMs: number;
  namespaces: number;
  serviceRps: number;
  podRps: number;
}

const results: ModeResult[] = [];
for (const mode of modes as ProxyMode[]) {
  const up: number[] = [];
  const bare: number[] = [];
  const svc: number[] = [];
  const pod: number[] = [];
  let namespaces = 0;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const lab = await createNetnsLab({ name: `bench-${mode.slice(0, 3)}`, mode });
    try {
      await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
      const httpbin = (await lab.services()).find((s) => s.name === 'httpbin')!;
      const first = await lab.load({ url: `http://${httpbin.clusterIP}:8000/hostname`, requests: 1, concurrency: 1 });
      if (first.ok !== 1) throw new Error(`first request failed: ${JSON.stringify(first)}`);
      up.push(performance.now() - t0);
      namespaces = (await listNamespaces(runner)).filter((ns) => ns.startsWith(labPrefix(lab.name))).length;
      if (mode !== 'ipvs') {
        const viaService = await lab.load({ url: `http://${httpbin.clusterIP}:8000/hostname`, requests, concurrency });
        const target = (await lab.pods({ app: 'httpbin' }))[0];
        const direct = await lab.load({ url: `http://${target.ip}:8080/hostname`, requests, concurrency });
        svc.push((viaService.ok * 1000) / viaService.durationMs);
        pod.push((direct.ok * 1000) / direct.durationMs);
      }
    } finally {
      await lab.destroy();
    }
    bare.push(await bareNamespaces(namespaces));
  }
  results.push({ mode, upToFirstAnswerMs: median(up), bareNamespacesMs: median(bare), namespaces, serviceRps: svc.length ? median(svc) : 0, podRps: pod.length ? median(pod) : 0 });
}

if (values.json) console.log(JSON.stringify({ runs, requests, concurrency, results }, null, 2));
else {
  console.log(`netns lab, 3 nodes + 3 httpbin pods + client, median of ${runs} runs; ${requests} requests at concurrency ${concurrency}`);
  for (const r of results) {
    console.log(`${r.mode}:`);
    console.log(`  up → first answer        ${r.upToFirstAnswerMs.toFixed(0).padStart(6)} ms   ${(r.upToFirstAnswerMs / r.bareNamespacesMs).toFixed(2)}× creating+deleting ${r.namespaces} bare namespaces (${r.bareNamespacesMs.toFixed(0)} ms)`);
    if (r.serviceRps) console.log(`  through the Service       ${r.serviceRps.toFixed(0).padStart(6)} req/s   ${(r.serviceRps / r.podRps).toFixed(2)}× the same client straight to one pod (${r.podRps.toFixed(0)} req/s)`);
  }
}
