/**
 * traceIptables and `trace --dump` against what the kernel holds: rules are loaded into a private
 * namespace and read back with iptables-save / ip6tables-save / ipset list before they are traced.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCluster, resolveServicePorts } from '../../lib/k8s/index.ts';
import { parseIpsetList, parseIptablesSave, parseIpvsadm } from '../../lib/parse/index.ts';
import { renderIpvsadm } from '../../lib/parse/ipvsadm.ts';
import { builtinJumpsRestore, generateIptables } from '../../lib/proxy/iptables.ts';
import { IPVS_JUMPS, generateIpvs } from '../../lib/proxy/ipvs.ts';
import { iptablesShares } from '../../lib/sim/split.ts';
import { detectDump, ipvsShares, traceIptables, traceNat, type Packet } from '../../lib/trace/index.ts';
import { cli } from '../helpers/cli.ts';
import { ipvsSkipReason, withNetns } from '../helpers/netns.ts';

const NODE = 'kind-worker';
const NODE_IP = '172.18.0.3';
const OPTS = { nodeName: NODE, nodeIPs: [NODE_IP], clusterCIDR: '10.244.0.0/16' };

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kn-trace-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const svc = (name: string, spec: Record<string, unknown>, ingress: string[] = []) => ({
  kind: 'Service', metadata: { namespace: 'default', name }, spec,
  ...(ingress.length ? { status: { loadBalancer: { ingress: ingress.map((ip) => ({ ip })) } } } : {}),
});
const eps = (service: string, ips: string[], port = 8080) => ({
  kind: 'EndpointSlice', metadata: { namespace: 'default', name: `${service}-x1`, labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4', endpoints: ips.map((ip) => ({ addresses: [ip] })), ports: [{ name: 'http', port, protocol: 'TCP' }],
});

/** kube-proxy's rules for these objects, loaded as kube-proxy loads them, read back whole. */
async function kernelDump(items: unknown[]): Promise<string> {
  const gen = generateIptables(resolveServicePorts(readCluster(items), { nodeName: NODE }), OPTS);
  return withNetns(async (ns) => {
    await ns.run(['iptables-restore', '--noflush'], { input: builtinJumpsRestore(gen.builtinJumps) });
    await ns.run(['iptables-restore', '--noflush'], { input: gen.restore });
    return (await ns.run(['iptables-save'])).stdout;
  });
}

const from = (src: string, dst: string, dport: number): Packet => ({ protocol: 'tcp', src, dst, dport, sport: 41000 });

describe('filter verdicts the nat table alone never showed', () => {
  it('REJECT for a Service without endpoints, from a pod and from the node itself', async () => {
    const dump = parseIptablesSave(await kernelDump([svc('empty', { clusterIP: '10.96.7.7', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] })]));
    for (const [hook, src] of [['PREROUTING', '10.244.1.5'], ['OUTPUT', NODE_IP]] as const) {
      const r = traceIptables({ dump, hook, localAddresses: [NODE_IP], packet: from(src, '10.96.7.7', 80) });
      expect(r.warnings).toEqual([]);
      expect(r.outcomes).toEqual([expect.objectContaining({ probability: 1, verdict: 'REJECT', dnat: null })]);
      const last = r.outcomes[0].steps.at(-1)!;
      expect(last).toMatchObject({ table: 'filter', chain: 'KUBE-SERVICES' });
      expect(last.text).toMatch(/default\/empty:http has no endpoints.* -j REJECT --reject-with icmp-port-unreachable$/);
      expect(r.outcomes[0].path).toEqual(hook === 'PREROUTING'
        ? ['PREROUTING', 'KUBE-SERVICES', 'FORWARD', 'KUBE-PROXY-FIREWALL', 'KUBE-FORWARD', 'KUBE-SERVICES']
        : ['OUTPUT', 'KUBE-SERVICES', 'OUTPUT', 'KUBE-FIREWALL', 'KUBE-PROXY-FIREWALL', 'KUBE-SERVICES']);
    }
    // The nat-only tracer is still what notebooks call: it sees no verdict there.
    const nat = dump.tables.find((t) => t.name === 'nat')!;
    expect(traceNat({ nat, hook: 'PREROUTING', localAddresses: [NODE_IP], packet: from('10.244.1.5', '10.96.7.7', 80) }).outcomes)
      .toEqual([expect.objectContaining({ verdict: 'ACCEPT', dnat: null })]);
  });

  it('DROP outside loadBalancerSourceRanges; inside them DNAT and masquerade, split as the kernel stores it', async () => {
    const dump = parseIptablesSave(await kernelDump([
      svc('web', { type: 'LoadBalancer', clusterIP: '10.96.8.8', loadBalancerSourceRanges: ['198.51.100.0/24'], ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] }, ['203.0.113.50']),
      eps('web', ['10.244.1.2', '10.244.2.2', '10.244.2.3']),
    ]));
    const outside = traceIptables({ dump, hook: 'PREROUTING', localAddresses: [NODE_IP], packet: from('192.0.2.9', '203.0.113.50', 80) });
    expect(outside.outcomes).toEqual([expect.objectContaining({ probability: 1, verdict: 'DROP', dnat: null })]);
    expect(outside.outcomes[0].steps.at(-1)).toMatchObject({ table: 'filter', chain: 'KUBE-PROXY-FIREWALL' });
    // The nat side let it through untouched: KUBE-FW-… falls off its end.
    expect(outside.outcomes[0].path).toContain(outside.outcomes[0].path.find((c) => c.startsWith('KUBE-FW-')));

    const inside = traceIptables({ dump, hook: 'PREROUTING', localAddresses: [NODE_IP], packet: from('198.51.100.7', '203.0.113.50', 80) });
    expect(inside.outcomes.map((o) => o.probability).sort()).toEqual([...iptablesShares(3)].sort());
    for (const o of inside.outcomes) {
      expect(o).toMatchObject({ verdict: 'ACCEPT', snat: 'MASQUERADE', dnat: expect.stringMatching(/^10\.244\.\d\.\d:8080$/) });
      // KUBE-FORWARD accepts what kube-proxy marked, before KUBE-PROXY-FIREWALL could matter.
      expect(o.steps.some((s) => s.table === 'filter' && s.chain === 'KUBE-FORWARD' && s.text.endsWith('-j ACCEPT'))).toBe(true);
    }
  });

  it('packets for the node itself go through filter INPUT: a NodePort without endpoints is rejected there', async () => {
    const dump = parseIptablesSave(await kernelDump([svc('np', { type: 'NodePort', clusterIP: '10.96.9.9', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30090 }] })]));
    const r = traceIptables({ dump, hook: 'PREROUTING', localAddresses: [NODE_IP], packet: from('192.0.2.9', NODE_IP, 30090) });
    expect(r.outcomes).toEqual([expect.objectContaining({ verdict: 'REJECT' })]);
    expect(r.outcomes[0].path.slice(0, 3)).toEqual(['PREROUTING', 'KUBE-SERVICES', 'KUBE-NODEPORTS']);
    expect(r.outcomes[0].path).toContain('INPUT');
    expect(r.outcomes[0].steps.at(-1)).toMatchObject({ table: 'filter', chain: 'KUBE-EXTERNAL-SERVICES' });
    // Not the node's address: forwarded, and nothing of kube-proxy's applies.
    const elsewhere = traceIptables({ dump, hook: 'PREROUTING', localAddresses: [NODE_IP], packet: from('192.0.2.9', '172.18.0.99', 30090) });
    expect(elsewhere.outcomes).toEqual([expect.objectContaining({ verdict: 'ACCEPT', dnat: null })]);
  });
});

describe('trace --dump as a user runs it', () => {
  it('warns, in text and JSON, when rules --with-jumps was restored without --noflush', async () => {
    const rules = await cli('rules', '--mode', 'iptables', '--services', '2', '--endpoints', '3', '--with-jumps');
    expect(rules.code).toBe(0);
    const [flushed, kept] = await withNetns(async (ns) => {
      await ns.run(['iptables-restore'], { input: rules.out });
      const a = (await ns.run(['iptables-save'])).stdout;
      await ns.run(['iptables-restore', '--noflush'], { input: rules.out });
      return [a, (await ns.run(['iptables-save'])).stdout];
    });
    await writeFile(join(dir, 'flushed.txt'), flushed);
    await writeFile(join(dir, 'kept.txt'), kept);
    const args = ['--dst', '10.96.1.1', '--dport', '80'];
    const text = await cli('trace', '--dump', join(dir, 'flushed.txt'), ...args);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^warning: nat PREROUTING, nat POSTROUTING, filter INPUT, filter FORWARD have no jump into kube-proxy's chains.*iptables-restore --noflush/m);
    const json = JSON.parse((await cli('trace', '--dump', join(dir, 'flushed.txt'), ...args, '--json')).out);
    expect(json).toMatchObject({ mode: 'iptables', hook: 'PREROUTING', warnings: [expect.stringContaining('--noflush')] });
    expect(json.outcomes).toEqual([expect.objectContaining({ probability: 1, verdict: 'ACCEPT', dnat: null })]);

    const good = JSON.parse((await cli('trace', '--dump', join(dir, 'kept.txt'), ...args, '--json')).out);
    expect(good.warnings).toEqual([]);
    expect(good.outcomes).toHaveLength(3);
    expect(good.outcomes[0].rules.some((r: { table?: string }) => r.table === 'filter')).toBe(true);
  });

  it('tells the dump kinds apart and hands nft dumps to the nftables tracer', async () => {
    const rules = await cli('rules', '--mode', 'nftables', '--services', '1', '--endpoints', '1');
    const [nft, nftJson] = await withNetns(async (ns) => {
      await ns.run(['nft', '-f', '-'], { input: rules.out });
      return [(await ns.run(['nft', 'list', 'ruleset'])).stdout, (await ns.run(['nft', '-j', 'list', 'ruleset'])).stdout];
    });
    expect(detectDump(nft)?.kind).toBe('nft');
    expect(detectDump(nftJson)?.kind).toBe('nft-json');
    for (const [name, body] of [['ruleset.nft', nft], ['ruleset.json', nftJson]] as const) {
      await writeFile(join(dir, name), body);
      // The one Service's ClusterIP, and an unallocated address of the service CIDR beside it.
      const hit = await cli('trace', '--dump', join(dir, name), '--dst', '10.96.1.0', '--dport', '80', '--json');
      expect(JSON.parse(hit.out)).toMatchObject({ mode: 'nftables', outcomes: [{ probability: 1, verdict: 'ACCEPT', dnat: '10.244.0.2:8080' }] });
      const miss = await cli('trace', '--dump', join(dir, name), '--dst', '10.96.1.1', '--dport', '80', '--json');
      expect(JSON.parse(miss.out)).toMatchObject({ mode: 'nftables', outcomes: [{ verdict: 'DROP', dnat: null }] });
    }
    await writeFile(join(dir, 'junk.txt'), 'hello\n');
    const junk = await cli('trace', '--dump', join(dir, 'junk.txt'), '--dst', '10.96.1.1', '--dport', '80');
    expect(junk).toMatchObject({ code: 1 });
    expect(junk.err).toMatch(/line 1: expected iptables-save, ip6tables-save, nft list ruleset or nft -j list ruleset output, got "hello"/);
  });
});

describe('IPv6: ip6tables-save output', () => {
  // kube-proxy's IPv6 rules for one Service with two endpoints and one without any, as its
  // IPv6 proxier writes them (the generator writes the IPv4 proxier only, so far).
  const RULES = [
    '*filter', ':KUBE-SERVICES - [0:0]', ':KUBE-EXTERNAL-SERVICES - [0:0]', ':KUBE-FORWARD - [0:0]',
    '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
    '-A KUBE-SERVICES -m comment --comment "ns1/none:p80 has no endpoints" -m tcp -p tcp -d fd00:172:30::46 --dport 80 -j REJECT',
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    'COMMIT',
    '*nat', ':KUBE-SERVICES - [0:0]', ':KUBE-POSTROUTING - [0:0]', ':KUBE-MARK-MASQ - [0:0]',
    ':KUBE-SVC-A - [0:0]', ':KUBE-SEP-1 - [0:0]', ':KUBE-SEP-2 - [0:0]',
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d fd00:172:30::41 --dport 80 -j KUBE-SVC-A',
    '-A KUBE-SVC-A -m tcp -p tcp -d fd00:172:30::41 --dport 80 ! -s fd00:10::/64 -j KUBE-MARK-MASQ',
    '-A KUBE-SVC-A -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-1',
    '-A KUBE-SVC-A -j KUBE-SEP-2',
    '-A KUBE-SEP-1 -s fd00:10:180::1 -j KUBE-MARK-MASQ',
    '-A KUBE-SEP-1 -m tcp -p tcp -j DNAT --to-destination [fd00:10:180::1]:80',
    '-A KUBE-SEP-2 -s fd00:10:180::2:1 -j KUBE-MARK-MASQ',
    '-A KUBE-SEP-2 -m tcp -p tcp -j DNAT --to-destination [fd00:10:180::2:1]:80',
    '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
    '-A KUBE-POSTROUTING -j MASQUERADE',
    'COMMIT', '',
  ].join('\n');

  it('traces /128 addresses, bracketed DNAT targets, icmp6 REJECT and masquerade, and the CLI takes it', async () => {
    const saved = await withNetns(async (ns) => {
      await ns.run(['ip6tables-restore'], { input: RULES });
      return (await ns.run(['ip6tables-save'])).stdout;
    });
    expect(saved).toContain('-d fd00:172:30::41/128');
    expect(saved).toContain('--reject-with icmp6-port-unreachable');
    expect(detectDump(saved)?.kind).toBe('ip6tables-save');
    const dump = parseIptablesSave(saved);
    const pod = traceIptables({ dump, hook: 'PREROUTING', packet: { protocol: 'tcp', src: 'fd00:10::2', dst: 'fd00:172:30::41', dport: 80, sport: 40000 } });
    expect(pod.warnings).toEqual([]);
    expect(Object.fromEntries(pod.outcomes.map((o) => [o.dnat, [o.probability, o.snat]]))).toEqual({
      '[fd00:10:180::1]:80': [0.5, null], '[fd00:10:180::2:1]:80': [0.5, null],
    });
    const outsider = traceIptables({ dump, hook: 'PREROUTING', packet: { protocol: 'tcp', src: '2600:5200::1', dst: 'fd00:172:30::41', dport: 80, sport: 40000 } });
    expect(outsider.outcomes.every((o) => o.snat === 'MASQUERADE')).toBe(true);
    const none = traceIptables({ dump, hook: 'PREROUTING', packet: { protocol: 'tcp', src: 'fd00:10::2', dst: 'fd00:172:30::46', dport: 80, sport: 40000 } });
    expect(none.outcomes).toEqual([expect.objectContaining({ probability: 1, verdict: 'REJECT' })]);

    await writeFile(join(dir, 'v6.txt'), saved);
    const r = await cli('trace', '--dump', join(dir, 'v6.txt'), '--src', 'fd00:10::2', '--dst', 'fd00:172:30::41', '--dport', '80');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/tcp \[fd00:10::2\]:40000 → \[fd00:172:30::41\]:80/);
    expect(r.out).toMatch(/50\.0000%\s+ACCEPT DNAT → \[fd00:10:180::1\]:80/);
    const mixed = await cli('trace', '--dump', join(dir, 'v6.txt'), '--dst', '10.96.0.1', '--dport', '80');
    expect(mixed.code).toBe(2);
    expect(mixed.err).toMatch(/--dst must be an IPv6 address, got "10\.96\.0\.1" \(IPv4 is not traced through ip6tables-save output such as ".*v6\.txt": give iptables-save output for IPv4\)/);
  });
});

describe('IPVS mode: ipsets and iptables from the kernel, then the virtual server', () => {
  it('marks, accepts and hands a ClusterIP packet to the rr virtual server, one equal share per real server', async () => {
    const items = [
      svc('web', { clusterIP: '10.96.5.5', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }),
      eps('web', ['10.244.1.2', '10.244.2.2', '10.244.2.3', '10.244.3.4']),
    ];
    const r = generateIpvs(resolveServicePorts(readCluster(items), { nodeName: NODE }), OPTS);
    const { dump, ipsets, ipvs } = await withNetns(async (ns) => {
      await ns.run(['ipset', 'restore'], { input: r.ipsetRestore });
      await ns.run(['iptables-restore', '--noflush'], { input: r.iptablesRestore });
      for (const j of IPVS_JUMPS) await ns.run(['iptables', '-t', j.table, '-I', j.chain, ...j.args]);
      let table = renderIpvsadm(r.ipvs);
      // The kernel's own listing where it has IPVS; otherwise ipvsadm's format of the predicted table.
      if (ipvsSkipReason() === null) {
        await ns.run(['ipvsadm', '-R'], { input: r.ipvsadmRestore });
        table = (await ns.run(['ipvsadm', '-Ln'])).stdout;
      }
      return { dump: (await ns.run(['iptables-save'])).stdout, ipsets: (await ns.run(['ipset', 'list'])).stdout, ipvs: table };
    });
    const state = parseIpvsadm(ipvs);
    const fromPod = traceIptables({ dump: parseIptablesSave(dump), ipsets: parseIpsetList(ipsets), ipvs: state, hook: 'PREROUTING', localAddresses: [NODE_IP], packet: from('10.244.1.9', '10.96.5.5', 80) });
    expect(fromPod.mode).toBe('ipvs');
    expect(fromPod.warnings).toEqual([]);
    expect(fromPod.outcomes.map((o) => [o.dnat, o.probability]).sort()).toEqual(
      ['10.244.1.2:8080', '10.244.2.2:8080', '10.244.2.3:8080', '10.244.3.4:8080'].map((d) => [d, 0.25]));
    for (const o of fromPod.outcomes) {
      expect(o.ipvs).toEqual({ service: 'TCP 10.96.5.5:80 rr', scheduler: 'rr', destinations: 4 });
      // The cluster IP is the node's own (kube-ipvs0): filter INPUT, then IPVS, then POSTROUTING.
      expect(o.path.indexOf('INPUT')).toBeLessThan(o.path.indexOf('IPVS TCP 10.96.5.5:80 rr'));
      expect(o.path.at(-2)).toBe('POSTROUTING');
      expect(o.snat).toBeNull();
    }
    // From outside the cluster CIDR kube-proxy marks it (KUBE-CLUSTER-IP) and POSTROUTING masquerades.
    const fromNode = traceIptables({ dump: parseIptablesSave(dump), ipsets: parseIpsetList(ipsets), ipvs: state, hook: 'OUTPUT', localAddresses: [NODE_IP], packet: from(NODE_IP, '10.96.5.5', 80) });
    expect(fromNode.outcomes).toHaveLength(4);
    expect(fromNode.outcomes.every((o) => o.snat === 'MASQUERADE')).toBe(true);
  });

  it('splits by scheduler: wrr by weight, wlc to the least loaded, sh by weight with a warning', () => {
    const d = (address: string, weight: number, activeConn: number, inactConn = 0) => ({ address, port: 80, forward: 'Masq' as const, weight, activeConn, inactConn });
    const svc4 = (scheduler: string) => ({ protocol: 'TCP' as const, address: '10.96.0.9', port: 80, scheduler, flags: [], destinations: [d('10.0.0.1', 1, 4), d('10.0.0.2', 3, 4), d('10.0.0.3', 0, 0)] });
    expect(ipvsShares(svc4('rr')).shares.map((s) => s.probability)).toEqual([0.5, 0.5]);
    expect(ipvsShares(svc4('wrr')).shares.map((s) => s.probability)).toEqual([0.25, 0.75]);
    expect(ipvsShares(svc4('wlc')).shares).toEqual([{ destination: expect.objectContaining({ address: '10.0.0.2' }), probability: 1 }]);
    expect(ipvsShares(svc4('lc')).shares).toEqual([{ destination: expect.objectContaining({ address: '10.0.0.1' }), probability: 1 }]);
    const sh = ipvsShares(svc4('sh'));
    expect(sh.shares.map((s) => s.probability)).toEqual([0.25, 0.75]);
    expect(sh.warning).toMatch(/hash/);
  });
});
