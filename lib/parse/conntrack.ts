/**
 * Parser for `conntrack -L` output (also `-o extended`, `-o id`, accounting counters, and the
 * `[NEW]`/`[DESTROY]` prefixes of `conntrack -E`), and for `/proc/net/nf_conntrack`, which the
 * kernel prints in the `-o extended` layout with IPv6 addresses written out in full. One entry
 * per line:
 *
 *   [ipv4 2] tcp 6 431999 ESTABLISHED src=… dst=… sport=… dport=… [packets=… bytes=…] [UNREPLIED]
 *            src=… dst=… sport=… dport=… [packets=… bytes=…] [ASSURED] mark=0 [zone=…] use=1 [id=…]
 *
 * The first `src=` opens the original tuple, the second the reply tuple. A tuple ends at a key
 * that is not a tuple key, or at a key it already has (the entry's `id=` after an ICMP reply
 * tuple's own `id=`). The `conntrack v1.4.7 (conntrack-tools): N flow entries have been shown.`
 * summary (stderr, often merged in) is tolerated and its count kept. Protocols, addresses, ports,
 * states and flags are checked against what conntrack prints.
 * Pure and linear-time.
 */
import ipaddr from 'ipaddr.js';
import { isIp } from './addr.ts';
import { ParseError, rejectBinary, splitLines } from './errors.ts';
import type { Counters } from './iptables-types.ts';

const FORMAT = 'conntrack';
const FORMAT_PROC = '/proc/net/nf_conntrack';

export interface ConntrackTuple {
  src: string;
  dst: string;
  /** TCP/UDP/SCTP/DCCP ports; null for protocols without ports. */
  sport: number | null;
  dport: number | null;
  /** ICMP type, code and id; null otherwise. */
  icmp: { type: number; code: number; id: number } | null;
  /** Per-direction accounting (`packets= bytes=`), present when nf_conntrack_acct is on. */
  counters: Counters | null;
  /** Any other tuple key (e.g. GRE `srckey=`), as printed. */
  other: Record<string, string>;
}

export interface ConntrackEntry {
  /** 1-based line number in the parsed text. */
  line: number;
  /** `NEW`, `UPDATE`, `DESTROY` for `conntrack -E` lines; null for listings. */
  event: string | null;
  /** `ipv4`/`ipv6` with `-o extended`, else null. */
  family: string | null;
  /** Layer-4 protocol name (`tcp`, `udp`, `icmp`, …) and number. */
  protocol: string;
  protocolNumber: number;
  /** Seconds until the entry expires; null when not printed (destroy events). */
  timeout: number | null;
  /** TCP/SCTP/DCCP state such as `ESTABLISHED`; null for udp and icmp. */
  state: string | null;
  original: ConntrackTuple;
  reply: ConntrackTuple;
  /** Bracketed flags in order: `UNREPLIED`, `ASSURED`, `OFFLOAD` … */
  flags: string[];
  mark: number | null;
  zone: number | null;
  use: number | null;
  /** The conntrack id (`-o id`). */
  id: number | null;
  /** Other entry-level keys as printed: `secctx`, `labels`, `helper`, `delta-time`, `[start=…]` … */
  attributes: Record<string, string>;
}

export interface ConntrackTable {
  entries: ConntrackEntry[];
  /** N from "N flow entries have been shown.", when that summary is in the text. */
  shown: number | null;
  /** Other `conntrack vX (conntrack-tools): …` lines, such as error reports. */
  messages: string[];
}

const TUPLE_KEYS = new Set(['src', 'dst', 'sport', 'dport', 'type', 'code', 'id', 'packets', 'bytes', 'srckey', 'dstkey']);
/** libnetfilter_conntrack's names for layer-4 protocols; anything else prints as `unknown`. */
const PROTOCOLS: Record<string, number> = { tcp: 6, udp: 17, udplite: 136, icmp: 1, icmpv6: 58, sctp: 132, gre: 47, dccp: 33 };
const FAMILIES: Record<string, number> = { ipv4: 2, ipv6: 10 };
const EVENTS = new Set(['NEW', 'UPDATE', 'DESTROY']);
/** Largest value per numeric key (ports 16 bits, marks 32 bits). */
const MAX: Record<string, number> = { sport: 65535, dport: 65535, type: 255, code: 255, mark: 0xffffffff, zone: 65535 };

/** `ESTABLISHED`, `SYN_SENT`, `ASSURED`, `HW_OFFLOAD`: upper-case words. */
function isUpperWord(s: string): boolean {
  if (s.length === 0 || s.length > 32) return false;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (!((c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95)) return false;
  }
  return true;
}

function isTimestamp(s: string): boolean {
  const dot = s.indexOf('.');
  return dot > 0 && isDigits(s.slice(0, dot)) && isDigits(s.slice(dot + 1));
}

/** `mark`, `delta-time`, `zone-orig`: lower-case keys. */
function isKey(s: string): boolean {
  if (s.length === 0 || s.length > 32) return false;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57 && k > 0) || c === 45 || c === 95)) return false;
  }
  return true;
}

function isDigits(s: string): boolean {
  if (s.length === 0 || s.length > 20) return false;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

interface Word {
  value: string;
  bracket: boolean;
}

/** Words separated by blanks; `[ … ]` is one word even with blanks inside (timestamps). */
function words(line: string, lineNo: number, format: string): Word[] {
  const out: Word[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i];
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (c === '[') {
      const close = line.indexOf(']', i + 1);
      if (close < 0) throw new ParseError(format, lineNo, line, 'a closing "]"');
      out.push({ value: line.slice(i + 1, close), bracket: true });
      i = close + 1;
      continue;
    }
    const start = i;
    while (i < n && line[i] !== ' ' && line[i] !== '\t') i++;
    out.push({ value: line.slice(start, i), bracket: false });
  }
  return out;
}

const SUMMARY = ' flow entries have been shown.';

/** Parse `conntrack -L` (or `-E`) output. */
export function parseConntrack(text: string): ConntrackTable {
  rejectBinary(FORMAT, text);
  const result: ConntrackTable = { entries: [], shown: null, messages: [] };
  const lines = splitLines(text);
  for (let idx = 0; idx < lines.length; idx++) {
    const line = lines[idx];
    const trimmed = line.trim();
    if (trimmed.length === 0) continue;
    if (trimmed.startsWith('conntrack v')) {
      // `conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.`
      const colon = trimmed.indexOf(' (conntrack-tools): ');
      const version = trimmed.slice('conntrack v'.length, colon);
      if (colon < 0 || version.length === 0 || version.length > 16 || !/^[0-9.]+$/.test(version)) {
        throw new ParseError(FORMAT, idx + 1, line, '"conntrack vX.Y.Z (conntrack-tools): …"');
      }
      const msg = trimmed.slice(colon + ' (conntrack-tools): '.length);
      if (msg.endsWith(SUMMARY) && isDigits(msg.slice(0, -SUMMARY.length))) {
        result.shown = Number(msg.slice(0, -SUMMARY.length));
      } else {
        result.messages.push(msg);
      }
      continue;
    }
    result.entries.push(parseEntry(line, idx + 1, FORMAT));
  }
  return result;
}

/**
 * Parse `/proc/net/nf_conntrack` (ct_seq_show in the kernel's nf_conntrack_standalone.c): every
 * line starts with the family, nothing else is printed. IPv6 addresses, which the kernel writes
 * as eight groups of four digits (%pI6), come back in the short form conntrack -L prints.
 */
export function parseNfConntrack(text: string): ConntrackTable {
  rejectBinary(FORMAT_PROC, text);
  const entries: ConntrackEntry[] = [];
  const lines = splitLines(text);
  for (let idx = 0; idx < lines.length; idx++) {
    const line = lines[idx];
    if (line.trim().length === 0) continue;
    const e = parseEntry(line, idx + 1, FORMAT_PROC);
    if (e.family === null || e.event !== null || e.attributes.timestamp !== undefined) {
      throw new ParseError(FORMAT_PROC, idx + 1, line, 'an entry starting with its family, "ipv4     2" or "ipv6     10"');
    }
    for (const t of [e.original, e.reply]) {
      if (t.src.includes(':') !== (e.family === 'ipv6') || t.dst.includes(':') !== (e.family === 'ipv6')) {
        throw new ParseError(FORMAT_PROC, idx + 1, line, `${e.family === 'ipv6' ? 'IPv6' : 'IPv4'} addresses in an ${e.family} entry`);
      }
      if (e.family === 'ipv6') {
        t.src = shortIpv6(t.src);
        t.dst = shortIpv6(t.dst);
      }
    }
    entries.push(e);
  }
  return { entries, shown: null, messages: [] };
}

/** %pI6: eight groups of four hex digits. */
function longIpv6(s: string): string {
  return ipaddr.IPv6.parse(s).toNormalizedString().split(':').map((g) => g.padStart(4, '0')).join(':');
}

/** What inet_ntop prints, as conntrack -L does: `::1`, `fd00:10:244::2`, `::ffff:10.0.0.1`. */
function shortIpv6(s: string): string {
  if (!s.includes(':')) return s;
  const a = ipaddr.IPv6.parse(s);
  return a.isIPv4MappedAddress() ? `::ffff:${a.toIPv4Address().toString()}` : a.toString();
}

function emptyTuple(): ConntrackTuple {
  return { src: '', dst: '', sport: null, dport: null, icmp: null, counters: null, other: {} };
}

function parseEntry(line: string, lineNo: number, format: string): ConntrackEntry {
  const fail = (expected: string): never => {
    throw new ParseError(format, lineNo, line, expected);
  };
  const num = (key: string, v: string): number => {
    if (!isDigits(v) || Number(v) > (MAX[key] ?? Number.MAX_SAFE_INTEGER)) fail(`a number after ${key}=, not ${JSON.stringify(v)}`);
    return Number(v);
  };
  const ip = (key: string, v: string): string => {
    if (!isIp(v)) fail(`an IP address after ${key}=, not ${JSON.stringify(v)}`);
    return v;
  };
  const ws = words(line, lineNo, format);
  let i = 0;
  const peek = () => ws[i];

  // `conntrack -E -o timestamp` starts a line with `[seconds.micros]`.
  let timestamp: string | null = null;
  if (peek()?.bracket && isTimestamp(ws[i].value)) timestamp = ws[i++].value;
  let event: string | null = null;
  if (peek()?.bracket) {
    event = ws[i++].value;
    if (!EVENTS.has(event)) fail(`an event [NEW], [UPDATE] or [DESTROY], not [${event}]`);
  }
  let family: string | null = null;
  // -o extended: `ipv4     2 tcp      6 …`
  if (ws[i] && FAMILIES[ws[i].value] !== undefined && ws[i + 1] && isDigits(ws[i + 1].value)) {
    family = ws[i].value;
    if (Number(ws[i + 1].value) !== FAMILIES[family]) fail(`family number ${FAMILIES[family]} after ${family}`);
    i += 2;
  }
  const proto = ws[i++];
  if (!proto || proto.bracket || (proto.value !== 'unknown' && PROTOCOLS[proto.value] === undefined)) {
    fail(`a protocol name (${Object.keys(PROTOCOLS).join(', ')} or unknown)`);
  }
  const protoNum = ws[i++];
  if (!protoNum || protoNum.bracket || !isDigits(protoNum.value) || Number(protoNum.value) > 255) fail(`a protocol number after ${proto!.value}`);
  const known = PROTOCOLS[proto!.value];
  if (known !== undefined && Number(protoNum!.value) !== known) fail(`protocol number ${known} after ${proto!.value}`);
  let timeout: number | null = null;
  if (ws[i] && !ws[i].bracket && isDigits(ws[i].value)) timeout = Number(ws[i++].value);
  let state: string | null = null;
  if (ws[i] && !ws[i].bracket && !ws[i].value.includes('=')) {
    state = ws[i++].value;
    if (!isUpperWord(state)) fail(`a state such as ESTABLISHED, not ${JSON.stringify(state)}`);
  }

  const entry: ConntrackEntry = {
    line: lineNo, event, family, protocol: proto!.value, protocolNumber: Number(protoNum!.value), timeout, state,
    original: emptyTuple(), reply: emptyTuple(), flags: [], mark: null, zone: null, use: null, id: null, attributes: {},
  };
  if (timestamp !== null) entry.attributes.timestamp = timestamp;
  // 0: before any tuple, 1: in original, 2: in reply, 3: after the reply tuple.
  let phase = 0;
  const seen = new Set<string>();
  for (; i < ws.length; i++) {
    const w = ws[i];
    if (w.bracket) {
      const eq = w.value.indexOf('=');
      if (eq > 0) {
        const key = w.value.slice(0, eq);
        if (!isKey(key) || Object.hasOwn(entry.attributes, key)) fail(`[key=value] with a new lower-case key, not [${w.value}]`);
        entry.attributes[key] = w.value.slice(eq + 1);
      } else {
        if (!isUpperWord(w.value)) fail(`a flag such as [ASSURED], not [${w.value}]`);
        entry.flags.push(w.value);
      }
      if (phase === 2) phase = 3;
      continue;
    }
    const eq = w.value.indexOf('=');
    if (eq <= 0) fail(`key=value or [FLAG], not ${JSON.stringify(w.value)}`);
    const key = w.value.slice(0, eq);
    const value = w.value.slice(eq + 1);
    if (!isKey(key)) fail(`a lower-case key before "=", not ${JSON.stringify(key)}`);
    if (key === 'src' && phase < 2) {
      phase++;
      seen.clear();
    } else if (phase === 0 && TUPLE_KEYS.has(key)) {
      fail(`src= before ${key}=`);
    }
    if ((phase === 1 || phase === 2) && TUPLE_KEYS.has(key) && !seen.has(key)) {
      seen.add(key);
      const t = phase === 1 ? entry.original : entry.reply;
      switch (key) {
        case 'src': t.src = ip(key, value); break;
        case 'dst': t.dst = ip(key, value); break;
        case 'sport': t.sport = num(key, value); break;
        case 'dport': t.dport = num(key, value); break;
        case 'type': (t.icmp ??= { type: 0, code: 0, id: 0 }).type = num(key, value); break;
        case 'code': (t.icmp ??= { type: 0, code: 0, id: 0 }).code = num(key, value); break;
        case 'id': (t.icmp ??= { type: 0, code: 0, id: 0 }).id = num(key, value); break;
        case 'packets': (t.counters ??= { packets: 0, bytes: 0 }).packets = num(key, value); break;
        case 'bytes': (t.counters ??= { packets: 0, bytes: 0 }).bytes = num(key, value); break;
        default: t.other[key] = value;
      }
      continue;
    }
    if (key === 'src') fail('at most two tuples (two src=)');
    if (phase >= 1 && TUPLE_KEYS.has(key) && !(phase >= 2 && key === 'id')) fail(`one ${key}= per tuple`);
    if (phase === 2) phase = 3;
    switch (key) {
      case 'mark': entry.mark = num(key, value); break;
      case 'zone': entry.zone = num(key, value); break;
      case 'use': entry.use = num(key, value); break;
      case 'id': entry.id = num(key, value); break;
      default:
        if (Object.hasOwn(entry.attributes, key)) fail(`one ${key}= per entry`);
        entry.attributes[key] = value;
    }
  }
  if (phase < 2) fail('an original and a reply tuple (two src=)');
  for (const [name, t] of [['original', entry.original], ['reply', entry.reply]] as const) {
    if (t.dst === '') fail(`dst= in the ${name} tuple`);
  }
  return entry;
}

// ---------------------------------------------------------------------------------------------
// Rendering

function tupleWords(t: ConntrackTuple): string[] {
  const w = [`src=${t.src}`, `dst=${t.dst}`];
  if (t.sport !== null) w.push(`sport=${t.sport}`);
  if (t.dport !== null) w.push(`dport=${t.dport}`);
  if (t.icmp) w.push(`type=${t.icmp.type}`, `code=${t.icmp.code}`, `id=${t.icmp.id}`);
  for (const [k, v] of Object.entries(t.other)) w.push(`${k}=${v}`);
  if (t.counters) w.push(`packets=${t.counters.packets}`, `bytes=${t.counters.bytes}`);
  return w;
}

/** `conntrack -L` lines for a table (flags after the reply tuple), then the summary if known. */
export function renderConntrack(table: ConntrackTable): string {
  const out: string[] = [];
  for (const e of table.entries) {
    const w: string[] = [];
    const ts = e.attributes.timestamp;
    const leading = ts !== undefined && isTimestamp(ts);
    if (leading) w.push(`[${ts}]`);
    if (e.event !== null) w.push(`[${e.event}]`);
    if (e.family !== null) w.push(e.family, String(FAMILIES[e.family] ?? 0));
    w.push(e.protocol, String(e.protocolNumber));
    if (e.timeout !== null) w.push(String(e.timeout));
    if (e.state !== null) w.push(e.state);
    w.push(...tupleWords(e.original), ...tupleWords(e.reply), ...e.flags.map((f) => `[${f}]`));
    // Bracketed: values may hold blanks (timestamps); anything after a flag ends the reply tuple.
    for (const [k, v] of Object.entries(e.attributes)) if (!(leading && k === 'timestamp')) w.push(/[ \t]/.test(v) ? `[${k}=${v}]` : `${k}=${v}`);
    if (e.mark !== null) w.push(`mark=${e.mark}`);
    if (e.zone !== null) w.push(`zone=${e.zone}`);
    if (e.use !== null) w.push(`use=${e.use}`);
    if (e.id !== null) w.push(`id=${e.id}`);
    out.push(w.join(' '));
  }
  for (const m of table.messages) out.push(`conntrack v1.4.7 (conntrack-tools): ${m}`);
  if (table.shown !== null) out.push(`conntrack v1.4.7 (conntrack-tools): ${table.shown}${SUMMARY}`);
  return out.length ? `${out.join('\n')}\n` : '';
}

/**
 * `/proc/net/nf_conntrack` lines for a table, as ct_seq_show prints them: `%-8s %u %-8s %u`,
 * the tuples, `[UNREPLIED]` between them, the other flags after the reply, then mark, secctx,
 * zone, delta-time and use. Entries without a family are written as IPv4.
 */
export function renderNfConntrack(table: ConntrackTable): string {
  const out: string[] = [];
  for (const e of table.entries) {
    const family = e.family ?? 'ipv4';
    const full = (t: ConntrackTuple): ConntrackTuple => (family === 'ipv6' ? { ...t, src: longIpv6(t.src), dst: longIpv6(t.dst) } : t);
    const w = [family.padEnd(8), String(FAMILIES[family] ?? 2), e.protocol.padEnd(8), String(e.protocolNumber)];
    if (e.timeout !== null) w.push(String(e.timeout));
    if (e.state !== null) w.push(e.state);
    w.push(...tupleWords(full(e.original)));
    const unreplied = e.flags.includes('UNREPLIED');
    if (unreplied) w.push('[UNREPLIED]');
    w.push(...tupleWords(full(e.reply)), ...e.flags.filter((f) => f !== 'UNREPLIED').map((f) => `[${f}]`));
    if (e.mark !== null) w.push(`mark=${e.mark}`);
    for (const [k, v] of Object.entries(e.attributes)) if (k !== 'delta-time') w.push(/[ \t]/.test(v) ? `[${k}=${v}]` : `${k}=${v}`);
    if (e.zone !== null) w.push(`zone=${e.zone}`);
    if (e.attributes['delta-time'] !== undefined) w.push(`delta-time=${e.attributes['delta-time']}`);
    if (e.use !== null) w.push(`use=${e.use}`);
    if (e.id !== null) w.push(`id=${e.id}`);
    out.push(w.join(' '));
  }
  return out.length ? `${out.join('\n')}\n` : '';
}
