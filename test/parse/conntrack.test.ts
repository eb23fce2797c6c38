import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ParseError } from '../../lib/parse/errors.ts';
import {
  parseConntrack, parseNfConntrack, renderConntrack, renderNfConntrack, type ConntrackEntry,
} from '../../lib/parse/conntrack.ts';
import { expectTotal } from '../helpers/fuzz.ts';
import { withNetns } from '../helpers/netns.ts';

// Real loopback traffic inside the namespace: a UDP exchange and a TCP connection that is
// accepted and left open, so conntrack has replied, assured entries with accounting.
const TRAFFIC = `
const dgram = require('node:dgram'), net = require('node:net');
const srv = dgram.createSocket('udp4');
srv.on('message', (m, r) => srv.send('pong', r.port, r.address));
srv.bind(5353, '127.0.0.1', () => {
  const c = dgram.createSocket('udp4');
  c.on('message', () => {
    c.close(); srv.close();
    const l = net.createServer((s) => s.on('data', () => { s.write('y'); }));
    l.listen(8080, '127.0.0.1', () => {
      const k = net.connect(8080, '127.0.0.1', () => k.write('x'));
      k.on('data', () => { console.log(k.localPort); process.exit(0); });
    });
  });
  c.send('ping', 5353, '127.0.0.1');
});
setTimeout(() => process.exit(3), 5000);
`;

interface Captured {
  list: string;
  extended: string;
  ids: string;
  clientPort: number;
}
let cap: Captured;

beforeAll(async () => {
  cap = await withNetns(async (ns) => {
    await ns.run(['ip', 'link', 'set', 'lo', 'up']);
    // Conntrack only tracks a namespace once something there needs it.
    await ns.run(['iptables', '-A', 'INPUT', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP']);
    await ns.run(['sysctl', '-q', '-w', 'net.netfilter.nf_conntrack_acct=1']);
    const insert = (args: string[]) => ns.run(['conntrack', '-I', ...args]);
    await insert(['-p', 'tcp', '-s', '10.244.1.3', '-d', '10.96.120.15', '--sport', '41234', '--dport', '8000',
      '-r', '10.244.2.2', '-q', '10.244.1.3', '--reply-port-src', '8080', '--reply-port-dst', '41234',
      '--state', 'ESTABLISHED', '-t', '431999', '-u', 'ASSURED']);
    await insert(['-p', 'udp', '-s', '10.0.0.1', '-d', '10.96.0.10', '--sport', '53000', '--dport', '53', '-t', '30']);
    await insert(['-p', 'tcp', '-s', '10.0.0.1', '-d', '10.0.0.2', '--sport', '1', '--dport', '2',
      '--state', 'SYN_SENT', '-t', '100', '-m', '5', '-w', '7']);
    await insert(['-p', 'icmp', '-s', '10.0.0.1', '-d', '10.0.0.2', '--icmp-type', '8', '--icmp-code', '0', '--icmp-id', '1234', '-t', '30']);
    const traffic = await ns.run([process.execPath, '-e', TRAFFIC], { timeoutMs: 10_000 });
    const both = async (argv: string[]) => {
      const r = await ns.run(argv);
      return r.stdout + r.stderr; // the summary goes to stderr; parsers must tolerate it mixed in
    };
    return {
      list: await both(['conntrack', '-L']),
      extended: await both(['conntrack', '-L', '-o', 'extended']),
      ids: (await ns.run(['conntrack', '-L', '-o', 'id'])).stdout,
      clientPort: Number(traffic.stdout.trim()),
    };
  });
});

const find = (entries: ConntrackEntry[], f: (e: ConntrackEntry) => boolean) => {
  const e = entries.find(f);
  expect(e, 'entry').toBeDefined();
  return e!;
};

describe('conntrack -L, read from a namespace with real entries', () => {
  it('read an inserted DNAT-shaped tcp entry: tuples, state, timeout, flags', () => {
    const t = parseConntrack(cap.list);
    const e = find(t.entries, (x) => x.original.dst === '10.96.120.15');
    expect(e).toMatchObject({
      protocol: 'tcp', protocolNumber: 6, state: 'ESTABLISHED', family: null, mark: 0, use: 1,
      // Accounting is on in the namespace, so even inserted entries carry (zero) counters.
      original: { src: '10.244.1.3', dst: '10.96.120.15', sport: 41234, dport: 8000, icmp: null, counters: { packets: 0, bytes: 0 } },
      reply: { src: '10.244.2.2', dst: '10.244.1.3', sport: 8080, dport: 41234 },
    });
    expect(e.flags).toContain('ASSURED');
    expect(e.timeout).toBeGreaterThan(431_000);
    expect(e.timeout).toBeLessThanOrEqual(431_999);
  });

  it('read udp without state, [UNREPLIED], icmp ids, mark and zone', () => {
    const t = parseConntrack(cap.list);
    const udp = find(t.entries, (x) => x.original.dst === '10.96.0.10');
    expect(udp).toMatchObject({ protocol: 'udp', protocolNumber: 17, state: null, flags: ['UNREPLIED'] });
    expect(udp.reply).toMatchObject({ src: '10.96.0.10', dst: '10.0.0.1', sport: 53, dport: 53000 });
    const icmp = find(t.entries, (x) => x.protocol === 'icmp');
    expect(icmp.original.icmp).toEqual({ type: 8, code: 0, id: 1234 });
    expect(icmp.reply.icmp).toEqual({ type: 0, code: 0, id: 1234 });
    expect(icmp.original.sport).toBeNull();
    const zoned = find(t.entries, (x) => x.original.dport === 2);
    expect(zoned).toMatchObject({ state: 'SYN_SENT', mark: 5, zone: 7 });
  });

  it('read per-direction accounting on real loopback traffic', () => {
    const t = parseConntrack(cap.list);
    const tcp = find(t.entries, (x) => x.original.sport === cap.clientPort && x.original.dport === 8080);
    expect(tcp.original.counters!.packets).toBeGreaterThanOrEqual(3);
    expect(tcp.original.counters!.bytes).toBeGreaterThan(0);
    expect(tcp.reply.counters!.packets).toBeGreaterThanOrEqual(2);
    expect(tcp).toMatchObject({ reply: { sport: 8080, dport: cap.clientPort } });
    // The client exits right away: the state depends on how far the close got.
    expect(['ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE']).toContain(tcp.state);
    expect(tcp.flags).toEqual(['ASSURED']);
    const udp = find(t.entries, (x) => x.original.dport === 5353);
    expect(udp.original.counters).toEqual({ packets: 1, bytes: 32 });
    expect(udp.reply.counters).toEqual({ packets: 1, bytes: 32 });
    expect(udp.flags).toEqual([]);
  });

  it('tolerate the summary line and keep its count; read -o extended and -o id', () => {
    const t = parseConntrack(cap.list);
    expect(cap.list).toMatch(/conntrack v[\d.]+ \(conntrack-tools\): \d+ flow entries have been shown\./);
    expect(t.shown).toBe(t.entries.length);
    expect(t.entries.length).toBe(6);
    const ext = parseConntrack(cap.extended);
    expect(ext.entries.every((e) => e.family === 'ipv4')).toBe(true);
    const strip = (es: ConntrackEntry[]) => es.map(({ line: _l, family: _f, timeout: _t, ...rest }) => rest);
    expect(strip(ext.entries)).toEqual(strip(t.entries));
    const ids = parseConntrack(cap.ids);
    expect(ids.shown).toBeNull();
    const icmp = find(ids.entries, (x) => x.protocol === 'icmp');
    expect(icmp.reply.icmp?.id).toBe(1234);
    expect(icmp.id).toBeGreaterThan(0);
    expect(icmp.id).not.toBe(1234);
  });

  it('read events, timestamps and per-direction attributes as printed', () => {
    const t = parseConntrack(
      '    [NEW] tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 zone-orig=3\n'
      + ' [DESTROY] udp      17 src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 [start=Wed Nov 25 01:22:07 2026] [stop=Wed Nov 25 01:22:37 2026] delta-time=30\n'
      + 'conntrack v1.4.7 (conntrack-tools): Operation failed: such conntrack doesn\'t exist\n',
    );
    expect(t.entries[0]).toMatchObject({ event: 'NEW', timeout: 120, state: 'SYN_SENT', flags: ['UNREPLIED'], attributes: { 'zone-orig': '3' } });
    expect(t.entries[1]).toMatchObject({ event: 'DESTROY', timeout: null, state: null });
    expect(t.entries[1].attributes).toEqual({ start: 'Wed Nov 25 01:22:07 2026', stop: 'Wed Nov 25 01:22:37 2026', 'delta-time': '30' });
    expect(t.messages).toEqual(["Operation failed: such conntrack doesn't exist"]);
  });
});

describe('conntrack errors', () => {
  const ok = 'tcp 6 1 ESTABLISHED src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 mark=0 use=1';
  const bad: [string, number, RegExp][] = [
    ['src=1.1.1.1 dst=2.2.2.2', 1, /protocol name/],
    ['tcp x 1', 1, /protocol number after tcp/],
    [`${ok}\ntcp 6 1 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2`, 2, /original and a reply tuple/],
    [`${ok}\n${ok}\ntcp 6 1 src=1.1.1.1 dst=2.2.2.2 sport=x dport=2 src=2.2.2.2 dst=1.1.1.1`, 3, /number after sport=/],
    ['tcp 6 1 src=1.1.1.1 dst=2.2.2.2 src=2.2.2.2 dst=1.1.1.1 src=3.3.3.3', 1, /at most two tuples/],
    ['tcp 6 1 sport=1 src=1.1.1.1 dst=2.2.2.2 src=2.2.2.2 dst=1.1.1.1', 1, /src= before sport=/],
    ['tcp 6 1 src=1.1.1.1 dst=2.2.2.2 [ASSURED src=2.2.2.2 dst=1.1.1.1', 1, /closing "\]"/],
    ['tcp 6 1 src=1.1.1.1 dst=2.2.2.2 garbage src=2.2.2.2 dst=1.1.1.1', 1, /key=value or \[FLAG\]/],
    ['tcp 6 1 src=1.1.1.1 src=2.2.2.2 dst=1.1.1.1', 1, /dst= in the original tuple/],
  ];
  it.each(bad)('name the line: %j', (text, line, why) => {
    expect(() => parseConntrack(text)).toThrow(ParseError);
    expect(() => parseConntrack(text)).toThrow(new RegExp(`line ${line}: .*${why.source}`));
  });

  it('are total on arbitrary and mutated listings', () => {
    expectTotal(parseConntrack, [cap.list, cap.extended, cap.ids], {
      roundTrip: (t) => parseConntrack(renderConntrack(t)),
      tokens: ['tcp      6 ', 'udp      17 ', '120 ', 'ESTABLISHED ', '10.0.0.1 ', '[ASSURED] ', 'mark=0 ', 'use=1', '\n'],
    });
  });
});

// Real flows on a veth pair and over IPv6 loopback, captured by test/fixtures/captured/capture.ts.
const captured = (name: string) => readFileSync(new URL(`../fixtures/captured/${name}`, import.meta.url), 'utf8');
const PROC = captured('proc-net-nf_conntrack.txt');
const LIST = captured('conntrack-L.txt');

/** What a flow is, whoever prints it: protocol, state, both tuples, flags, mark. */
const flows = (es: ConntrackEntry[]) => es
  .map((e) => JSON.stringify([e.protocol, e.state, e.original, e.reply, e.flags, e.mark]))
  .sort();

describe('captured conntrack -L and /proc/net/nf_conntrack', () => {
  it('read DNAT, direct, unreplied, closed, icmp and IPv6 flows from conntrack -L', () => {
    const t = parseConntrack(LIST);
    // conntrack writes its summary to stderr, unbuffered, so it comes first.
    expect(LIST.split('\n')[0]).toMatch(/flow entries have been shown/);
    expect(t.shown).toBe(t.entries.length);
    const dnat = find(t.entries, (x) => x.original.dst === '10.96.120.15');
    expect(dnat).toMatchObject({ protocol: 'tcp', state: 'ESTABLISHED', flags: ['ASSURED'], reply: { src: '10.0.0.2', sport: 8080 } });
    expect(dnat.original.counters!.packets).toBeGreaterThan(0);
    expect(dnat.attributes['delta-time']).toMatch(/^\d+$/);
    const dns = find(t.entries, (x) => x.original.dst === '10.96.0.10');
    expect(dns).toMatchObject({ protocol: 'udp', state: null, original: { dport: 53 }, reply: { src: '10.0.0.2', sport: 5353 } });
    expect(find(t.entries, (x) => x.original.dst === '10.0.0.9').flags).toEqual(['UNREPLIED']);
    expect(find(t.entries, (x) => x.protocol === 'icmp').original.icmp).toEqual({ type: 8, code: 0, id: 4660 });
    expect(t.entries.some((x) => x.state === 'TIME_WAIT')).toBe(true);
    expect(find(t.entries, (x) => x.original.src === '::1')).toMatchObject({ protocol: 'tcp', reply: { dport: expect.any(Number) } });
    const v6 = parseConntrack(captured('conntrack-L-f-ipv6.txt'));
    expect(v6.entries.map((e) => e.original.dst)).toEqual(['::1']);
  });

  it('read /proc/net/nf_conntrack: the same flows, IPv6 in the short form, zone and use as the kernel keeps them', () => {
    const proc = parseNfConntrack(PROC);
    expect(PROC).toContain('src=0000:0000:0000:0000:0000:0000:0000:0001');
    expect(proc.entries.every((e) => e.family !== null && e.zone === 0)).toBe(true);
    expect(find(proc.entries, (x) => x.family === 'ipv6').original.src).toBe('::1');
    expect(flows(proc.entries)).toEqual(flows(parseConntrack(LIST).entries));
    expect(flows(proc.entries)).toEqual(flows(parseConntrack(captured('conntrack-L-o-extended.txt')).entries));
  });

  it('render /proc/net/nf_conntrack byte for byte', () => {
    expect(renderNfConntrack(parseNfConntrack(PROC))).toBe(PROC);
  });

  it('refuse in /proc what the kernel never prints there, naming the line', () => {
    const lines = PROC.split('\n');
    const bad: [string, number, RegExp][] = [
      [`${lines[0]}\n${lines[1].replace(/^ipv4 +2 /, '')}`, 2, /entry starting with its family/],
      [`[NEW] ${lines[0]}`, 1, /entry starting with its family/],
      [LIST, 1, /protocol name/],
      [lines[0].replace(/src=10\.0\.0\.1 /, 'src=::1 '), 1, /IPv4 addresses in an ipv4 entry/],
    ];
    for (const [text, line, why] of bad) expect(() => parseNfConntrack(text)).toThrow(new RegExp(`^/proc/net/nf_conntrack: line ${line}: .*${why.source}`));
  });

  it('are total on the captures and their mutations', () => {
    expectTotal(parseNfConntrack, [PROC], { roundTrip: (t) => parseNfConntrack(renderNfConntrack(t)), tokens: ['ipv4     2 ', 'ipv6     10 ', 'tcp      6 ', 'zone=0 ', 'use=2', '\n'] });
    expectTotal(parseConntrack, [LIST, captured('conntrack-L-o-extended.txt'), captured('conntrack-L-f-ipv6.txt')], {
      roundTrip: (t) => parseConntrack(renderConntrack(t)), numRuns: 150,
    });
  });
});
