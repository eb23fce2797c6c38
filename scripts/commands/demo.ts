import { join } from 'node:path';
import { captureNode, parsedOf, saveCapture } from '../../lib/capture/index.ts';
import { createLab, type BackendChoice } from '../../lib/lab/create.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { PROXY_MODES, isProxyMode, type ProxyMode } from '../../lib/proxy/modes.ts';
import { resolveServicePorts } from '../../lib/k8s/resolve.ts';
import { findTable } from '../../lib/parse/index.ts';
import { generateIptables } from '../../lib/proxy/iptables.ts';
import { generateIpvs } from '../../lib/proxy/ipvs.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import { measureTraffic } from '../../lib/traffic/index.ts';
import { UsageError, intOption, printJson, stringOption, type CommandSpec } from '../cli.ts';

/**
 * The main job: a lab per proxy mode on the default backend, the workshop's httpbin deployed,
 * traffic measured beside the prediction, every node captured into a run folder, then removed.
 */
export const demo: CommandSpec = {
  summary: 'run the workshop end to end in each kube-proxy mode: up, deploy, traffic beside prediction, capture, down',
  usage: 'demo [--modes iptables,nftables,ipvs] [--backend netns|kind|auto] [--requests N] [--out DIR] [--json]',
  options: { modes: { type: 'string' }, backend: { type: 'string' }, requests: { type: 'string' }, out: { type: 'string' } },
  async run(args, io) {
    const modes = (stringOption(args, 'modes') ?? PROXY_MODES.join(',')).split(',').map((m) => {
      if (!isProxyMode(m)) throw new UsageError(`unknown mode ${JSON.stringify(m)}`);
      return m as ProxyMode;
    });
    const backend = (stringOption(args, 'backend') ?? 'auto') as BackendChoice;
    const requests = intOption(args, 'requests', 3000);
    const stamp = new Date().toISOString().replaceAll(':', '').replace(/\.\d+Z$/, 'Z');
    const out = stringOption(args, 'out') ?? join('runs', `demo-${stamp}`);
    const summary = [];
    for (const mode of modes) {
      const t0 = performance.now();
      const lab = await createLab({ backend, mode, name: `demo-${mode.slice(0, 3)}`, onProgress: (s) => io.err(`  [${mode}] ${s}`) });
      try {
        await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
        const upSeconds = (performance.now() - t0) / 1000;
        const nodes = await lab.nodes();
        const worker = nodes.find((n) => n.role === 'worker') ?? nodes[0];
        const cap = await captureNode((argv, o) => lab.exec(worker.name, argv, o), { backend: lab.backend, mode, node: worker.name, lab: lab.name });
        await saveCapture(cap, join(out, mode));
        const caps = await lab.capabilities();
        const ports = resolveServicePorts({ services: await lab.services(), endpointSlices: await lab.endpointSlices() }, { nodeName: worker.name });
        const model = { nodeName: worker.name, nodeIPs: [worker.ip] };
        io.out(`\n${mode} on ${lab.backend}: up with httpbin in ${upSeconds.toFixed(1)}s; ${worker.name} captured into ${join(out, mode)}`);
        if (mode === 'iptables') {
          const nat = findTable(parsedOf(cap, 'iptables-save') ?? { tables: [] }, 'nat');
          const captured = (nat?.chains ?? []).filter((c) => c.name.startsWith('KUBE-')).reduce((a, c) => a + c.rules.length, 0);
          io.out(`  nat rules in KUBE- chains: captured ${captured} (iptables-save -c), predicted ${generateIptables(ports, model).counts.nat.rules} (lib/proxy)`);
        }
        if (mode === 'nftables') {
          const table = parsedOf(cap, 'nft')?.tables.find((t) => t.name === 'kube-proxy');
          const captured = (table?.chains ?? []).reduce((a, c) => a + c.rules.length, 0);
          io.out(`  rules in table ip kube-proxy: captured ${captured} (nft list ruleset), predicted ${generateNftables(ports, model).counts.rules} (lib/proxy)`);
        }
        if (mode === 'ipvs' && !caps.ipvs) {
          const gen = generateIpvs(ports, model);
          io.out('  this kernel has no IP_VS: the ipsets and iptables rules are loaded, the virtual servers are not; traffic cannot be measured here, so the IPVS figures below are PREDICTED');
          io.out(`  predicted: ${gen.counts.virtualServers} virtual servers, ${gen.counts.realServers} real servers; rr would hand each httpbin pod ⌊N/3⌋ or ⌈N/3⌉ of N requests`);
          summary.push({ mode, backend: lab.backend, upSeconds, measured: null });
          continue;
        }
        const m = await measureTraffic(lab, { requests, concurrency: 20 });
        io.out(`  measured ${m.ok}/${m.total} answers at ${m.requestsPerSecond.toFixed(0)} req/s; per pod (measured | conntrack${mode === 'iptables' ? ' | KUBE-SEP packets' : ''} | predicted [95%]):`);
        m.byPod.forEach((p, i) => {
          const s = m.prediction.split.shares[i];
          io.out(`    ${p.pod.padEnd(28)} ${String(p.answers).padStart(5)} | ${String(p.conntrack ?? '-').padStart(5)}${p.sepPackets !== null ? ` | ${String(p.sepPackets).padStart(5)}` : ''} | ${s.expected.toFixed(0)} [${s.low}, ${s.high}]`);
        });
        if (m.chiSquare) io.out(`  chi-square against the prediction: p = ${m.chiSquare.pValue.toFixed(3)}`);
        for (const why of m.skipped) io.out(`  not cross-checked: ${why}`);
        summary.push({ mode, backend: lab.backend, upSeconds, measured: { ok: m.ok, byPod: Object.fromEntries(m.byPod.map((p) => [p.pod, p.answers])), pValue: m.chiSquare?.pValue ?? null } });
      } finally {
        await lab.destroy();
      }
    }
    if (args.values.json) return printJson(io, { out, modes: summary });
    io.out(`\nEvery lab is down again; the captures are in ${out}.`);
  },
};
