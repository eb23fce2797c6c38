import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readClusterJson, resolveServicePorts } from '../../lib/k8s/index.ts';
import { ParseError } from '../../lib/parse/errors.ts';
import type { IpvsService, IpvsState, IpvsStats } from '../../lib/parse/ipvs-types.ts';
import {
  parseIpvsAuto, parseIpvsadm, parseProcIpVs, renderIpvsadm, renderProcIpVs, sortIpvsState,
} from '../../lib/parse/ipvsadm.ts';
import { generateIpvs } from '../../lib/proxy/ipvs.ts';
import { expectTotal } from '../helpers/fuzz.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');
const LN = fixture('ipvsadm-Ln.txt');
const STATS = fixture('ipvsadm-Ln-stats.txt');
const PROC = fixture('proc-net-ip_vs.txt');
const RATE = fixture('ipvsadm-Ln-rate.txt');
const EXACT = fixture('ipvsadm-Ln-stats-exact.txt');
const THRESHOLDS = fixture('ipvsadm-Ln-thresholds.txt');
const PCONN = fixture('ipvsadm-Ln-persistent-conn.txt');
const TUN = fixture('ipvsadm-Ln-tun-info.txt');

/** The table without live counters, for comparing with what kube-proxy programs. */
function shape(state: IpvsState) {
  return state.services.map((s) => ({
    ...s,
    destinations: s.destinations.map((d) => ({ ...d, activeConn: 0, inactConn: 0 })),
  }));
}

describe('ipvsadm -Ln', () => {
  it('parses the fixture into services and real servers', () => {
    const { services } = parseIpvsadm(LN);
    expect(services.map((s) => `${s.protocol} ${s.address}:${s.port} ${s.scheduler}`)).toEqual([
      'TCP 10.96.0.1:443 rr', 'TCP 10.96.0.10:53 rr', 'TCP 10.96.0.10:9153 rr', 'TCP 10.96.120.15:8000 rr', 'UDP 10.96.0.10:53 rr',
    ]);
    expect(services[0].destinations).toEqual([
      { address: '172.18.0.2', port: 6443, forward: 'Masq', weight: 1, activeConn: 3, inactConn: 0 },
    ]);
    expect(services[3].destinations.map((d) => d.inactConn)).toEqual([118, 121, 117]);
  });

  it('matches what the generator predicts for the same cluster (kind-httpbin, kind-worker)', () => {
    const c = readClusterJson(fixture('kind-httpbin.kubectl.json'));
    const rules = generateIpvs(resolveServicePorts(c, { nodeName: 'kind-worker' }), { nodeName: 'kind-worker' });
    expect(shape(parseIpvsadm(LN))).toEqual(shape(rules.ipvs));
  });

  it('renders byte for byte what the printf formats print', () => {
    expect(renderIpvsadm(parseIpvsadm(LN))).toBe(LN);
    expect(renderIpvsadm(parseIpvsadm(STATS), { stats: true })).toBe(STATS);
    expect(renderProcIpVs(parseProcIpVs(PROC))).toBe(PROC);
  });

  it('reads flags after the scheduler, and a single service listing without the version line', () => {
    const text = [
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
      'TCP  10.96.0.10:53 rr persistent 10800',
      'UDP  10.96.0.11:53 mh (mh-port) persistent 60 mask 255.255.255.0 ops',
      'FWM  7 wrr',
      '  -> 10.244.0.2:53                 Route   3      0          0         ',
      'TCP  [2001:db8::1]:80 rr',
      '  -> [2001:db8::10]:8080           Masq    1      0          0         ',
    ].join('\n');
    const { services } = parseIpvsadm(text);
    expect(services.map((s) => s.flags)).toEqual([
      ['persistent 10800'], ['(mh-port)', 'persistent 60', 'mask 255.255.255.0', 'ops'], [], [],
    ]);
    expect(services[2]).toMatchObject({ protocol: 'FWM', fwmark: 7, address: '', port: 0, scheduler: 'wrr' });
    expect(services[2].destinations[0]).toMatchObject({ forward: 'Route', weight: 3 });
    expect(services[3].destinations[0].address).toBe('2001:db8::10');
  });

  it('errors name the line, the text and what was expected', () => {
    const cases: [string, number, RegExp][] = [
      ['garbage\n', 1, /expected the title/],
      [LN.replace('TCP  10.96.0.1:443 rr', 'TCP  kubernetes:https rr'), 4, /numeric/],
      [LN.replace('Masq    1      3', 'Masq    x      3'), 5, /weight/],
      [LN.replace('TCP  10.96.0.1:443 rr', 'TCP  10.96.0.1:443 rr bogus'), 4, /service flags/],
      ['IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n  -> 10.0.0.1:80 Masq 1 0 0\n', 4, /service line before/],
    ];
    for (const [text, line, expected] of cases) {
      let err: unknown;
      try {
        parseIpvsadm(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ParseError);
      expect((err as ParseError).line).toBe(line);
      expect((err as ParseError).message).toMatch(expected);
    }
  });
});

describe('ipvsadm -Ln --stats', () => {
  it('reads K/M/G suffixes as print_largenum wrote them (values of 10^8 and more)', () => {
    const { services } = parseIpvsadm(STATS);
    const httpbin = services[3];
    expect(httpbin.stats).toEqual({ conns: 1200345, inPkts: 150002000, outPkts: 120001000, inBytes: 2147000000, outBytes: 123000000000 });
    expect(httpbin.destinations[0].stats).toEqual({ conns: 400115, inPkts: 50000920, outPkts: 40000611, inBytes: 715827000, outBytes: 41152000000 });
    // --stats prints neither scheduler, forwarding method nor weights.
    expect(httpbin.scheduler).toBe('');
    expect(httpbin.destinations[0]).toMatchObject({ forward: 'Unknown', weight: NaN });
  });

  it('auto-detects the format by its title', () => {
    expect(parseIpvsAuto(STATS).services[0].stats?.conns).toBe(4212);
    expect(parseIpvsAuto(LN)).toEqual(parseIpvsadm(LN));
    expect(parseIpvsAuto(PROC)).toEqual(parseProcIpVs(PROC));
  });
});

describe('the other listings: --rate, --exact, --thresholds, --persistent-conn, --tun-info', () => {
  it('read -Ln --rate: services in print_largenum columns, real servers with plain CPS, InPPS and OutPPS', () => {
    const { services } = parseIpvsadm(RATE);
    const httpbin = services[3];
    expect(httpbin).toMatchObject({ protocol: 'TCP', address: '10.96.120.15', port: 8000, scheduler: '' });
    expect(httpbin.rates).toEqual({ cps: 412, inPps: 51234, outPps: 40987, inBps: 123456000, outBps: 2147000000 });
    expect(httpbin.destinations[0]).toMatchObject({ address: '10.244.1.2', port: 8080, forward: 'Unknown' });
    expect(httpbin.destinations[0].rates).toEqual({ cps: 137, inPps: 17078, outPps: 13662, inBps: 41152263, outBps: 715827000 });
    expect(httpbin.stats).toBeUndefined();
  });

  it('read -Ln --stats --exact: whole numbers wider than the columns', () => {
    const httpbin = parseIpvsadm(EXACT).services[3];
    expect(httpbin.stats).toEqual({ conns: 1200345, inPkts: 150002760, outPkts: 120001833, inBytes: 2147483648, outBytes: 123456789012 });
    expect(httpbin.destinations[2].stats?.outBytes).toBe(41152263004);
    // --exact only widens print_largenum: the rest matches the rounded listing.
    const rounded = parseIpvsadm(STATS);
    expect(parseIpvsadm(EXACT).services.map((s) => [s.address, s.port, s.destinations.length]))
      .toEqual(rounded.services.map((s) => [s.address, s.port, s.destinations.length]));
  });

  it('read -Ln --thresholds and --persistent-conn: the scheduler line, then their own columns', () => {
    const thr = parseIpvsadm(THRESHOLDS).services[3];
    expect(thr).toMatchObject({ scheduler: 'rr', flags: [] });
    expect(thr.destinations[0]).toMatchObject({ address: '10.244.1.2', upperThreshold: 1000, lowerThreshold: 800, activeConn: 12, inactConn: 118, forward: 'Unknown' });
    const pc = parseIpvsadm(PCONN).services[3];
    expect(pc.destinations.map((d) => [d.weight, d.persistConn, d.activeConn, d.inactConn])).toEqual([[1, 7, 12, 118], [1, 6, 11, 121], [1, 9, 12, 117]]);
  });

  it('read -Ln --tun-info (ipvsadm 1.30 and later): the tunnel column, n/a for Masq', () => {
    const { services } = parseIpvsadm(TUN);
    expect(services[3].destinations[0]).toMatchObject({ forward: 'Masq', tunnel: null, weight: 1, activeConn: 12, inactConn: 118 });
    const tun = TUN.replace('Masq    n/a           1      3', 'Tunnel  gue:6080:cksum 1      3');
    expect(parseIpvsadm(tun).services[0].destinations[0]).toMatchObject({ forward: 'Tunnel', tunnel: 'gue:6080:cksum', weight: 1 });
    // Apart from the tunnel column it is the plain listing.
    const strip = (st: IpvsState) => st.services.map((s) => ({ ...s, destinations: s.destinations.map(({ tunnel: _t, ...d }) => d) }));
    expect(strip(parseIpvsadm(TUN))).toEqual(strip(parseIpvsadm(LN)));
  });

  it('render each listing byte for byte as ipvsadm prints it', () => {
    expect(renderIpvsadm(parseIpvsadm(RATE), { rate: true })).toBe(RATE);
    expect(renderIpvsadm(parseIpvsadm(EXACT), { stats: true, exact: true })).toBe(EXACT);
    expect(renderIpvsadm(parseIpvsadm(THRESHOLDS), { thresholds: true })).toBe(THRESHOLDS);
    expect(renderIpvsadm(parseIpvsadm(PCONN), { persistentConn: true })).toBe(PCONN);
    expect(renderIpvsadm(parseIpvsadm(TUN), { tunInfo: true })).toBe(TUN);
  });

  it('name the line of a malformed listing', () => {
    expect(() => parseIpvsadm(RATE.replace('   137    17078', '   x    17078'))).toThrow(/line 13: expected CPS/);
    expect(() => parseIpvsadm(THRESHOLDS.replace('1000       800        12', '1000       800'))).toThrow(/line 13: expected a destination "-> IP:port Uthreshold Lthreshold ActiveConn InActConn"/);
  });
});

describe('/proc/net/ip_vs', () => {
  it('decodes hex addresses and ports; same table as ipvsadm shows once sorted', () => {
    const proc = parseProcIpVs(PROC);
    expect(proc.services[0]).toMatchObject({ protocol: 'TCP', address: '10.96.120.15', port: 8000, scheduler: 'rr', flags: [] });
    expect(proc.services[0].destinations[0]).toEqual({ address: '10.244.1.2', port: 8080, forward: 'Masq', weight: 1, activeConn: 12, inactConn: 118 });
    expect(sortIpvsState(proc)).toEqual(parseIpvsadm(LN));
  });

  it('converts the persistence timeout from jiffies and shows a non-host netmask', () => {
    const text = [
      'IP Virtual Server version 1.2.1 (size=4096)',
      'Prot LocalAddress:Port Scheduler Flags',
      '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn',
      'TCP  0A60000A:0035 rr  persistent 2700000 FFFFFFFF',
      'UDP  0A60000A:0035 sh ops persistent 10800000 FFFFFF00',
      'FWM  0000000A rr ',
    ].join('\n');
    const { services } = parseProcIpVs(text);
    expect(services[0].flags).toEqual(['persistent 10800']);
    expect(parseProcIpVs(text, { hz: 1000 }).services[1].flags).toEqual(['ops', 'persistent 10800', 'mask 255.255.255.0']);
    expect(services[2]).toMatchObject({ protocol: 'FWM', fwmark: 10 });
    expect(() => parseProcIpVs(text.replace('0A60000A:0035', '10.96.0.10:53'))).toThrow(/line 4: expected an address as 8 hex digits/);
  });
});

// ---- property tests ----------------------------------------------------------------------

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const ipv6 = fc.ipV6().map((a) => a); // normalised by the parser; compare via the parser's own form
const u32 = fc.nat({ max: 0xffffffff });
const port = fc.nat(65535);
const scheduler = fc.constantFrom('rr', 'wrr', 'lc', 'wlc', 'sh', 'mh', 'dh');
const forward = fc.constantFrom('Masq', 'Route', 'Tunnel', 'Local') as fc.Arbitrary<'Masq'>;

const listDest = fc.record({ address: ipv4, port, forward, weight: fc.nat(65535), activeConn: u32, inactConn: u32 });
const listFlags = fc
  .tuple(fc.boolean(), fc.option(fc.nat(86400 * 7), { nil: undefined }), fc.option(ipv4, { nil: undefined }), fc.boolean())
  .map(([sched, persist, mask, ops]) => [
    ...(sched ? ['(mh-port)'] : []),
    ...(persist !== undefined ? [`persistent ${persist}`] : []),
    ...(persist !== undefined && mask ? [`mask ${mask}`] : []),
    ...(ops ? ['ops'] : []),
  ]);
const ipService: fc.Arbitrary<IpvsService> = fc.record({
  protocol: fc.constantFrom('TCP', 'UDP', 'SCTP') as fc.Arbitrary<'TCP'>,
  address: ipv4, port, scheduler, flags: listFlags,
  destinations: fc.array(listDest, { maxLength: 4 }),
});
const fwmService: fc.Arbitrary<IpvsService> = fc.record({
  protocol: fc.constant('FWM' as const), address: fc.constant(''), port: fc.constant(0), fwmark: fc.integer({ min: 1, max: 0xffffffff }),
  scheduler, flags: listFlags, destinations: fc.array(listDest, { maxLength: 3 }),
});
const listState = fc.record({ services: fc.array(fc.oneof(ipService, fwmService), { maxLength: 6 }) });

const big = fc.oneof(fc.nat(99_999_999), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const stats: fc.Arbitrary<IpvsStats> = fc.record({ conns: big, inPkts: big, outPkts: big, inBytes: big, outBytes: big });

/** print_largenum keeps three significant groups: what a reader gets back. */
function quantize(i: number): number {
  if (i < 1e8) return i;
  const unit = i < 1e9 ? 1e3 : i < 1e11 ? 1e6 : i < 1e14 ? 1e9 : 1e12;
  return Math.floor(i / unit) * unit;
}
const q = (s: IpvsStats): IpvsStats => ({
  conns: quantize(s.conns), inPkts: quantize(s.inPkts), outPkts: quantize(s.outPkts), inBytes: quantize(s.inBytes), outBytes: quantize(s.outBytes),
});

describe('parsers are total and round-trip', () => {
  it('ipvsadm parser: arbitrary and mutated input parse or throw ParseError', () => {
    expectTotal(parseIpvsadm, [LN, STATS, RATE, EXACT, THRESHOLDS, PCONN, TUN]);
    expectTotal(parseIpvsAuto, [LN, STATS, PROC, RATE], { numRuns: 100 });
  });

  it('/proc/net/ip_vs parser: arbitrary and mutated input parse or throw ParseError', () => {
    expectTotal((t) => parseProcIpVs(t), [PROC]);
  });

  it('ipvsadm -Ln: state → render → parse gives the state back (in ipvsadm order)', () => {
    fc.assert(
      fc.property(listState, (state) => {
        expect(parseIpvsadm(renderIpvsadm(state))).toEqual(sortIpvsState(state));
      }),
      { numRuns: 300 },
    );
  });

  it('ipvsadm -Ln with IPv6 addresses round-trips to the canonical address form', () => {
    fc.assert(
      fc.property(ipv6, port, (addr, p) => {
        const parsed = parseIpvsadm(renderIpvsadm({ services: [{ protocol: 'TCP', address: addr, port: p, scheduler: 'rr', flags: [], destinations: [] }] }));
        expect(parseIpvsadm(renderIpvsadm(parsed))).toEqual(parsed);
      }),
      { numRuns: 100 },
    );
  });

  it('ipvsadm -Ln --stats: round-trips up to print_largenum rounding', () => {
    const statsState = fc.record({
      services: fc.array(
        fc.record({
          protocol: fc.constantFrom('TCP', 'UDP', 'SCTP') as fc.Arbitrary<'TCP'>, address: ipv4, port, stats,
          destinations: fc.array(fc.record({ address: ipv4, port, stats }), { maxLength: 3 }),
        }),
        { maxLength: 5 },
      ),
    });
    fc.assert(
      fc.property(statsState, (s) => {
        const state: IpvsState = {
          services: s.services.map((x) => ({
            ...x, scheduler: '', flags: [],
            destinations: x.destinations.map((d) => ({ ...d, forward: 'Unknown' as const, weight: NaN, activeConn: NaN, inactConn: NaN })),
          })),
        };
        const expected = sortIpvsState(state);
        for (const svc of expected.services) {
          svc.stats = q(svc.stats!);
          for (const d of svc.destinations) d.stats = q(d.stats!);
        }
        expect(parseIpvsadm(renderIpvsadm(state, { stats: true }))).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('/proc/net/ip_vs: state → render → parse gives the state back (kernel order kept)', () => {
    const procFlags = fc
      .tuple(fc.boolean(), fc.option(fc.nat(86400 * 7), { nil: undefined }), fc.option(ipv4, { nil: undefined }))
      .map(([ops, persist, mask]) => [
        ...(ops ? ['ops'] : []),
        ...(persist !== undefined ? [`persistent ${persist}`] : []),
        ...(persist !== undefined && mask && mask !== '255.255.255.255' ? [`mask ${mask}`] : []),
      ]);
    const procDest = fc.record({ address: ipv4, port, forward, weight: fc.nat(65535), activeConn: fc.nat(2 ** 31 - 1), inactConn: fc.nat(2 ** 31 - 1) });
    const svc = fc.oneof(
      fc.record({ protocol: fc.constantFrom('TCP', 'UDP', 'SCTP') as fc.Arbitrary<'TCP'>, address: ipv4, port, scheduler, flags: procFlags, destinations: fc.array(procDest, { maxLength: 4 }) }),
      fc.record({
        protocol: fc.constant('FWM' as const), address: fc.constant(''), port: fc.constant(0), fwmark: fc.integer({ min: 1, max: 0xffffffff }),
        scheduler, flags: procFlags, destinations: fc.array(procDest, { maxLength: 3 }),
      }),
    );
    fc.assert(
      fc.property(fc.record({ services: fc.array(svc, { maxLength: 6 }) }), (state) => {
        expect(parseProcIpVs(renderProcIpVs(state))).toEqual(state);
      }),
      { numRuns: 300 },
    );
  });
});
