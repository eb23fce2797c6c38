import { resolveServicePorts, syntheticCluster } from '../../lib/k8s/index.ts';
import { findTable, parseIptablesSave } from '../../lib/parse/index.ts';
import { provenance } from '../../lib/provenance/index.ts';
import { builtinJumpsRestore, generateIptables } from '../../lib/proxy/index.ts';
import { chiSquareTest, iptablesCounts, ipvsCounts, monteCarloSplit, nftablesCounts, predictSplit } from '../../lib/sim/index.ts';
import type { RuleCountRow, ScalingPoint } from '../../lib/plot/index.ts';
import { traceIptables, traceNat, type IptablesTraceInput, type TraceResult } from '../../lib/trace/index.ts';
import type { TrafficMeasurement } from '../../lib/traffic/index.ts';

const AT = '2025-01-01T00:00:00.000Z';
const NODE = 'kind-worker';

/** One service with three endpoints, as syntheticCluster lays it out on kind's nodes. */
function cluster() {
  return resolveServicePorts(syntheticCluster({ services: 1, endpoints: 3 }), { nodeName: NODE });
}

/** A measurement as lib/traffic would return it, with answers drawn the way the kernel picks. */
export function trafficMeasurement(requests = 300): TrafficMeasurement {
  const [sp] = cluster();
  const endpoints = sp.endpoints;
  const answers = monteCarloSplit('iptables', endpoints.length, requests, 7);
  const split = predictSplit('iptables', endpoints.length, requests);
  return {
    provenance: provenance({ source: 'measured', backend: 'netns', mode: 'iptables', node: NODE, lab: 'plot-test', at: AT }),
    service: { namespace: sp.namespace, name: sp.name, clusterIP: sp.clusterIP, port: sp.port },
    to: { via: 'clusterIP', ip: sp.clusterIP, port: sp.port },
    client: 'curl-0',
    node: NODE,
    countedOn: [NODE],
    total: requests,
    ok: requests,
    errors: 0,
    durationMs: 1200,
    firstOkMs: 12,
    requestsPerSecond: requests / 1.2,
    byPod: endpoints.map((e, i) => ({
      pod: e.podName ?? e.ip, ip: e.ip, node: e.nodeName ?? '', answers: answers[i], conntrack: answers[i], sepPackets: answers[i],
    })),
    endpointsUsed: 'all',
    prediction: { provenance: provenance({ source: 'predicted', backend: null, mode: 'iptables', at: AT }), split },
    chiSquare: chiSquareTest(answers, split.shares.map((s) => s.probability)),
    repliesTo: ['10.244.1.7'],
    masqueraded: 0,
    skipped: [],
  };
}

/** Trace a pod's packet to the service through the nat table our generator writes (no kernel). */
export function traceResult(): TraceResult {
  const ports = cluster();
  const gen = generateIptables(ports, { nodeName: NODE });
  // The jumps first, as kube-proxy loads them; the parser merges the two nat sections.
  const nat = findTable(parseIptablesSave(builtinJumpsRestore(gen.builtinJumps) + gen.restore), 'nat');
  if (!nat) throw new Error('no nat table');
  const [sp] = ports;
  return traceNat({
    nat, hook: 'PREROUTING', localAddresses: ['172.18.0.3'],
    packet: { protocol: 'tcp', src: '10.244.1.7', dst: sp.clusterIP, dport: sp.port, sport: 41000 },
  });
}

/** A pod's packet through nat and filter, as traceIptables follows it, to a Service with E endpoints. */
export function fullTrace(endpoints: number): { input: IptablesTraceInput; result: TraceResult } {
  const ports = resolveServicePorts(syntheticCluster({ services: 1, endpoints }), { nodeName: NODE });
  const gen = generateIptables(ports, { nodeName: NODE, clusterCIDR: '10.244.0.0/16' });
  const [sp] = ports;
  const input: IptablesTraceInput = {
    dump: parseIptablesSave(builtinJumpsRestore(gen.builtinJumps) + gen.restore), hook: 'PREROUTING', localAddresses: ['172.18.0.3'],
    packet: { protocol: 'tcp', src: '10.244.1.7', dst: sp.clusterIP, dport: sp.port, sport: 41000 },
  };
  return { input, result: traceIptables(input) };
}

/** nat rules per mode for 10 services × 3 endpoints; "measured" is what a node held (made up: +2 from kind's own chains). */
export function ruleCountRows(): RuleCountRow[] {
  const input = { services: 10, endpoints: 3 };
  return [
    { mode: 'iptables', label: 'nat rules', predicted: iptablesCounts(input).nat.rules, measured: iptablesCounts(input).nat.rules },
    { mode: 'ipvs', label: 'nat rules', predicted: ipvsCounts(input).iptables.nat.rules, measured: ipvsCounts(input).iptables.nat.rules + 2 },
    { mode: 'nftables', label: 'rules', predicted: nftablesCounts(input).rules },
  ];
}

export function scalingPoints(): ScalingPoint[] {
  const points: ScalingPoint[] = [];
  for (const services of [1, 10, 100, 1000, 5000]) {
    const input = { services, endpoints: 10 };
    points.push(
      { services, mode: 'iptables', rules: iptablesCounts(input).nat.rules, source: 'predicted' },
      { services, mode: 'ipvs', rules: ipvsCounts(input).iptables.nat.rules, source: 'predicted' },
      { services, mode: 'nftables', rules: nftablesCounts(input).rules, source: 'predicted' },
    );
  }
  for (const services of [1, 10, 100]) {
    points.push({ services, mode: 'iptables', rules: iptablesCounts({ services, endpoints: 10 }).nat.rules, source: 'measured' });
  }
  return points;
}
