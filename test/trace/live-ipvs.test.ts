import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseIptablesSave, parseIpvsadm } from '../../lib/parse/index.ts';
import { traceIptables } from '../../lib/trace/iptables.ts';
import { apportion, iptablesPartOf, ipvsConnDeltas, pastIpvs, splitByIpvsCounters } from '../../lib/trace/live-ipvs.ts';
import { IPTABLES_BUILTIN, buildWalks, compareWalks } from '../../lib/trace/live.ts';
import { parseNftMonitorTrace } from '../../lib/parse/trace-events.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');
const VS = { protocol: 'TCP', address: '10.96.120.15', port: 8000 };

// The workshop's httpbin virtual server as `ipvsadm -Ln --stats --exact` printed it, and the
// same after 100 connections that IPVS handed out 31 / 35 / 34 (the Conns column of each line).
const BEFORE = fixture('ipvsadm-Ln-stats-exact.txt');
const grown = (text: string, vs: string, grow: Record<string, number>) => {
  let under = '';
  return text.split('\n').map((l) => {
    if (!l.startsWith(' ')) under = l.split(/\s+/).slice(0, 2).join(' ');
    const m = /^(\s+-> (\S+)\s+)(\d+)(.*)$/.exec(l);
    if (!m || under !== vs || !(m[2] in grow)) return l;
    return `${m[1]}${String(Number(m[3]) + grow[m[2]]).padStart(m[3].length)}${m[4]}`;
  }).join('\n');
};
const AFTER = grown(BEFORE, 'TCP 10.96.120.15:8000', { '10.244.1.2:8080': 31, '10.244.2.2:8080': 35, '10.244.2.3:8080': 34 });

// IPVS mode's iptables part, cut to what matters: nat lets the ClusterIP through (KUBE-CLUSTER-IP
// matched), filter INPUT checks it; then IPVS (the fixture's rr virtual server) picks the server.
const DUMP = `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.120.15/32 -p tcp -m tcp --dport 8000 -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
:KUBE-IPVS-FILTER - [0:0]
-A INPUT -j KUBE-IPVS-FILTER
-A KUBE-IPVS-FILTER -d 10.96.120.15/32 -j RETURN
COMMIT
`;
const prediction = traceIptables({
  dump: parseIptablesSave(DUMP), ipvs: parseIpvsadm(fixture('ipvsadm-Ln.txt')), hook: 'PREROUTING',
  packet: { protocol: 'tcp', src: '10.244.1.9', dst: '10.96.120.15', dport: 8000 },
});

describe('IPVS mode: the iptables part of the prediction', () => {
  it('cuts every outcome where IPVS takes the packet and merges them: one part, probability 1', () => {
    expect(prediction.outcomes.map((o) => [o.dnat, o.probability])).toEqual([
      ['10.244.1.2:8080', 1 / 3], ['10.244.2.2:8080', 1 / 3], ['10.244.2.3:8080', 1 / 3]]);
    const cut = iptablesPartOf(prediction);
    expect(cut.part.outcomes).toHaveLength(1);
    expect(cut.part.outcomes[0]).toMatchObject({ path: ['PREROUTING', 'KUBE-SERVICES', 'INPUT', 'KUBE-IPVS-FILTER'], verdict: 'ACCEPT', dnat: null, snat: null });
    expect(cut.part.outcomes[0].probability).toBeCloseTo(1, 12);
    expect(cut.partOf).toEqual([0, 0, 0]);
  });

  it('a traced walk stops at the first base chain past IPVS, headers included', () => {
    // nat INPUT runs after IPVS's LOCAL_IN hook; its (rewritten) header must not make a DNAT.
    const events = parseNftMonitorTrace(`trace id 1 ip raw KUBE-NETLAB-TRACE-1 packet: iif "veth1" ip saddr 10.244.1.9 ip daddr 10.96.120.15 tcp sport 40000 tcp dport 8000
trace id 1 ip raw KUBE-NETLAB-TRACE-1 rule ip saddr 10.244.1.9 meta nftrace set 1 (verdict continue)
trace id 1 ip nat PREROUTING packet: iif "veth1" ip saddr 10.244.1.9 ip daddr 10.96.120.15 tcp sport 40000 tcp dport 8000
trace id 1 ip nat PREROUTING rule counter jump KUBE-SERVICES (verdict jump KUBE-SERVICES)
trace id 1 ip nat KUBE-SERVICES rule ip daddr 10.96.120.15 tcp dport 8000 counter accept (verdict accept)
trace id 1 ip filter INPUT packet: iif "veth1" ip saddr 10.244.1.9 ip daddr 10.96.120.15 tcp sport 40000 tcp dport 8000
trace id 1 ip filter INPUT rule counter jump KUBE-IPVS-FILTER (verdict jump KUBE-IPVS-FILTER)
trace id 1 ip filter KUBE-IPVS-FILTER rule ip daddr 10.96.120.15 counter return (verdict return)
trace id 1 ip filter INPUT policy accept
trace id 1 ip nat INPUT packet: iif "veth1" ip saddr 10.244.1.9 ip daddr 10.244.2.2 tcp sport 40000 tcp dport 8080
trace id 1 ip nat INPUT policy accept
`).map((e) => ({ ...e, table: e.table.replace(/^ip /, '') }));
    const opts = { startsWalk: (e: (typeof events)[number]) => e.kind === 'packet' && e.table === 'raw', ignore: (e: (typeof events)[number]) => e.table !== 'nat' && e.table !== 'filter' };
    const [whole] = buildWalks(events, opts);
    expect(whole.path.at(-1)).toBe('INPUT');
    expect(whole.dnat).toBe('10.244.2.2:8080');
    const [walk] = buildWalks(events, { ...opts, stopAt: pastIpvs('PREROUTING') });
    expect(walk).toMatchObject({ path: ['PREROUTING', 'KUBE-SERVICES', 'INPUT', 'KUBE-IPVS-FILTER'], verdict: 'ACCEPT', dnat: null });
    const compared = compareWalks([walk], iptablesPartOf(prediction).part, { isBase: (c) => IPTABLES_BUILTIN.test(c) });
    expect([compared.unexplained, compared.counts]).toEqual([0, [1]]);
    // Where IPVS took it, the packet leaves through LOCAL_OUT rewritten to the real server: cut too.
    const sent = events.filter((e) => !(e.table === 'nat' && e.chain === 'INPUT')).concat(parseNftMonitorTrace(`trace id 1 ip filter OUTPUT packet: oif "veth2" ip saddr 10.244.1.9 ip daddr 10.244.2.2 tcp sport 40000 tcp dport 8080
trace id 1 ip filter OUTPUT policy accept
trace id 1 ip nat POSTROUTING packet: oif "veth2" ip saddr 10.244.1.9 ip daddr 10.244.2.2 tcp sport 40000 tcp dport 8080
trace id 1 ip nat POSTROUTING rule counter masquerade (verdict accept)
`).map((e) => ({ ...e, table: e.table.replace(/^ip /, '') })));
    const [scheduled] = buildWalks(sent, { ...opts, stopAt: pastIpvs('PREROUTING') });
    expect(scheduled).toEqual(walk);
  });
});

describe('IPVS mode: the split from ipvsadm -Ln --stats counters', () => {
  it('reads each real server\'s new connections between two readings', () => {
    expect(ipvsConnDeltas(parseIpvsadm(BEFORE), parseIpvsadm(AFTER), VS)).toEqual([
      { server: '10.244.1.2:8080', conns: 31 }, { server: '10.244.2.2:8080', conns: 35 }, { server: '10.244.2.3:8080', conns: 34 }]);
    // Other virtual servers did not move.
    expect(ipvsConnDeltas(parseIpvsadm(BEFORE), parseIpvsadm(AFTER), { protocol: 'TCP', address: '10.96.0.10', port: 53 })).toEqual([
      { server: '10.244.0.2:53', conns: 0 }, { server: '10.244.0.3:53', conns: 0 }]);
    expect(ipvsConnDeltas(parseIpvsadm(BEFORE), parseIpvsadm(AFTER), { protocol: 'TCP', address: '10.96.9.9', port: 80 })).toBeNull();
  });

  it('refuses a listing without connection counters (plain ipvsadm -Ln)', () => {
    expect(() => ipvsConnDeltas(parseIpvsadm(BEFORE), parseIpvsadm(fixture('ipvsadm-Ln.txt')), VS)).toThrow(/--stats --exact/);
  });

  it('shares the walks out by the deltas, and tests them against the predicted thirds', () => {
    const cut = iptablesPartOf(prediction);
    const deltas = ipvsConnDeltas(parseIpvsadm(BEFORE), parseIpvsadm(AFTER), VS)!;
    const split = splitByIpvsCounters(prediction, cut, [100], deltas);
    expect(split.counts).toEqual([31, 35, 34]);
    expect(split.extra).toBe(0);
    expect(split.chiSquare?.degreesOfFreedom).toBe(2);
    expect(split.chiSquare?.statistic).toBeCloseTo(((31 - 100 / 3) ** 2 + (35 - 100 / 3) ** 2 + (34 - 100 / 3) ** 2) / (100 / 3), 9);
    // Fewer walks traced than the counters grew by (another client): shared in proportion, the rest reported.
    const fewer = splitByIpvsCounters(prediction, cut, [50], deltas);
    expect(fewer.counts.reduce((a, n) => a + n, 0)).toBe(50);
    expect(fewer.counts).toEqual([16, 17, 17]);
    expect(fewer.extra).toBe(50);
  });

  it('apportions in whole numbers that sum to the total', () => {
    expect(apportion(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(apportion(7, [0, 2, 5])).toEqual([0, 2, 5]);
    expect(apportion(5, [0, 0])).toEqual([0, 0]);
  });
});
