// Benchmark of the pure core at scale: generate, parse and trace kube-proxy's iptables rules for
// S services × E endpoints, each reported as a ratio to `iptables-restore --test` on the same
// text, measured in the same run. Needs root (the reference runs in a scratch namespace).
//
//   npm run bench:core -- [--services 10000] [--endpoints 10] [--runs 3] [--json]
import { parseArgs } from 'node:util';
import { withScratchNetns } from '../lib/exec/index.ts';
import { resolveServicePorts, syntheticCluster } from '../lib/k8s/index.ts';
import { findTable } from '../lib/parse/iptables-types.ts';
import { parseIptablesSave } from '../lib/parse/iptables-save.ts';
import { builtinJumpsRestore, generateIptables } from '../lib/proxy/iptables.ts';
import { traceIptables } from '../lib/trace/index.ts';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const S = Number(values.services);
const E = Number(values.endpoints);
const runs = Number(values.runs);
// 10k × 10 pods overflow kind's 10.244.0.0/16, so large sweeps use a /8 as their cluster CIDR.
const podSubnet = S * E > 60_000 ? '10.0.0.0/8' : '10.244.0.0/16';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function time<T>(fn: () => T | Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

const cluster = syntheticCluster({ services: S, endpoints: E, podSubnet });
const ports = resolveServicePorts(cluster, { nodeName: 'kind-worker' });
const last = ports[ports.length - 1];

const samples = { generate: [] as number[], parse: [] as number[], trace: [] as number[], restoreTest: [] as number[] };
let natRules = 0;
let bytes = 0;
await withScratchNetns('kn-bench', async (ns) => {
  for (let r = 0; r < runs; r++) {
    const gen = await time(() => generateIptables(ports, { nodeName: 'kind-worker', clusterCIDR: podSubnet }));
    samples.generate.push(gen.ms);
    const text = gen.value.restore;
    natRules = gen.value.counts.nat.rules;
    bytes = text.length;
    const ref = await time(() => ns.run(['iptables-restore', '--test'], { input: text, timeoutMs: 600_000 }));
    samples.restoreTest.push(ref.ms);
    // Parsed with the built-in jumps in front, as `rules --with-jumps` prints it, so the trace
    // enters at PREROUTING like a packet does.
    const withJumps = builtinJumpsRestore(gen.value.builtinJumps) + text;
    const parsed = await time(() => parseIptablesSave(withJumps));
    samples.parse.push(parsed.ms);
    if (!findTable(parsed.value, 'nat')) throw new Error('generated text has no nat table');
    // The whole path a pod's packet takes: nat PREROUTING, filter FORWARD, nat POSTROUTING.
    const traced = await time(() =>
      traceIptables({ dump: parsed.value, hook: 'PREROUTING', localAddresses: ['172.18.0.3'], packet: { protocol: 'tcp', src: '10.0.1.9', dst: last.clusterIP, dport: last.port, sport: 40000 } }),
    );
    samples.trace.push(traced.ms);
    if (traced.value.outcomes.length !== E) throw new Error(`trace found ${traced.value.outcomes.length} outcomes, expected ${E}`);
  }
});

const ref = median(samples.restoreTest);
const result = {
  services: S,
  endpoints: E,
  natRules,
  restoreBytes: bytes,
  runs,
  medianMs: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.round(median(v))])),
  ratioToRestoreTest: {
    generate: +(median(samples.generate) / ref).toFixed(3),
    parse: +(median(samples.parse) / ref).toFixed(3),
    trace: +(median(samples.trace) / ref).toFixed(4),
  },
};
if (values.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`${S} services × ${E} endpoints: ${natRules} nat rules, ${(bytes / 1e6).toFixed(1)} MB of restore input, median of ${runs} runs`);
  console.log(`  iptables-restore --test (reference)  ${result.medianMs.restoreTest} ms   1.00`);
  for (const k of ['generate', 'parse', 'trace'] as const) {
    console.log(`  ${k.padEnd(36)} ${String(result.medianMs[k]).padStart(5)} ms   ${result.ratioToRestoreTest[k]}`);
  }
}
