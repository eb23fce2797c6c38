/**
 * kube-proxy's own packet-flow expectations (test/fixtures/upstream-flows/iptables, see its
 * README), run as a user would: objects → readCluster → resolveServicePorts → generateIptables →
 * the kernel (iptables-restore with the built-in jumps, in a private namespace) → iptables-save →
 * parse → traceIptables, compared with upstream's set of endpoints or verdict and masquerade.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { readCluster, resolveServicePorts } from '../../lib/k8s/index.ts';
import { parseIptablesSave } from '../../lib/parse/iptables-save.ts';
import { builtinJumpsRestore, generateIptables, type IptablesOptions, type IptablesServicePort } from '../../lib/proxy/iptables.ts';
import { traceIptables, type Outcome, type TraceResult } from '../../lib/trace/index.ts';
import { withNetns } from '../helpers/netns.ts';

const DIR = new URL('../fixtures/upstream-flows/iptables/', import.meta.url);

interface Flow {
  name: string;
  source: string;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  destination: string;
  port: number;
  /** Endpoints DNAT may pick ([] = none), or the filter verdict. */
  expect: string[] | 'DROP' | 'REJECT' | 'ACCEPT';
  masquerade: boolean;
}

interface Case {
  name: string;
  family: 'IPv4' | 'IPv6';
  proxier: {
    nodeName: string; nodeIPs: string[]; clusterCIDR: string; masqueradeAll: boolean;
    localhostNodePorts: boolean; nodePortAddresses: string[]; masqueradeBit: number;
  };
  localAddresses: string[];
  objects: { items: { kind: string; spec?: { healthCheckNodePort?: number }; metadata: { namespace: string; name: string } }[] };
  flows: Flow[];
}

interface Fixture {
  test: string;
  cases: Case[];
}

const fixtures: Fixture[] = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort()
  .map((f) => JSON.parse(readFileSync(new URL(f, DIR), 'utf8')) as Fixture);

function optionsOf(c: Case, over: Partial<Case['proxier']> = {}): IptablesOptions {
  const p = { ...c.proxier, ...over };
  // ipFamily and nodePortAddresses are passed whether or not this generator knows them yet.
  const opts: IptablesOptions & Record<string, unknown> = {
    ipFamily: c.family, nodeName: p.nodeName, nodeIPs: p.nodeIPs, clusterCIDR: p.clusterCIDR,
    masqueradeAll: p.masqueradeAll, localhostNodePorts: p.localhostNodePorts, masqueradeBit: p.masqueradeBit,
    nodePortAddresses: p.nodePortAddresses,
    // A private namespace has no nfacct counters; iptables ≥ 1.6.2 has --random-fully.
    nfacct: false,
  };
  return opts;
}

function portsOf(c: Case): IptablesServicePort[] {
  const cluster = readCluster(c.objects);
  return resolveServicePorts(cluster, { nodeName: c.proxier.nodeName, ipFamily: c.family });
}

/** Rules the kernel holds after kube-proxy's two restores: the jumps, then the rules. */
async function kernelDump(c: Case, ports: IptablesServicePort[]): Promise<string> {
  const gen = generateIptables(ports, optionsOf(c));
  const [restore, save] = c.family === 'IPv6' ? ['ip6tables-restore', 'ip6tables-save'] : ['iptables-restore', 'iptables-save'];
  return withNetns(async (ns) => {
    await ns.run([restore, '--noflush'], { input: builtinJumpsRestore(gen.builtinJumps) });
    await ns.run([restore, '--noflush'], { input: gen.restore });
    return (await ns.run([save])).stdout;
  });
}

/** Upstream's view of one traced packet: endpoints reached (or the verdict), and masquerading. */
function observed(result: TraceResult): { output: string[]; masq: boolean } {
  const out = new Set<string>();
  for (const o of result.outcomes) out.add(label(o));
  return { output: [...out].sort(), masq: result.outcomes.some((o) => o.path.includes('KUBE-MARK-MASQ')) };
}

function label(o: Outcome): string {
  if (o.verdict !== 'ACCEPT') return o.verdict;
  if (o.dnat) return o.dnat;
  // Accepted by one of kube-proxy's filter rules (a health-check node port), not by a policy.
  return o.steps.some((s) => s.table === 'filter' && s.chain.startsWith('KUBE-') && / -j ACCEPT$/.test(s.text)) ? 'ACCEPT' : 'none';
}

const expectedOutput = (f: Flow): string[] => (typeof f.expect === 'string' ? [f.expect] : f.expect.length === 0 ? ['none'] : [...f.expect].sort());

const tally = new Map<string, { pass: number; total: number }>();

afterAll(() => {
  const rows = [...tally].map(([t, r]) => `  ${t.padEnd(46)} ${String(r.pass).padStart(3)}/${r.total}`);
  const pass = [...tally.values()].reduce((a, r) => a + r.pass, 0);
  const total = [...tally.values()].reduce((a, r) => a + r.total, 0);
  console.log(`upstream packet flows (kube-proxy iptables), rules → kernel → trace:\n${rows.join('\n')}\n  ${'all'.padEnd(46)} ${pass}/${total}`);
});

describe.each(fixtures.map((f) => [f.test, f] as const))('%s', (test, fixture) => {
  it.each(fixture.cases.map((c) => [c.name || '(one case)', c] as const))('%s', async (_name, c) => {
    const row = tally.get(test) ?? { pass: 0, total: 0 };
    tally.set(test, row);
    let dump: string | null = null;
    let failure: string | null = null;
    try {
      dump = await kernelDump(c, portsOf(c));
    } catch (e) {
      failure = `rules did not load: ${(e as Error).message.split('\n')[0]}`;
    }
    const wrong: string[] = [];
    for (const f of c.flows) {
      row.total++;
      if (dump === null) {
        wrong.push(`${f.name}: ${failure}`);
        continue;
      }
      const result = traceIptables({
        dump: parseIptablesSave(dump),
        hook: c.localAddresses.includes(f.source) || f.source === '127.0.0.1' || f.source === '::1' ? 'OUTPUT' : 'PREROUTING',
        localAddresses: c.localAddresses,
        packet: { protocol: f.protocol.toLowerCase() as 'tcp', src: f.source, dst: f.destination, dport: f.port, sport: 40000 },
      });
      // Whatever upstream says, the trace must be a distribution whose masquerading shows in POSTROUTING.
      expect(result.outcomes.reduce((a, o) => a + o.probability, 0)).toBeCloseTo(1, 12);
      expect(result.warnings).toEqual([]);
      for (const o of result.outcomes.filter((x) => x.verdict === 'ACCEPT' && x.path.includes('POSTROUTING'))) {
        expect(o.snat === 'MASQUERADE', `${f.name}: ${o.path.join(' › ')}`).toBe(o.path.includes('KUBE-MARK-MASQ'));
      }
      const got = observed(result);
      const ok = JSON.stringify(got.output) === JSON.stringify(expectedOutput(f)) && got.masq === f.masquerade;
      if (ok) row.pass++;
      else wrong.push(`${f.name}: expected ${expectedOutput(f).join(', ')}${f.masquerade ? ' (masqueraded)' : ''}, traced ${got.output.join(', ')}${got.masq ? ' (masqueraded)' : ''}`);
    }
    expect(wrong, `${test} / ${c.name}`).toEqual([]);
  });
});
