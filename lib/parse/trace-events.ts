/**
 * The kernel's packet-trace events, as the two monitors print them:
 *
 * - `nft monitor trace` (nft 0.9 to 1.1; with `-a`, rules carry `# handle N`):
 *     trace id 4623751d ip kube-proxy nat-prerouting packet: iif "veth…" … ip saddr A ip daddr B … tcp sport S tcp dport P …
 *     trace id 4623751d ip kube-proxy services rule ip daddr . meta l4proto . th dport vmap @service-ips (verdict goto service-…)
 *     trace id 4623751d ip kube-proxy filter-forward policy accept
 * - `xtables-monitor --trace` (iptables-nft 1.8):
 *     PACKET: 2 4623751d IN=veth… OUT= … SRC=A DST=B … SPORT=S DPORT=P SYN
 *      TRACE: 2 4623751d nat:KUBE-SVC-X:rule:0x4d:JUMP:KUBE-SEP-A  -4 -t nat -A KUBE-SVC-X … -j KUBE-SEP-A
 *      TRACE: 2 4623751d filter:FORWARD:policy:ACCEPT
 *
 * - the kit's own reader of the same netlink events (lib/capture/nftrace-reader.ts), tab-separated:
 *     packet	4623751d	ip	kube-proxy	nat-prerouting	A	B	tcp	S	P	veth…	(no oif)
 *     rule	4623751d	ip	kube-proxy	services	113	goto	service-…
 *     policy	4623751d	ip	kube-proxy	filter-forward	accept
 *   with rule handles only: their text is looked up in a listing (`nameRulesByHandle`).
 *
 * All become one event list in the order printed. A trace id names one packet while it crosses
 * the hooks, but the kernel reuses ids, so grouping events into walks is the caller's (lib/trace/live.ts).
 */
import { ParseError, rejectBinary } from './errors.ts';

/** What the kernel printed of the packet where it entered a base chain. */
export interface TracePacketHeader {
  src: string | null;
  dst: string | null;
  protocol: string | null;
  sport: number | null;
  dport: number | null;
  iif: string | null;
  oif: string | null;
}

export type TraceVerdict = 'accept' | 'drop' | 'continue' | 'return' | 'jump' | 'goto' | 'queue' | 'stolen' | 'break';

export interface TraceEvent {
  /** 1-based line in the monitor's output. */
  line: number;
  id: string;
  /** nft: `ip kube-proxy` (family and table); xtables-monitor: the iptables table, `nat`. */
  table: string;
  chain: string;
  /** packet: the packet entered the chain (its headers); rule: a rule matched; policy: a base chain's policy applied; return: a chain ended. */
  kind: 'packet' | 'rule' | 'policy' | 'return';
  /**
   * The rule as the monitor prints it: nft syntax with counters shown as `counter` and without its
   * handle; iptables-save syntax (what follows `-A CHAIN`) from xtables-monitor. null otherwise.
   */
  rule: string | null;
  handle: number | null;
  verdict: TraceVerdict | null;
  /** The chain a jump or goto enters. */
  target: string | null;
  packet: TracePacketHeader | null;
}

const VERDICTS = new Set<string>(['accept', 'drop', 'continue', 'return', 'jump', 'goto', 'queue', 'stolen', 'break']);
const MAX_LINE = 64 * 1024;

function verdictOf(word: string, where: string, line: number, text: string): TraceVerdict {
  const v = word.toLowerCase();
  if (!VERDICTS.has(v)) throw new ParseError(where, line, text, `a verdict (${[...VERDICTS].join(', ')})`);
  return v as TraceVerdict;
}

/** The packet's fields, read word by word: one pass over a line of some 400 characters. */
function nftHeader(rest: string): TracePacketHeader {
  const h: TracePacketHeader = { src: null, dst: null, protocol: null, sport: null, dport: null, iif: null, oif: null };
  const w = rest.split(' ');
  for (let i = 0; i + 1 < w.length; i++) {
    const word = w[i];
    const next = w[i + 1];
    if (word === 'iif' || word === 'oif') {
      if (next.startsWith('"') && next.endsWith('"')) h[word] = next.slice(1, -1);
    } else if ((word === 'ip' || word === 'ip6') && i + 2 < w.length) {
      if (next === 'saddr') h.src ??= w[i + 2];
      else if (next === 'daddr') h.dst ??= w[i + 2];
    } else if ((word === 'tcp' || word === 'udp' || word === 'sctp') && i + 2 < w.length && /^\d{1,5}$/.test(w[i + 2])) {
      if (next === 'sport' && h.sport === null) {
        h.sport = Number(w[i + 2]);
        h.protocol ??= word;
      } else if (next === 'dport' && h.dport === null) {
        h.dport = Number(w[i + 2]);
        h.protocol = word;
      }
    }
  }
  return h;
}

/** `counter packets 12 bytes 720` differs on every packet: shown as `counter`; runs of blanks as one. */
function plainRule(text: string): string {
  const counted = text.includes('counter packets') ? text.replace(/\bcounter packets \d+ bytes \d+/g, 'counter') : text;
  return counted.replace(/\s{2,}|\t/g, ' ').trim();
}

const NFT_LINE = /^trace id ([0-9a-f]{1,16}) (ip|ip6|inet|arp|bridge|netdev) (\S+) (\S+) (packet|rule|policy|verdict|unknown)\b:? ?(.*)$/;

/** One line of `nft monitor trace` output read into `out`; other lines (`# Warning: …`, blanks) skipped. */
function nftLine(out: TraceEvent[], n: number, lineText: string): void {
  const where = 'nft monitor trace';
  if (lineText === '' || lineText.startsWith('#')) return;
  if (!lineText.startsWith('trace id ')) return; // nft's own notices between events
  const m = NFT_LINE.exec(lineText);
  if (!m) throw new ParseError(where, n, lineText, '`trace id ID FAMILY TABLE CHAIN packet:|rule|policy|verdict …`');
  const [, id, family, table, chain, what, rest] = m;
  const base = { line: n, id, table: `${family} ${table}`, chain, rule: null, handle: null, verdict: null, target: null, packet: null };
  if (what === 'packet') {
    out.push({ ...base, kind: 'packet', packet: nftHeader(rest) });
  } else if (what === 'policy') {
    out.push({ ...base, kind: 'policy', verdict: verdictOf(rest.trim().split(' ')[0] ?? '', where, n, lineText) });
  } else if (what === 'verdict') {
    const [v, target] = rest.trim().split(' ');
    out.push({ ...base, kind: 'return', verdict: verdictOf(v ?? '', where, n, lineText), target: target ?? null });
  } else if (what === 'rule') {
    // `… # handle N (verdict jump X)`, read from the end: the rule text itself may hold anything.
    const at = rest.lastIndexOf('(verdict ');
    const vm = at >= 0 && rest.endsWith(')') ? /^\(verdict ([a-z]+)(?: (\S+))?\)$/.exec(rest.slice(at)) : null;
    if (!vm) throw new ParseError(where, n, lineText, 'a rule followed by `(verdict …)`');
    let ruleText = rest.slice(0, at).trimEnd();
    const hat = ruleText.lastIndexOf(' # handle ');
    const handle = hat >= 0 && /^\d+$/.test(ruleText.slice(hat + 10)) ? Number(ruleText.slice(hat + 10)) : null;
    if (handle !== null) ruleText = ruleText.slice(0, hat);
    out.push({
      ...base, kind: 'rule', rule: plainRule(ruleText), handle,
      verdict: verdictOf(vm[1], where, n, lineText), target: vm[2] ?? null,
    });
  }
  // `unknown` trace types carry nothing a walk needs.
}

/** `nft monitor trace` (or `nft -a monitor trace`) output; other lines (`# Warning: …`, blanks) are skipped. */
export function parseNftMonitorTrace(text: string): TraceEvent[] {
  const reader = new TraceEventReader('nft');
  reader.push(text);
  return reader.end();
}

const XT_PACKET = /^PACKET: (\d+) ([0-9a-f]{1,16}) (.*)$/;
const XT_TRACE = /^TRACE: (\d+) ([0-9a-f]{1,16}) ([a-z]+):(\S+?):(rule|policy|return):(?:(0x[0-9a-f]+):)?(\S*)(?:\s+(.*))?$/;
/** xtables-monitor prints NFT_RETURN (-5) as its number. */
const XT_NUMERIC: Record<string, TraceVerdict> = { '0xfffffffb': 'return', '0xffffffff': 'continue', '0xfffffffd': 'jump', '0xfffffffc': 'goto', '0xfffffffe': 'break' };

function xtHeader(rest: string): TracePacketHeader {
  const field = (k: string) => new RegExp(`(?:^| )${k}=(\\S*)`).exec(rest)?.[1] ?? null;
  const num = (k: string) => {
    const v = field(k);
    return v !== null && /^\d+$/.test(v) ? Number(v) : null;
  };
  const sport = num('SPORT');
  const proto = /(?:^| )PROTO=(\S+)/.exec(rest)?.[1]?.toLowerCase() ?? (sport !== null ? 'tcp' : null);
  return { src: field('SRC'), dst: field('DST'), protocol: proto, sport, dport: num('DPORT'), iif: field('IN') || null, oif: field('OUT') || null };
}

/**
 * One line of `xtables-monitor --trace` output read into `out`. A PACKET line names no chain: it
 * waits in `pending` and becomes a `packet` event of the chain its next TRACE line (of the same id)
 * is in.
 */
function xtLine(out: TraceEvent[], pending: Map<string, { line: number; packet: TracePacketHeader }>, n: number, lineText: string): void {
  const where = 'xtables-monitor --trace';
  if (lineText === '') return;
  const p = XT_PACKET.exec(lineText);
  if (p) {
    pending.set(p[2], { line: n, packet: xtHeader(p[3]) });
    return;
  }
  if (!lineText.startsWith('TRACE:')) return; // ruleset change events and notices
  const m = XT_TRACE.exec(lineText);
  if (!m) throw new ParseError(where, n, lineText, '`TRACE: FAMILY ID TABLE:CHAIN:rule|policy|return:…`');
  const [, , id, table, chain, what, handle, verdictText, ruleText] = m;
  const before = pending.get(id);
  if (before) {
    pending.delete(id);
    out.push({ line: before.line, id, table, chain, kind: 'packet', rule: null, handle: null, verdict: null, target: null, packet: before.packet });
  }
  const [word, ...targetParts] = verdictText.split(':');
  const verdict = XT_NUMERIC[word.toLowerCase()] ?? (word === '' ? 'return' : verdictOf(word, where, n, lineText));
  const target = targetParts.length > 0 ? targetParts.join(':') : null;
  // `-4 -t nat -A CHAIN rest`: what iptables-save prints after `-A CHAIN`.
  const rule = ruleText ? ruleText.trim().replace(/^-[46] -t \S+ -A \S+ ?/, '') : null;
  out.push({
    line: n, id, table, chain, kind: what === 'rule' ? 'rule' : what === 'policy' ? 'policy' : 'return',
    rule: what === 'rule' ? rule : null, handle: handle ? parseInt(handle, 16) : null, verdict, target, packet: null,
  });
}

const TRACE_ID = /^[0-9a-f]{8}$/;
const DIGITS = /^\d+$/;
const NETLINK_FAMILIES = new Set(['ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev']);
const NETLINK_FIELDS: Record<string, number> = { packet: 12, rule: 8, policy: 6, return: 7 };

/** A name as the reader escapes it (\\ \t \n \r). */
function unescapeName(text: string): string {
  if (!text.includes('\\')) return text;
  return text.replace(/\\([\\tnr])/g, (_, c: string) => (c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : '\\'));
}

/** Where the netlink reader's clock lines leave it: listening since, everything read up to. */
export interface ReaderClock {
  /** CLOCK_MONOTONIC (ns) when the reader joined the trace group; null until it says so. */
  listeningAt: bigint | null;
  /** The latest time (ns) before which every event the kernel queued has been printed. */
  drainedAt: bigint | null;
}

/** One line of the kit's netlink reader into `out`; its clock lines into `clock`. */
function netlinkLine(out: TraceEvent[], clock: ReaderClock, n: number, lineText: string): void {
  const where = 'the kit\'s nftrace reader';
  if (lineText === '') return;
  const f = lineText.split('\t');
  const word = f[0];
  if (word === 'listening' || word === 'drained') {
    if (f.length !== 2 || !/^\d{1,20}$/.test(f[1])) throw new ParseError(where, n, lineText, `\`${word} NANOSECONDS\``);
    const at = BigInt(f[1]);
    if (word === 'listening') clock.listeningAt = at;
    else if (clock.drainedAt === null || at > clock.drainedAt) clock.drainedAt = at;
    return;
  }
  const fields = NETLINK_FIELDS[word];
  if (fields === undefined || f.length !== fields || !TRACE_ID.test(f[1]) || !NETLINK_FAMILIES.has(f[2]) || f[3] === '' || f[4] === '') {
    throw new ParseError(where, n, lineText, 'packet|rule|policy|return, a trace id, a family, a table and a chain, tab-separated');
  }
  const e: TraceEvent = {
    line: n, id: f[1], table: `${f[2]} ${unescapeName(f[3])}`, chain: unescapeName(f[4]), kind: word as TraceEvent['kind'],
    rule: null, handle: null, verdict: null, target: null, packet: null,
  };
  const port = (text: string) => {
    if (text === '') return null;
    if (!DIGITS.test(text) || text.length > 5 || Number(text) > 65535) throw new ParseError(where, n, lineText, 'a port number');
    return Number(text);
  };
  if (word === 'packet') {
    e.packet = { src: f[5] || null, dst: f[6] || null, protocol: f[7] || null, sport: port(f[8]), dport: port(f[9]), iif: unescapeName(f[10]) || null, oif: unescapeName(f[11]) || null };
  } else if (word === 'rule') {
    if (!DIGITS.test(f[5]) || f[5].length > 20) throw new ParseError(where, n, lineText, 'a rule handle');
    e.handle = Number(f[5]);
    e.verdict = verdictOf(f[6], where, n, lineText);
    e.target = unescapeName(f[7]) || null;
  } else {
    e.verdict = verdictOf(f[5], where, n, lineText);
    if (word === 'return') e.target = unescapeName(f[6]) || null;
  }
  out.push(e);
}

/** The kit's netlink reader's output (its events; rule texts are not in it). */
export function parseNftraceReader(text: string): TraceEvent[] {
  const reader = new TraceEventReader('netlink');
  reader.push(text);
  return reader.end();
}

/**
 * Give rule events their text from a listing read before the trace, by `table chain handle`
 * (`textOf` returns undefined for a handle the listing lacks: the rule changed since).
 */
export function nameRulesByHandle(events: TraceEvent[], textOf: (table: string, chain: string, handle: number) => string | undefined): void {
  // A thousand walks meet the same few dozen rules: each text is made plain once.
  const plain = new Map<string, string>();
  for (const e of events) {
    if (e.kind !== 'rule' || e.handle === null) continue;
    const text = textOf(e.table, e.chain, e.handle);
    if (text === undefined) {
      e.rule ??= `(handle ${e.handle}: not in the listing read before the trace)`;
      continue;
    }
    let p = plain.get(text);
    if (p === undefined) plain.set(text, (p = plainRule(text)));
    e.rule = p;
  }
}

/** `xtables-monitor --trace` output. */
export function parseXtablesMonitorTrace(text: string): TraceEvent[] {
  const reader = new TraceEventReader('xtables');
  reader.push(text);
  return reader.end();
}

/**
 * Trace events read as a monitor prints them, in pieces of any size (a line may arrive in two),
 * so that parsing keeps up with the monitor instead of starting when it stops.
 */
export class TraceEventReader {
  readonly events: TraceEvent[] = [];
  /** The netlink reader's clock lines (null for the other formats, which print none). */
  readonly clock: ReaderClock = { listeningAt: null, drainedAt: null };
  private readonly pending = new Map<string, { line: number; packet: TracePacketHeader }>();
  /** Lines seen that hold `mark` (the start of a traced packet's walk), counted as they arrive. */
  marked = 0;
  private tail = '';
  private n = 0;
  /**
   * `mark`: text that a line starting a traced packet's walk holds; for the netlink format, the
   * `\tFAMILY\tTABLE\tCHAIN\t` of the kit's chain, counted on packet lines.
   */
  constructor(readonly format: 'nft' | 'xtables' | 'netlink', private readonly mark: string | null = null) {}

  push(chunk: string): void {
    rejectBinary(this.format === 'nft' ? 'nft monitor trace' : this.format === 'netlink' ? 'the kit\'s nftrace reader' : 'xtables-monitor --trace', chunk);
    const text = this.tail + chunk;
    let start = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      this.line(text.slice(start, nl));
      start = nl + 1;
    }
    this.tail = text.slice(start);
  }

  /** The events, the last line included even without its newline. */
  end(): TraceEvent[] {
    if (this.tail !== '') this.line(this.tail);
    this.tail = '';
    return this.events;
  }

  private line(raw: string): void {
    this.n++;
    if (this.mark !== null && raw.includes(this.mark) && (this.format !== 'netlink' || raw.startsWith('packet\t'))) this.marked++;
    const cut = raw.length > MAX_LINE ? raw.slice(0, MAX_LINE) : raw;
    if (this.format === 'nft') nftLine(this.events, this.n, cut.trimEnd());
    else if (this.format === 'netlink') netlinkLine(this.events, this.clock, this.n, cut);
    else xtLine(this.events, this.pending, this.n, cut.trim());
  }
}
