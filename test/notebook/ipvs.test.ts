import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BackendUnavailableError } from '../../lib/lab/kind/index.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { createNetnsLab, type NetnsLab } from '../../lib/lab/netns/index.ts';
import {
  ipvsRows, ipvsVerdict, predictedSplitFigure, readIpvsNode, readIpvsTable, withoutIpvs, type IpvsNode,
} from '../../lib/notebook/ipvs.ts';
import { clusterIpMember, kubeChains, ruleCount, virtualServer } from '../../lib/proxy/read.ts';
import { ipvsCounts } from '../../lib/sim/counts.ts';
import { predictSplit } from '../../lib/sim/split.ts';
import { ipvsSkipReason, testRunTag } from '../helpers/netns.ts';

// Notebook 04's helpers: on a real IPVS-mode netns lab (captured, whatever the kernel), and with
// no lab at all (kind without IP_VS: everything predicted).

const tag = testRunTag().slice(0, 4);

describe('an IPVS-mode lab, read from the client\'s node', () => {
  let lab: NetnsLab;
  let seen: IpvsNode;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `v${tag}-ipvs`, mode: 'ipvs' });
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
    const client = (await lab.pods({ app: 'curl' }))[0];
    const clientNode = (await lab.nodes()).find((n) => n.name === client.node)!;
    seen = await readIpvsNode({ lab, clientNode }, lab.name);
  }, 120_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('captures the ipsets and the nat table, which agree with the generator', () => {
    expect(seen.source).toBe('captured');
    expect(seen.provenance).toMatchObject({ source: 'captured', backend: 'netns', mode: 'ipvs', node: seen.node.name });
    expect(seen.on).toBe(`ip netns exec kn-${lab.name}.${seen.node.name}`);
    expect(seen.ipsetOn).toBe(seen.on);
    const set = seen.sets.sets.find((s) => s.name === 'KUBE-CLUSTER-IP')!;
    expect([...set.members].sort()).toEqual(seen.ports.map((p) => clusterIpMember(p)).sort());
    const kube = kubeChains(seen.nat);
    expect([ruleCount(kube), kube.length]).toEqual([seen.generated.counts.iptables.nat.rules, seen.generated.counts.iptables.nat.chains]);
    expect(seen.httpbin.endpoints).toHaveLength(3);
    expect(seen.kernelHasIpvs).toBe(ipvsSkipReason() === null);
  });

  it('reads the IPVS table where the kernel has IP_VS, and labels the generator\'s as predicted where not', async () => {
    const table = await readIpvsTable(seen);
    const vs = virtualServer(table.state, seen.httpbin.clusterIP, seen.httpbin.port);
    expect(vs?.scheduler).toBe('rr');
    expect(vs?.destinations.map((d) => `${d.address}:${d.port}`).sort()).toEqual(seen.httpbin.endpoints.map((e) => `${e.ip}:${e.port}`).sort());
    if (ipvsSkipReason() === null) {
      expect(table.source).toBe('captured');
      expect(table.label).toMatch(/^CAPTURED from /);
    } else {
      expect(table.source).toBe('predicted');
      expect(table.label).toBe('PREDICTED by lib/proxy (this kernel has no IP_VS, so nothing can be captured)');
      expect(table.text).toBe(seen.generated.ipvsadmRestore);
    }
  });
});

describe('no lab: kind without IP_VS', () => {
  it('predicts the workshop cluster seen from its first worker, and says it is a prediction', async () => {
    const seen = await readIpvsNode(null, 'nbx', 4);
    expect(seen.source).toBe('predicted');
    expect(seen.lab).toBeNull();
    expect(seen.kernelHasIpvs).toBe(false);
    expect(seen.node).toEqual({ name: 'nbx-worker', ip: '172.18.0.3' });
    expect(seen.httpbin.endpoints).toHaveLength(4);
    expect(seen.ipsetOn).toBe('kubectl --context kind-nbx -n kube-system exec <kube-proxy pod on that node> --');
    // Against the closed form, not the generator that made seen.nat: IPVS mode's nat part does not
    // grow with the Services (5 ports here, endpoints on the node itself).
    const kube = kubeChains(seen.nat);
    expect({ chains: kube.length, rules: ruleCount(kube) }).toEqual(ipvsCounts({ services: seen.ports.length, endpoints: 4 }).iptables.nat);
    const table = await readIpvsTable(seen);
    expect(table.source).toBe('predicted');
    expect(table.label).toBe('PREDICTED by lib/proxy (no lab: the Docker host has no IP_VS)');
    expect(virtualServer(table.state, seen.httpbin.clusterIP, 8000)?.destinations).toHaveLength(4);
  });

  it('catches only kind\'s "kernel has no IP_VS" from setup, printing it', () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      expect(withoutIpvs(new BackendUnavailableError('kernel has no IP_VS', 'sudo modprobe -a ip_vs'))).toBeNull();
      expect(log.mock.calls[0][0]).toMatch(/^NO LAB: the kind backend cannot run here: kernel has no IP_VS/);
    } finally {
      log.mockRestore();
    }
    const other = new BackendUnavailableError('docker daemon unreachable', 'start docker');
    expect(() => withoutIpvs(other)).toThrow(other);
    expect(() => withoutIpvs(new Error('kernel has no IP_VS'))).toThrow('kernel has no IP_VS');
  });

  it('says in one line what the rest of the notebook can show', () => {
    expect(ipvsVerdict(null, false)).toMatch(/^no IP_VS on the Docker host, so there is no lab: .*\nPREDICTED/);
    expect(ipvsVerdict({} as never, false)).toMatch(/^no IP_VS \(\/proc\/net\/ip_vs is absent\): the lab holds the ipsets .*\n.*PREDICTED/);
    expect(ipvsVerdict({} as never, true)).toMatch(/CAPTURED .* MEASURED/);
  });
});

describe('presenting IPVS', () => {
  it('lists each virtual server, then its real servers', () => {
    expect(ipvsRows({
      services: [{
        protocol: 'TCP', address: '10.96.0.1', port: 443, scheduler: 'rr', flags: [],
        destinations: [{ address: '172.18.0.2', port: 6443, forward: 'Masq', weight: 1, activeConn: 0, inactConn: 0 }],
      }],
    })).toEqual([['TCP 10.96.0.1:443', 'rr', '', '', ''], ['', '', '-> 172.18.0.2:6443', 'Masq', '1']]);
  });

  it('draws a prediction that was not measured, one tick per endpoint', () => {
    const fig = predictedSplitFigure(predictSplit('ipvs', 3, 3000), ['a:1', 'b:1', 'c:1'], 'rr (predicted, not measured)');
    expect(fig.svg).toContain('rr (predicted, not measured)');
    expect(fig.svg).toContain('ipvs · a:1');
    expect(fig.svg).not.toContain('captured');
  });
});
