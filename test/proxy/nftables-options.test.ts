/**
 * kube-proxy's settings in nftables mode (pkg/proxy/nftables/proxier.go setupNFTables and
 * syncProxyRules; cmd/kube-proxy's default of --nodeport-addresses primary): the local-traffic
 * detector, --masquerade-all, --nodeport-addresses, the service CIDRs and the IPv6 proxier.
 * Upstream's TestOverallNFTablesRules text where it applies, and the kernel for every output.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { EndpointInfo, ServicePortInfo } from '../../lib/k8s/index.ts';
import { generateNftables, type NftablesOptions, type NftablesRules } from '../../lib/proxy/nftables.ts';
import { GeneratorInputError } from '../../lib/proxy/tokens.ts';
import { withNetns } from '../helpers/netns.ts';

function port(init: Partial<ServicePortInfo> & Pick<ServicePortInfo, 'namespace' | 'name' | 'clusterIP'>): ServicePortInfo {
  return {
    portName: 'p80', servicePortName: `${init.namespace}/${init.name}:p80`, protocol: 'TCP', type: 'ClusterIP', port: 80,
    nodePort: null, externalIPs: [], loadBalancerIPs: [], loadBalancerSourceRanges: [], sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800, externalTrafficPolicy: 'Cluster', internalTrafficPolicy: 'Cluster', endpoints: [],
    ...init,
  };
}

const ep = (ip: string, isLocal = false): EndpointInfo => ({
  ip, port: 80, ready: true, serving: true, terminating: false, nodeName: isLocal ? 'test-node' : null, podName: null, isLocal,
});

/** TestOverallNFTablesRules' services, in IPv4 or (with upstream's IPv6 test addresses) IPv6. */
function overall(v6: boolean): ServicePortInfo[] {
  const a = (v4: string, v6addr: string) => (v6 ? v6addr : v4);
  return [
    port({ namespace: 'ns1', name: 'svc1', clusterIP: a('172.30.0.41', 'fd00:172:30::41'), endpoints: [ep(a('10.180.0.1', 'fd00:10:180::1'))] }),
    port({
      namespace: 'ns2', name: 'svc2', clusterIP: a('172.30.0.42', 'fd00:172:30::42'), type: 'LoadBalancer', externalTrafficPolicy: 'Local', nodePort: 3001,
      loadBalancerIPs: [a('1.2.3.4', '2001:db8:1:2::34')], externalIPs: [a('192.168.99.22', '2001:db8:99::22')], endpoints: [ep(a('10.180.0.2', 'fd00:10:180::2'))],
    }),
    port({ namespace: 'ns3', name: 'svc3', clusterIP: a('172.30.0.43', 'fd00:172:30::43'), type: 'NodePort', nodePort: 3003, endpoints: [ep(a('10.180.0.3', 'fd00:10:180::3'))] }),
    port({
      namespace: 'ns4', name: 'svc4', clusterIP: a('172.30.0.44', 'fd00:172:30::44'), type: 'NodePort', externalIPs: [a('192.168.99.33', '2001:db8:99::33')],
      endpoints: [ep(a('10.180.0.4', 'fd00:10:180::4')), ep(a('10.180.0.5', 'fd00:10:180::5'), true)],
    }),
    port({
      namespace: 'ns5', name: 'svc5', clusterIP: a('172.30.0.45', 'fd00:172:30::45'), type: 'LoadBalancer', nodePort: 3002, loadBalancerIPs: [a('5.6.7.8', '2001:db8:5:6::78')],
      loadBalancerSourceRanges: [a(' 203.0.113.0/25', ' 2001:db8:203::/64')], sessionAffinity: 'ClientIP', endpoints: [ep(a('10.180.0.3', 'fd00:10:180::3'))],
    }),
    port({ namespace: 'ns6', name: 'svc6', clusterIP: a('172.30.0.46', 'fd00:172:30::46') }),
  ];
}

// NewFakeProxier's facts: pod CIDR 10.0.0.0/8 (fd00:10::/64), service CIDR 172.30.0.0/16
// (fd00:10:96::/112), node IP 192.168.0.2 (2001:db8::1) among the node's addresses.
const NODE_IPS = ['192.168.0.2', '192.168.1.2', '192.168.99.11', '2001:db8::1', '2001:db8:1::2'];
const FAKE: NftablesOptions = {
  nodeName: 'test-node', nodeIPs: NODE_IPS, clusterCIDR: '10.0.0.0/8,fd00:10::/64', serviceCIDRs: ['172.30.0.0/16', 'fd00:10:96::/112'],
};

/** Upstream's expected lines for TestOverallNFTablesRules (test/fixtures/nft-upstream-overall.nft). */
async function upstreamOverall(): Promise<string[]> {
  return (await readFile(new URL('../fixtures/nft-upstream-overall.nft', import.meta.url), 'utf8'))
    .split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.replaceAll(' , ', ', '));
}

/** Our lines without the add+delete preamble the fake does not write. */
const lines = (r: NftablesRules) => r.nft.split('\n').filter((l) => l !== '' && l !== `add table ${r.family} kube-proxy` && l !== `delete table ${r.family} kube-proxy`);

/** Rules of each chain in order, so a rule moved within its chain is noticed. */
function rulesPerChain(text: string[], family: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const prefix = `add rule ${family} kube-proxy `;
  for (const l of text) {
    if (!l.startsWith(prefix)) continue;
    const rest = l.slice(prefix.length);
    const chain = rest.slice(0, rest.indexOf(' '));
    (out[chain] ??= []).push(rest.slice(chain.length + 1));
  }
  return out;
}

type NftJson = { nftables: Record<string, Record<string, unknown>>[] };

/**
 * Load into a private namespace and list it: the kernel holds one table of the right family, with
 * exactly the chains, rules per chain and elements per set the generator counted.
 */
async function loadAndList(r: NftablesRules): Promise<{ chains: Map<string, number>; sets: Map<string, unknown[]> }> {
  return withNetns(async (ns) => {
    await ns.run(['nft', '-f', '-'], { input: r.nft });
    const json = JSON.parse((await ns.run(['nft', '-j', 'list', 'ruleset'])).stdout) as NftJson;
    const chains = new Map<string, number>();
    const sets = new Map<string, unknown[]>();
    const tables: string[] = [];
    for (const obj of json.nftables) {
      const [kind] = Object.keys(obj);
      const o = obj[kind];
      if (kind === 'table') tables.push(`${o.family} ${o.name}`);
      else if (kind === 'chain') chains.set(o.name as string, chains.get(o.name as string) ?? 0);
      else if (kind === 'rule') chains.set(o.chain as string, (chains.get(o.chain as string) ?? 0) + 1);
      else if (kind === 'set' || kind === 'map') sets.set(o.name as string, (o.elem ?? []) as unknown[]);
    }
    expect(tables).toEqual([`${r.family} kube-proxy`]);
    expect(Object.fromEntries(chains)).toEqual(Object.fromEntries([...chains.keys()].map((c) => [c, r.rulesPerChain[c] ?? 0])));
    expect(chains.size).toBe(r.counts.chains);
    for (const [name, elems] of sets) expect([name, elems.length]).toEqual([name, r.elementsPerSet[name] ?? 0]);
    return { chains, sets };
  });
}

describe('the local-traffic detector and --masquerade-all', () => {
  const masqueradeLines = (l: string) => / ip saddr != 10\.0\.0\.0\/8 jump mark-for-masquerade$/.test(l);
  const podShortCircuit = (l: string) => l.endsWith('comment "short-circuit pod traffic"');

  it('without a detector (--cluster-cidr ""): upstream\'s text less the masquerade and pod short-circuit rules, and it loads', async () => {
    const expected = (await upstreamOverall()).filter((l) => !masqueradeLines(l) && !podShortCircuit(l));
    for (const clusterCIDR of ['', null]) {
      const r = generateNftables(overall(false), { ...FAKE, clusterCIDR });
      expect(r.nft).not.toContain('saddr != 10.0.0.0/8');
      expect([...lines(r)].sort()).toEqual([...expected].sort());
      expect(rulesPerChain(lines(r), 'ip')).toEqual(rulesPerChain(expected, 'ip'));
      await loadAndList(r);
    }
  });

  it('--masquerade-all: every packet to a cluster IP is masqueraded, detector or not', async () => {
    const expected = (await upstreamOverall()).map((l) => (masqueradeLines(l) ? l.replace(' ip saddr != 10.0.0.0/8', '') : l));
    for (const clusterCIDR of ['10.0.0.0/8', null]) {
      const r = generateNftables(overall(false), { ...FAKE, clusterCIDR, masqueradeAll: true });
      const ours = clusterCIDR === null ? expected.filter((l) => !podShortCircuit(l)) : expected;
      expect([...lines(r)].sort()).toEqual([...ours].sort());
      expect(lines(r).filter((l) => l.includes('172.30.0.41 jump'))).toEqual(['add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 jump mark-for-masquerade']);
      await loadAndList(r);
    }
  });
});

describe('--nodeport-addresses (upstream TestNodePorts\' cases)', () => {
  const svc = (v6: boolean) => [port({
    namespace: 'ns1', name: 'svc1', type: 'NodePort', nodePort: 3001, clusterIP: v6 ? 'fd00:172:30::41' : '172.30.0.41',
    endpoints: v6 ? [ep('fd00:10:180::1'), ep('fd00:10:180::2:1', true)] : [ep('10.180.0.1'), ep('10.180.2.1', true)],
  })];
  const nodePortIPs = async (r: NftablesRules) => ((await loadAndList(r)).sets.get('nodeport-ips') ?? null) as string[] | null;

  it.each([
    ['ipv4, the default (primary)', false, undefined, ['192.168.0.2']],
    ['ipv4, multiple nodeport-addresses', false, ['192.168.0.0/24', '192.168.1.0/24', '2001:db8::/64'], ['192.168.0.2', '192.168.1.2']],
    ['ipv6, the default (primary)', true, undefined, ['2001:db8::1']],
    ['ipv6, multiple nodeport-addresses', true, ['192.168.0.0/24', '192.168.1.0/24', '2001:db8::/64', '2001:db8:1::2/128'], ['2001:db8::1', '2001:db8:1::2']],
    ['localhost is never a NodePort address in nftables mode', false, ['127.0.0.0/8', '192.168.0.0/24'], ['192.168.0.2']],
  ] as const)('%s: nodeport-ips holds %j', async (_name, v6, nodePortAddresses, want) => {
    const r = generateNftables(svc(v6), { ...FAKE, ipFamily: v6 ? 'IPv6' : 'IPv4', nodePortAddresses: nodePortAddresses && [...nodePortAddresses] });
    const ipX = v6 ? 'ip6' : 'ip';
    expect(r.nft).toContain(`add rule ${ipX} kube-proxy services ${ipX} daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports\n`);
    expect([...(await nodePortIPs(r)) ?? []].sort()).toEqual([...want].sort());
  });

  it.each([
    ['IPv4', '0.0.0.0/0', 'ip daddr != 127.0.0.0/8'],
    ['IPv6', '::/0', 'ip6 daddr != ::1'],
  ] as const)('%s: a zero CIDR matches every local address but loopback, with no nodeport-ips set', async (ipFamily, zero, notLocalhost) => {
    const r = generateNftables(svc(ipFamily === 'IPv6'), { ...FAKE, ipFamily, nodePortAddresses: [zero] });
    expect(r.nft).toContain(` services fib daddr type local ${notLocalhost} meta l4proto . th dport vmap @service-nodeports\n`);
    expect(r.nft).toContain(` nodeport-endpoints-check ${notLocalhost} meta l4proto . th dport vmap @no-endpoint-nodeports\n`);
    expect(await nodePortIPs(r)).toBeNull();
  });

  it('primary without a node IP of the family matches every address too, as before', () => {
    expect(generateNftables(svc(false), { ...FAKE, nodeIPs: ['2001:db8::1'] }).nft).not.toContain('nodeport-ips');
  });
});

describe('the IPv6 proxier: table ip6 kube-proxy', () => {
  const opts: NftablesOptions = { ...FAKE, ipFamily: 'IPv6' };

  // Lines of kube-proxy's IPv6 TestNodePorts dump (kept in knftables' fake_test.go) that the
  // release modelled here writes unchanged: chain names hashed with ':' as '.', ip6 matches,
  // bracketed DNAT targets, ipv6_addr sets and maps.
  const UPSTREAM_IPV6 = [
    'add chain ip6 kube-proxy endpoint-2CRNCTTE-ns1/svc1/tcp/p80__fd00.10.180..2.1/80',
    'add chain ip6 kube-proxy endpoint-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80',
    'add chain ip6 kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80',
    'add set ip6 kube-proxy cluster-ips { type ipv6_addr ; comment "Active ClusterIPs" ; }',
    'add set ip6 kube-proxy nodeport-ips { type ipv6_addr ; comment "IPs that accept NodePort traffic" ; }',
    'add map ip6 kube-proxy firewall-ips { type ipv6_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }',
    'add map ip6 kube-proxy no-endpoint-services { type ipv6_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }',
    'add map ip6 kube-proxy service-ips { type ipv6_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }',
    'add rule ip6 kube-proxy cluster-ips-check ip6 daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"',
    'add rule ip6 kube-proxy cluster-ips-check ip6 daddr { fd00:10:96::/112 } drop comment "Drop traffic to unallocated ClusterIPs"',
    'add rule ip6 kube-proxy endpoint-2CRNCTTE-ns1/svc1/tcp/p80__fd00.10.180..2.1/80 ip6 saddr fd00:10:180::2:1 jump mark-for-masquerade',
    'add rule ip6 kube-proxy endpoint-2CRNCTTE-ns1/svc1/tcp/p80__fd00.10.180..2.1/80 meta l4proto tcp dnat to [fd00:10:180::2:1]:80',
    'add rule ip6 kube-proxy endpoint-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80 ip6 saddr fd00:10:180::1 jump mark-for-masquerade',
    'add rule ip6 kube-proxy endpoint-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80 meta l4proto tcp dnat to [fd00:10:180::1]:80',
    'add rule ip6 kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80 jump mark-for-masquerade',
    'add rule ip6 kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80 goto service-ULMVA6XW-ns1/svc1/tcp/p80',
    'add rule ip6 kube-proxy firewall-check ip6 daddr . meta l4proto . th dport vmap @firewall-ips',
    'add rule ip6 kube-proxy nodeport-endpoints-check ip6 daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports',
    'add rule ip6 kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 2 vmap { 0 : goto endpoint-ZVRFLKHO-ns1/svc1/tcp/p80__fd00.10.180..1/80, 1 : goto endpoint-2CRNCTTE-ns1/svc1/tcp/p80__fd00.10.180..2.1/80 }',
    'add rule ip6 kube-proxy service-endpoints-check ip6 daddr . meta l4proto . th dport vmap @no-endpoint-services',
    'add rule ip6 kube-proxy services ip6 daddr . meta l4proto . th dport vmap @service-ips',
    'add rule ip6 kube-proxy services ip6 daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports',
    'add element ip6 kube-proxy cluster-ips { fd00:172:30::41 }',
    'add element ip6 kube-proxy nodeport-ips { 2001:db8:1::2 }',
    'add element ip6 kube-proxy service-ips { fd00:172:30::41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }',
  ];

  it('writes what kube-proxy\'s IPv6 TestNodePorts dump holds for a NodePort service', async () => {
    const svc = [port({
      namespace: 'ns1', name: 'svc1', type: 'NodePort', nodePort: 3001, clusterIP: 'fd00:172:30::41',
      endpoints: [ep('fd00:10:180::1'), ep('fd00:10:180::2:1', true)],
    })];
    const r = generateNftables(svc, { ...opts, nodePortAddresses: ['2001:db8::/64', '2001:db8:1::2/128'] });
    expect(r.family).toBe('ip6');
    const ours = lines(r);
    for (const l of UPSTREAM_IPV6) expect(ours).toContain(l);
    expect(ours).toContain('add rule ip6 kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip6 daddr fd00:172:30::41 ip6 saddr != fd00:10::/64 jump mark-for-masquerade');
    await loadAndList(r);
  });

  it('TestOverallNFTablesRules\' services in IPv6: every line is the IPv4 one with IPv6 types and matches, and it loads', async () => {
    const v4 = generateNftables(overall(false), FAKE);
    const v6 = generateNftables(overall(true), opts);
    // Same objects, same counts: only addresses, types and matches differ.
    expect(v6.counts).toEqual(v4.counts);
    const text = v6.nft;
    expect(text).not.toMatch(/\bip (daddr|saddr)\b|ipv4_addr|\d+\.\d+\.\d+\.\d+/);
    expect(text).toContain('add set ip6 kube-proxy affinity-');
    expect(text).toMatch(/update @affinity-\S+ \{ ip6 saddr \}/);
    expect(text).toMatch(/ip6 saddr @affinity-\S+ goto endpoint-/);
    // The node IP 2001:db8::1 is outside 2001:db8:203::/64: the LB IP is not let through as a source.
    expect(text).toContain('ip6 saddr != { 2001:db8:203::/64 } drop');
    expect(text).toContain('add rule ip6 kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 ip6 saddr fd00:10::/64 goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit pod traffic"');
    expect(text).toContain('add element ip6 kube-proxy no-endpoint-services { 2001:db8:1:2::34 . tcp . 80 comment "ns2/svc2:p80" : drop }');
    const { sets } = await loadAndList(v6);
    expect(sets.get('cluster-ips')).toHaveLength(6);
  });

  it('and the IPv4 proxier skips the IPv6 service ports, the IPv6 proxier the IPv4 ones', () => {
    const empty4 = generateNftables([], FAKE);
    const empty6 = generateNftables([], opts);
    expect(generateNftables(overall(true), FAKE).nft).toBe(empty4.nft);
    expect(generateNftables(overall(false), opts).nft).toBe(empty6.nft);
  });

  it('takes the service CIDRs of its family; kind\'s IPv6 service subnet by default; none of the family, no drop rule', () => {
    const drop = (r: NftablesRules) => r.nft.split('\n').filter((l) => l.includes('Drop traffic to unallocated ClusterIPs'));
    expect(drop(generateNftables([], { ipFamily: 'IPv6' }))).toEqual(['add rule ip6 kube-proxy cluster-ips-check ip6 daddr { fd00:10:96::/112 } drop comment "Drop traffic to unallocated ClusterIPs"']);
    expect(drop(generateNftables([], { serviceCIDRs: ['10.96.0.0/16', '10.97.0.0/16', 'fd00::/112'] }))).toEqual(['add rule ip kube-proxy cluster-ips-check ip daddr { 10.96.0.0/16, 10.97.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"']);
    expect(drop(generateNftables([], { ipFamily: 'IPv6', serviceCIDRs: ['10.96.0.0/16'] }))).toEqual([]);
    expect(() => generateNftables([], { serviceCIDRs: ['10.96.0.0/16 } drop'] })).toThrow(GeneratorInputError);
  });
});
