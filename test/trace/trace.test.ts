import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { readClusterJson, resolveServicePorts, syntheticCluster } from '../../lib/k8s/index.ts';
import { findTable, type IptTable } from '../../lib/parse/iptables-types.ts';
import { parseIptablesSave } from '../../lib/parse/iptables-save.ts';
import { parseIpsetList } from '../../lib/parse/ipset.ts';
import { builtinJumpsRestore, generateIptables } from '../../lib/proxy/iptables.ts';
import { iptablesShares } from '../../lib/sim/split.ts';
import { TraceError, kernelProbability, traceNat, type Packet } from '../../lib/trace/index.ts';
import { withNetns } from '../helpers/netns.ts';

const NODE = 'kind-worker';
const NODE_IP = '172.18.0.3';

/** Load kube-proxy's rules into a private namespace and return the nat table the kernel holds. */
async function kernelNat(restore: string, jumps: string): Promise<IptTable> {
  return withNetns(async (ns) => {
    await ns.run(['iptables-restore', '--noflush'], { input: jumps });
    await ns.run(['iptables-restore', '--noflush'], { input: restore });
    const saved = await ns.run(['iptables-save', '-t', 'nat']);
    const nat = findTable(parseIptablesSave(saved.stdout), 'nat');
    if (!nat) throw new Error('no nat table read back');
    return nat;
  });
}

async function workshopCluster() {
  const text = await readFile(new URL('../fixtures/kind-httpbin.kubectl.json', import.meta.url), 'utf8');
  return resolveServicePorts(readClusterJson(text), { nodeName: NODE });
}

const fromPod = (dst: string, dport: number, protocol: Packet['protocol'] = 'tcp'): Packet =>
  ({ protocol, src: '10.244.1.7', dst, dport, sport: 41000 });

describe('tracing a packet through the nat table the kernel holds', () => {
  it('splits httpbin traffic 3 ways with the probabilities the kernel stores', async () => {
    const ports = await workshopCluster();
    const gen = generateIptables(ports, { nodeName: NODE });
    const nat = await kernelNat(gen.restore, builtinJumpsRestore(gen.builtinJumps));
    const { outcomes } = traceNat({ nat, hook: 'PREROUTING', packet: fromPod('10.96.120.15', 8000), localAddresses: [NODE_IP] });
    const byDest = Object.fromEntries(outcomes.map((o) => [o.dnat, o.probability]));
    const shares = iptablesShares(3);
    expect(byDest).toEqual({ '10.244.1.2:8080': shares[0], '10.244.2.2:8080': shares[1], '10.244.2.3:8080': shares[2] });
    expect(outcomes.reduce((a, o) => a + o.probability, 0)).toBe(1);
    const first = outcomes.find((o) => o.dnat === '10.244.1.2:8080')!;
    expect(first.path.slice(0, 3)).toEqual(['PREROUTING', 'KUBE-SERVICES', 'KUBE-SVC-FREKB6WNWYJLKTHC']);
    expect(first.path[3]).toMatch(/^KUBE-SEP-[A-Z2-7]{16}$/);
    // A pod-to-pod connection needs no SNAT: the mark stays clear.
    expect(outcomes.every((o) => o.snat === null && o.verdict === 'ACCEPT')).toBe(true);
  });

  it('marks traffic from outside the cluster CIDR and masquerades it in POSTROUTING', async () => {
    const ports = await workshopCluster();
    const gen = generateIptables(ports, { nodeName: NODE });
    const nat = await kernelNat(gen.restore, builtinJumpsRestore(gen.builtinJumps));
    const { outcomes } = traceNat({
      nat, hook: 'OUTPUT', localAddresses: [NODE_IP],
      packet: { protocol: 'tcp', src: NODE_IP, dst: '10.96.120.15', dport: 8000, sport: 50000 },
    });
    expect(outcomes).toHaveLength(3);
    for (const o of outcomes) {
      expect(o.snat).toBe('MASQUERADE');
      expect(o.path).toContain('KUBE-MARK-MASQ');
      expect(o.path.at(-1)).toBe('KUBE-POSTROUTING');
      // KUBE-POSTROUTING clears the bit it tested (--xor-mark) before masquerading.
      expect(o.mark & 0x4000).toBe(0);
    }
  });

  it('reaches a NodePort through KUBE-NODEPORTS only for the node\'s own addresses', async () => {
    const ports = resolveServicePorts(syntheticCluster({ services: 2, endpoints: 4, nodePorts: 1 }), { nodeName: NODE });
    const gen = generateIptables(ports, { nodeName: NODE });
    const nat = await kernelNat(gen.restore, builtinJumpsRestore(gen.builtinJumps));
    const toNodePort = (dst: string) => traceNat({ nat, hook: 'PREROUTING', localAddresses: [NODE_IP], packet: { protocol: 'tcp', src: '192.0.2.10', dst, dport: 30000, sport: 1234 } });
    const local = toNodePort(NODE_IP).outcomes;
    expect(local).toHaveLength(4);
    expect(local.every((o) => o.path.includes('KUBE-NODEPORTS') && o.path.some((c) => c.startsWith('KUBE-EXT-')))).toBe(true);
    expect(local.every((o) => o.snat === 'MASQUERADE')).toBe(true);
    const other = toNodePort('172.18.0.99').outcomes;
    expect(other).toEqual([expect.objectContaining({ probability: 1, dnat: null, verdict: 'ACCEPT' })]);
  });

  it('goes through unchanged when no service matches, and multiplies 1/(n−i) across 10 endpoints', async () => {
    const ports = resolveServicePorts(syntheticCluster({ services: 3, endpoints: 10 }), { nodeName: NODE });
    const gen = generateIptables(ports, { nodeName: NODE });
    const nat = await kernelNat(gen.restore, builtinJumpsRestore(gen.builtinJumps));
    const miss = traceNat({ nat, hook: 'PREROUTING', packet: fromPod('10.96.1.0', 81), localAddresses: [NODE_IP] });
    expect(miss.outcomes).toEqual([expect.objectContaining({ probability: 1, dnat: null })]);
    const hit = traceNat({ nat, hook: 'PREROUTING', packet: fromPod('10.96.1.2', 80), localAddresses: [NODE_IP] });
    expect(hit.outcomes.map((o) => o.probability).sort()).toEqual([...iptablesShares(10)].sort());
    expect(new Set(hit.outcomes.map((o) => o.dnat)).size).toBe(10);
  });

  it('follows ClientIP affinity as a first packet: no recent entry yet, then the random split', async () => {
    const ports = (await workshopCluster()).map((p) => p.name === 'httpbin' ? { ...p, sessionAffinity: 'ClientIP' as const } : p);
    const gen = generateIptables(ports, { nodeName: NODE });
    const nat = await kernelNat(gen.restore, builtinJumpsRestore(gen.builtinJumps));
    const { outcomes } = traceNat({ nat, hook: 'PREROUTING', packet: fromPod('10.96.120.15', 8000), localAddresses: [NODE_IP] });
    expect(outcomes.map((o) => o.probability).sort()).toEqual([...iptablesShares(3)].sort());
  });

  it('evaluates -m set against the given ipsets and -m addrtype against local addresses', async () => {
    await withNetns(async (ns) => {
      await ns.run(['ipset', 'restore'], { input: 'create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\nadd KUBE-CLUSTER-IP 10.96.0.10,udp:53\nadd KUBE-CLUSTER-IP 10.96.120.15,tcp:8000\n' });
      await ns.run(['iptables-restore'], {
        input: [
          '*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]',
          ':KUBE-SERVICES - [0:0]', ':KUBE-NODE-PORT - [0:0]', ':KUBE-MARK-MASQ - [0:0]',
          '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
          '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ',
          '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT',
          '-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT',
          '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
          'COMMIT', '',
        ].join('\n'),
      });
      const nat = findTable(parseIptablesSave((await ns.run(['iptables-save', '-t', 'nat'])).stdout), 'nat')!;
      const ipsets = parseIpsetList((await ns.run(['ipset', 'list'])).stdout);
      const run = (p: Packet) => traceNat({ nat, hook: 'PREROUTING', packet: p, ipsets, localAddresses: [NODE_IP], postrouting: false }).outcomes;
      const inSet = run(fromPod('10.96.120.15', 8000));
      expect(inSet).toEqual([expect.objectContaining({ probability: 1, verdict: 'ACCEPT', mark: 0 })]);
      expect(inSet[0].steps.at(-1)?.text).toContain('-j ACCEPT');
      const outside = run({ protocol: 'tcp', src: '192.0.2.1', dst: '10.96.120.15', dport: 8000, sport: 9 });
      expect(outside[0].mark).toBe(0x4000);
      const wrongPort = run(fromPod('10.96.120.15', 8001));
      expect(wrongPort[0].steps.some((s) => s.text.includes('--match-set'))).toBe(false);
      expect(() => traceNat({ nat, hook: 'PREROUTING', packet: fromPod('10.96.120.15', 8000) })).toThrow(/ipset KUBE-CLUSTER-IP is referenced/);
    });
  });

  it('quantizes probabilities as xt_statistic does and refuses what it cannot evaluate', () => {
    expect(kernelProbability(1 / 3)).toBe(715827883 / 2 ** 31);
    expect(kernelProbability(0.33333333349)).toBe(715827883 / 2 ** 31);
    const nat = parseIptablesSave('*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m owner --uid-owner 0 -j ACCEPT\nCOMMIT\n').tables[0];
    expect(() => traceNat({ nat, hook: 'PREROUTING', packet: fromPod('10.0.0.1', 1) })).toThrow(TraceError);
    expect(() => traceNat({ nat, hook: 'PREROUTING', packet: fromPod('10.0.0.1', 1) })).toThrow(/line 3: match -m owner/);
    // kube-proxy's restore input alone has no built-in chains: say so rather than trace nothing.
    const bare = parseIptablesSave(generateIptables(resolveServicePorts(syntheticCluster({ services: 1, endpoints: 1 })), {}).restore);
    expect(() => traceNat({ nat: findTable(bare, 'nat')!, hook: 'OUTPUT', packet: fromPod('10.96.1.0', 80) })).toThrow(/no OUTPUT chain.*--with-jumps/);
  });
});
