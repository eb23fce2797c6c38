import { describe, expect, it } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { resolveServicePorts } from '../../lib/k8s/resolve.ts';
import { KIND_DEFAULTS, syntheticCluster } from '../../lib/k8s/synthetic.ts';
import { generateIptables } from '../../lib/proxy/iptables.ts';
import { loadIptablesInScratch, scratchLoadUnavailable } from '../../lib/scale/scratch-load.ts';
import { iptablesCounts } from '../../lib/sim/counts.ts';
import { testRunTag } from '../helpers/netns.ts';

const prefix = `kn-test-${testRunTag()}`;

describe('rules counted in a private namespace', () => {
  it('can load here: Linux, root, iptables-restore', async () => {
    expect(await scratchLoadUnavailable()).toBeNull();
  });

  it('holds, once loaded and read back, what the generator wrote and lib/sim counts; the namespace is gone after', async () => {
    const ports = resolveServicePorts(syntheticCluster({ services: 40, endpoints: 5 }), { nodeName: 'kind-worker' });
    const gen = generateIptables(ports, { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'], clusterCIDR: KIND_DEFAULTS.podSubnet });
    const loaded = await loadIptablesInScratch(gen.restore, { prefix });
    expect(loaded.nat).toEqual({ chains: gen.counts.nat.chains, rules: gen.counts.nat.rules });
    expect(loaded.nat).toEqual(iptablesCounts({ services: 40, endpoints: 5 }).nat);
    expect(loaded.provenance).toMatchObject({ source: 'captured', backend: 'netns', mode: 'iptables', node: loaded.namespace, command: 'iptables-save -t nat in a private namespace' });
    expect(loaded.namespace.startsWith(`${prefix}-${process.pid}-`)).toBe(true);
    expect(loaded.seconds).toBeGreaterThan(0);
    expect((await runner.run(['ip', 'netns', 'list'])).stdout).not.toContain(loaded.namespace);
  });

  it('says what iptables-restore refused, and still removes the namespace', async () => {
    const before = (await runner.run(['ip', 'netns', 'list'])).stdout;
    await expect(loadIptablesInScratch('*nat\n-A NOSUCHCHAIN -j ACCEPT\nCOMMIT\n', { prefix })).rejects.toThrow(/iptables-restore/);
    const after = (await runner.run(['ip', 'netns', 'list'])).stdout;
    expect(after.split('\n').filter((l) => l.startsWith(prefix)).length).toBe(before.split('\n').filter((l) => l.startsWith(prefix)).length);
  });
});
