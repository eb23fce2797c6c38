import { describe, expect, it } from 'vitest';
import { syntheticCluster } from '../../lib/k8s/synthetic.ts';
import { predictCounts } from '../../lib/sim/counts.ts';
import { monteCarloSplit, predictSplit } from '../../lib/sim/split.ts';

describe('lib/sim and synthetic clusters refuse sizes that would hang or exhaust memory', () => {
  it('counts: S × E up to 10^12, exact', () => {
    const c = predictCounts('iptables', { services: 1_000_000, endpoints: 1_000_000 }).iptables!;
    expect(c.nat.rules).toBe(5 + 1_000_000 * (2 + 3 * 1_000_000));
    expect(Number.isSafeInteger(c.nat.rules)).toBe(true);
    expect(() => predictCounts('all', { services: 1_000_000, endpoints: 1_000_001 })).toThrow(/services × endpoints must be at most 10\^12/);
    expect(() => predictCounts('all', { services: 2e9, endpoints: 0 })).toThrow(/services must be at most 1e\+9/);
  });

  it('a split: at most 10,000 endpoints and 10^10 requests × endpoints; Monte Carlo 10^9', () => {
    expect(() => predictSplit('iptables', 1_000_000_000, 1000)).toThrow(/at most 10,000 endpoints, got 1000000000/);
    expect(() => predictSplit('nftables', 10_000, 10_000_000)).toThrow(/requests × endpoints must be at most 1e\+10/);
    expect(predictSplit('ipvs', 10_000, 1_000_000).shares).toHaveLength(10_000);
    expect(() => monteCarloSplit('iptables', 10, 1e9)).toThrow(/requests × endpoints must be at most 1e\+9/);
  });

  it('synthetic clusters: at most a million pods, NodePorts within 30000-32767', () => {
    expect(() => syntheticCluster({ services: 1, endpoints: 1_000_001, podSubnet: '10.0.0.0/8' })).toThrow(/at most 1,000,000 pods/);
    expect(() => syntheticCluster({ services: 3000, endpoints: 0, nodePorts: 2769 })).toThrow(/nodePorts must be a whole number from 0 to 2768/);
    expect(() => syntheticCluster({ services: 2, endpoints: 1, nodePorts: 3 })).toThrow(/from 0 to 2 /);
    const c = syntheticCluster({ services: 2768, endpoints: 0, nodePorts: 2768 });
    expect(c.services.at(-1)!.ports[0].nodePort).toBe(32767);
  });
});
