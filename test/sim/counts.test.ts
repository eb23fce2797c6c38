import { describe, expect, it } from 'vitest';
import { resolveServicePorts, syntheticCluster } from '../../lib/k8s/index.ts';
import { generateIptables } from '../../lib/proxy/iptables.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import { generateIpvs } from '../../lib/proxy/ipvs.ts';
import { iptablesCounts, ipvsCounts, nftablesCounts } from '../../lib/sim/counts.ts';

const GRID: [number, number, number][] = [
  [0, 0, 0], [1, 1, 0], [1, 1, 1], [3, 2, 0], [3, 2, 3], [7, 5, 2], [2, 0, 0], [2, 0, 1], [40, 10, 5], [120, 9, 0],
];

function cluster(S: number, E: number, N: number) {
  return resolveServicePorts(syntheticCluster({ services: S, endpoints: E, nodePorts: N }), { nodeName: 'kind-worker' });
}

describe('closed-form counts agree with the generators', () => {
  it.each(GRID)('iptables: %i services × %i endpoints, %i NodePorts', (S, E, N) => {
    expect(iptablesCounts({ services: S, endpoints: E, nodePorts: N })).toEqual(generateIptables(cluster(S, E, N), { nodeName: 'kind-worker' }).counts);
  });

  it.each(GRID)('nftables: %i services × %i endpoints, %i NodePorts', (S, E, N) => {
    const ports = cluster(S, E, N);
    expect(nftablesCounts({ services: S, endpoints: E, nodePorts: N, nodeIPs: 1 }))
      .toEqual(generateNftables(ports, { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] }).counts);
    expect(nftablesCounts({ services: S, endpoints: E, nodePorts: N, nodeIPs: 0 }))
      .toEqual(generateNftables(ports, { nodeName: 'kind-worker' }).counts);
  });

  it.each(GRID)('ipvs: %i services × %i endpoints, %i NodePorts', (S, E, N) => {
    const ports = cluster(S, E, N);
    const gen = generateIpvs(ports, { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] });
    const localEndpoints = ports.reduce((a, p) => a + p.endpoints.filter((e) => e.isLocal).length, 0);
    if (S * E < 700) expect(ipvsCounts({ services: S, endpoints: E }).ipsetMembers['KUBE-LOOP-BACK'] ?? 0).toBe(localEndpoints);
    expect(ipvsCounts({ services: S, endpoints: E, nodePorts: N, localEndpoints })).toEqual({
      ipsetMembers: gen.counts.ipsetMembers,
      virtualServers: gen.counts.virtualServers,
      realServers: gen.counts.realServers,
      dummyAddresses: gen.dummyAddresses.length,
      iptables: gen.counts.iptables,
    });
  });

  it('IPVS keeps its iptables rules constant while iptables mode grows linearly', () => {
    const small = ipvsCounts({ services: 10, endpoints: 10 }).iptables.nat.rules;
    expect(ipvsCounts({ services: 10_000, endpoints: 10 }).iptables.nat.rules).toBe(small);
    expect(iptablesCounts({ services: 10_000, endpoints: 10 }).nat.rules).toBe(320_005);
  });

  it('the workshop article: 2000 services × 10 pods is far above its "at least 20k" rules', () => {
    expect(iptablesCounts({ services: 2000, endpoints: 10 }).nat.rules).toBe(64_005);
  });

  it('rejects nonsense', () => {
    expect(() => iptablesCounts({ services: -1, endpoints: 2 })).toThrow(/services/);
    expect(() => iptablesCounts({ services: 1, endpoints: 2, nodePorts: 2 })).toThrow(/nodePorts/);
  });
});
