import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { readClusterJson, resolveServicePorts, syntheticCluster, usableEndpoints } from '../../lib/k8s/index.ts';
import type { ServicePortInfo } from '../../lib/k8s/index.ts';
import { findNftChain, findNftTable, parseNftJson, parseNftRuleset, type NftRuleset } from '../../lib/parse/nft.ts';
import { hashAndTruncate } from '../../lib/proxy/names.ts';
import { generateNftables, nftEndpointChain, nftServiceChain } from '../../lib/proxy/nftables.ts';
import { withNetns, type TestNetns } from '../helpers/netns.ts';

const PREFIX = 'ip kube-proxy ';

/** What the generator meant, read back from its own `add …` lines. */
function intent(nft: string) {
  const rulesPerChain = new Map<string, string[]>();
  const elementsPer = new Map<string, number>();
  const chains: string[] = [];
  for (const line of nft.split('\n')) {
    if (line.startsWith(`add chain ${PREFIX}`)) {
      chains.push(line.slice(`add chain ${PREFIX}`.length).split(' ')[0]);
    } else if (line.startsWith(`add rule ${PREFIX}`)) {
      const rest = line.slice(`add rule ${PREFIX}`.length);
      const sp = rest.indexOf(' ');
      const chain = rest.slice(0, sp);
      rulesPerChain.set(chain, [...(rulesPerChain.get(chain) ?? []), rest.slice(sp + 1)]);
    } else if (line.startsWith(`add element ${PREFIX}`)) {
      const name = line.slice(`add element ${PREFIX}`.length).split(' ')[0];
      elementsPer.set(name, (elementsPer.get(name) ?? 0) + 1);
    }
  }
  return { chains, rulesPerChain, elementsPer };
}

async function load(ns: TestNetns, nft: string): Promise<{ text: NftRuleset; json: NftRuleset }> {
  await ns.run(['nft', '-f', '-'], { input: nft });
  const text = parseNftRuleset((await ns.run(['nft', 'list', 'ruleset'])).stdout);
  const json = parseNftJson((await ns.run(['nft', '-j', 'list', 'ruleset'])).stdout);
  return { text, json };
}

/** Drop what only one view has: positions, and what nft 1.0.6 JSON omits (table/chain comments, `dynamic`). */
function comparable(rs: NftRuleset): unknown {
  return rs.tables.map((t) => ({
    ...t, line: 0, handle: null, comment: null,
    chains: t.chains.map((c) => ({ ...c, line: 0, handle: null, comment: null, rules: c.rules.map((r) => ({ ...r, line: 0, handle: null })) })),
    sets: t.sets.map((s) => ({ ...s, line: 0, handle: null, flags: s.flags.filter((f) => f !== 'dynamic') })),
  }));
}

/** The kernel holds exactly what the generator meant, and both listings say the same. */
function checkAgainstIntent(nft: string, counts: ReturnType<typeof generateNftables>['counts'], rs: { text: NftRuleset; json: NftRuleset }) {
  expect(comparable(rs.json)).toEqual(comparable(rs.text));
  const table = findNftTable(rs.text, 'ip', 'kube-proxy');
  expect(table).toBeDefined();
  if (!table) return;
  const meant = intent(nft);
  expect(table.chains.map((c) => c.name).sort()).toEqual([...meant.chains].sort());
  for (const c of table.chains) expect([c.name, c.rules.length]).toEqual([c.name, meant.rulesPerChain.get(c.name)?.length ?? 0]);
  for (const s of table.sets) expect([s.name, s.elements.length]).toEqual([s.name, meant.elementsPer.get(s.name) ?? 0]);
  expect(counts.chains).toBe(table.chains.length);
  expect(counts.rules).toBe(table.chains.reduce((n, c) => n + c.rules.length, 0));
  expect(counts.sets).toBe(table.sets.filter((s) => s.kind === 'set').length);
  expect(counts.maps).toBe(table.sets.filter((s) => s.kind === 'map').length);
  expect(counts.elements).toBe(table.sets.reduce((n, s) => n + s.elements.length, 0));
}

/** Each service's numgen map sends index i to the chain of endpoint i. */
function checkDispatch(rs: NftRuleset, ports: ServicePortInfo[]) {
  const table = findNftTable(rs, 'ip', 'kube-proxy');
  for (const p of ports) {
    const eps = usableEndpoints(p.endpoints);
    const chain = table && findNftChain(table, nftServiceChain(p));
    if (eps.length === 0) {
      expect(chain).toBeUndefined();
      continue;
    }
    const rule = chain?.rules.find((r) => r.numgen !== null);
    expect(rule?.numgen?.mod).toBe(eps.length);
    expect(rule?.numgen?.entries).toEqual(eps.map((e, i) => ({ index: i, last: i, verdict: { kind: 'goto', target: nftEndpointChain(p, e) } })));
    for (const e of eps) {
      const ep = table && findNftChain(table, nftEndpointChain(p, e));
      expect(ep?.rules.map((r) => r.verdict)).toEqual([
        { kind: 'jump', target: 'mark-for-masquerade' },
        ...(p.sessionAffinity === 'ClientIP' ? [null] : []),
        { kind: 'dnat', target: `${e.ip}:${e.port}` },
      ]);
    }
  }
}

async function httpbinPorts(): Promise<ServicePortInfo[]> {
  const c = readClusterJson(await readFile(new URL('../fixtures/kind-httpbin.kubectl.json', import.meta.url), 'utf8'));
  return resolveServicePorts(c, { nodeName: 'kind-worker' });
}

function port(init: Partial<ServicePortInfo> & Pick<ServicePortInfo, 'namespace' | 'name' | 'clusterIP'>): ServicePortInfo {
  return {
    portName: 'p80', servicePortName: `${init.namespace}/${init.name}:p80`, protocol: 'TCP', type: 'ClusterIP', port: 80,
    nodePort: null, externalIPs: [], loadBalancerIPs: [], loadBalancerSourceRanges: [], sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800, externalTrafficPolicy: 'Cluster', internalTrafficPolicy: 'Cluster', endpoints: [],
    ...init,
  };
}

const ep = (ip: string, isLocal = false) => ({
  ip, port: 80, ready: true, serving: true, terminating: false, nodeName: isLocal ? 'test-node' : null, podName: null, isLocal,
});

/** The services of upstream's TestOverallNFTablesRules, as resolveServicePorts would give them. */
function upstreamOverallPorts(): ServicePortInfo[] {
  return [
    port({ namespace: 'ns1', name: 'svc1', clusterIP: '172.30.0.41', endpoints: [ep('10.180.0.1')] }),
    port({
      namespace: 'ns2', name: 'svc2', clusterIP: '172.30.0.42', type: 'LoadBalancer', externalTrafficPolicy: 'Local', nodePort: 3001,
      loadBalancerIPs: ['1.2.3.4'], externalIPs: ['192.168.99.22'], endpoints: [ep('10.180.0.2')],
    }),
    port({ namespace: 'ns3', name: 'svc3', clusterIP: '172.30.0.43', type: 'NodePort', nodePort: 3003, endpoints: [ep('10.180.0.3')] }),
    port({
      namespace: 'ns4', name: 'svc4', clusterIP: '172.30.0.44', type: 'NodePort', externalIPs: ['192.168.99.33'],
      endpoints: [ep('10.180.0.4'), ep('10.180.0.5', true)],
    }),
    port({
      namespace: 'ns5', name: 'svc5', clusterIP: '172.30.0.45', type: 'LoadBalancer', nodePort: 3002, loadBalancerIPs: ['5.6.7.8'],
      loadBalancerSourceRanges: [' 203.0.113.0/25'], sessionAffinity: 'ClientIP', endpoints: [ep('10.180.0.3')],
    }),
    port({ namespace: 'ns6', name: 'svc6', clusterIP: '172.30.0.46' }),
  ];
}

const upstreamOptions = { nodeName: 'test-node', nodeIPs: ['192.168.0.2'], clusterCIDR: '10.0.0.0/8', serviceCIDRs: ['172.30.0.0/16'] };

describe('generateNftables', () => {
  it('writes what upstream TestOverallNFTablesRules expects', async () => {
    // Expected lines: kubernetes pkg/proxy/nftables/proxier_test.go, TestOverallNFTablesRules.
    const expected = (await readFile(new URL('../fixtures/nft-upstream-overall.nft', import.meta.url), 'utf8'))
      .split('\n').filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => l.replaceAll(' , ', ', ')); // knftables spaces its commas; nft reads both
    const { nft } = generateNftables(upstreamOverallPorts(), upstreamOptions);
    // Our file starts with add+delete so a resync replaces the table; the fake has no such lines.
    const ours = nft.split('\n').filter((l) => l !== '' && l !== 'add table ip kube-proxy' && l !== 'delete table ip kube-proxy');
    expect([...ours].sort()).toEqual([...expected].sort());
    // Order matters inside a chain: compare each chain's rules in sequence.
    const rulesOf = (lines: string[]) => intent(lines.join('\n')).rulesPerChain;
    expect(rulesOf(ours)).toEqual(rulesOf(expected));
  });

  it('names httpbin chains with hashAndTruncate', async () => {
    const httpbin = (await httpbinPorts()).find((p) => p.servicePortName === 'default/httpbin:http');
    expect(httpbin).toBeDefined();
    if (!httpbin) return;
    expect(nftServiceChain(httpbin)).toBe('service-5WI3VASQ-default/httpbin/tcp/http');
    expect(nftEndpointChain(httpbin, { ip: '10.244.1.12', port: 8080 })).toBe('endpoint-AANYB7I6-default/httpbin/tcp/http__10.244.1.12/8080');
    const { nft } = generateNftables([httpbin], { nodeIPs: ['172.18.0.3'] });
    const names = httpbin.endpoints.map((e) => `endpoint-${hashAndTruncate(`default/httpbin/tcp/http__${e.ip}/${e.port}`)}`);
    expect(names).toHaveLength(3);
    const dispatch = nft.split('\n').find((l) => l.includes('numgen'));
    expect(dispatch).toBe(
      `add rule ip kube-proxy service-5WI3VASQ-default/httpbin/tcp/http numgen random mod 3 vmap { ${names.map((n, i) => `${i} : goto ${n}`).join(', ')} }`,
    );
  });

  it('adds 1+E chains and 2+2E rules per ClusterIP service (2 elements)', () => {
    for (const E of [1, 3, 10]) {
      const base = generateNftables(resolveServicePorts(syntheticCluster({ services: 0, endpoints: E }))).counts;
      const one = generateNftables(resolveServicePorts(syntheticCluster({ services: 1, endpoints: E }))).counts;
      expect({ chains: one.chains - base.chains, rules: one.rules - base.rules, elements: one.elements - base.elements })
        .toEqual({ chains: 1 + E, rules: 2 + 2 * E, elements: 2 });
    }
    // The fixed part: 8 base + 8 helper chains, 23 rules, 2 sets and 5 maps.
    const empty = generateNftables([], { nodeIPs: ['172.18.0.3'] }).counts;
    expect(empty).toEqual({ chains: 16, rules: 23, sets: 2, maps: 5, elements: 1 });
  });

  it('is deterministic', async () => {
    const ports = await httpbinPorts();
    expect(generateNftables(ports, { nodeIPs: ['172.18.0.3'] }).nft).toBe(generateNftables(structuredClone(ports), { nodeIPs: ['172.18.0.3'] }).nft);
  });
});

describe('generateNftables in a kernel', () => {
  it('loads the kind httpbin cluster as meant, and both listings agree', async () => {
    const ports = await httpbinPorts();
    const { nft, counts } = generateNftables(ports, { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] });
    await withNetns(async (ns) => {
      const rs = await load(ns, nft);
      checkAgainstIntent(nft, counts, rs);
      checkDispatch(rs.text, ports);
      checkDispatch(rs.json, ports);
    });
  });

  it('loads NodePorts, external and LB IPs, affinity, Local policy and services without endpoints', async () => {
    const ports = upstreamOverallPorts();
    for (const opts of [upstreamOptions, { ...upstreamOptions, nodeIPs: [] }]) {
      const { nft, counts } = generateNftables(ports, opts);
      await withNetns(async (ns) => {
        const rs = await load(ns, nft);
        checkAgainstIntent(nft, counts, rs);
        const table = findNftTable(rs.text, 'ip', 'kube-proxy');
        const noEp = table?.sets.find((s) => s.name === 'no-endpoint-services');
        expect(noEp?.elements).toContainEqual({ key: '172.30.0.46 . tcp . 80', value: 'goto reject-chain', comment: 'ns6/svc6:p80' });
        expect(table?.sets.find((s) => s.name.startsWith('affinity-'))?.timeoutSeconds).toBe(10800);
        const svc2 = ports[1];
        checkDispatch(rs.text, ports.filter((p) => p !== svc2)); // svc2's only endpoint is remote with Local policy
      });
    }
  });

  it('resyncs when a deployment scales 3 → 5 → 2', async () => {
    await withNetns(async (ns) => {
      for (const E of [3, 5, 2]) {
        const ports = resolveServicePorts(syntheticCluster({ services: 2, endpoints: E, nodePorts: 1, kindDefaults: true }), { nodeName: 'kind-worker' });
        const { nft, counts } = generateNftables(ports, { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] });
        const rs = await load(ns, nft);
        checkAgainstIntent(nft, counts, rs);
        checkDispatch(rs.text, ports);
        const svc = ports.find((p) => p.name === 'svc-1');
        const chain = svc && findNftChain(findNftTable(rs.json, 'ip', 'kube-proxy')!, nftServiceChain(svc));
        expect(chain?.rules.at(-1)?.numgen?.entries).toHaveLength(E);
      }
    });
  });
});
