import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LiveTraceUnavailable, findTraceRules, gcTraceMonitors, gcTraceRules, traceMonitorEnv, installTraceRules, iptablesTraceInput, parseTraceComment, parseTraceTable, removeTraceRules,
  traceLive, traceLiveOrSkip, traceOwnerComment, type TraceMatch,
} from '../../lib/capture/index.ts';
import { eventListenerInodes } from '../../lib/capture/conntrack-watch.ts';
import { monitorCommand } from '../../lib/capture/live-trace.ts';
import { NFTRACE_READER_LABEL, NFTRACE_READER_PROGRAM } from '../../lib/capture/nftrace-reader.ts';
import { processStart, type ProcessRef, type RunOptions } from '../../lib/exec/index.ts';
import type { Pod } from '../../lib/lab/types.ts';
import { parseNftRuleset } from '../../lib/parse/index.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { createNetnsLab, type NetnsLab } from '../../lib/lab/netns/index.ts';
import { ParseError } from '../../lib/parse/errors.ts';
import { TraceEventReader, nameRulesByHandle, parseNftMonitorTrace, parseNftraceReader, parseXtablesMonitorTrace, type TraceEvent } from '../../lib/parse/trace-events.ts';
import { IPTABLES_BUILTIN, buildWalks, compareWalks, connectionWalks } from '../../lib/trace/live.ts';
import type { TraceResult } from '../../lib/trace/types.ts';
import { ipvsSkipReason, testRunTag, withNetns } from '../helpers/netns.ts';

// Shaped after what nft 1.0.6 (`nft -a monitor trace`) and xtables-monitor 1.8.9 (`--trace`) print
// for one SYN to the workshop's httpbin in a netns lab in iptables mode (iptables-nft), cut short.
const NFT_IPTABLES = `trace id 50815b84 ip raw KUBE-NETLAB-TRACE-23dbcde6 packet: iif "veth47" ip saddr 10.244.1.5 ip daddr 10.96.132.173 ip ttl 64 tcp sport 45156 tcp dport 8000 tcp flags == syn
trace id 50815b84 ip raw KUBE-NETLAB-TRACE-23dbcde6 rule ip saddr 10.244.1.5 ip daddr 10.96.132.173 tcp dport 8000 counter packets 0 bytes 0 meta nftrace set 1 # handle 2 (verdict continue)
trace id 50815b84 ip raw PREROUTING policy accept
trace id 50815b84 ip nat PREROUTING packet: iif "veth47" ip saddr 10.244.1.5 ip daddr 10.96.132.173 tcp sport 45156 tcp dport 8000
trace id 50815b84 ip nat PREROUTING rule  counter packets 0 bytes 0 jump KUBE-SERVICES # handle 11 (verdict jump KUBE-SERVICES)
trace id 50815b84 ip nat KUBE-SERVICES rule meta l4proto tcp ip daddr 10.96.132.173  tcp dport 8000 counter packets 7 bytes 420 jump KUBE-SVC-X # handle 75 (verdict jump KUBE-SVC-X)
trace id 50815b84 ip nat KUBE-SVC-X rule  counter packets 0 bytes 0 jump KUBE-SEP-A # handle 79 (verdict jump KUBE-SEP-A)
trace id 50815b84 ip nat KUBE-SEP-A rule meta l4proto tcp   counter packets 0 bytes 0 dnat to 10.244.1.4:8080 # handle 85 (verdict accept)
trace id 50815b84 ip filter FORWARD packet: iif "veth47" oif "veth6a" ip saddr 10.244.1.5 ip daddr 10.244.1.4 tcp sport 45156 tcp dport 8080
trace id 50815b84 ip filter FORWARD rule ct state new  counter packets 0 bytes 0 jump KUBE-FORWARD # handle 15 (verdict jump KUBE-FORWARD)
trace id 50815b84 ip filter FORWARD policy accept
trace id 50815b84 ip nat POSTROUTING packet: iif "veth47" oif "veth6a" ip saddr 10.244.1.5 ip daddr 10.244.1.4 tcp sport 45156 tcp dport 8080
trace id 50815b84 ip nat POSTROUTING rule  counter packets 0 bytes 0 jump KUBE-POSTROUTING # handle 12 (verdict jump KUBE-POSTROUTING)
trace id 50815b84 ip nat KUBE-POSTROUTING rule meta mark & 0x00004000 != 0x00004000 counter packets 0 bytes 0 return # handle 66 (verdict return)
trace id 50815b84 ip nat POSTROUTING policy accept
`;

const XTABLES = `PACKET: 2 df0ba2b6 IN=veth47 MACPROTO=0800 SRC=10.244.1.5 DST=10.96.132.173 LEN=60 TTL=64 ID=59429 DF SPORT=45170 DPORT=8000 SYN
 TRACE: 2 df0ba2b6 raw:KUBE-NETLAB-TRACE-23dbcde6:rule:0x2:CONTINUE  -4 -t raw -A KUBE-NETLAB-TRACE-23dbcde6 -s 10.244.1.5/32 -j TRACE
 TRACE: 2 df0ba2b6 raw:PREROUTING:policy:ACCEPT
PACKET: 2 df0ba2b6 IN=veth47 MACPROTO=0800 SRC=10.244.1.5 DST=10.96.132.173 LEN=60 TTL=64 ID=59429 DF SPORT=45170 DPORT=8000 SYN
 TRACE: 2 df0ba2b6 nat:PREROUTING:rule:0xb:JUMP:KUBE-SERVICES  -4 -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
 TRACE: 2 df0ba2b6 nat:KUBE-SERVICES:rule:0x4b:JUMP:KUBE-SVC-X  -4 -t nat -A KUBE-SERVICES -d 10.96.132.173/32 -p tcp -m tcp --dport 8000 -j KUBE-SVC-X
 TRACE: 2 df0ba2b6 nat:KUBE-SVC-X:rule:0x4f:JUMP:KUBE-SEP-A  -4 -t nat -A KUBE-SVC-X -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A
 TRACE: 2 df0ba2b6 nat:KUBE-SEP-A:rule:0x55:ACCEPT  -4 -t nat -A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 10.244.1.4:8080
PACKET: 2 df0ba2b6 IN=veth47 OUT=veth6a MACPROTO=0800 SRC=10.244.1.5 DST=10.244.1.4 LEN=60 TTL=63 ID=59429 DF SPORT=45170 DPORT=8080 SYN
 TRACE: 2 df0ba2b6 filter:FORWARD:rule:0xf:JUMP:KUBE-FORWARD  -4 -t filter -A FORWARD -j KUBE-FORWARD
 TRACE: 2 df0ba2b6 filter:FORWARD:policy:ACCEPT
PACKET: 2 df0ba2b6 IN=veth47 OUT=veth6a MACPROTO=0800 SRC=10.244.1.5 DST=10.244.1.4 LEN=60 TTL=63 ID=59429 DF SPORT=45170 DPORT=8080 SYN
 TRACE: 2 df0ba2b6 nat:POSTROUTING:rule:0xc:JUMP:KUBE-POSTROUTING  -4 -t nat -A POSTROUTING -j KUBE-POSTROUTING
 TRACE: 2 df0ba2b6 nat:KUBE-POSTROUTING:rule:0x42:0xfffffffb  -4 -t nat -A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
 TRACE: 2 df0ba2b6 nat:POSTROUTING:policy:ACCEPT
`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fixture = (name: string) => new URL(`../fixtures/live-trace/${name}`, import.meta.url);

const PATH = ['PREROUTING', 'KUBE-SERVICES', 'KUBE-SVC-X', 'KUBE-SEP-A', 'FORWARD', 'KUBE-FORWARD', 'POSTROUTING', 'KUBE-POSTROUTING'];

/** Walks of the kit's raw chain, nat and filter compared (what traceLive does for iptables). */
function iptablesWalks(events: ReturnType<typeof parseNftMonitorTrace>) {
  const normal = events.map((e) => ({ ...e, table: e.table.replace(/^ip /, '') }));
  return buildWalks(normal, {
    startsWalk: (e) => e.kind === 'packet' && e.table === 'raw' && e.chain.startsWith('KUBE-NETLAB-TRACE-'),
    ignore: (e) => e.table !== 'nat' && e.table !== 'filter',
  });
}

function prediction(paths: { path: string[]; dnat: string; p: number }[]): TraceResult {
  return {
    outcomes: paths.map((o) => ({ path: o.path, rules: [], verdict: 'ACCEPT', dnat: o.dnat, snat: null, probability: o.p })),
  } as unknown as TraceResult;
}

describe('trace events as the monitors print them', () => {
  it('nft monitor trace: packets, rules without counters or handles, verdicts and jump targets', () => {
    const events = parseNftMonitorTrace(NFT_IPTABLES);
    expect(events).toHaveLength(15);
    expect(events[0]).toMatchObject({ id: '50815b84', table: 'ip raw', chain: 'KUBE-NETLAB-TRACE-23dbcde6', kind: 'packet' });
    expect(events[0].packet).toEqual({ src: '10.244.1.5', dst: '10.96.132.173', protocol: 'tcp', sport: 45156, dport: 8000, iif: 'veth47', oif: null });
    expect(events[5]).toMatchObject({
      kind: 'rule', table: 'ip nat', chain: 'KUBE-SERVICES', handle: 75, verdict: 'jump', target: 'KUBE-SVC-X',
      rule: 'meta l4proto tcp ip daddr 10.96.132.173 tcp dport 8000 counter jump KUBE-SVC-X',
    });
    expect(events[7]).toMatchObject({ verdict: 'accept', target: null, rule: 'meta l4proto tcp counter dnat to 10.244.1.4:8080' });
    expect(events[2]).toMatchObject({ kind: 'policy', chain: 'PREROUTING', verdict: 'accept' });
  });

  it('xtables-monitor --trace: a PACKET line becomes a packet event of the chain that follows; RETURN printed as a number', () => {
    const events = parseXtablesMonitorTrace(XTABLES);
    expect(events.filter((e) => e.kind === 'packet').map((e) => `${e.table}:${e.chain}`)).toEqual(['raw:KUBE-NETLAB-TRACE-23dbcde6', 'nat:PREROUTING', 'filter:FORWARD', 'nat:POSTROUTING']);
    const ret = events.find((e) => e.chain === 'KUBE-POSTROUTING')!;
    expect(ret).toMatchObject({ kind: 'rule', verdict: 'return', handle: 0x42, rule: '-m mark ! --mark 0x4000/0x4000 -j RETURN' });
    expect(events.find((e) => e.chain === 'KUBE-SVC-X')).toMatchObject({ verdict: 'jump', target: 'KUBE-SEP-A', rule: '-m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A' });
    expect(events[2].packet).toBeNull();
    expect(events[0].packet).toMatchObject({ src: '10.244.1.5', dst: '10.96.132.173', sport: 45170, dport: 8000, iif: 'veth47', oif: null });
  });

  it('names the line it cannot read, and skips the notices between events', () => {
    expect(parseNftMonitorTrace('# Warning: table ip filter is managed by iptables-nft\n\n')).toEqual([]);
    expect(() => parseNftMonitorTrace('trace id 1 ip nat X rule ip daddr 1.2.3.4 (verdict maybe)')).toThrow(ParseError);
    expect(() => parseNftMonitorTrace('trace id 1 ip nat X rule ip daddr 1.2.3.4 (verdict maybe)')).toThrow(/line 1/);
    expect(() => parseXtablesMonitorTrace('PACKET: 2 ab SRC=1.2.3.4\n TRACE: 2 ab garbage')).toThrow(/line 2/);
  });

  // Both read from the kernel at once, for one SYN (test/fixtures/README.md).
  for (const mode of ['iptables', 'nftables']) {
    it(`the kit's netlink reader: the events nft monitor trace printed for the same packet (${mode} lab), each rule named by its handle`, async () => {
      const nft = parseNftMonitorTrace(await readFile(fixture(`${mode}-nft-monitor.txt`), 'utf8'));
      const ours = parseNftraceReader(await readFile(fixture(`${mode}-nftrace-reader.txt`), 'utf8'));
      const strip = ({ line: _line, rule: _rule, ...rest }: TraceEvent) => rest;
      expect(ours.length).toBeGreaterThan(15);
      expect(ours.map(strip)).toEqual(nft.map(strip));
      expect(ours.every((e) => e.rule === null)).toBe(true);
      const byHandle = new Map(nft.filter((e) => e.kind === 'rule').map((e) => [`${e.table} ${e.chain} ${e.handle}`, e.rule as string]));
      nameRulesByHandle(ours, (table, chain, handle) => byHandle.get(`${table} ${chain} ${handle}`));
      expect(ours.map((e) => e.rule)).toEqual(nft.map((e) => e.rule));
    });
  }

  it('the netlink reader\'s lines: clock lines kept apart, escaped names, a walk start counted on its packet line only', async () => {
    const reader = new TraceEventReader('netlink', '\tip\traw\tKUBE-NETLAB-TRACE-421c4550\t');
    reader.push('listening\t5\ndrained\t9\ndrai');
    reader.push('ned\t7\n');
    reader.push(await readFile(fixture('iptables-nftrace-reader.txt'), 'utf8'));
    reader.push('rule\t0000000a\tinet\tt\\tx\tch\\\\ain\\n\t7\tjump\tta\\rrget\n');
    const events = reader.end();
    expect(reader.clock).toEqual({ listeningAt: 5n, drainedAt: 9n });
    expect(reader.marked).toBe(1);
    expect(events.at(-1)).toMatchObject({ table: 'inet t\tx', chain: 'ch\\ain\n', handle: 7, verdict: 'jump', target: 'ta\rrget', rule: null });
    nameRulesByHandle(events, () => undefined);
    expect(events.at(-1)?.rule).toBe('(handle 7: not in the listing read before the trace)');
  });

  it('the netlink reader\'s lines: what it cannot read is a ParseError naming the line', () => {
    const ok = 'policy\t0000000a\tip\tnat\tPOSTROUTING\taccept\n';
    for (const bad of [
      'rule\t0000000a\tip\tnat\tX\tnot-a-handle\tjump\tY',
      'packet\t0000000a\tip\tnat\tX\t1.2.3.4\t5.6.7.8\ttcp\t1\t70000\t\t',
      'policy\t0000000a\tipx\tnat\tX\taccept',
      'policy\t0000000a\tip\tnat\tX\tmaybe',
      'rule\t0000000a\tip\tnat\tX\t7\tjump',
      'drained\tsoon',
      'hello',
    ]) {
      expect(() => parseNftraceReader(ok + bad)).toThrow(ParseError);
      expect(() => parseNftraceReader(ok + bad)).toThrow(/line 2/);
    }
  });
});

describe('walks against the prediction', () => {
  it('both monitors give the same walk: chains in order, DNAT from the headers', () => {
    for (const events of [parseNftMonitorTrace(NFT_IPTABLES), parseXtablesMonitorTrace(XTABLES)]) {
      const [walk] = iptablesWalks(events);
      expect(walk.path).toEqual(PATH);
      expect(walk.base).toEqual([true, false, false, false, true, false, true, false]);
      expect(walk.verdict).toBe('ACCEPT');
      expect(walk.dnat).toBe('10.244.1.4:8080');
      expect(walk.first).toMatchObject({ src: '10.244.1.5', dst: '10.96.132.173' });
    }
  });

  it('a reused trace id starts a new walk at the kit\'s rule', () => {
    const twice = NFT_IPTABLES + NFT_IPTABLES.replaceAll('45156', '45157').replaceAll('10.244.1.4', '10.244.2.2').replaceAll('KUBE-SEP-A', 'KUBE-SEP-B');
    const walks = iptablesWalks(parseNftMonitorTrace(twice));
    expect(walks.map((w) => [w.first?.sport, w.dnat])).toEqual([[45156, '10.244.1.4:8080'], [45157, '10.244.2.2:8080']]);
  });

  it('one walk per connection: a SYN sent again is not counted twice, a port reused for a new connection is', () => {
    const a = iptablesWalks(parseNftMonitorTrace(NFT_IPTABLES))[0];
    const nat = (w: typeof a) => w.tables.includes('nat');
    // Sent again after an answer was slow: conntrack knows it, so no nat chain.
    const again = { ...a, path: a.path.slice(4), tables: a.tables.slice(4).map(() => 'filter'), base: a.base.slice(4) };
    const reused = { ...a };
    const dropped = { ...a, first: { ...a.first!, sport: 50000 }, verdict: 'DROP' as const };
    const droppedAgain = { ...dropped };
    const cut = { ...a, first: { ...a.first!, sport: 50001 }, path: [], tables: [], base: [] };
    const r = connectionWalks([a, again, reused, dropped, droppedAgain, cut], nat);
    expect(r.firsts).toEqual([a, reused, dropped]);
    expect([r.retransmissions, r.incomplete]).toEqual([2, 1]);
  });

  it('counts explained walks per outcome, and a walk no outcome predicts as unexplained', () => {
    const a = iptablesWalks(parseNftMonitorTrace(NFT_IPTABLES))[0];
    const b = { ...a, path: a.path.map((c) => (c === 'KUBE-SEP-A' ? 'KUBE-SEP-B' : c)), dnat: '10.244.2.2:8080' };
    const stray = { ...a, dnat: '10.244.9.9:8080' };
    const pred = prediction([
      { path: PATH, dnat: '10.244.1.4:8080', p: 0.5 },
      { path: PATH.map((c) => (c === 'KUBE-SEP-A' ? 'KUBE-SEP-B' : c)), dnat: '10.244.2.2:8080', p: 0.5 },
    ]);
    const cmp = compareWalks([a, a, a, b, stray], pred, { isBase: (c) => IPTABLES_BUILTIN.test(c) });
    expect(cmp.packets).toBe(5);
    expect(cmp.counts).toEqual([3, 1]);
    expect(cmp.unexplained).toBe(1);
    expect(cmp.paths.map((p) => [p.count, p.predicted])).toEqual([[3, 0.5], [1, 0.5], [1, null]]);
    expect(cmp.chiSquare?.degreesOfFreedom).toBe(1);
    expect(cmp.chiSquare?.statistic).toBeCloseTo(1, 9); // (3-2)²/2 + (1-2)²/2
  });

  it('a predicted built-in chain the kernel never reported (iptables-nft registers it only with a rule) still explains the walk', () => {
    const a = iptablesWalks(parseNftMonitorTrace(NFT_IPTABLES))[0];
    const pred = prediction([{ path: ['PREROUTING', 'KUBE-SERVICES', 'KUBE-SVC-X', 'KUBE-SEP-A', 'INPUT', ...PATH.slice(4)], dnat: '10.244.1.4:8080', p: 1 }]);
    expect(compareWalks([a], pred, { isBase: (c) => IPTABLES_BUILTIN.test(c) }).unexplained).toBe(0);
    const wrong = prediction([{ path: PATH.filter((c) => c !== 'KUBE-FORWARD'), dnat: '10.244.1.4:8080', p: 1 }]);
    expect(compareWalks([a], wrong, { isBase: (c) => IPTABLES_BUILTIN.test(c) }).unexplained).toBe(1);
  });
});

const MATCH: TraceMatch = { protocol: 'tcp', src: '10.244.1.5', dst: '10.96.0.10', dport: 80, hook: 'PREROUTING' };

/** A process that has exited, with the start time it had: the owner of a trace that was killed. */
async function deadOwner(): Promise<ProcessRef> {
  const child = spawn('sleep', ['30']);
  await once(child, 'spawn');
  const ref = { pid: child.pid!, start: processStart(child.pid!) };
  child.kill('SIGKILL');
  await once(child, 'exit');
  return ref;
}

describe('the kit\'s tracing rules, in a private namespace', () => {
  it('marks them with the owner, and refuses addresses it would splice into rules', () => {
    const owner = { pid: 4242, start: '987654' };
    expect(parseTraceComment(traceOwnerComment(owner))).toEqual(owner);
    expect(parseTraceComment('kube-netlab-trace/x/1')).toBeNull();
    expect(parseTraceTable('kube-netlab-trace-4242-987654-0a1b2c3d')).toEqual(owner);
    expect(parseTraceTable('kube-proxy')).toBeNull();
    expect(() => iptablesTraceInput({ ...MATCH, src: '1.2.3.4 -j ACCEPT' }, 'KUBE-NETLAB-TRACE-00000000', 'c')).toThrow(/not an IPv4 address/);
    expect(() => iptablesTraceInput({ ...MATCH, dst: '999.1.1.1' }, 'KUBE-NETLAB-TRACE-00000000', 'c')).toThrow(/not an IPv4 address/);
  });

  it('gc ends a monitor whose trace was killed, and leaves one whose trace still runs', async () => {
    const orphan = spawn('sleep', ['30'], { env: { ...process.env, ...traceMonitorEnv(await deadOwner()) } });
    const running = spawn('sleep', ['30'], { env: { ...process.env, ...traceMonitorEnv({ pid: process.pid, start: processStart(process.pid) }) } });
    await Promise.all([once(orphan, 'spawn'), once(running, 'spawn')]);
    try {
      const ended = await gcTraceMonitors();
      expect(ended).toContain(orphan.pid);
      expect(ended).not.toContain(running.pid);
      expect(running.exitCode).toBeNull();
    } finally {
      orphan.kill('SIGKILL');
      running.kill('SIGKILL');
    }
  });

  for (const kind of ['iptables', 'nftables'] as const) {
    it(`${kind}: installs, finds with its owner, removes; gc removes a dead owner's and keeps a live one's and unmarked ones`, async () => {
      await withNetns(async (ns) => {
        const live = await installTraceRules(ns.run, kind, MATCH);
        const dead = await installTraceRules(ns.run, kind, MATCH, await deadOwner());
        if (kind === 'iptables') {
          // Looks like ours by name, carries no mark: not provably the kit's.
          await ns.run(['iptables', '-t', 'raw', '-N', 'KUBE-NETLAB-TRACE-0000beef']);
        } else {
          await ns.run(['nft', 'add', 'table', 'ip', 'kube-netlab-trace-someone']);
        }
        const found = await findTraceRules(ns.run);
        expect(found).toHaveLength(3);
        expect(found).toContainEqual(live);
        const decisions = await gcTraceRules(ns.run, 'ns');
        expect(decisions.filter((d) => d.action === 'removed')).toHaveLength(1);
        expect(decisions.find((d) => d.action === 'removed')?.what).toContain(dead.kind === 'iptables' ? dead.chain : dead.table);
        expect(decisions.filter((d) => d.action === 'kept').map((d) => d.why).join('\n')).toMatch(/still runs[\s\S]*not provably|not provably[\s\S]*still runs/);
        expect(await removeTraceRules(ns.run, live)).toBe(true);
        expect(await findTraceRules(ns.run)).toHaveLength(1);
        if (kind === 'iptables') expect((await ns.run(['iptables-save', '-t', 'raw'])).stdout).not.toMatch(/-j TRACE|kube-netlab-trace\//);
        else expect((await ns.run(['nft', 'list', 'tables'])).stdout.trim()).toBe('table ip kube-netlab-trace-someone');
      });
    });
  }
});

const tag = testRunTag().slice(0, 6);

describe('live trace on a netns lab in iptables mode', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `t${tag}-lti`, mode: 'iptables' });
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('the kit\'s netlink reader (the default here): every connection traced, every path predicted, the split plausible; nothing left behind', async () => {
    const r = await traceLive(lab, { service: 'httpbin', requests: 300 });
    expect(r.answered).toBe(300);
    expect(r.packets).toBe(300);
    expect(r.unexplained).toBe(0);
    expect(r.paths).toHaveLength(3);
    expect(r.counts.reduce((a, n) => a + n, 0)).toBe(300);
    expect(r.chiSquare?.degreesOfFreedom).toBe(2);
    expect(r.chiSquare!.pValue).toBeGreaterThan(1e-4);
    for (const p of r.paths) {
      expect(p.path.slice(0, 3)).toEqual(['PREROUTING', 'KUBE-SERVICES', expect.stringMatching(/^KUBE-SVC-/)]);
      expect(p.rules.some((x) => /--to-destination/.test(x.rule))).toBe(true); // iptables-save's words
      expect(p.dnat).toMatch(/:8080$/);
    }
    expect(r.provenance).toMatchObject({ source: 'captured', backend: 'netns', mode: 'iptables', node: r.node });
    expect(r.prediction.provenance).toMatchObject({ source: 'predicted', backend: 'netns', mode: 'iptables' });
    expect(r.commands.monitor).toBe(NFTRACE_READER_LABEL);
    expect(await findTraceRules((argv, o) => lab.exec(r.node, argv, o))).toEqual([]);
  });

  it('nft monitor: the same paths, rules and verdicts as the kit\'s reader', async () => {
    const [viaNft, ours] = [await traceLive(lab, { service: 'httpbin', requests: 60, monitor: 'nft' }), await traceLive(lab, { service: 'httpbin', requests: 60 })];
    expect(viaNft.commands.monitor).toBe('nft -a monitor trace');
    const shape = (r: typeof ours) => r.paths.map((p) => ({ path: p.path, rules: p.rules, verdict: p.verdict, dnat: p.dnat })).sort((a, b) => (String(a.dnat) < String(b.dnat) ? -1 : 1));
    expect([viaNft.packets, viaNft.unexplained, ours.packets, ours.unexplained]).toEqual([60, 0, 60, 0]);
    expect(shape(ours)).toEqual(shape(viaNft));
  });

  it('xtables-monitor: the same paths in iptables syntax', async () => {
    // Few connections: xtables-monitor asks the kernel for each rule as it prints, and on a busy
    // machine its socket overflowed within 30 back-to-back connections (the trace then says so).
    const r = await traceLive(lab, { service: 'httpbin', requests: 10, monitor: 'xtables' });
    expect([r.packets, r.unexplained]).toEqual([10, 0]);
    expect(r.commands.monitor).toBe('xtables-monitor --trace');
    // iptables' own words: the Service chain's pick, and the endpoint chain's DNAT.
    for (const p of r.paths) {
      expect(p.rules.find((x) => x.chain.startsWith('KUBE-SVC-'))?.rule).toMatch(/-j KUBE-SEP-[A-Z0-9]+$/);
      expect(p.rules.find((x) => x.chain.startsWith('KUBE-SEP-') && x.verdict === 'accept')?.rule).toMatch(/-j DNAT --to-destination [\d.]+:8080/);
    }
    expect(await findTraceRules((argv, o) => lab.exec(r.node, argv, o))).toEqual([]);
  });

  it('aborting mid-trace removes the rules before it throws', async () => {
    const stop = new AbortController();
    // traceLive throws the signal's reason: this one, not some other failure.
    const why = new Error('stopped mid-trace');
    let installedOn: string | null = null;
    const run = traceLive(lab, {
      service: 'httpbin', requests: 2000, signal: stop.signal,
      onRulesInstalled: () => { installedOn = 'yes'; setTimeout(() => stop.abort(why), 50); },
    });
    await expect(run).rejects.toBe(why);
    expect(installedOn).toBe('yes');
    for (const n of await lab.nodes()) expect(await findTraceRules((argv, o) => lab.exec(n.name, argv, o))).toEqual([]);
  });
});

describe('live trace on a netns lab in nftables mode', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `t${tag}-ltn`, mode: 'nftables' });
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('a table of the kit\'s own: every path predicted, the numgen split plausible, the table gone afterwards', async () => {
    const r = await traceLive(lab, { service: 'httpbin', requests: 300 });
    expect([r.answered, r.packets, r.unexplained, r.paths.length]).toEqual([300, 300, 0, 3]);
    expect(r.chiSquare!.pValue).toBeGreaterThan(1e-4);
    for (const p of r.paths) {
      expect(p.path).toContain('services');
      expect(p.path.some((c) => c.startsWith('service-'))).toBe(true);
      expect(p.rules.find((x) => x.chain.startsWith('service-'))?.rule).toMatch(/numgen random mod 3 vmap/);
      expect(p.path.some((c) => c.startsWith('kube-netlab-trace'))).toBe(false);
    }
    expect(r.commands.rules).toMatch(/^nft add table ip kube-netlab-trace-\d+-/);
    const tables = (await lab.exec(r.node, ['nft', 'list', 'tables'])).stdout;
    expect(tables).toContain('table ip kube-proxy');
    expect(tables).not.toContain('kube-netlab-trace');
  });

  it('xtables-monitor is refused with the reason; traceLiveOrSkip says it and goes on', async () => {
    await expect(traceLive(lab, { service: 'httpbin', requests: 5, monitor: 'xtables' })).rejects.toThrow(LiveTraceUnavailable);
    await expect(traceLive(lab, { service: 'httpbin', requests: 5, monitor: 'xtables' })).rejects.toThrow(/nftables lab is traced with nft monitor trace/);
    const said: string[] = [];
    expect(await traceLiveOrSkip(lab, { service: 'httpbin', requests: 5, monitor: 'xtables' }, (l) => said.push(l))).toBeNull();
    expect(said).toEqual([expect.stringMatching(/^NOT TRACED: xtables-monitor prints iptables rules/)]);
  });

  it('the kit\'s reader decodes the kernel\'s events as nft does: both read the same 20 connections at once', async () => {
    const curl = (await lab.pods()).find((p) => p.name.startsWith('curl-')) as Pod;
    const svc = (await lab.services()).find((x) => x.name === 'httpbin') as { clusterIP: string };
    const exec = (argv: string[], o?: RunOptions) => lab.exec(curl.node, argv, o);
    const rules = await installTraceRules(exec, 'nftables', { protocol: 'tcp', src: curl.ip, dst: svc.clusterIP, dport: 8000, hook: 'PREROUTING' });
    const stop = new AbortController();
    const nftText: string[] = [];
    const ours = new TraceEventReader('netlink');
    try {
      const listeners = async () => eventListenerInodes((await exec(['cat', '/proc/net/netlink'])).stdout);
      const before = new Set(await listeners());
      const runs = [
        exec(['nft', '-a', 'monitor', 'trace'], { signal: stop.signal, allowFailure: true, timeoutMs: 60_000, onStdout: (c) => nftText.push(c) }),
        exec(monitorCommand('netlink'), { signal: stop.signal, allowFailure: true, timeoutMs: 60_000, input: NFTRACE_READER_PROGRAM, onStdout: (c) => ours.push(c) }),
      ];
      for (const r of runs) r.catch(() => undefined);
      // Both listening: two new trace sockets, and the reader has said so.
      while ((await listeners()).filter((i) => !before.has(i)).length < 2 || ours.clock.listeningAt === null) await sleep(10);
      const load = await lab.load({ url: `http://${svc.clusterIP}:8000/hostname`, requests: 20, concurrency: 5, from: { pod: curl.name } });
      expect(load.ok).toBe(20);
      const loadEnd = process.hrtime.bigint();
      while ((ours.clock.drainedAt ?? 0n) < loadEnd) await sleep(5);
      await sleep(500); // nft has no such line: give it time to print what it has read
      stop.abort();
      await Promise.allSettled(runs);
    } finally {
      stop.abort();
      await removeTraceRules(exec, rules);
    }
    const viaNft = parseNftMonitorTrace(nftText.join(''));
    const viaReader = ours.end();
    const strip = ({ line: _line, rule: _rule, ...rest }: TraceEvent) => rest;
    expect(viaNft.filter((e) => e.kind === 'packet' && e.table === `ip ${rules.kind === 'nftables' ? rules.table : ''}`)).toHaveLength(20);
    expect(viaReader.map(strip)).toEqual(viaNft.map(strip));
    // Each rule's text from the listing, by handle, as nft's monitor printed it.
    const listing = parseNftRuleset((await exec(['nft', '-a', 'list', 'ruleset'])).stdout);
    const texts = new Map(listing.tables.flatMap((t) => t.chains.flatMap((c) => c.rules.map((r) => [`${t.family} ${t.name} ${c.name} ${r.handle}` as string, r.text] as const))));
    nameRulesByHandle(viaReader, (table, chain, handle) => texts.get(`${table} ${chain} ${handle}`));
    const ruleOf = (e: TraceEvent) => (e.table.startsWith('ip kube-netlab-trace-') ? null : e.rule);
    expect(viaReader.map(ruleOf)).toEqual(viaNft.map(ruleOf));
  });

  it('where the kernel drops events because the reader fell behind, the trace stops with that said, and its table is removed', async () => {
    process.env.KUBE_NETLAB_NFTRACE_RCVBUF = '2048';
    try {
      await expect(traceLive(lab, { service: 'httpbin', requests: 200 })).rejects.toThrow(/fell behind and the kernel dropped events \(No buffer space available\)/);
    } finally {
      delete process.env.KUBE_NETLAB_NFTRACE_RCVBUF;
    }
    for (const n of await lab.nodes()) expect(await findTraceRules((argv, o) => lab.exec(n.name, argv, o))).toEqual([]);
  });
});

describe('live trace of a Local NodePort called on a node without a local pod', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `t${tag}-ltl`, mode: 'iptables' });
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl')), ...(await loadManifest('httpbin-nodeport'))]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('the kernel shows the rule that drops, as predicted', async () => {
    const pods = await lab.pods({ app: 'httpbin' });
    const nodes = await lab.nodes();
    const empty = nodes.find((n) => !pods.some((p) => p.node === n.name))!;
    const caller = nodes.find((n) => n !== empty)!;
    const r = await traceLive(lab, { service: 'httpbin-local', from: { node: caller.name }, to: { node: empty.name }, requests: 3, timeoutMs: 1000 });
    expect([r.node, r.answered, r.packets, r.unexplained]).toEqual([empty.name, 0, 3, 0]);
    expect(r.paths).toHaveLength(1);
    expect(r.paths[0]).toMatchObject({ verdict: 'DROP', dnat: null, predicted: 1 });
    expect(r.paths[0].rules.at(-1)).toMatchObject({ table: 'filter', chain: 'KUBE-EXTERNAL-SERVICES', verdict: 'drop' });
    expect(r.paths[0].rules.at(-1)?.rule).toMatch(/has no local endpoints.*-j DROP/);
    expect(r.chiSquare).toBeNull();
  });
});

describe('live trace on a netns lab in IPVS mode', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `t${tag}-ltv`, mode: 'ipvs', workers: 1 });
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  for (const monitor of ['netlink', 'nft', 'xtables'] as const) {
    it(`${monitor}: the iptables part traced up to where IPVS takes the packet, every walk predicted`, async () => {
      // xtables-monitor asks the kernel for each rule's text as it prints; refused connections
      // come back to back, so on a busy machine 20 of them can overflow its socket.
      const requests = monitor === 'xtables' ? 5 : 20;
      const r = await traceLive(lab, { service: 'httpbin', requests, monitor });
      expect([r.packets, r.unexplained, r.paths.length]).toEqual([requests, 0, 1]);
      const p = r.paths[0];
      // Delivered to the node (the ClusterIP is its own): nat PREROUTING, then filter INPUT; the
      // walk stops before nat INPUT, which runs after IPVS's LOCAL_IN hook.
      expect(p.path.slice(0, 2)).toEqual(['PREROUTING', 'KUBE-SERVICES']);
      expect(p.path).toContain('INPUT');
      expect(p.path.filter((c) => c === 'INPUT')).toHaveLength(1);
      expect(p.path.some((c) => c.startsWith('IPVS '))).toBe(false);
      expect(p).toMatchObject({ verdict: 'ACCEPT', dnat: null, predicted: 1 });
      expect(p.rules.some((x) => /--match-set KUBE-CLUSTER-IP dst,dst|@KUBE-CLUSTER-IP/.test(x.rule))).toBe(true);
      expect(r.ipvs).not.toBeNull();
      const split = r.ipvs!;
      expect(split.virtualServer).toMatch(/^TCP 10\.96\.\d+\.\d+:8000$/);
      expect(split.partCounts).toEqual([requests]);
      // The real servers the prediction names: the httpbin pods, a third each (rr).
      const pods = await lab.pods({ app: 'httpbin' });
      expect(split.servers.map((s) => s.server).sort()).toEqual(pods.map((x) => `${x.ip}:8080`).sort());
      for (const s of split.servers) expect(s.predicted).toBeCloseTo(1 / pods.length, 9);
      if (ipvsSkipReason() !== null) {
        expect(r.answered).toBe(0);
        expect(split.unavailable).toMatch(/no IP_VS/);
        expect(split.servers.every((s) => s.observed === null)).toBe(true);
        expect(split.provenance).toBeNull();
        expect(r.chiSquare).toBeNull();
        // What was observed is what is shown as predicted: the iptables part alone.
        expect(r.prediction.result.outcomes).toHaveLength(1);
        expect(r.counts).toEqual([requests]);
      }
      expect(r.provenance).toMatchObject({ source: 'captured', backend: 'netns', mode: 'ipvs' });
      for (const n of await lab.nodes()) expect(await findTraceRules((argv, o) => lab.exec(n.name, argv, o))).toEqual([]);
    });
  }

  it('from the node itself: traced from the ClusterIP, the source the kernel picks for its own address', async () => {
    const pods = await lab.pods({ app: 'httpbin' });
    const worker = (await lab.nodes()).find((n) => n.role === 'worker')!;
    const r = await traceLive(lab, { service: 'httpbin', from: { node: worker.name }, requests: 5 });
    expect([r.hook, r.packets, r.unexplained, r.paths.length]).toEqual(['OUTPUT', 5, 0, 1]);
    expect(r.paths[0].path.slice(0, 2)).toEqual(['OUTPUT', 'KUBE-SERVICES']);
    expect(r.paths[0].path.filter((c) => IPTABLES_BUILTIN.test(c))).toEqual(['OUTPUT']);
    expect(r.commands.rules).toContain(`-s ${r.service.ip} -d ${r.service.ip} `);
    expect(r.ipvs!.servers).toHaveLength(pods.length);
  });

  it.skipIf(ipvsSkipReason() !== null)(`with IP_VS: the split read from the virtual server's counters (${ipvsSkipReason() ?? 'kernel has IP_VS'})`, async () => {
    const r = await traceLive(lab, { service: 'httpbin', requests: 300 });
    expect([r.answered, r.packets, r.unexplained]).toEqual([300, 300, 0]);
    const split = r.ipvs!;
    expect(split.unavailable).toBeNull();
    expect(split.provenance).toMatchObject({ source: 'measured', mode: 'ipvs' });
    expect(split.servers.reduce((a, s) => a + (s.observed ?? 0), 0)).toBeGreaterThanOrEqual(300);
    expect(r.counts.reduce((a, n) => a + n, 0)).toBe(300);
    expect(r.chiSquare?.degreesOfFreedom).toBe(split.servers.length - 1);
    expect(r.prediction.result.outcomes.every((o) => o.ipvs !== undefined)).toBe(true);
  });
});
