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
  /** Upstream's settings in the generator's terms. */
  options: NftablesOptions & { ipFamily: 'IPv4' | 'IPv6' };
  objects: unknown;
  flows: Flow[];
}

interface Fixture {
  upstream: { repository: string; commit: string; file: string; test: string };
  cases: Case[];
}

const DIR = new URL('../fixtures/upstream-flows/nftables/', import.meta.url);
const fixtures: Fixture[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(new URL(f, DIR), 'utf8')) as Fixture);

interface Tally {
  flows: number;
  passed: number;
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
  it('every upstream case is here once', () => {
    const names = fixtures.flatMap((fx) => fx.cases.map((c) => c.name));
    expect(new Set(names).size).toBe(names.length);
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
        it(c.name, async () => {
          const failures = await runCase(c);
          const t = tally.get(fx.upstream.test) ?? { flows: 0, passed: 0 };
          t.flows += c.flows.length;
          t.passed += c.flows.length - failures.length;
          tally.set(fx.upstream.test, t);
          expect(failures).toEqual([]);
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
    }
    lines.push(`  total: ${passed}/${flows}`);
    console.log(lines.join('\n'));
  });
});
