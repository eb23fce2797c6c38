/**
 * kube-proxy's own nftables packet-flow tests (pkg/proxy/nftables/proxier_test.go, every
 * runPacketFlowTests call), run against the kernel: each case's objects go through readCluster,
 * resolveServicePorts and generateNftables, the rules are loaded with `nft -f` into a private
 * namespace, read back with `nft list ruleset` and `nft -j list ruleset`, and every flow is traced
 * through both listings, which must agree. Fixtures and how upstream's tracer maps onto ours:
 * test/fixtures/upstream-flows/nftables/README.md.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { readCluster, resolveServicePorts } from '../../lib/k8s/index.ts';
import { parseNftJson, parseNftRuleset, type NftRuleset } from '../../lib/parse/nft.ts';
import { generateNftables, type NftablesOptions } from '../../lib/proxy/nftables.ts';
import { traceNftables } from '../../lib/trace/nftables.ts';
import type { Packet, TraceResult } from '../../lib/trace/types.ts';
import { withNetns } from '../helpers/netns.ts';

interface Expect {
  output: 'dnat' | 'none' | 'DROP' | 'REJECT';
  endpoints?: string[];
  masquerade: boolean;
}

interface Flow {
  name: string;
  source: string;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  destination: string;
  port: number;
  expect: Expect;
}

interface Case {
  name: string;
  node: { name: string; ips: string[] };
  /** Upstream's settings in the generator's terms; some may be options it does not have yet. */
  options: NftablesOptions & { ipFamily: 'IPv4' | 'IPv6' };
  objects: unknown;
  flows: Flow[];
}

interface Fixture {
  upstream: { repository: string; commit: string; file: string; test: string };
  cases: Case[];
}

/** Generator options and parser behaviour some cases need, each with a probe: is it there yet? */
const FEATURES = {
  nodePortAddresses: {
    what: 'nodePortAddresses (NodePorts only on the node addresses the CIDRs select)',
    present: () => !generated({ nodeIPs: ['192.168.0.2', '192.168.1.2'], nodePortAddresses: ['192.168.0.2/32'] })?.includes('192.168.1.2'),
  },
  ipv6: {
    what: "ipFamily: 'IPv6' (the IPv6 proxier's `ip6 kube-proxy` table)",
    present: () => generated({ ipFamily: 'IPv6', clusterCIDR: 'fd00:10::/64', serviceCIDRs: ['fd00:10:96::/112'] })?.includes('ip6 kube-proxy') ?? false,
  },
  noDetector: {
    what: "clusterCIDR '' (no local-traffic detector)",
    present: () => generated({ clusterCIDR: '' }) !== null,
  },
  masqueradeAll: {
    what: 'masqueradeAll (every packet to a ClusterIP marked, whatever its source)',
    present: () => (generated({ masqueradeAll: true }) ?? '').split('\n').some((l) => l.includes('ip daddr 10.96.0.10 jump mark-for-masquerade')),
  },
  ipv6DnatJson: {
    what: 'the parser to keep the brackets of an IPv6 dnat target when it renders `nft -j` (it writes `dnat to fd00::1:80` for `[fd00::1]:80`)',
    present: () => parseNftJson(JSON.stringify({ nftables: [
      { table: { family: 'ip6', name: 't', handle: 1 } },
      { chain: { family: 'ip6', table: 't', name: 'c', handle: 1 } },
      { rule: { family: 'ip6', table: 't', chain: 'c', handle: 2, expr: [{ dnat: { addr: 'fd00::1', port: 80 } }] } },
    ] })).tables[0].chains[0].rules[0].text.includes('[fd00::1]:80'),
  },
} satisfies Record<string, { what: string; present: () => boolean }>;

/** The rules the generator writes for one ClusterIP service with these options, null when it refuses them. */
function generated(options: Record<string, unknown>): string | null {
  const cluster = readCluster([
    { kind: 'Service', metadata: { namespace: 'p', name: 's' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } },
    {
      kind: 'EndpointSlice', metadata: { namespace: 'p', name: 's-1', labels: { 'kubernetes.io/service-name': 's' } },
      addressType: 'IPv4', endpoints: [{ addresses: ['10.244.0.5'] }], ports: [{ port: 80 }],
    },
  ]);
  try {
    return generateNftables(resolveServicePorts(cluster, {}), { ...options }).nft;
  } catch {
    return null;
  }
}

type Feature = keyof typeof FEATURES;
const missing = Object.fromEntries(Object.entries(FEATURES).map(([k, f]) => [k, !f.present()])) as Record<Feature, boolean>;

/**
 * Cases that need a feature the project may not have yet. While any of them is missing the case
 * still runs and must fail (once it passes, take it off this list); the summary names what is
 * missing. With all of them there, the case must pass like any other.
 */
const NEEDS: Record<string, Feature[]> = {
  'TestNodePorts/ipv4 (secondary node IP)': ['nodePortAddresses'],
  'TestNodePorts/ipv6': ['ipv6', 'ipv6DnatJson'],
  'TestNodePorts/ipv6 (secondary node IP)': ['ipv6'],
  'TestNodePorts/ipv6, multiple nodeport-addresses': ['ipv6', 'ipv6DnatJson'],
  'TestNodePorts/ipv6, multiple nodeport-addresses (secondary node IP)': ['ipv6', 'nodePortAddresses', 'ipv6DnatJson'],
  'TestInternalExternalMasquerade/no LocalTrafficDetector': ['noDetector'],
  'TestInternalExternalMasquerade/masqueradeAll': ['masqueradeAll'],
  'TestInternalExternalMasquerade/masqueradeAll, no LocalTrafficDetector': ['masqueradeAll', 'noDetector'],
};

/** What the case lacks now, in words; null when nothing. */
function lacking(name: string): string | null {
  const absent = (NEEDS[name] ?? []).filter((f) => missing[f]);
  return absent.length > 0 ? absent.map((f) => FEATURES[f].what).join('; ') : null;
}

const DIR = new URL('../fixtures/upstream-flows/nftables/', import.meta.url);
const fixtures: Fixture[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(new URL(f, DIR), 'utf8')) as Fixture);

interface Tally {
  flows: number;
  passed: number;
  expectedFailures: { name: string; why: string; failed: number; flows: number; first: string }[];
}
const tally = new Map<string, Tally>();

async function kernelListings(nft: string): Promise<{ text: NftRuleset; json: NftRuleset }> {
  return withNetns(async (ns) => {
    await ns.run(['nft', '-f', '-'], { input: nft });
    const text = parseNftRuleset((await ns.run(['nft', 'list', 'ruleset'])).stdout);
    const json = parseNftJson((await ns.run(['nft', '-j', 'list', 'ruleset'])).stdout);
    return { text, json };
  });
}

/** The answer without line numbers, which differ between the two listings. */
function comparable(r: TraceResult): unknown {
  return { ...r, outcomes: r.outcomes.map((o) => ({ ...o, steps: o.steps.map((s) => ({ ...s, line: 0 })) })) };
}

function describeResult(r: TraceResult): string {
  return r.outcomes.map((o) => `${o.verdict}${o.dnat ? ` → ${o.dnat}` : ''}${o.snat ? ` ${o.snat}` : ''} p=${o.probability}`).join('; ')
    + (r.warnings ? ` [warnings: ${r.warnings.join(' | ')}]` : '');
}

/** What is wrong with the trace against upstream's expectation; null when it agrees. */
function judge(flow: Flow, r: TraceResult): string | null {
  const got = describeResult(r);
  if (r.warnings && r.warnings.length > 0) return `warned: ${r.warnings.join(' | ')}`;
  const total = r.outcomes.reduce((a, o) => a + o.probability, 0);
  if (total !== 1) return `probabilities add up to ${total}: ${got}`;
  const verdicts = new Set(r.outcomes.map((o) => o.verdict));
  const want = flow.expect;
  if (want.output === 'DROP' || want.output === 'REJECT') {
    return verdicts.size === 1 && verdicts.has(want.output) ? null : `expected ${want.output}, got ${got}`;
  }
  if (verdicts.size !== 1 || !verdicts.has('ACCEPT')) return `expected ${want.output === 'none' ? 'no DNAT' : want.endpoints!.join(', ')}, got ${got}`;
  const dnat = [...new Set(r.outcomes.map((o) => o.dnat ?? 'none'))].sort();
  const wantDnat = want.output === 'none' ? ['none'] : [...want.endpoints!].sort();
  if (JSON.stringify(dnat) !== JSON.stringify(wantDnat)) return `expected ${wantDnat.join(', ')}, got ${got}`;
  const masq = new Set(r.outcomes.map((o) => o.snat === 'MASQUERADE'));
  if (masq.size !== 1 || !masq.has(want.masquerade)) return `expected masquerade ${want.masquerade}, got ${got}`;
  if (r.outcomes.some((o) => o.snat !== null && o.snat !== 'MASQUERADE')) return `unexpected SNAT: ${got}`;
  return null;
}

/** Every flow of one upstream runPacketFlowTests call: its failures, each with the reason. */
async function runCase(c: Case): Promise<string[]> {
  let listings: { text: NftRuleset; json: NftRuleset };
  try {
    const cluster = readCluster(c.objects);
    // Options the generators do not know yet are passed all the same; see NEEDS.
    const resolveOptions = { nodeName: c.node.name, ipFamily: c.options.ipFamily };
    const ports = resolveServicePorts(cluster, resolveOptions);
    const generatorOptions = { ...c.options };
    listings = await kernelListings(generateNftables(ports, generatorOptions).nft);
  } catch (e) {
    return c.flows.map((f) => `${f.name}: rules not generated or loaded: ${(e as Error).message}`);
  }
  const failures: string[] = [];
  for (const f of c.flows) {
    const packet: Packet = { protocol: f.protocol.toLowerCase() as Packet['protocol'], src: f.source, dst: f.destination, dport: f.port, sport: 40000 };
    // A packet from one of the node's own addresses is one the node sends.
    const hook = c.node.ips.includes(f.source) ? 'OUTPUT' : 'PREROUTING';
    const input = { packet, hook, localAddresses: c.node.ips } as const;
    try {
      const fromText = traceNftables({ ...input, ruleset: listings.text });
      const fromJson = traceNftables({ ...input, ruleset: listings.json });
      if (JSON.stringify(comparable(fromText)) !== JSON.stringify(comparable(fromJson))) {
        failures.push(`${f.name} (${f.protocol} ${f.source} → ${f.destination}:${f.port}): the text and JSON listings trace differently: ${describeResult(fromText)} / ${describeResult(fromJson)}`);
        continue;
      }
      const why = judge(f, fromText);
      if (why) failures.push(`${f.name} (${f.protocol} ${f.source} → ${f.destination}:${f.port}, ${hook}): ${why}`);
    } catch (e) {
      failures.push(`${f.name}: ${(e as Error).message}`);
    }
  }
  return failures;
}

describe("kube-proxy's nftables packet-flow tests, traced through the kernel's listing", () => {
  it('every upstream case is here once, and every case that needs a feature is one of them', () => {
    const names = fixtures.flatMap((fx) => fx.cases.map((c) => c.name));
    expect(new Set(names).size).toBe(names.length);
    for (const name of Object.keys(NEEDS)) expect(names).toContain(name);
    expect(fixtures.map((fx) => fx.upstream.test)).toEqual([
      'TestClusterIPGeneral', 'TestExternalTrafficPolicyCluster', 'TestExternalTrafficPolicyLocal', 'TestInternalExternalMasquerade',
      'TestInternalTrafficPolicy', 'TestLoadBalancer', 'TestNoEndpointsReject', 'TestNodePorts', 'TestTerminatingEndpointsTrafficPolicyCluster',
      'TestTerminatingEndpointsTrafficPolicyLocal',
    ]);
    expect(names.length).toBe(41);
    expect(fixtures.reduce((n, fx) => n + fx.cases.reduce((m, c) => m + c.flows.length, 0), 0)).toBe(207);
  });

  for (const fx of fixtures) {
    describe(fx.upstream.test, () => {
      for (const c of fx.cases) {
        const lacks = lacking(c.name);
        it(`${c.name}${lacks ? ` (expected to fail: needs ${lacks})` : ''}`, async () => {
          const failures = await runCase(c);
          const t = tally.get(fx.upstream.test) ?? { flows: 0, passed: 0, expectedFailures: [] };
          t.flows += c.flows.length;
          t.passed += c.flows.length - failures.length;
          if (lacks) t.expectedFailures.push({ name: c.name, why: lacks, failed: failures.length, flows: c.flows.length, first: failures[0] ?? '' });
          tally.set(fx.upstream.test, t);
          if (lacks) {
            expect(failures.length, `${c.name} passes without ${lacks}: take that off NEEDS`).toBeGreaterThan(0);
          } else {
            expect(failures).toEqual([]);
          }
        });
      }
    });
  }

  afterAll(() => {
    const lines = ['', `Upstream nftables packet flows (kubernetes ${fixtures[0]?.upstream.commit.slice(0, 12)}), passed per test function:`];
    let flows = 0;
    let passed = 0;
    for (const [test, t] of [...tally.entries()].sort()) {
      flows += t.flows;
      passed += t.passed;
      lines.push(`  ${test}: ${t.passed}/${t.flows}`);
      for (const x of t.expectedFailures) lines.push(`    expected to fail: ${x.name}: ${x.failed}/${x.flows} flows fail; needs ${x.why}\n      first: ${x.first}`);
    }
    lines.push(`  total: ${passed}/${flows}`);
    console.log(lines.join('\n'));
  });
});
