/**
 * Parser for `iptables [-t TABLE] -L [CHAIN] [-n] [-v] [-x] [--line-numbers]` output, the
 * human-readable listing (also what the workshop article shows, with `anywhere` and `dpt:https`).
 *
 * The listing is columnar: `[num] [pkts bytes] target prot opt [in out] source destination
 * [extra…]`. The column header line of each chain says which columns are present. The target
 * column can be blank (a rule with no -j), so its presence is read from the character where
 * the column starts (iptables prints it as `%-9s `), not from counting words.
 * Older releases differ in two places, both read here: up to 1.8.8 the protocol is `%-5s` with
 * no blank after it (`udplite--`), and ip6tables up to 1.8.8 prints three blanks for opt.
 * Names, protocols and addresses are checked, and a listing without any chain is an error:
 * iptables -L always prints the built-in chains.
 * Pure and linear-time: one cursor per line.
 */
import { isName } from './addr.ts';
import { ParseError, rejectBinary, splitLines } from './errors.ts';
import { isChainName } from './iptables-save.ts';
import type { Counters, IptAddrMatch } from './iptables-types.ts';

const FORMAT = 'iptables -L';

/** `12K` style counters (without -x) are rounded: `exact` is false for them. */
export interface ListCounters extends Counters {
  exact: boolean;
}

export interface IptListRule {
  /** 1-based line number in the parsed text. */
  line: number;
  /** From `--line-numbers`, else null. */
  num: number | null;
  /** From `-v`, else null. */
  counters: ListCounters | null;
  /** null when the rule has no target (blank column). */
  target: string | null;
  /** The rule jumps with -g (iptables prints `[goto]`). */
  goto: boolean;
  /** As printed: `all`/`tcp` by name, `0`/`6` with -n; `!` prefix read as negation. */
  protocol: IptAddrMatch;
  /** The opt column: `--`, `-f` or `!f`; empty from ip6tables up to 1.8.8, which prints blanks there. */
  opt: string;
  /** `-v` only: `*` means any interface. */
  inInterface: IptAddrMatch | null;
  outInterface: IptAddrMatch | null;
  /** `0.0.0.0/0`, `anywhere`, an address or a host name. */
  source: IptAddrMatch;
  destination: IptAddrMatch;
  /** Everything after the destination column (matches and target options), trimmed; `[goto]` removed. */
  extra: string;
  /** The text of the first `/* … *\/` in extra, or null. */
  comment: string | null;
}

export interface IptListChain {
  name: string;
  /** 1-based line of the `Chain …` header. */
  line: number;
  /** Built-in chains print a policy; user chains print a reference count. */
  policy: string | null;
  /** `-v` only: the policy's packet and byte counts. */
  policyCounters: ListCounters | null;
  /** For user chains: `(N references)`. */
  references: number | null;
  /** Column names from the header line, e.g. `['pkts', 'bytes', 'target', …]`. */
  columns: string[];
  rules: IptListRule[];
}

export interface IptablesList {
  chains: IptListChain[];
}

const KNOWN_COLUMNS = new Set(['num', 'pkts', 'bytes', 'target', 'prot', 'opt', 'in', 'out', 'source', 'destination']);

interface Cursor {
  line: string;
  pos: number;
}

/** The next blank-separated word, or null at end of line. */
function word(c: Cursor): { value: string; start: number; end: number } | null {
  const s = c.line;
  let i = c.pos;
  while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  if (i >= s.length) {
    c.pos = i;
    return null;
  }
  const start = i;
  while (i < s.length && s[i] !== ' ' && s[i] !== '\t') i++;
  c.pos = i;
  return { value: s.slice(start, i), start, end: i };
}

function digitsOnly(s: string): boolean {
  if (s.length === 0 || s.length > 20) return false;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

const SUFFIX: Record<string, number> = { K: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** `1234`, or `12K`/`3M`/… as iptables rounds counters without -x. */
function listCount(s: string): { value: number; exact: boolean } | null {
  const last = s[s.length - 1];
  const mult = last !== undefined ? SUFFIX[last] : undefined;
  const digits = mult ? s.slice(0, -1) : s;
  if (!digitsOnly(digits)) return null;
  return { value: Number(digits) * (mult ?? 1), exact: mult === undefined };
}

function negatable(s: string): IptAddrMatch {
  return s.length > 1 && s[0] === '!' ? { value: s.slice(1), negated: true } : { value: s, negated: false };
}

/** Parse the `(policy ACCEPT 0 packets, 0 bytes)` or `(2 references)` part of a chain header. */
function chainHeader(line: string, lineNo: number): Omit<IptListChain, 'columns' | 'rules'> {
  const fail = (expected: string): never => {
    throw new ParseError(FORMAT, lineNo, line, expected);
  };
  const c: Cursor = { line, pos: 'Chain'.length };
  const name = word(c);
  if (!name || !isChainName(name.value)) fail('a chain name after "Chain"');
  const rest = line.slice(c.pos).trim();
  if (rest[0] !== '(' || rest[rest.length - 1] !== ')') fail('"(policy …)" or "(N references)" after the chain name');
  const words = rest.slice(1, -1).split(' ').filter((w) => w.length > 0);
  const head = { name: name!.value, line: lineNo, policy: null, policyCounters: null, references: null };
  if (words[0] === 'policy') {
    // (policy ACCEPT) or (policy ACCEPT 12 packets, 3456 bytes)
    if (words[1] !== 'ACCEPT' && words[1] !== 'DROP') fail('a policy ACCEPT or DROP');
    if (words.length === 2) return { ...head, policy: words[1] };
    const p = words.length === 6 && words[3] === 'packets,' && words[5] === 'bytes' ? listCount(words[2]) : null;
    const b = p ? listCount(words[4]) : null;
    if (!p || !b) fail('"(policy POLICY N packets, N bytes)"');
    return { ...head, policy: words[1], policyCounters: { packets: p!.value, bytes: b!.value, exact: p!.exact && b!.exact } };
  }
  if (words.length === 2 && (words[1] === 'references' || words[1] === 'reference') && digitsOnly(words[0])) {
    return { ...head, references: Number(words[0]) };
  }
  return fail('"(policy …)" or "(N references)" after the chain name');
}

/** Parse `iptables -L` output (any of -n, -v, -x, --line-numbers; one table or one chain). */
export function parseIptablesList(text: string): IptablesList {
  rejectBinary(FORMAT, text);
  const lines = splitLines(text);
  const chains: IptListChain[] = [];
  let chain: IptListChain | null = null;
  let needColumns = false;

  for (let idx = 0; idx < lines.length; idx++) {
    const lineNo = idx + 1;
    const line = lines[idx];
    const fail = (expected: string): never => {
      throw new ParseError(FORMAT, lineNo, line, expected);
    };
    const trimmed = line.trim();
    // Blank lines separate chains; `# Warning: iptables-legacy tables present …` is advice.
    if (trimmed.length === 0 || trimmed[0] === '#') continue;

    if (line.startsWith('Chain ')) {
      if (needColumns) fail(`the column header of chain ${chain!.name} before the next chain`);
      chain = { ...chainHeader(line, lineNo), columns: [], rules: [] };
      chains.push(chain);
      needColumns = true;
      continue;
    }
    if (!chain) fail('"Chain NAME (…)" before any rule');
    const ch = chain!;

    if (needColumns) {
      const cols = trimmed.split(' ').filter((w) => w.length > 0);
      const ok = cols.every((w) => KNOWN_COLUMNS.has(w)) && cols.includes('source') && cols.includes('destination')
        && cols.includes('prot') && cols.includes('opt');
      if (!ok) fail('the column header ("target prot opt source destination", with -v also "pkts bytes … in out")');
      ch.columns = cols;
      needColumns = false;
      continue;
    }
    ch.rules.push(ruleLine(line, lineNo, ch.columns, fail));
  }
  if (needColumns) {
    throw new ParseError(FORMAT, lines.length, lines[lines.length - 1] ?? '', `the column header of chain ${chain!.name}`);
  }
  if (chains.length === 0) {
    throw new ParseError(FORMAT, Math.max(1, lines.length), lines[lines.length - 1] ?? '', '"Chain NAME (…)": iptables -L lists at least the built-in chains');
  }
  return { chains };
}

function ruleLine(line: string, lineNo: number, columns: string[], fail: (e: string) => never): IptListRule {
  const c: Cursor = { line, pos: 0 };
  const need = (what: string) => word(c) ?? fail(what);
  const has = (col: string) => columns.includes(col);

  let num: number | null = null;
  let counters: ListCounters | null = null;
  // Where the target column starts: line start, or one blank after the column before it.
  let targetStart = 0;
  if (has('num')) {
    const w = need('a rule number');
    if (!digitsOnly(w.value)) fail(`a rule number, not ${JSON.stringify(w.value)}`);
    num = Number(w.value);
    targetStart = w.start + Math.max(4, w.value.length) + 1; // `%-4u `
  }
  if (has('pkts')) {
    const p = need('a packet count');
    const b = need('a byte count');
    const pv = listCount(p.value);
    const bv = listCount(b.value);
    if (!pv || !bv) fail(`packet and byte counts, not ${JSON.stringify(`${p.value} ${b.value}`)}`);
    counters = { packets: pv!.value, bytes: bv!.value, exact: pv!.exact && bv!.exact };
    targetStart = b.end + 1;
  }
  let target: string | null = null;
  if (has('target')) {
    const ch = line[targetStart];
    if (ch !== undefined && ch !== ' ' && ch !== '\t') {
      c.pos = targetStart;
      target = need('a target').value;
      if (!isChainName(target)) fail(`a target name, not ${JSON.stringify(target)}`);
    } else if (ch === undefined) {
      fail('a target, protocol and addresses');
    }
  }
  const protWord = need('a protocol');
  let prot = protWord.value;
  let opt: string | null = null;
  // Up to 1.8.8 the protocol is printed as %-5s with no blank after it, so a name of five or
  // more letters runs into the opt column: `udplite--`.
  const tail = prot.slice(-2);
  if (isOpt(tail) && prot.length - 2 >= (prot[0] === '!' ? 6 : 5)) {
    opt = tail;
    prot = prot.slice(0, -2);
  }
  if (!isProtocol(prot)) fail(`a protocol name or number, not ${JSON.stringify(prot)}`);
  if (opt === null) {
    const before = c.pos;
    const w = word(c);
    if (w && isOpt(w.value)) {
      opt = w.value;
    } else if (w && w.start - protWord.end >= 3) {
      // ip6tables up to 1.8.8 prints three blanks there: IPv6 has no fragment flag.
      opt = '';
      c.pos = before;
    } else {
      fail(`the opt column ("--", "-f" or "!f"), not ${JSON.stringify(w?.value ?? '')}`);
    }
  }
  let inInterface: IptAddrMatch | null = null;
  let outInterface: IptAddrMatch | null = null;
  if (has('in')) inInterface = iface(need('an input interface').value, fail);
  if (has('out')) outInterface = iface(need('an output interface').value, fail);
  const source = address(need('a source address').value, fail);
  const destination = address(need('a destination address').value, fail);

  let extra = line.slice(c.pos).trim();
  let goto = false;
  if (extra.startsWith('[goto]')) {
    goto = true;
    extra = extra.slice('[goto]'.length).trim();
  }
  let comment: string | null = null;
  const open = extra.indexOf('/* ');
  if (open >= 0) {
    const close = extra.indexOf(' */', open + 2);
    if (close >= 0) comment = extra.slice(open + 3, close);
  }
  return {
    line: lineNo, num, counters, target, goto, protocol: negatable(prot), opt: opt!,
    inInterface, outInterface, source, destination, extra, comment,
  };
}

function isOpt(s: string): boolean {
  return s === '--' || s === '-f' || s === '!f';
}

function isProtocol(s: string): boolean {
  const p = s[0] === '!' ? s.slice(1) : s;
  if (p.length === 0 || p.length > 32) return false;
  for (let k = 0; k < p.length; k++) {
    const c = p.charCodeAt(k);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 45 || c === 95)) return false;
  }
  return true;
}

function iface(s: string, fail: (e: string) => never): IptAddrMatch {
  const m = negatable(s);
  if (!isName(m.value, 16)) fail(`an interface name or *, not ${JSON.stringify(s)}`);
  return m;
}

/** `0.0.0.0/0`, `10.96.0.1`, `::/0`, `anywhere`, or a host name as resolved without -n. */
function address(s: string, fail: (e: string) => never): IptAddrMatch {
  const m = negatable(s);
  const v = m.value;
  let ok = v.length > 0 && v.length <= 255;
  for (let k = 0; ok && k < v.length; k++) {
    const c = v.charCodeAt(k);
    ok = (c >= 48 && c <= 58) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 45 || c === 46 || c === 47 || c === 95;
  }
  if (!ok) fail(`an address, prefix or host name, not ${JSON.stringify(s)}`);
  return m;
}

/** The chain named `name`, or undefined. */
export function findListChain(list: IptablesList, name: string): IptListChain | undefined {
  return list.chains.find((c) => c.name === name);
}
