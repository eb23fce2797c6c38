/**
 * nft rule text (as `nft list ruleset` prints it) read into statements the tracer evaluates.
 * Only what the tracer can evaluate faithfully is read; anything else is a RuleError, which the
 * tracer reports with the rule's line.
 */
import { braceItems, concatParts, parsePart, splitMapItem, ValueError, type Part, type ValueKind } from './nft-values.ts';

export class RuleError extends Error {}

export type Selector =
  | { s: 'addr'; family: 4 | 6; field: 'saddr' | 'daddr' }
  /** `meta l4proto` (family null), `ip protocol` (4), `ip6 nexthdr` (6). */
  | { s: 'l4proto'; family: 4 | 6 | null }
  /** `th dport` (proto null) or `tcp dport`, which also requires the protocol. */
  | { s: 'port'; field: 'sport' | 'dport'; proto: 'tcp' | 'udp' | 'sctp' | null }
  | { s: 'mark' }
  | { s: 'ctmark' }
  | { s: 'ctstate' }
  | { s: 'fib'; field: 'saddr' | 'daddr' }
  | { s: 'iifname' }
  | { s: 'oifname' }
  | { s: 'nfproto' }
  | { s: 'numgen'; mod: number; offset: number };

export type BinOp = '&' | '|' | '^';

export interface Term {
  sel: Selector;
  ops: { op: BinOp; v: bigint }[];
}

/** A selector, or several joined by ` . ` (a concatenation). */
export interface Expr {
  terms: Term[];
}

export type Verdict =
  | { v: 'accept' | 'drop' | 'reject' | 'return' | 'continue' }
  | { v: 'jump' | 'goto'; chain: string };

export type Rhs =
  | { k: 'literal'; parts: Part[] }
  | { k: 'named'; name: string }
  | { k: 'anon'; items: Part[][] };

export type MapRef =
  | { k: 'named'; name: string }
  | { k: 'anon'; items: { key: Part[]; value: string }[] };

export type CmpOp = '==' | '!=' | '<' | '>' | '<=' | '>=';

export type Stmt =
  | { k: 'cmp'; expr: Expr; op: CmpOp | 'implicit'; rhs: Rhs }
  | { k: 'vmap'; expr: Expr; map: MapRef }
  | { k: 'mangle'; target: 'mark' | 'ctmark'; base: Selector | bigint; ops: { op: BinOp; v: bigint }[] }
  | { k: 'setadd'; set: string; expr: Expr }
  | { k: 'verdict'; verdict: Verdict }
  | { k: 'dnat'; to: { k: 'literal'; text: string } | { k: 'map'; expr: Expr; map: MapRef } }
  | { k: 'snat'; text: string }
  | { k: 'masquerade' }
  /** What the tracer cannot read; evaluating it is an error, but a packet may never get there. */
  | { k: 'unsupported'; why: string };

/** The kind of value a selector yields. */
export function kindOf(sel: Selector): ValueKind {
  switch (sel.s) {
    case 'addr':
      return sel.family === 4 ? 'ipv4' : 'ipv6';
    case 'l4proto':
      return 'proto';
    case 'port':
      return 'port';
    case 'mark':
    case 'ctmark':
    case 'numgen':
      return 'u32';
    case 'ctstate':
      return 'ctstate';
    case 'fib':
      return 'fibtype';
    case 'iifname':
    case 'oifname':
      return 'ifname';
    case 'nfproto':
      return 'nfproto';
  }
}

/**
 * Split a rule into words; `{ … }` groups and quoted strings stay whole. One pass over the
 * text.
 */
export function tokenize(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  let quoted = false;
  for (const c of text) {
    if (quoted) {
      cur += c;
      if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
      cur += c;
    } else if (c === '{') {
      depth++;
      cur += c;
    } else if (c === '}') {
      if (--depth < 0) throw new RuleError('unbalanced `}`');
      cur += c;
    } else if ((c === ' ' || c === '\t') && depth === 0) {
      if (cur !== '') out.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  if (quoted || depth !== 0) throw new RuleError('unbalanced quotes or braces');
  if (cur !== '') out.push(cur);
  return out;
}

class Cursor {
  i = 0;
  constructor(readonly toks: string[]) {}
  peek(o = 0): string | undefined {
    return this.toks[this.i + o];
  }
  next(what: string): string {
    const t = this.toks[this.i++];
    if (t === undefined) throw new RuleError(`expected ${what} at the end of the rule`);
    return t;
  }
  done(): boolean {
    return this.i >= this.toks.length;
  }
}

const BINOPS: Record<string, BinOp> = { '&': '&', and: '&', '|': '|', or: '|', '^': '^', xor: '^' };
const CMP_OPS = new Set(['==', '!=', '<', '>', '<=', '>=']);
const NAT_FLAGS = /^(random|fully-random|persistent|prefix)(,(random|fully-random|persistent))*$/;
const PORT_FIELDS = new Set(['sport', 'dport']);
/** Statements whose effect depends on history, time or other hosts: never guessed. */
const UNTRACEABLE: Record<string, string> = {
  limit: 'a rate limit depends on the traffic before this packet',
  quota: 'a quota depends on the traffic before this packet',
  meter: 'a meter depends on the traffic before this packet',
  flow: 'a flowtable offload is not traced',
  notrack: 'an untracked packet skips conntrack and NAT, which the tracer does not model',
  queue: 'a queued packet is decided by a userspace program',
  redirect: 'redirect picks the address of the incoming interface, which a ruleset does not show',
  tproxy: 'tproxy hands the packet to a local socket',
  dup: 'dup copies the packet to another host',
  fwd: 'fwd sends the packet out of another device',
  synproxy: 'synproxy answers the handshake itself',
  xt: 'an iptables-nft compat expression (xt) hides its match from nft',
  osf: 'osf fingerprints the sender',
  socket: 'socket looks up local sockets',
  jhash: 'jhash depends on the hash seed',
  symhash: 'symhash depends on the hash seed',
  delete: 'deleting from a set is not traced',
  secmark: 'secmark is not traced',
  iif: 'interface indexes are not known to the tracer; match iifname instead',
  oif: 'interface indexes are not known to the tracer; match oifname instead',
};

function unquote(s: string): string {
  return s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s;
}

/** A selector at the cursor, or null when the word starts none. */
function selector(c: Cursor): Selector | null {
  const w = c.peek();
  if (w === undefined) return null;
  const field = (allowed: Record<string, Selector>, what: string): Selector => {
    c.i++;
    const f = c.next(`a field after \`${w}\``);
    const sel = Object.hasOwn(allowed, f) ? allowed[f] : undefined;
    if (!sel) throw new RuleError(`${what} ${f} is not traced`);
    return sel;
  };
  switch (w) {
    case 'ip':
      return field({ saddr: { s: 'addr', family: 4, field: 'saddr' }, daddr: { s: 'addr', family: 4, field: 'daddr' }, protocol: { s: 'l4proto', family: 4 } }, 'ip');
    case 'ip6':
      return field({ saddr: { s: 'addr', family: 6, field: 'saddr' }, daddr: { s: 'addr', family: 6, field: 'daddr' }, nexthdr: { s: 'l4proto', family: 6 } }, 'ip6');
    case 'meta':
      return field({ l4proto: { s: 'l4proto', family: null }, mark: { s: 'mark' }, nfproto: { s: 'nfproto' }, iifname: { s: 'iifname' }, oifname: { s: 'oifname' } }, 'meta');
    case 'ct':
      return field({ state: { s: 'ctstate' }, mark: { s: 'ctmark' } }, 'ct');
    case 'mark':
      c.i++;
      return { s: 'mark' };
    case 'iifname':
    case 'oifname':
      c.i++;
      return { s: w };
    case 'th':
    case 'tcp':
    case 'udp':
    case 'sctp': {
      c.i++;
      const f = c.next(`a field after \`${w}\``);
      if (!PORT_FIELDS.has(f)) throw new RuleError(`${w} ${f} is not traced`);
      return { s: 'port', field: f as 'sport' | 'dport', proto: w === 'th' ? null : w };
    }
    case 'fib': {
      c.i++;
      const f = c.next('saddr or daddr after `fib`');
      if (f !== 'saddr' && f !== 'daddr') throw new RuleError(`fib ${f} is not traced (only fib saddr/daddr type)`);
      const r = c.next('`type` after `fib`');
      if (r !== 'type') throw new RuleError(`fib ${f} ${r} is not traced (only fib saddr/daddr type)`);
      return { s: 'fib', field: f };
    }
    case 'numgen': {
      c.i++;
      const mode = c.next('a numgen mode');
      if (mode !== 'random') throw new RuleError(`numgen ${mode} depends on the packets counted before this one (only numgen random is traced)`);
      if (c.next('`mod`') !== 'mod') throw new RuleError('expected `numgen random mod N`');
      const mod = Number(c.next('the numgen modulus'));
      if (!Number.isInteger(mod) || mod < 1 || mod > 0xffffffff) throw new RuleError('numgen modulus is not a number 1…2^32-1');
      let offset = 0;
      if (c.peek() === 'offset') {
        c.i++;
        offset = Number(c.next('the numgen offset'));
        if (!Number.isInteger(offset) || offset < 0 || offset > 0xffffffff) throw new RuleError('numgen offset is not a number');
      }
      return { s: 'numgen', mod, offset };
    }
    default:
      if (Object.hasOwn(UNTRACEABLE, w)) throw new RuleError(`${w}: ${UNTRACEABLE[w]}`);
      return null;
  }
}

function number32(text: string): bigint {
  if (!/^(0x[0-9a-fA-F]{1,8}|[0-9]{1,10})$/.test(text)) throw new RuleError(`${JSON.stringify(text)} is not a 32-bit number`);
  const v = BigInt(text);
  if (v > 0xffffffffn) throw new RuleError(`${text} does not fit 32 bits`);
  return v;
}

function ops(c: Cursor, sel: Selector): { op: BinOp; v: bigint }[] {
  const out: { op: BinOp; v: bigint }[] = [];
  while (Object.hasOwn(BINOPS, c.peek() ?? '')) {
    if (sel.s !== 'mark' && sel.s !== 'ctmark') throw new RuleError('bitwise operations are traced on marks only');
    const op = BINOPS[c.next('an operator')];
    out.push({ op, v: number32(c.next('a number')) });
  }
  return out;
}

function expression(c: Cursor, first: Selector): Expr {
  const terms: Term[] = [{ sel: first, ops: ops(c, first) }];
  while (c.peek() === '.') {
    c.i++;
    const sel = selector(c);
    if (!sel) throw new RuleError(`expected a selector after \`.\`, got ${JSON.stringify(c.peek() ?? '')}`);
    terms.push({ sel, ops: ops(c, sel) });
  }
  if (terms.length > 1 && terms.some((t) => t.sel.s === 'numgen' || t.ops.length > 0)) {
    throw new RuleError('numgen or a bitwise operation inside a concatenation is not traced');
  }
  return { terms };
}

function parseKey(text: string, expr: Expr): Part[] {
  const parts = concatParts(text);
  if (parts.length !== expr.terms.length) throw new RuleError(`${JSON.stringify(text)} has ${parts.length} parts, the expression ${expr.terms.length}`);
  return parts.map((p, i) => parsePart(kindOf(expr.terms[i].sel), p));
}

function mapRef(c: Cursor, expr: Expr): MapRef {
  const t = c.next('a map');
  if (t.startsWith('@')) return { k: 'named', name: t.slice(1) };
  if (!t.startsWith('{')) throw new RuleError(`expected @map or { … }, got ${JSON.stringify(t)}`);
  return {
    k: 'anon',
    items: braceItems(t).map((item) => {
      const { key, value } = splitMapItem(item);
      if (value === null) throw new RuleError(`map item ${JSON.stringify(item)} has no \` : \``);
      return { key: parseKey(key, expr), value };
    }),
  };
}

function rhs(c: Cursor, expr: Expr): Rhs {
  const t = c.next('a value to compare with');
  if (t.startsWith('@')) return { k: 'named', name: t.slice(1) };
  if (t.startsWith('{')) return { k: 'anon', items: braceItems(t).map((item) => parseKey(splitMapItem(item).key, expr)) };
  const words = [t];
  while (c.peek() === '.' && words.length < expr.terms.length) {
    c.i++;
    words.push(c.next('a value after `.`'));
  }
  return { k: 'literal', parts: parseKey(words.join(' . '), expr) };
}

export function parseVerdict(words: string[]): Verdict {
  const [w, target] = words;
  if ((w === 'jump' || w === 'goto') && words.length === 2) return { v: w, chain: unquote(target) };
  if ((w === 'accept' || w === 'drop' || w === 'return' || w === 'continue') && words.length === 1) return { v: w };
  if (w === 'reject') return { v: 'reject' };
  if (w === 'queue') throw new RuleError(UNTRACEABLE.queue);
  throw new RuleError(`${JSON.stringify(words.join(' '))} is not a verdict`);
}

function skipNatFlags(c: Cursor): void {
  while (c.peek() !== undefined && NAT_FLAGS.test(c.peek()!)) c.i++;
}

function nat(c: Cursor, kind: 'dnat' | 'snat'): Stmt {
  if (c.peek() === 'ip' || c.peek() === 'ip6') c.i++;
  if (c.peek() === 'addr' && c.peek(1) === '.' && c.peek(2) === 'port') c.i += 3;
  if (c.next('`to`') !== 'to') throw new RuleError(`${kind} without \`to\` is not traced`);
  const first = selector(c);
  if (first) {
    if (kind === 'snat') throw new RuleError('snat to a computed address is not traced');
    const expr = expression(c, first);
    if (c.next('`map`') !== 'map') throw new RuleError('dnat to an expression is traced only through a map');
    const map = mapRef(c, expr);
    skipNatFlags(c);
    return { k: 'dnat', to: { k: 'map', expr, map } };
  }
  const words = [c.next('an address')];
  while (c.peek() === '.') {
    c.i++;
    words.push(c.next('a port'));
  }
  skipNatFlags(c);
  return kind === 'dnat' ? { k: 'dnat', to: { k: 'literal', text: words.join(' . ') } } : { k: 'snat', text: words.join(' . ') };
}

function statement(c: Cursor): Stmt | Stmt[] | null {
  const w = c.peek()!;
  switch (w) {
    case 'counter':
      c.i++;
      if (c.peek() === 'packets') c.i += 4;
      else if (c.peek() === 'name') c.i += 2;
      return null;
    case 'comment':
      c.i += 2;
      return null;
    case 'log':
      c.i++;
      while (['prefix', 'level', 'flags', 'group', 'snaplen', 'queue-threshold'].includes(c.peek() ?? '')) c.i += 2;
      return null;
    case 'accept':
    case 'drop':
    case 'continue':
    case 'return':
      c.i++;
      return { k: 'verdict', verdict: { v: w } };
    case 'reject': {
      c.i++;
      let needs: Stmt | null = null;
      if (c.peek() === 'with') {
        c.i++;
        const how = c.next('a reject type');
        if (how === 'tcp') c.next('`reset`');
        else {
          if (c.peek() === 'type') c.i++;
          c.next('an ICMP code');
        }
        // nft adds a match for what the reply needs and hides it from the listing.
        if (how === 'tcp') needs = implicit({ s: 'l4proto', family: null }, 6n);
        else if (how === 'icmp') needs = implicit({ s: 'nfproto' }, 2n);
        else if (how === 'icmpv6') needs = implicit({ s: 'nfproto' }, 10n);
      }
      return needs ? [needs, { k: 'verdict', verdict: { v: 'reject' } }] : { k: 'verdict', verdict: { v: 'reject' } };
    }
    case 'jump':
    case 'goto':
      c.i++;
      return { k: 'verdict', verdict: { v: w, chain: unquote(c.next('a chain name')) } };
    case 'masquerade':
      c.i++;
      if (c.peek() === 'to') c.i += 2;
      skipNatFlags(c);
      return { k: 'masquerade' };
    case 'dnat':
    case 'snat':
      c.i++;
      return nat(c, w);
    case 'update':
    case 'add': {
      c.i++;
      const set = c.next('a set');
      const body = c.next('{ … }');
      if (!set.startsWith('@') || !body.startsWith('{')) throw new RuleError(`${w} needs @set { … }`);
      const inner = new Cursor(tokenize(body.slice(1, -1).trim()));
      const first = selector(inner);
      if (!first) throw new RuleError(`${w} @${set.slice(1)} { ${inner.peek() ?? ''} … } is not traced`);
      const expr = expression(inner, first);
      // Per-element timeouts do not change what this packet meets.
      if (inner.peek() === 'timeout') inner.i += 2;
      if (!inner.done()) throw new RuleError(`${w} @${set.slice(1)}: unexpected ${JSON.stringify(inner.peek())}`);
      return { k: 'setadd', set: set.slice(1), expr };
    }
  }
  if (w === 'meta' && c.peek(1) === 'nftrace' && c.peek(2) === 'set') {
    c.i += 4; // tracing does not change the packet's way
    return null;
  }
  const sel = selector(c);
  if (!sel) throw new RuleError(`${JSON.stringify(w)} is not a statement the tracer knows`);
  const expr = expression(c, sel);
  const after = c.peek();
  if (after === 'set') {
    c.i++;
    if (expr.terms.length !== 1 || expr.terms[0].ops.length > 0 || (sel.s !== 'mark' && sel.s !== 'ctmark')) {
      throw new RuleError('only meta mark and ct mark are set by traced rules');
    }
    let base: Selector | bigint;
    const bsel = selector(c);
    if (bsel) {
      if (bsel.s !== 'mark' && bsel.s !== 'ctmark') throw new RuleError('a mark is set from a number, meta mark or ct mark');
      base = bsel;
    } else {
      base = number32(c.next('a value'));
    }
    return { k: 'mangle', target: sel.s, base, ops: ops(c, { s: 'mark' }) };
  }
  if (after === 'vmap') {
    c.i++;
    return { k: 'vmap', expr, map: mapRef(c, expr) };
  }
  let op: CmpOp | 'implicit' = 'implicit';
  if (after !== undefined && CMP_OPS.has(after)) {
    c.i++;
    op = after as CmpOp;
  }
  return { k: 'cmp', expr, op, rhs: rhs(c, expr) };
}

function implicit(sel: Selector, v: bigint): Stmt {
  return { k: 'cmp', expr: { terms: [{ sel, ops: [] }] }, op: 'implicit', rhs: { k: 'literal', parts: [{ t: 'range', lo: v, hi: v }] } };
}

/**
 * The statements of one rule, in order. What cannot be read becomes an `unsupported` statement
 * that ends the list: the kernel never evaluates it for a packet an earlier match turns away.
 */
export function compileRule(text: string): Stmt[] {
  const out: Stmt[] = [];
  try {
    const c = new Cursor(tokenize(text));
    while (!c.done()) {
      const s = statement(c);
      if (Array.isArray(s)) {
        // A hidden dependency is checked before everything else in the rule.
        out.unshift(...s.slice(0, -1));
        out.push(s[s.length - 1]);
      } else if (s) out.push(s);
    }
  } catch (e) {
    if (e instanceof ValueError || e instanceof RuleError) out.push({ k: 'unsupported', why: e.message });
    else throw e;
  }
  return out;
}

/** Sets a rule adds to (`update @s`, `add @s`), found without compiling it. */
export function setsUpdatedBy(text: string): string[] {
  const out: string[] = [];
  for (const word of ['update @', 'add @']) {
    let at = text.indexOf(word);
    while (at >= 0) {
      if (at === 0 || text[at - 1] === ' ') {
        const end = text.indexOf(' ', at + word.length);
        out.push(text.slice(at + word.length, end < 0 ? text.length : end));
      }
      at = text.indexOf(word, at + word.length);
    }
  }
  return out;
}
