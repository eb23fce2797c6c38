/**
 * Parser for `iptables-save [-c]` output and `iptables-restore` input (what kube-proxy writes).
 *
 * One grammar covers both: `*table` … `COMMIT` blocks holding `:CHAIN POLICY [p:b]` headers and
 * rule commands. Restore-only commands (`-I`, `-D`, `-R`, `-N`, `-X`, `-F`, `-Z`, `-P`, `-E`) are
 * applied as iptables-restore --noflush would, so the result is the state the input describes.
 * Table, chain, policy, module and target names are checked as iptables checks them, so text that
 * is not a dump fails on its first line instead of becoming an odd ruleset.
 * Pure and linear-time: one pass over the lines, one char loop per line.
 */
import { isName } from './addr.ts';
import { ParseError, rejectBinary, splitLines } from './errors.ts';
import type {
  Counters, IptAddrMatch, IptChain, IptMatch, IptOption, IptRule, IptTable, IptTarget, IptablesSave,
} from './iptables-types.ts';

const FORMAT = 'iptables-save';

/** Built-in chains per table, for chains the input uses without declaring (restore input). */
export const BUILTIN_CHAINS: Readonly<Record<string, readonly string[]>> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  mangle: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
  security: ['INPUT', 'FORWARD', 'OUTPUT'],
};

// ---------------------------------------------------------------------------------------------
// Tokenizer

/** A word of a rule line, with where it sits in the line (so rule text can be sliced out). */
export interface IptToken {
  value: string;
  /** Some part was double-quoted: always an argument, never an option or `!`. */
  quoted: boolean;
  start: number;
  end: number;
}

/**
 * Split a line into words the way iptables-restore does: blanks separate words, `"…"` quotes
 * (and may join with adjacent text, as in a shell), and inside quotes a backslash escapes the
 * next character (iptables-save writes `\"`, `\\` and `\'`). Outside quotes a backslash is
 * literal, as in iptables-restore.
 */
export function tokenizeIptables(line: string, lineNo = 1, format = FORMAT): IptToken[] {
  const out: IptToken[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i];
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    const start = i;
    // Fast path: most words have no quotes, so slice them instead of building them.
    while (i < n && line[i] !== ' ' && line[i] !== '\t' && line[i] !== '"') i++;
    if (i >= n || line[i] !== '"') {
      out.push({ value: line.slice(start, i), quoted: false, start, end: i });
      continue;
    }
    let value = line.slice(start, i);
    let quoted = false;
    let inQuote = false;
    while (i < n) {
      const ch = line[i];
      if (inQuote) {
        if (ch === '\\' && i + 1 < n) {
          value += line[i + 1];
          i += 2;
          continue;
        }
        if (ch === '"') inQuote = false;
        else value += ch;
        i++;
        continue;
      }
      if (ch === ' ' || ch === '\t') break;
      if (ch === '"') {
        inQuote = true;
        quoted = true;
      } else {
        value += ch;
      }
      i++;
    }
    if (inQuote) throw new ParseError(format, lineNo, line, 'a closing double quote');
    out.push({ value, quoted, start, end: i });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Option arities

/**
 * How many arguments known options take. Needed because arguments may look like options:
 * iptables-save writes `--comment -dash` unquoted. Unknown options take the words up to the
 * next one that starts with `-` or is `!`.
 */
const ARITY: Record<string, Record<string, number>> = {
  comment: { comment: 1 },
  tcp: { dport: 1, 'destination-port': 1, sport: 1, 'source-port': 1, 'tcp-flags': 2, syn: 0, 'tcp-option': 1 },
  udp: { dport: 1, 'destination-port': 1, sport: 1, 'source-port': 1 },
  udplite: { dport: 1, sport: 1 },
  sctp: { dport: 1, 'destination-port': 1, sport: 1, 'source-port': 1, 'chunk-types': 2 },
  dccp: { dport: 1, sport: 1, 'dccp-types': 1, 'dccp-option': 1 },
  icmp: { 'icmp-type': 1 },
  // ip6tables: `-p ipv6-icmp` loads the match called icmp6.
  icmp6: { 'icmpv6-type': 1 },
  statistic: { mode: 1, probability: 1, every: 1, packet: 1 },
  mark: { mark: 1 },
  connmark: { mark: 1 },
  set: {
    'match-set': 2, 'return-nomatch': 0, 'update-counters': 0, 'update-subcounters': 0,
    'packets-eq': 1, 'packets-lt': 1, 'packets-gt': 1, 'bytes-eq': 1, 'bytes-lt': 1, 'bytes-gt': 1,
  },
  addrtype: { 'src-type': 1, 'dst-type': 1, 'limit-iface-in': 0, 'limit-iface-out': 0 },
  recent: {
    name: 1, set: 0, rcheck: 0, update: 0, remove: 0, seconds: 1, reap: 0, hitcount: 1,
    rttl: 0, rsource: 0, rdest: 0, mask: 1,
  },
  conntrack: {
    ctstate: 1, ctproto: 1, ctorigsrc: 1, ctorigdst: 1, ctreplsrc: 1, ctrepldst: 1,
    ctorigsrcport: 1, ctorigdstport: 1, ctreplsrcport: 1, ctrepldstport: 1, ctstatus: 1, ctexpire: 1, ctdir: 1,
  },
  state: { state: 1 },
  multiport: { dports: 1, sports: 1, ports: 1, 'destination-ports': 1, 'source-ports': 1 },
  physdev: { 'physdev-in': 1, 'physdev-out': 1, 'physdev-is-in': 0, 'physdev-is-out': 0, 'physdev-is-bridged': 0 },
  limit: { limit: 1, 'limit-burst': 1 },
  iprange: { 'src-range': 1, 'dst-range': 1 },
  owner: { 'uid-owner': 1, 'gid-owner': 1, 'socket-exists': 0, 'suppl-groups': 0 },
  socket: { transparent: 0, nowildcard: 0, 'restore-skmark': 0 },
  rpfilter: { loose: 0, validmark: 0, 'accept-local': 0, invert: 0 },
  pkttype: { 'pkt-type': 1 },
  length: { length: 1 },
  // Targets.
  DNAT: { 'to-destination': 1, random: 0, persistent: 0, 'random-fully': 0 },
  SNAT: { 'to-source': 1, random: 0, persistent: 0, 'random-fully': 0 },
  MASQUERADE: { 'to-ports': 1, random: 0, 'random-fully': 0 },
  REDIRECT: { 'to-ports': 1, random: 0 },
  MARK: { 'set-xmark': 1, 'set-mark': 1, 'xor-mark': 1, 'or-mark': 1, 'and-mark': 1 },
  CONNMARK: {
    'set-xmark': 1, 'set-mark': 1, 'save-mark': 0, 'restore-mark': 0, nfmask: 1, ctmask: 1, mask: 1,
    'xor-mark': 1, 'or-mark': 1, 'and-mark': 1,
  },
  REJECT: { 'reject-with': 1 },
  LOG: {
    'log-prefix': 1, 'log-level': 1, 'log-tcp-sequence': 0, 'log-tcp-options': 0, 'log-ip-options': 0, 'log-uid': 0,
  },
  CT: { notrack: 0, zone: 1, helper: 1, ctevents: 1, expevents: 1, timeout: 1, 'zone-orig': 1, 'zone-reply': 1 },
  TPROXY: { 'on-port': 1, 'on-ip': 1, 'tproxy-mark': 1 },
  NFLOG: { 'nflog-group': 1, 'nflog-prefix': 1, 'nflog-range': 1, 'nflog-threshold': 1, 'nflog-size': 1 },
};

/**
 * Options whose argument is free text: iptables-save quotes it only when it holds characters
 * outside `[A-Za-z0-9_-]`, so `--comment --x` is a comment that starts with two dashes.
 */
const FREE_TEXT = new Set(['comment comment', 'LOG log-prefix', 'NFLOG nflog-prefix']);

/** Short options of the rule grammar, for telling a lost argument from a name that starts with `-`. */
const SHORT_OPTIONS = new Set(['-p', '-s', '-d', '-i', '-o', '-m', '-j', '-g', '-f', '-c', '-4', '-6']);

/** How many arguments `--name` of match or target `owner` takes; undefined when unknown. */
function arityOf(owner: string, name: string): number | undefined {
  return Object.hasOwn(ARITY, owner) && Object.hasOwn(ARITY[owner], name) ? ARITY[owner][name] : undefined;
}

/** iptables' own limit (XT_EXTENSION_MAXNAMELEN − 1) for chain, target and match names. */
const MAX_NAME = 28;
const POLICIES = new Set(['ACCEPT', 'DROP']);

/** A chain or target name as iptables accepts it: 1-28 characters, no blanks, not `-x` or `!x`. */
export function isChainName(name: string): boolean {
  return isName(name, MAX_NAME) && name[0] !== '-' && name[0] !== '!';
}

/** Arguments of -s/-d (addresses, prefixes, masks, host names, comma lists), -i/-o and -p. */
function coreArgumentOk(key: CoreKey, v: string): boolean {
  if (v.length === 0 || v.length > 4096) return false;
  // No address, host or protocol starts with a dash: `-s -j X` lost its argument.
  if (v[0] === '-' && key !== 'inInterface' && key !== 'outInterface') return false;
  for (let k = 0; k < v.length; k++) {
    const c = v.charCodeAt(k);
    const alnum = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
    if (alnum || c === 45 || c === 95 || c === 46) continue;
    if ((key === 'source' || key === 'destination') && (c === 58 || c === 47 || c === 44)) continue;
    if ((key === 'inInterface' || key === 'outInterface') && c > 32 && c !== 47) continue;
    return false;
  }
  return key === 'inInterface' || key === 'outInterface' ? v.length <= 16 : true;
}

/** The match `-p PROTO` loads, where its name is not the protocol's: numbers and IPv6 ICMP. */
const PROTOCOL_MODULES: Record<string, string> = {
  '1': 'icmp', '6': 'tcp', '17': 'udp', '58': 'icmp6', '132': 'sctp', '33': 'dccp', '136': 'udplite',
  icmpv6: 'icmp6', 'ipv6-icmp': 'icmp6',
};

// ---------------------------------------------------------------------------------------------
// Rule parsing

/** The parts of a rule after `-A CHAIN`. Exposed for callers that parse single rule specs. */
export type RuleSpec = Omit<IptRule, 'line' | 'text' | 'chain' | 'counters'> & { counters: Counters | null };

function isOptionWord(t: IptToken): boolean {
  return !t.quoted && t.value.length > 1 && t.value[0] === '-';
}

function isBang(t: IptToken): boolean {
  return !t.quoted && t.value === '!';
}

type CoreKey = 'protocol' | 'source' | 'destination' | 'inInterface' | 'outInterface';
const CORE: Record<string, CoreKey> = {
  '-p': 'protocol', '--protocol': 'protocol',
  '-s': 'source', '--source': 'source', '--src': 'source',
  '-d': 'destination', '--destination': 'destination', '--dst': 'destination',
  '-i': 'inInterface', '--in-interface': 'inInterface',
  '-o': 'outInterface', '--out-interface': 'outInterface',
};

const CORE_WHAT: Record<CoreKey, string> = {
  protocol: 'a protocol name or number', source: 'an address, prefix or host name', destination: 'an address, prefix or host name',
  inInterface: 'an interface name', outInterface: 'an interface name',
};

/** Cursor over a rule's words. A class, not closures: this runs once per rule, 64k times. */
class SpecReader {
  i = 0;
  constructor(
    readonly tokens: readonly IptToken[],
    readonly lineNo: number,
    readonly line: string,
    readonly format: string,
  ) {}

  fail(expected: string): never {
    throw new ParseError(this.format, this.lineNo, this.line, expected);
  }

  next(what: string): IptToken {
    if (this.i >= this.tokens.length) this.fail(what);
    return this.tokens[this.i++];
  }

  /** A plain argument; accepts an old-style `!` before it (`-s ! 1.2.3.4`) and reports it. */
  argument(what: string): { value: string; bang: boolean; option: boolean } {
    let t = this.next(what);
    let bang = false;
    if (isBang(t)) {
      bang = true;
      t = this.next(what);
    }
    return { value: t.value, bang, option: isOptionWord(t) };
  }
}

/** The module iptables loads implicitly for `-p PROTO`, or null (none, or negated). */
function protocolModule(spec: RuleSpec): string | null {
  if (!spec.protocol || spec.protocol.negated) return null;
  const p = spec.protocol.value.toLowerCase();
  return Object.hasOwn(PROTOCOL_MODULES, p) ? PROTOCOL_MODULES[p] : p;
}

function implicitMatch(spec: RuleSpec, module: string): IptMatch {
  const found = spec.matches.find((m) => m.module === module);
  if (found) return found;
  const m: IptMatch = { module, options: [], implicit: true };
  spec.matches.push(m);
  return m;
}

/**
 * Parse the words of one rule spec (everything after `-A CHAIN`). Throws ParseError naming the
 * line; `line` and `lineNo` are used only for messages.
 */
export function parseRuleSpec(tokens: readonly IptToken[], lineNo: number, line: string, format = FORMAT): RuleSpec {
  const r = new SpecReader(tokens, lineNo, line, format);
  const spec: RuleSpec = {
    counters: null, protocol: null, source: null, destination: null, inInterface: null, outInterface: null,
    matches: [], target: null, comment: null,
  };
  // Where module options go: the latest `-m`, the target after `-j`, or nothing yet.
  let currentMatch: IptMatch | null = null;
  let currentTarget: IptTarget | null = null;
  let negate = false;
  const n = tokens.length;

  while (r.i < n) {
    const t = tokens[r.i++];
    if (isBang(t)) {
      if (negate) r.fail('one `!` before an option, not two');
      negate = true;
      continue;
    }
    // iptables 1.6.1 and later print this instead of the options of a match or target whose
    // revision in the kernel is newer than they know (an old iptables in a container).
    if (!t.quoted && t.value === '[unsupported' && !tokens[r.i]?.quoted && tokens[r.i]?.value === 'revision]') {
      const owner = currentTarget ?? currentMatch;
      if (!owner || negate) r.fail('"[unsupported revision]" only after -m MODULE or -j TARGET');
      owner!.unsupportedRevision = true;
      r.i++;
      continue;
    }
    if (!isOptionWord(t)) r.fail(`an option starting with "-" (at ${JSON.stringify(t.value)})`);
    const word = t.value;
    const core = CORE[word];
    if (core) {
      const a = r.argument(`an argument after ${word}`);
      if (spec[core]) r.fail(`at most one ${word}`);
      // Interface names may start with a dash; an option word after -i means its name is missing.
      if (a.option && (a.value.startsWith('--') || SHORT_OPTIONS.has(a.value))) r.fail(`${CORE_WHAT[core]} after ${word}, not the option ${a.value}`);
      if (!coreArgumentOk(core, a.value)) r.fail(`${CORE_WHAT[core]} after ${word}, not ${JSON.stringify(a.value)}`);
      spec[core] = { value: a.value, negated: negate || a.bang } satisfies IptAddrMatch;
      negate = false;
      continue;
    }
    switch (word) {
      case '-m':
      case '--match': {
        if (negate) r.fail(`an option after "!", not ${word}`);
        const m: IptMatch = { module: r.next(`a module name after ${word}`).value, options: [] };
        if (!isName(m.module, MAX_NAME)) r.fail(`a module name after ${word}`);
        spec.matches.push(m);
        currentMatch = m;
        currentTarget = null;
        continue;
      }
      case '-j':
      case '--jump':
      case '-g':
      case '--goto': {
        if (negate) r.fail(`an option after "!", not ${word}`);
        if (spec.target) r.fail('at most one -j/-g target');
        const goto = word === '-g' || word === '--goto';
        spec.target = { name: r.next(`a target name after ${word}`).value, goto, options: [] };
        if (!isChainName(spec.target.name)) r.fail(`a target name after ${word} (1-${MAX_NAME} characters)`);
        currentTarget = spec.target;
        currentMatch = null;
        continue;
      }
      case '-f':
      case '--fragment':
        spec.fragment = { negated: negate };
        negate = false;
        continue;
      case '-4':
      case '--ipv4':
      case '-6':
      case '--ipv6':
        negate = false;
        continue;
      case '-c':
      case '--set-counters': {
        const p = r.next('packet and byte counts after -c').value;
        const b = r.next('packet and byte counts after -c').value;
        spec.counters = { packets: count(p, lineNo, line, format), bytes: count(b, lineNo, line, format) };
        continue;
      }
    }
    if (!word.startsWith('--')) r.fail(`a known iptables option (at ${JSON.stringify(word)})`);
    const name = word.slice(2);

    // Decide which match or target the option belongs to.
    let owner: { options: IptOption[] };
    let ownerName: string;
    if (currentTarget) {
      owner = currentTarget;
      ownerName = currentTarget.name;
    } else if (currentMatch) {
      owner = currentMatch;
      ownerName = currentMatch.module;
      // `-p tcp -m comment --comment x --dport 80`: the comment module does not know --dport,
      // so iptables hands it to tcp. Do the same for the modules we know.
      if (Object.hasOwn(ARITY, ownerName) && arityOf(ownerName, name) === undefined) {
        const proto = protocolModule(spec);
        if (proto && arityOf(proto, name) !== undefined) {
          owner = implicitMatch(spec, proto);
          ownerName = proto;
        }
      }
    } else {
      // Before any -m or -j: only the implicit protocol match can own it.
      const proto = protocolModule(spec);
      if (!proto) return r.fail(`-m MODULE or -p PROTOCOL before ${word}`);
      owner = implicitMatch(spec, proto);
      ownerName = proto;
    }

    const args: string[] = [];
    let negated = negate;
    negate = false;
    const arity = arityOf(ownerName, name);
    if (arity !== undefined) {
      const what = `${arity} argument${arity > 1 ? 's' : ''} after ${word}`;
      const freeText = FREE_TEXT.has(`${ownerName} ${name}`);
      for (let k = 0; k < arity; k++) {
        const a = r.argument(what);
        // getopt would take `--to-destination --random` as an address; iptables then refuses
        // it. Only free text (iptables-save writes `--comment -x` unquoted) may look like an option.
        if (a.option && !freeText) r.fail(`${what}, not the option ${a.value} (is the argument missing?)`);
        if (a.bang) negated = true;
        args.push(a.value);
      }
    } else {
      while (r.i < n && !isOptionWord(tokens[r.i]) && !isBang(tokens[r.i])) args.push(tokens[r.i++].value);
    }
    owner.options.push({ name, args, negated });
    if (ownerName === 'comment' && name === 'comment' && spec.comment === null) spec.comment = args[0] ?? '';
  }
  if (negate) r.fail('an option after "!"');
  return spec;
}

function count(s: string, lineNo: number, line: string, format: string): number {
  if (s.length === 0 || s.length > 20) throw new ParseError(format, lineNo, line, `a counter, not ${JSON.stringify(s)}`);
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c < 48 || c > 57) throw new ParseError(format, lineNo, line, `a decimal counter, not ${JSON.stringify(s)}`);
  }
  // Counters are u64; above 2^53 they lose precision, which no plot will notice.
  return Number(s);
}

/** `[packets:bytes]` */
function bracketCounters(s: string, lineNo: number, line: string, format: string): Counters {
  const colon = s.indexOf(':');
  if (s[0] !== '[' || s[s.length - 1] !== ']' || colon < 0) {
    throw new ParseError(format, lineNo, line, `counters as [packets:bytes], not ${JSON.stringify(s)}`);
  }
  return {
    packets: count(s.slice(1, colon), lineNo, line, format),
    bytes: count(s.slice(colon + 1, -1), lineNo, line, format),
  };
}

// ---------------------------------------------------------------------------------------------
// Document parsing

interface OpenTable {
  table: IptTable;
  chains: Map<string, IptChain>;
  line: number;
}

/**
 * Rule positions that -I, -D, -X, -F, -Z and -E may visit in one parse, on top of reading each
 * line once: inserting at the top of a long chain, line after line, is quadratic, and a hostile
 * restore input must not turn that into a hang. kube-proxy's own input spends a few hundred.
 */
export const MAX_REARRANGED = 20_000_000;

class Work {
  private done = 0;
  spend(n: number, lineNo: number, line: string): void {
    this.done += n;
    if (this.done > MAX_REARRANGED) {
      throw commandError(lineNo, line, `restore input whose -I/-D/-X/-F/-Z/-E commands move at most ${MAX_REARRANGED.toLocaleString('en-US')} rules in all`);
    }
  }
}

function isBuiltin(table: string, chain: string): boolean {
  return BUILTIN_CHAINS[table]?.includes(chain) ?? false;
}

/**
 * Parse `iptables-save` or `iptables-save -c` output, or `iptables-restore` input.
 * Tables appear in first-seen order; a table named twice (two restore blocks) is merged.
 */
export function parseIptablesSave(text: string): IptablesSave {
  rejectBinary(FORMAT, text);
  const lines = splitLines(text);
  const result: IptablesSave = { tables: [] };
  const tables = new Map<string, OpenTable>();
  let open: OpenTable | null = null;
  const work = new Work();

  for (let idx = 0; idx < lines.length; idx++) {
    const lineNo = idx + 1;
    const line = lines[idx];
    let s = 0;
    while (s < line.length && (line[s] === ' ' || line[s] === '\t')) s++;
    if (s === line.length || line[s] === '#') continue;
    const head = line[s];

    if (head === '*') {
      if (open) throw commandError(lineNo, line, `COMMIT before a new table (table ${open.table.name} opened on line ${open.line})`);
      const name = line.slice(s + 1).trim();
      if (!Object.hasOwn(BUILTIN_CHAINS, name)) throw commandError(lineNo, line, `a table name after "*": ${Object.keys(BUILTIN_CHAINS).join(', ')}`);
      let t = tables.get(name);
      if (!t) {
        t = { table: { name, chains: [] }, chains: new Map(), line: lineNo };
        tables.set(name, t);
        result.tables.push(t.table);
      }
      t.line = lineNo;
      open = t;
      continue;
    }
    if (line.slice(s).trimEnd() === 'COMMIT') {
      if (!open) throw commandError(lineNo, line, 'a "*table" line before COMMIT');
      open = null;
      continue;
    }
    if (!open) throw commandError(lineNo, line, 'a "*table" line before any chain or rule');
    const tbl = open;

    if (head === ':') {
      // :CHAIN POLICY [packets:bytes]
      const toks = tokenizeIptables(line.slice(s + 1), lineNo, FORMAT);
      if (toks.length < 2 || toks.length > 3) throw commandError(lineNo, line, '":CHAIN POLICY [packets:bytes]"');
      const name = toks[0].value;
      if (!isChainName(name)) throw commandError(lineNo, line, `a chain name after ":" (1-${MAX_NAME} characters)`);
      const pol = toks[1].value;
      if (pol !== '-' && !POLICIES.has(pol)) throw commandError(lineNo, line, `a policy ACCEPT or DROP, or "-" for a user chain, not ${JSON.stringify(pol)}`);
      const counters = toks.length === 3 ? bracketCounters(toks[2].value, lineNo, line, FORMAT) : null;
      const existing = tbl.chains.get(name);
      const builtin = pol !== '-';
      if (existing) {
        // Restore semantics: re-declaring a user chain flushes it; a built-in just gets its policy.
        if (!existing.builtin) existing.rules = [];
        existing.policy = builtin ? pol : null;
        existing.counters = counters;
        if (builtin) existing.builtin = true;
      } else {
        const c: IptChain = { name, builtin, policy: builtin ? pol : null, counters, rules: [] };
        tbl.chains.set(name, c);
        tbl.table.chains.push(c);
      }
      continue;
    }

    let counters: Counters | null = null;
    let body = line;
    let bodyOffset = 0;
    if (head === '[') {
      const close = line.indexOf(']', s);
      if (close < 0) throw commandError(lineNo, line, 'counters as [packets:bytes] before the rule');
      counters = bracketCounters(line.slice(s, close + 1), lineNo, line, FORMAT);
      bodyOffset = close + 1;
      body = line.slice(bodyOffset);
    }
    const toks = tokenizeIptables(body, lineNo, FORMAT);
    if (toks.length === 0) throw commandError(lineNo, line, 'a rule after the counters');
    applyCommand(tbl, toks, body, counters, lineNo, line, work);
  }
  if (open) {
    throw new ParseError(
      FORMAT, lines.length, lines[lines.length - 1] ?? '',
      `COMMIT before the end of input (table ${open.table.name} opened on line ${open.line})`,
    );
  }
  return result;
}

/** iptables-restore input is the same grammar; this name reads better at call sites. */
export const parseIptablesRestoreInput = parseIptablesSave;

function commandError(lineNo: number, line: string, expected: string): ParseError {
  return new ParseError(FORMAT, lineNo, line, expected);
}

/**
 * The chain `name`. `create` makes a missing one only where iptables-restore would: a built-in
 * chain the input never declares (kube-proxy's restore input appends to PREROUTING that way),
 * or any new chain for -N. A user chain must be declared before its rules.
 */
function chainFor(tbl: OpenTable, name: string, create: boolean | 'new', lineNo: number, line: string): IptChain {
  if (!isChainName(name)) throw commandError(lineNo, line, `a chain name (1-${MAX_NAME} characters), not ${JSON.stringify(name)}`);
  let c = tbl.chains.get(name);
  const builtin = isBuiltin(tbl.table.name, name);
  if (create === 'new' && (c || builtin)) throw commandError(lineNo, line, `a chain that does not exist yet after -N, not ${JSON.stringify(name)}`);
  if (!c) {
    if (!create || (create === true && !builtin)) {
      throw commandError(lineNo, line, `an existing chain (declared with ":${name} - [0:0]" or -N before it is used), not ${JSON.stringify(name)}`);
    }
    c = { name, builtin, policy: null, counters: null, rules: [] };
    tbl.chains.set(name, c);
    tbl.table.chains.push(c);
  }
  return c;
}

/** `-I CHAIN 3 …`: the rule number, or null when the word is not a number. */
function ruleNumber(t: IptToken | undefined, max: number, lineNo: number, line: string): number | null {
  if (!t || t.quoted || t.value.length === 0 || t.value.length > 9) return null;
  for (let k = 0; k < t.value.length; k++) {
    const c = t.value.charCodeAt(k);
    if (c < 48 || c > 57) return null;
  }
  const v = Number(t.value);
  if (v < 1 || v > max) throw commandError(lineNo, line, `a rule number from 1 to ${max}, not ${t.value}`);
  return v;
}

function makeRule(
  toks: IptToken[], from: number, body: string, chain: string, counters: Counters | null, lineNo: number, line: string,
): IptRule {
  const specToks = from === 0 ? toks : toks.slice(from);
  const spec = parseRuleSpec(specToks, lineNo, line, FORMAT);
  const text = specToks.length > 0 ? body.slice(specToks[0].start, specToks[specToks.length - 1].end) : '';
  return {
    line: lineNo, text, chain, counters: spec.counters ?? counters,
    protocol: spec.protocol, source: spec.source, destination: spec.destination,
    inInterface: spec.inInterface, outInterface: spec.outInterface,
    matches: spec.matches, target: spec.target, comment: spec.comment,
    ...(spec.fragment ? { fragment: spec.fragment } : {}),
  };
}

function applyCommand(
  tbl: OpenTable, toks: IptToken[], body: string, counters: Counters | null, lineNo: number, line: string, work: Work,
): void {
  const cmd = toks[0].value;
  const name = toks[1]?.value;
  if (cmd === '-A' || cmd === '--append') {
    // The common case, first and without helpers: dumps are almost all -A lines.
    if (!name) throw commandError(lineNo, line, `a chain name after ${cmd}`);
    // The rule's own syntax first, then whether its chain exists.
    const rule = makeRule(toks, 2, body, name, counters, lineNo, line);
    chainFor(tbl, name, true, lineNo, line).rules.push(rule);
    return;
  }
  const chainArg = (): string => {
    if (!name) throw commandError(lineNo, line, `a chain name after ${cmd}`);
    return name;
  };
  const onlyChain = () => {
    if (toks.length > 2) throw commandError(lineNo, line, `at most a chain name after ${cmd}`);
  };

  switch (cmd) {
    case '-I':
    case '--insert': {
      const c = chainFor(tbl, chainArg(), true, lineNo, line);
      const num = ruleNumber(toks[2], c.rules.length + 1, lineNo, line);
      const at = num === null ? 0 : num - 1;
      work.spend(c.rules.length - at, lineNo, line);
      c.rules.splice(at, 0, makeRule(toks, num === null ? 2 : 3, body, c.name, counters, lineNo, line));
      return;
    }
    case '-R':
    case '--replace': {
      const c = chainFor(tbl, chainArg(), false, lineNo, line);
      const num = ruleNumber(toks[2], c.rules.length, lineNo, line);
      if (num === null) throw commandError(lineNo, line, `a rule number after -R ${c.name}`);
      c.rules[num - 1] = makeRule(toks, 3, body, c.name, counters, lineNo, line);
      return;
    }
    case '-D':
    case '--delete': {
      const c = chainFor(tbl, chainArg(), false, lineNo, line);
      const num = ruleNumber(toks[2], c.rules.length, lineNo, line);
      if (num !== null && toks.length === 3) {
        work.spend(c.rules.length - num + 1, lineNo, line);
        c.rules.splice(num - 1, 1);
        return;
      }
      // Delete by spec: compare what the words mean, not how they were spaced or quoted.
      const want = meaning(makeRule(toks, 2, body, c.name, counters, lineNo, line));
      work.spend(c.rules.length, lineNo, line);
      const at = c.rules.findIndex((r) => meaning(r) === want);
      if (at < 0) throw commandError(lineNo, line, `a rule that exists in ${c.name} to delete`);
      c.rules.splice(at, 1);
      return;
    }
    case '-N':
    case '--new-chain':
    case '--new': {
      const chain = chainArg();
      if (toks.length > 2) throw commandError(lineNo, line, `only a chain name after ${cmd}`);
      chainFor(tbl, chain, 'new', lineNo, line);
      return;
    }
    case '-X':
    case '--delete-chain': {
      onlyChain();
      if (name !== undefined) chainFor(tbl, name, false, lineNo, line);
      work.spend(tbl.table.chains.length, lineNo, line);
      const doomed = (c: IptChain) => (name === undefined ? !c.builtin : c.name === name);
      tbl.table.chains = tbl.table.chains.filter((c) => {
        if (!doomed(c)) return true;
        tbl.chains.delete(c.name);
        return false;
      });
      return;
    }
    case '-F':
    case '--flush':
    case '-Z':
    case '--zero': {
      onlyChain();
      const targets = name === undefined ? tbl.table.chains : [chainFor(tbl, name, false, lineNo, line)];
      const flush = cmd === '-F' || cmd === '--flush';
      work.spend(targets.length + (flush ? 0 : targets.reduce((a, c) => a + c.rules.length, 0)), lineNo, line);
      for (const c of targets) {
        if (flush) c.rules = [];
        else {
          if (c.counters) c.counters = { packets: 0, bytes: 0 };
          for (const r of c.rules) if (r.counters) r.counters = { packets: 0, bytes: 0 };
        }
      }
      return;
    }
    case '-P':
    case '--policy': {
      if (toks.length !== 3) throw commandError(lineNo, line, '"-P CHAIN POLICY"');
      const c = chainFor(tbl, chainArg(), true, lineNo, line);
      if (!POLICIES.has(toks[2].value)) throw commandError(lineNo, line, 'a policy ACCEPT or DROP after -P CHAIN');
      c.policy = toks[2].value;
      c.builtin = true;
      return;
    }
    case '-E':
    case '--rename-chain': {
      if (toks.length !== 3) throw commandError(lineNo, line, '"-E OLD NEW"');
      const c = chainFor(tbl, chainArg(), false, lineNo, line);
      const to = toks[2].value;
      if (!isChainName(to)) throw commandError(lineNo, line, `a new chain name (1-${MAX_NAME} characters) after -E OLD`);
      if (tbl.chains.has(to)) throw commandError(lineNo, line, `a new chain name, not the existing ${JSON.stringify(to)}`);
      work.spend(c.rules.length, lineNo, line);
      tbl.chains.delete(c.name);
      c.name = to;
      tbl.chains.set(to, c);
      for (const r of c.rules) r.chain = to;
      return;
    }
  }
  throw commandError(lineNo, line, 'a rule command such as "-A CHAIN …", a ":CHAIN" header, COMMIT or "*table"');
}

/** A rule without where it was written; its chain is left out too, so -E cannot make it stale. */
function stripMeta(r: IptRule): Omit<IptRule, 'line' | 'text' | 'counters' | 'chain'> {
  const { line: _l, text: _t, counters: _c, chain: _ch, ...rest } = r;
  return rest;
}

/** What a rule means, as text to compare within one chain, computed once per rule. */
const meanings = new WeakMap<IptRule, string>();
function meaning(r: IptRule): string {
  let m = meanings.get(r);
  if (m === undefined) {
    m = JSON.stringify(stripMeta(r));
    meanings.set(r, m);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Small helpers for consumers

/** All options named `name` of the first match with module `module`, or undefined. */
export function matchOption(rule: IptRule, module: string, name: string): IptOption | undefined {
  for (const m of rule.matches) {
    if (m.module !== module) continue;
    const o = m.options.find((x) => x.name === name);
    if (o) return o;
  }
  return undefined;
}

/** The target's option `name`, e.g. `to-destination` of a DNAT. */
export function targetOption(rule: IptRule, name: string): IptOption | undefined {
  return rule.target?.options.find((o) => o.name === name);
}

// ---------------------------------------------------------------------------------------------
// Rendering

function counterText(c: Counters): string {
  return `[${c.packets}:${c.bytes}]`;
}

/**
 * `iptables-save -c` text for a parsed state: headers, then each chain's rules as written.
 * A built-in chain the input never declared (restore input appending to PREROUTING) gets no
 * header, as in that input.
 */
export function renderIptablesSave(save: IptablesSave): string {
  const out: string[] = [];
  for (const t of save.tables) {
    out.push(`*${t.name}`);
    for (const c of t.chains) {
      if (c.builtin && c.policy === null) continue;
      out.push(`:${c.name} ${c.builtin ? c.policy : '-'}${c.counters ? ` ${counterText(c.counters)}` : ''}`);
    }
    for (const c of t.chains) {
      for (const r of c.rules) out.push(`${r.counters ? `${counterText(r.counters)} ` : ''}-A ${c.name}${r.text ? ` ${r.text}` : ''}`);
    }
    out.push('COMMIT');
  }
  return out.length ? `${out.join('\n')}\n` : '';
}
