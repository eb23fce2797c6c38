import { describe, expect, it } from 'vitest';
import { workshopCluster } from '../../lib/k8s/workshop.ts';
import {
  LINE_KINDS, compareKinds, countKinds, diffBars, generatedLines, kindMismatches, lineKind, linesChanged, netChange,
  predictedDiff, setDiff, type KindRow,
} from '../../lib/lab/scale-diff.ts';
import { iptablesCounts, nftablesCounts } from '../../lib/sim/counts.ts';
import { resolveServicePorts } from '../../lib/k8s/resolve.ts';
import type { ProxyMode } from '../../lib/proxy/modes.ts';

const node = { name: 'kind-worker', ip: '172.18.0.3' };
const three = workshopCluster({ replicas: 3 });
const five = workshopCluster({ replicas: 5 });

describe('lineKind', () => {
  it('sorts iptables-save rules by chain, with or without the table a netns report puts in front', () => {
    expect(lineKind('iptables', 'nat -A KUBE-SVC-FREKB6WNWYJLKTHC -m statistic --mode random -j KUBE-SEP-X')).toBe('KUBE-SVC jumps');
    expect(lineKind('iptables', '-A KUBE-SEP-X -p tcp -j DNAT --to-destination 10.244.1.2:8080')).toBe('KUBE-SEP rules');
    expect(lineKind('iptables', 'filter -A KUBE-SERVICES -d 10.96.0.5/32 -j REJECT')).toBe('other iptables rules');
    expect(lineKind('iptables', ':KUBE-SEP-X - [0:0]')).toBeNull();
    expect(lineKind('iptables', 'COMMIT')).toBe('other lines');
  });

  it('counts only iptables rules in IPVS mode: sets and virtual servers are compared apart', () => {
    expect(lineKind('ipvs', 'nat -A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT')).toBe('iptables rules');
    expect(lineKind('ipvs', 'KUBE-LOOP-BACK 10.244.1.5,tcp:8080,10.244.1.5')).toBeNull();
  });

  it('sorts nft statements: endpoint chains, their two rules, the numgen dispatch, the rest', () => {
    expect(lineKind('nftables', 'chain endpoint-HJQTOLNT-default/httpbin/tcp/http__10.244.1.5/8080 {')).toBe('endpoint chains');
    expect(lineKind('nftables', 'chain service-5WI3VASQ-default/httpbin/tcp/http {')).toBe('other chains');
    expect(lineKind('nftables', 'ip saddr 10.244.1.5 jump mark-for-masquerade')).toBe('endpoint-chain rules');
    expect(lineKind('nftables', 'meta l4proto tcp dnat to 10.244.1.5:8080')).toBe('endpoint-chain rules');
    expect(lineKind('nftables', 'numgen random mod 5 vmap { 0 : goto a, 1 : goto b }')).toBe('numgen dispatch rules');
    expect(lineKind('nftables', 'ip daddr 10.96.0.1 tcp dport 443 goto service-x')).toBe('other statements');
    for (const none of ['', '{', '}', '  }  ']) expect(lineKind('nftables', none)).toBeNull();
  });
});

describe('a scale predicted by the generator', () => {
  it('iptables, 3 → 5: five jumps for three, two KUBE-SEP chains of two rules; net as lib/sim says', () => {
    const d = predictedDiff('iptables', three, five, node);
    const kinds = countKinds('iptables', d);
    expect([...kinds.keys()]).toEqual([...LINE_KINDS.iptables]);
    expect(kinds.get('KUBE-SVC jumps')).toEqual({ added: 5, removed: 3 });
    expect(kinds.get('KUBE-SEP rules')).toEqual({ added: 4, removed: 0 });
    expect(kinds.get('other iptables rules')).toEqual({ added: 0, removed: 0 });
    const rows = compareKinds('iptables', d, d);
    expect(netChange(rows)).toBe(iptablesCounts({ services: 1, endpoints: 5 }).nat.rules - iptablesCounts({ services: 1, endpoints: 3 }).nat.rules);
  });

  it('ipvs, 3 → 5: not one iptables rule changes', () => {
    const rows = compareKinds('ipvs', predictedDiff('ipvs', three, five, node), { added: [], removed: [] });
    expect(linesChanged(rows)).toBe(0);
    expect(kindMismatches(rows)).toEqual([]);
  });

  it('nftables, 3 → 5: two endpoint chains with their rules, one numgen rule swapped', () => {
    const none = { added: [], removed: [] };
    const rows = compareKinds('nftables', none, predictedDiff('nftables', three, five, node));
    const by = Object.fromEntries(rows.map((r) => [r.kind, [r.predicted.added, r.predicted.removed]]));
    expect(by).toEqual({
      'endpoint chains': [2, 0], 'endpoint-chain rules': [4, 0], 'numgen dispatch rules': [1, 1], 'other chains': [0, 0], 'other statements': [0, 0],
    });
    const sim = [3, 5].map((e) => nftablesCounts({ services: 1, endpoints: e }));
    const net = (pick: (k: string) => boolean) => rows.filter((r) => pick(r.kind)).reduce((n, r) => n + r.predicted.added - r.predicted.removed, 0);
    expect(net((k) => k.endsWith('chains'))).toBe(sim[1].chains - sim[0].chains);
    expect(net((k) => k.endsWith('rules'))).toBe(sim[1].rules - sim[0].rules);
  });

  it('generates comparable lines per mode: -A rules, nft statements with chain openers', () => {
    const ports = resolveServicePorts(three, { nodeName: node.name });
    const lines = (m: ProxyMode) => generatedLines(m, ports, node);
    for (const m of ['iptables', 'ipvs'] as const) {
      expect(lines(m).length, m).toBeGreaterThan(0);
      expect(lines(m).every((l) => l.startsWith('-A ')), m).toBe(true);
    }
    expect(lines('nftables')).toContain('chain service-5WI3VASQ-default/httpbin/tcp/http {');
    expect(lines('nftables').some((l) => l.startsWith('numgen random mod 3 vmap'))).toBe(true);
  });
});

describe('comparing a captured diff with a predicted one', () => {
  const rows: KindRow[] = [
    { kind: 'KUBE-SVC jumps', captured: { added: 5, removed: 3 }, predicted: { added: 5, removed: 3 } },
    { kind: 'KUBE-SEP rules', captured: { added: 4, removed: 0 }, predicted: { added: 2, removed: 0 } },
    { kind: 'other iptables rules', captured: { added: 0, removed: 0 }, predicted: { added: 0, removed: 0 } },
  ];

  it('names each kind that differs, and only those', () => {
    expect(kindMismatches(rows)).toEqual(['KUBE-SEP rules: captured +4 −0, predicted +2 −0']);
  });

  it('adds up the captured side: net, changed lines, and the bars of a figure', () => {
    expect(netChange(rows)).toBe(6);
    expect(netChange(rows, (k) => k.startsWith('KUBE-SEP'))).toBe(4);
    expect(linesChanged(rows)).toBe(12);
    expect(diffBars(rows)).toEqual([
      { label: 'KUBE-SVC jumps added', captured: 5, predicted: 5 },
      { label: 'KUBE-SVC jumps removed', captured: 3, predicted: 3 },
      { label: 'KUBE-SEP rules added', captured: 4, predicted: 2 },
    ]);
  });

  it('counts a kind the mode does not list, and keeps zero rows for those it does', () => {
    const kinds = countKinds('iptables', { added: ['COMMIT'], removed: [] });
    expect(kinds.get('other lines')).toEqual({ added: 1, removed: 0 });
    expect(kinds.get('KUBE-SVC jumps')).toEqual({ added: 0, removed: 0 });
  });

  it('diffs ipsets member by member, sets sorted, repeats counted', () => {
    expect(setDiff({ B: ['x'], A: ['a', 'a'] }, { A: ['a'], C: ['c'] })).toEqual([
      { name: 'A', added: [], removed: ['a'] },
      { name: 'B', added: [], removed: ['x'] },
      { name: 'C', added: ['c'], removed: [] },
    ]);
  });
});
