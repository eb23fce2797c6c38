import ipaddr from 'ipaddr.js';
import { ParseError, rejectBinary, splitLines } from './errors.ts';
import type { IpvsDestination, IpvsForward, IpvsRates, IpvsService, IpvsState, IpvsStats } from './ipvs-types.ts';

/*
 * Formats, from ipvsadm.c (print_title, print_service_entry, print_largenum) and the kernel's
 * ip_vs_ctl.c (ip_vs_info_seq_show):
 *
 *   ipvsadm -Ln          service  "%s  %s" proto, addr:port, then " %s" scheduler and flags
 *                        dest     "  -> %-28s %-7s %-6d %-10u %-10u"
 *   ipvsadm -Ln --stats  service  "%-33s" then five print_largenum columns
 *                        dest     "  -> %-28s" then five print_largenum columns
 *   ipvsadm -Ln --rate   service  as --stats
 *                        dest     "  -> %-28s %8llu %8llu %8llu" then two print_largenum columns
 *   --thresholds         service  as -Ln; dest "  -> %-28s %-10u %-10u %-10u %-10u"
 *   --persistent-conn    service  as -Ln; dest "  -> %-28s %-9u %-11u %-10u %-10u"
 *   --tun-info (1.30+)   service  as -Ln; dest "  -> %-28s %-7s %-13s %-6d %-10u %-10u"
 *   --exact              print_largenum prints every digit, "%*llu" at least 9 wide
 *   /proc/net/ip_vs      service  "%s  %08X:%04X %s %s " [+ "persistent %d %08X"]
 *                        dest     "  -> %08X:%04X      %-7s %-6d %-10d %-10d"
 *
 * Every field is separated by at least one space, so lines are split on blanks (linear) and
 * the fields checked one by one; no regex runs over a whole line.
 */

const FORMAT_LIST = 'ipvsadm -Ln';
const FORMAT_PROC = '/proc/net/ip_vs';

const TITLE_LIST = ['Prot', 'LocalAddress:Port', 'Scheduler', 'Flags'];
const TITLE_LIST_2 = ['->', 'RemoteAddress:Port', 'Forward', 'Weight', 'ActiveConn', 'InActConn'];
const TITLE_STATS = ['Prot', 'LocalAddress:Port', 'Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'];
const TITLE_STATS_2 = ['->', 'RemoteAddress:Port'];

/** What print_title writes for each listing; the first match wins, as in ipvsadm. */
type Listing = 'list' | 'tun-info' | 'stats' | 'rate' | 'thresholds' | 'persistent-conn';
const TITLES: readonly { listing: Listing; first: readonly string[]; second: readonly string[]; dest: string }[] = [
  { listing: 'list', first: TITLE_LIST, second: TITLE_LIST_2, dest: 'a destination "-> IP:port Forward Weight ActiveConn InActConn"' },
  {
    listing: 'tun-info', first: TITLE_LIST, second: ['->', 'RemoteAddress:Port', 'Forward', 'TunnelInfo', 'Weight', 'ActiveConn', 'InActConn'],
    dest: 'a destination "-> IP:port Forward TunnelInfo Weight ActiveConn InActConn"',
  },
  { listing: 'stats', first: TITLE_STATS, second: TITLE_STATS_2, dest: 'a destination "-> IP:port Conns InPkts OutPkts InBytes OutBytes"' },
  {
    listing: 'rate', first: ['Prot', 'LocalAddress:Port', 'CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'], second: TITLE_STATS_2,
    dest: 'a destination "-> IP:port CPS InPPS OutPPS InBPS OutBPS"',
  },
  {
    listing: 'thresholds', first: ['Prot', 'LocalAddress:Port', 'Uthreshold', 'Lthreshold', 'ActiveConn', 'InActConn'], second: TITLE_STATS_2,
    dest: 'a destination "-> IP:port Uthreshold Lthreshold ActiveConn InActConn"',
  },
  {
    listing: 'persistent-conn', first: ['Prot', 'LocalAddress:Port', 'Weight', 'PersistConn', 'ActiveConn', 'InActConn'], second: TITLE_STATS_2,
    dest: 'a destination "-> IP:port Weight PersistConn ActiveConn InActConn"',
  },
];

const PROTOCOLS = new Set(['TCP', 'UDP', 'SCTP']);
const FORWARDS = new Set<IpvsForward>(['Masq', 'Route', 'Tunnel', 'Local']);

/** Split on runs of spaces and tabs. */
export function fields(line: string): string[] {
  const out: string[] = [];
  let start = -1;
  for (let i = 0; i <= line.length; i++) {
    const c = i < line.length ? line.charCodeAt(i) : 32;
    if (c === 32 || c === 9) {
      if (start >= 0) out.push(line.slice(start, i));
      start = -1;
    } else if (start < 0) start = i;
  }
  return out;
}

function sameFields(a: string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function isHex(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function isIpv4(s: string): boolean {
  const parts = s.split('.');
  return parts.length === 4 && parts.every((p) => isDigits(p) && p.length <= 3 && Number(p) <= 255);
}

class LineReader {
  constructor(
    readonly format: string,
    readonly lineNo: number,
    readonly text: string,
  ) {}

  fail(expected: string): never {
    throw new ParseError(this.format, this.lineNo, this.text, expected);
  }

  uint(tok: string | undefined, what: string, max = Number.MAX_SAFE_INTEGER): number {
    if (tok === undefined || !isDigits(tok) || tok.length > 16 || Number(tok) > max) this.fail(`${what} (a whole number)`);
    return Number(tok);
  }

  int(tok: string | undefined, what: string): number {
    if (tok !== undefined && tok.startsWith('-')) return -this.uint(tok.slice(1), what);
    return this.uint(tok, what);
  }

  /** `10.96.0.1:443` or `[2001:db8::1]:443`, numeric only (ipvsadm -n). */
  addrPort(tok: string | undefined, what: string): { address: string; port: number } {
    const expected = `${what} as IP:port (numeric, as ipvsadm -n prints it)`;
    if (tok === undefined) this.fail(expected);
    if (tok.startsWith('[')) {
      const close = tok.indexOf(']');
      if (close < 0 || tok[close + 1] !== ':') this.fail(expected);
      const addr = tok.slice(1, close);
      if (!ipaddr.IPv6.isValid(addr)) this.fail(expected);
      return { address: ipaddr.IPv6.parse(addr).toString(), port: this.uint(tok.slice(close + 2), `${what} port`, 65535) };
    }
    const colon = tok.lastIndexOf(':');
    if (colon < 0 || !isIpv4(tok.slice(0, colon))) this.fail(expected);
    return { address: tok.slice(0, colon), port: this.uint(tok.slice(colon + 1), `${what} port`, 65535) };
  }

  /** ipvsadm's print_largenum: plain below 10^8, else K/M/G/T (thousands, millions, …). */
  largenum(tok: string | undefined, what: string): number {
    if (tok === undefined) this.fail(`${what} counter`);
    const last = tok[tok.length - 1];
    const mult = last === 'K' ? 1e3 : last === 'M' ? 1e6 : last === 'G' ? 1e9 : last === 'T' ? 1e12 : 1;
    const digits = mult === 1 ? tok : tok.slice(0, -1);
    return this.uint(digits, `${what} counter (digits with an optional K, M, G or T suffix)`) * mult;
  }

  scheduler(tok: string | undefined): string {
    if (tok === undefined || tok.length > 16 || !/^[a-z][a-z0-9_-]*$/.test(tok)) this.fail('a scheduler name such as rr');
    return tok;
  }
}

/**
 * Parse `ipvsadm -Ln` with any of `--stats`, `--rate`, `--thresholds`, `--persistent-conn`,
 * `--tun-info` and `--exact` (chosen by the title lines). The leading `IP Virtual Server
 * version …` line is optional, as for `ipvsadm -Ln -t VIP:port`.
 */
export function parseIpvsadm(text: string): IpvsState {
  rejectBinary(FORMAT_LIST, text);
  const lines = splitLines(text);
  let i = 0;
  const header = (n: number) => new LineReader(FORMAT_LIST, n + 1, lines[n] ?? '');
  if (i < lines.length && lines[i].startsWith('IP Virtual Server version ')) {
    checkVersionLine(header(i));
    i++;
  }
  const titleExpected = `the title "${TITLE_LIST.join(' ')}" (ipvsadm -Ln), or "Prot LocalAddress:Port" and the columns of --stats, --rate, --thresholds or --persistent-conn`;
  if (i >= lines.length) header(i).fail(titleExpected);
  const first = fields(lines[i]);
  const candidates = TITLES.filter((t) => sameFields(first, t.first));
  if (candidates.length === 0) header(i).fail(titleExpected);
  i++;
  const second = i < lines.length ? fields(lines[i]) : [];
  const title = candidates.find((t) => sameFields(second, t.second))
    ?? header(i).fail(`the second title line ${candidates.map((t) => `"  ${t.second.join(' ')}"`).join(' or ')}`);
  i++;

  const stats = title.listing === 'stats' || title.listing === 'rate';
  const services: IpvsService[] = [];
  let current: IpvsService | null = null;
  for (; i < lines.length; i++) {
    const r: LineReader = new LineReader(FORMAT_LIST, i + 1, lines[i]);
    const f = fields(lines[i]);
    if (f.length === 0) continue;
    if (f[0] === '->') {
      if (!current) r.fail('a service line before its destinations');
      current.destinations.push(destination(r, f, title.listing, title.dest));
    } else {
      current = stats ? statsService(r, f, title.listing === 'rate') : listService(r, f);
      services.push(current);
    }
  }
  return { services };
}

/** A real server's line in the given listing. */
function destination(r: LineReader, f: string[], listing: Listing, expected: string): IpvsDestination {
  if (listing === 'list') return listDestination(r, f);
  if (listing === 'stats') return statsDestination(r, f);
  const columns = listing === 'rate' ? 7 : listing === 'tun-info' ? 7 : 6;
  if (f.length !== columns) r.fail(expected);
  const { address, port } = r.addrPort(f[1], 'real server');
  const unknown = { address, port, forward: 'Unknown' as const, weight: NaN, activeConn: NaN, inactConn: NaN };
  switch (listing) {
    case 'rate':
      // CPS, InPPS and OutPPS are plain %8llu; only the byte rates go through print_largenum.
      return {
        ...unknown,
        rates: {
          cps: r.uint(f[2], 'CPS'), inPps: r.uint(f[3], 'InPPS'), outPps: r.uint(f[4], 'OutPPS'),
          inBps: r.largenum(f[5], 'InBPS'), outBps: r.largenum(f[6], 'OutBPS'),
        },
      };
    case 'thresholds':
      return {
        ...unknown, upperThreshold: r.uint(f[2], 'Uthreshold'), lowerThreshold: r.uint(f[3], 'Lthreshold'),
        activeConn: r.uint(f[4], 'ActiveConn'), inactConn: r.uint(f[5], 'InActConn'),
      };
    case 'persistent-conn':
      return {
        ...unknown, weight: r.int(f[2], 'weight'), persistConn: r.uint(f[3], 'PersistConn'),
        activeConn: r.uint(f[4], 'ActiveConn'), inactConn: r.uint(f[5], 'InActConn'),
      };
    case 'tun-info': {
      const forward = f[2] as IpvsForward;
      if (!FORWARDS.has(forward)) r.fail('a forwarding method: Masq, Route, Tunnel or Local');
      const tunnel = f[3] === 'n/a' ? null : f[3];
      if (tunnel !== null && !/^(ipip|gue:\d{1,5}:[a-z-]+|gre:[a-z-]+)$/.test(tunnel)) r.fail('tunnel information: ipip, gue:PORT:FLAGS, gre:FLAGS or n/a');
      return {
        address, port, forward, tunnel,
        weight: r.int(f[4], 'weight'), activeConn: r.uint(f[5], 'ActiveConn'), inactConn: r.uint(f[6], 'InActConn'),
      };
    }
  }
}

function checkVersionLine(r: LineReader): void {
  // "IP Virtual Server version %d.%d.%d (size=%d)"
  const f = fields(r.text);
  const ok = f.length === 6 && /^\d+\.\d+\.\d+$/.test(f[4]) && f[5].startsWith('(size=') && f[5].endsWith(')') && isDigits(f[5].slice(6, -1));
  if (!ok) r.fail('"IP Virtual Server version X.Y.Z (size=N)"');
}

/** The protocol and address part shared by both ipvsadm formats; returns the next field index. */
function serviceHead(r: LineReader, f: string[]): { svc: IpvsService; next: number } {
  const proto = f[0];
  if (proto === 'FWM') {
    const fwmark = r.uint(f[1], 'firewall mark', 0xffffffff);
    const next = f[2] === 'IPv6' ? 3 : 2;
    return { svc: { protocol: 'FWM', address: '', port: 0, scheduler: '', flags: [], destinations: [], fwmark }, next };
  }
  if (!PROTOCOLS.has(proto)) r.fail('a service line starting with TCP, UDP, SCTP or FWM, or a destination line starting with ->');
  const { address, port } = r.addrPort(f[1], 'virtual service');
  return { svc: { protocol: proto as IpvsService['protocol'], address, port, scheduler: '', flags: [], destinations: [] }, next: 2 };
}

function listService(r: LineReader, f: string[]): IpvsService {
  const { svc, next } = serviceHead(r, f);
  svc.scheduler = r.scheduler(f[next]);
  svc.flags = serviceFlags(r, f, next + 1);
  return svc;
}

/** Flags after the scheduler: `(sched-flags)`, `persistent N`, `mask M`, `pe NAME`, `ops`. */
function serviceFlags(r: LineReader, f: string[], from: number): string[] {
  const flags: string[] = [];
  for (let k = from; k < f.length; k++) {
    const t = f[k];
    if (t === 'persistent') {
      flags.push(`persistent ${r.uint(f[++k], 'persistence timeout in seconds')}`);
    } else if (t === 'mask') {
      const m = f[++k];
      if (m === undefined || !(isIpv4(m) || isDigits(m))) r.fail('a netmask after "mask"');
      flags.push(`mask ${m}`);
    } else if (t === 'pe') {
      const pe = f[++k];
      if (pe === undefined || !/^[a-z]+$/.test(pe)) r.fail('a persistence engine name after "pe"');
      flags.push(`pe ${pe}`);
    } else if (t === 'ops') {
      flags.push('ops');
    } else if (t.length > 2 && t.startsWith('(') && t.endsWith(')') && /^[a-z0-9,-]+$/.test(t.slice(1, -1))) {
      flags.push(t);
    } else {
      r.fail('service flags: persistent N, mask M, pe NAME, ops or (scheduler flags)');
    }
  }
  return flags;
}

function listDestination(r: LineReader, f: string[]): IpvsDestination {
  if (f.length !== 6) r.fail('a destination "-> IP:port Forward Weight ActiveConn InActConn"');
  const { address, port } = r.addrPort(f[1], 'real server');
  const forward = f[2] as IpvsForward;
  if (!FORWARDS.has(forward)) r.fail('a forwarding method: Masq, Route, Tunnel or Local');
  return {
    address,
    port,
    forward,
    weight: r.int(f[3], 'weight'),
    activeConn: r.uint(f[4], 'ActiveConn'),
    inactConn: r.uint(f[5], 'InActConn'),
  };
}

function readStats(r: LineReader, f: string[], from: number): IpvsStats {
  if (f.length !== from + 5) r.fail('five counters: Conns InPkts OutPkts InBytes OutBytes');
  return {
    conns: r.largenum(f[from], 'Conns'),
    inPkts: r.largenum(f[from + 1], 'InPkts'),
    outPkts: r.largenum(f[from + 2], 'OutPkts'),
    inBytes: r.largenum(f[from + 3], 'InBytes'),
    outBytes: r.largenum(f[from + 4], 'OutBytes'),
  };
}

function statsService(r: LineReader, f: string[], rate: boolean): IpvsService {
  const { svc, next } = serviceHead(r, f);
  if (!rate) {
    svc.stats = readStats(r, f, next);
    return svc;
  }
  if (f.length !== next + 5) r.fail('five rates: CPS InPPS OutPPS InBPS OutBPS');
  svc.rates = {
    cps: r.largenum(f[next], 'CPS'), inPps: r.largenum(f[next + 1], 'InPPS'), outPps: r.largenum(f[next + 2], 'OutPPS'),
    inBps: r.largenum(f[next + 3], 'InBPS'), outBps: r.largenum(f[next + 4], 'OutBPS'),
  };
  return svc;
}

function statsDestination(r: LineReader, f: string[]): IpvsDestination {
  const { address, port } = r.addrPort(f[1], 'real server');
  // --stats prints neither forwarding method, weight nor connection counts.
  return { address, port, forward: 'Unknown', weight: NaN, activeConn: NaN, inactConn: NaN, stats: readStats(r, f, 2) };
}

export interface ProcIpVsOptions {
  /**
   * The kernel's CONFIG_HZ: /proc/net/ip_vs prints the persistence timeout in jiffies. The
   * default 250 is Debian's and Ubuntu's; RHEL-family kernels use 1000.
   */
  hz?: number;
}

/** Parse /proc/net/ip_vs (hex addresses and ports, as ip_vs_info_seq_show prints them). */
export function parseProcIpVs(text: string, opts: ProcIpVsOptions = {}): IpvsState {
  const hz = opts.hz ?? 250;
  rejectBinary(FORMAT_PROC, text);
  const lines = splitLines(text);
  const at = (n: number) => new LineReader(FORMAT_PROC, n + 1, lines[n] ?? '');
  if (lines.length === 0 || !lines[0].startsWith('IP Virtual Server version ')) at(0).fail('"IP Virtual Server version X.Y.Z (size=N)"');
  checkVersionLine(at(0));
  if (lines.length < 2 || !sameFields(fields(lines[1]), TITLE_LIST)) at(1).fail(`the title "${TITLE_LIST.join(' ')}"`);
  if (lines.length < 3 || !sameFields(fields(lines[2]), TITLE_LIST_2)) at(2).fail(`the title "  ${TITLE_LIST_2.join(' ')}"`);

  const services: IpvsService[] = [];
  let current: IpvsService | null = null;
  for (let i = 3; i < lines.length; i++) {
    const r: LineReader = at(i);
    const f = fields(lines[i]);
    if (f.length === 0) continue;
    if (f[0] === '->') {
      if (!current) r.fail('a service line before its destinations');
      if (f.length !== 6) r.fail('a destination "-> HEXADDR:HEXPORT Forward Weight ActiveConn InActConn"');
      const { address, port } = hexAddrPort(r, f[1]);
      const forward = f[2] as IpvsForward;
      if (!FORWARDS.has(forward)) r.fail('a forwarding method: Masq, Route, Tunnel or Local');
      current.destinations.push({
        address, port, forward,
        weight: r.int(f[3], 'weight'), activeConn: r.int(f[4], 'ActiveConn'), inactConn: r.int(f[5], 'InActConn'),
      });
      continue;
    }
    let svc: IpvsService;
    if (f[0] === 'FWM') {
      if (f[1] === undefined || f[1].length !== 8 || !isHex(f[1])) r.fail('a firewall mark as 8 hex digits');
      svc = { protocol: 'FWM', address: '', port: 0, scheduler: '', flags: [], destinations: [], fwmark: parseInt(f[1], 16) };
    } else {
      if (!PROTOCOLS.has(f[0])) r.fail('a service line starting with TCP, UDP, SCTP or FWM, or a destination line starting with ->');
      const { address, port } = hexAddrPort(r, f[1]);
      svc = { protocol: f[0] as IpvsService['protocol'], address, port, scheduler: '', flags: [], destinations: [] };
    }
    svc.scheduler = r.scheduler(f[2]);
    let k = 3;
    if (f[k] === 'ops') {
      svc.flags.push('ops');
      k++;
    }
    if (f[k] === 'persistent') {
      const jiffies = r.uint(f[k + 1], 'persistence timeout in jiffies');
      const mask = f[k + 2];
      if (mask === undefined || mask.length !== 8 || !isHex(mask)) r.fail('a netmask as 8 hex digits after the timeout');
      svc.flags.push(`persistent ${jiffies / hz}`);
      if (mask.toUpperCase() !== 'FFFFFFFF') svc.flags.push(`mask ${hexToIpv4(mask)}`);
      k += 3;
    }
    if (k !== f.length) r.fail('nothing after the scheduler but "ops" and "persistent TIMEOUT NETMASK"');
    services.push(svc);
    current = svc;
  }
  return { services };
}

function hexToIpv4(h: string): string {
  const n = parseInt(h, 16);
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function hexAddrPort(r: LineReader, tok: string | undefined): { address: string; port: number } {
  const expected = 'an address as 8 hex digits, a colon and a port as 4 hex digits (0A60000A:0035)';
  if (tok === undefined) r.fail(expected);
  if (tok.startsWith('[')) {
    // IPv6 services print %pI6 (eight groups of four hex digits) in brackets.
    const close = tok.indexOf(']');
    const addr = tok.slice(1, close);
    const port = tok.slice(close + 2);
    if (close < 0 || tok[close + 1] !== ':' || port.length !== 4 || !isHex(port) || !ipaddr.IPv6.isValid(addr)) r.fail(expected);
    return { address: ipaddr.IPv6.parse(addr).toString(), port: parseInt(port, 16) };
  }
  const colon = tok.indexOf(':');
  const addr = tok.slice(0, colon);
  const port = tok.slice(colon + 1);
  if (colon !== 8 || !isHex(addr) || port.length !== 4 || !isHex(port)) r.fail(expected);
  return { address: hexToIpv4(addr), port: parseInt(port, 16) };
}

/** Either ipvsadm format or /proc/net/ip_vs, told apart by the hex address of the first service. */
export function parseIpvsAuto(text: string): IpvsState {
  const lines = splitLines(text);
  const title = lines.findIndex((l) => l.startsWith('Prot '));
  if (title >= 0 && sameFields(fields(lines[title] ?? ''), TITLE_LIST) && sameFields(fields(lines[title + 1] ?? ''), TITLE_LIST_2)) {
    // The kernel's second title line is single-spaced; ipvsadm pads RemoteAddress:Port.
    if (lines[title + 1].startsWith('  -> RemoteAddress:Port Forward')) return parseProcIpVs(text);
  }
  return parseIpvsadm(text);
}

// ---------------------------------------------------------------------------------------------
// Rendering: the same printf formats, for predicted state and round-trip tests.

const PROTO_NUMBER: Record<IpvsService['protocol'], number> = { TCP: 6, UDP: 17, SCTP: 132, FWM: 0 };

function addrKey(address: string): bigint {
  if (address === '') return 0n;
  if (isIpv4(address)) return BigInt(address.split('.').reduce((a, b) => a * 256 + Number(b), 0));
  return ipaddr.IPv6.parse(address).toByteArray().reduce((a, b) => a * 256n + BigInt(b), 0n) + (1n << 128n);
}

function cmp(a: bigint | number, b: bigint | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** ipvsadm's default order (ipvs_cmp_services, ipvs_cmp_dests): fwmark, protocol, address, port. */
export function sortIpvsState(state: IpvsState): IpvsState {
  const services = state.services
    .map((s) => ({
      ...s,
      destinations: [...s.destinations].sort((a, b) => cmp(addrKey(a.address), addrKey(b.address)) || a.port - b.port),
    }))
    .sort(
      (a, b) =>
        (a.fwmark ?? 0) - (b.fwmark ?? 0) ||
        PROTO_NUMBER[a.protocol] - PROTO_NUMBER[b.protocol] ||
        cmp(addrKey(a.address), addrKey(b.address)) ||
        a.port - b.port,
    );
  return { services };
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function svcName(s: IpvsService): string {
  if (s.protocol === 'FWM') return `FWM  ${s.fwmark ?? 0}`;
  return `${s.protocol}  ${hostPort(s.address, s.port)}`;
}

function largenum(i: number, exact = false): string {
  if (exact) return ` ${String(i).padStart(8)}`;
  if (i < 1e8) return String(i).padStart(9);
  if (i < 1e9) return `${String(Math.floor(i / 1e3)).padStart(8)}K`;
  if (i < 1e11) return `${String(Math.floor(i / 1e6)).padStart(8)}M`;
  if (i < 1e14) return `${String(Math.floor(i / 1e9)).padStart(8)}G`;
  return `${String(Math.floor(i / 1e12)).padStart(8)}T`;
}

const ZERO_STATS: IpvsStats = { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };

const ZERO_RATES: IpvsRates = { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };

function statsColumns(s: IpvsStats | undefined, exact: boolean): string {
  const t = s ?? ZERO_STATS;
  return [t.conns, t.inPkts, t.outPkts, t.inBytes, t.outBytes].map((n) => largenum(n, exact)).join('');
}

export interface RenderIpvsadmOptions {
  /** The listing, as the ipvsadm option of that name; the first one set wins, as in ipvsadm. */
  stats?: boolean;
  rate?: boolean;
  thresholds?: boolean;
  persistentConn?: boolean;
  tunInfo?: boolean;
  /** `--exact`: every digit instead of K/M/G/T. */
  exact?: boolean;
  version?: string;
  size?: number;
}

/** What `ipvsadm -Ln [--stats|--rate|--thresholds|--persistent-conn|--tun-info] [--exact]` prints (sorted as ipvsadm sorts). */
export function renderIpvsadm(state: IpvsState, opts: RenderIpvsadmOptions = {}): string {
  const out = [`IP Virtual Server version ${opts.version ?? '1.2.1'} (size=${opts.size ?? 4096})`];
  const listing: Listing = opts.stats ? 'stats' : opts.rate ? 'rate' : opts.thresholds ? 'thresholds'
    : opts.persistentConn ? 'persistent-conn' : opts.tunInfo ? 'tun-info' : 'list';
  const exact = opts.exact ?? false;
  const title = TITLES.find((t) => t.listing === listing)!;
  const cols = title.first.slice(2);
  if (listing === 'stats' || listing === 'rate') out.push(`${'Prot LocalAddress:Port'.padEnd(33)} ${cols.map((h) => h.padStart(8)).join(' ')}`);
  else if (listing === 'thresholds') out.push(`${'Prot LocalAddress:Port'.padEnd(33)} ${cols.map((h) => h.padEnd(10)).join(' ')}`);
  else if (listing === 'persistent-conn') out.push(`${'Prot LocalAddress:Port'.padEnd(33)} ${'Weight'.padEnd(9)} ${'PersistConn'.padEnd(11)} ${'ActiveConn'.padEnd(10)} ${'InActConn'.padEnd(10)}`);
  else out.push('Prot LocalAddress:Port Scheduler Flags');
  if (listing === 'list') out.push('  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn');
  else if (listing === 'tun-info') out.push('  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn');
  else out.push('  -> RemoteAddress:Port');
  const pad = (n: number, w: number) => String(n).padEnd(w);
  for (const s of sortIpvsState(state).services) {
    if (listing === 'stats') out.push(svcName(s).padEnd(33) + statsColumns(s.stats, exact));
    else if (listing === 'rate') {
      const t = s.rates ?? ZERO_RATES;
      out.push(svcName(s).padEnd(33) + [t.cps, t.inPps, t.outPps, t.inBps, t.outBps].map((n) => largenum(n, exact)).join(''));
    } else out.push([`${svcName(s)} ${s.scheduler}`, ...s.flags].join(' '));
    for (const d of s.destinations) {
      const dname = hostPort(d.address, d.port).padEnd(28);
      if (listing === 'stats') out.push(`  -> ${dname}${statsColumns(d.stats, exact)}`);
      else if (listing === 'rate') {
        const t = d.rates ?? ZERO_RATES;
        out.push(`  -> ${dname} ${String(t.cps).padStart(8)} ${String(t.inPps).padStart(8)} ${String(t.outPps).padStart(8)}${largenum(t.inBps, exact)}${largenum(t.outBps, exact)}`);
      } else if (listing === 'thresholds') {
        out.push(`  -> ${dname} ${pad(d.upperThreshold ?? 0, 10)} ${pad(d.lowerThreshold ?? 0, 10)} ${pad(d.activeConn, 10)} ${pad(d.inactConn, 10)}`);
      } else if (listing === 'persistent-conn') {
        out.push(`  -> ${dname} ${pad(d.weight, 9)} ${pad(d.persistConn ?? 0, 11)} ${pad(d.activeConn, 10)} ${pad(d.inactConn, 10)}`);
      } else if (listing === 'tun-info') {
        out.push(`  -> ${dname} ${d.forward.padEnd(7)} ${(d.tunnel ?? 'n/a').padEnd(13)} ${pad(d.weight, 6)} ${pad(d.activeConn, 10)} ${pad(d.inactConn, 10)}`);
      } else {
        out.push(`  -> ${dname} ${d.forward.padEnd(7)} ${pad(d.weight, 6)} ${pad(d.activeConn, 10)} ${pad(d.inactConn, 10)}`);
      }
    }
  }
  return `${out.join('\n')}\n`;
}

function hex(n: number, width: number): string {
  return n.toString(16).toUpperCase().padStart(width, '0');
}

function ipv4Hex(address: string): string {
  return address.split('.').map((b) => hex(Number(b), 2)).join('');
}

/** What /proc/net/ip_vs shows for this IPv4 state (services in the given order). */
export function renderProcIpVs(state: IpvsState, opts: { hz?: number; size?: number } = {}): string {
  const hz = opts.hz ?? 250;
  const out = [
    `IP Virtual Server version 1.2.1 (size=${opts.size ?? 4096})`,
    'Prot LocalAddress:Port Scheduler Flags',
    '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn',
  ];
  for (const s of state.services) {
    const ops = s.flags.includes('ops') ? 'ops ' : '';
    let line = s.protocol === 'FWM'
      ? `FWM  ${hex(s.fwmark ?? 0, 8)} ${s.scheduler} ${ops}`
      : `${s.protocol}  ${ipv4Hex(s.address)}:${hex(s.port, 4)} ${s.scheduler} ${ops} `;
    const persistent = s.flags.find((f) => f.startsWith('persistent '));
    if (persistent) {
      const mask = s.flags.find((f) => f.startsWith('mask '));
      line += `persistent ${Number(persistent.slice(11)) * hz} ${mask ? ipv4Hex(mask.slice(5)) : 'FFFFFFFF'}`;
    }
    out.push(line);
    for (const d of s.destinations) {
      out.push(`  -> ${ipv4Hex(d.address)}:${hex(d.port, 4)}      ${d.forward.padEnd(7)} ${String(d.weight).padEnd(6)} ${String(d.activeConn).padEnd(10)} ${String(d.inactConn).padEnd(10)}`);
    }
  }
  return `${out.join('\n')}\n`;
}
