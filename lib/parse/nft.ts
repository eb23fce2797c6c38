import { isName } from './addr.ts';
import { ParseError, hasBinary, rejectBinary, splitLines } from './errors.ts';
import { parseJsonText } from './json.ts';
import type {
  NftChain, NftCounters, NftElement, NftNumgen, NftNumgenEntry, NftRule, NftRuleset, NftSet, NftTable,
  NftVerdict, NftVerdictKind, NftWarning,
} from './nft-types.ts';

export * from './nft-types.ts';

const TEXT = 'nft list ruleset';
const JSON_FORMAT = 'nft -j list ruleset';

// Named priorities (nft(8), "PRIORITY"): the bridge family has its own scale.
export const NFT_PRIORITIES: Readonly<Record<string, number>> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100 };
const BRIDGE_PRIORITIES: Record<string, number> = { dstnat: -300, filter: -200, out: 100, srcnat: 300 };
const FAMILIES = new Set(['ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev']);
const SIMPLE_VERDICTS = new Set(['accept', 'drop', 'continue', 'return', 'reject', 'queue', 'masquerade']);
const OTHER_OBJECTS = new Set(['flowtable', 'counter', 'quota', 'ct', 'limit', 'secmark', 'synproxy', 'tunnel']);
/**
 * Words a rule can start with in nft's grammar: payload and meta selectors, statements and
 * verdicts. A line starting otherwise is not a rule nft printed.
 */
const RULE_STARTS = new Set([
  // payload protocols and headers
  'ether', 'vlan', 'arp', 'ip', 'ip6', 'icmp', 'icmpv6', 'igmp', 'tcp', 'udp', 'udplite', 'sctp', 'dccp', 'ah', 'esp', 'comp',
  'th', 'gre', 'gretap', 'geneve', 'vxlan', 'hbh', 'rt', 'rt0', 'rt2', 'srh', 'frag', 'dst', 'mh', 'exthdr', 'inner',
  // meta, conntrack and other selectors
  'meta', 'ct', 'fib', 'socket', 'osf', 'numgen', 'jhash', 'symhash', 'ipsec', 'tunnel', 'iif', 'oif', 'iifname', 'oifname',
  'iiftype', 'oiftype', 'iifgroup', 'oifgroup', 'iifkind', 'oifkind', 'mark', 'skuid', 'skgid', 'nfproto', 'l4proto',
  'protocol', 'priority', 'length', 'rtclassid', 'ibrname', 'obrname', 'ibrpvid', 'ibrvproto', 'pkttype', 'cpu', 'cgroup',
  'random', 'secpath', 'nftrace', 'time', 'day', 'hour', 'secmark', 'sdif', 'sdifname', 'broute',
  // statements and verdicts
  'counter', 'log', 'limit', 'quota', 'reject', 'masquerade', 'snat', 'dnat', 'redirect', 'notrack', 'queue', 'dup', 'fwd',
  'tproxy', 'synproxy', 'meter', 'flow', 'add', 'update', 'delete', 'accept', 'drop', 'continue', 'return', 'jump', 'goto',
  'xt', 'last', 'reset', 'set',
]);
const SET_PROPERTIES = new Set(['policy', 'gc-interval', 'auto-merge', 'counter', 'quota', 'limit', 'last', 'ct']);

function isNftName(s: string): boolean {
  return isName(unquote(s), 256);
}

// ---------------------------------------------------------------- text

/**
 * Parse `nft list ruleset` of nft 0.9 to 1.1 (also with `-a`, `-n`, `-s`, `-y`), with nft's
 * warnings merged in or not. One pass over the lines; each line is scanned a constant number
 * of times, so the work is linear in the input.
 */
export function parseNftRuleset(text: string): NftRuleset {
  rejectBinary(TEXT, text);
  const lines = splitLines(text);
  const tables: NftTable[] = [];
  const warnings: NftWarning[] = [];
  let i = 0;
  while (i < lines.length) {
    const t = lines[i].trim();
    if (t === '' || t.startsWith('#')) {
      if (t.startsWith(WARNING)) warnings.push({ line: i + 1, text: t });
      i++;
      continue;
    }
    const { body, handle } = stripTableComment(t);
    const words = body.split(' ').filter((w) => w !== '');
    if (words.length !== 4 || words[0] !== 'table' || !FAMILIES.has(words[1]) || !isNftName(words[2]) || words[3] !== '{') {
      throw new ParseError(TEXT, i + 1, lines[i], '`table <family> <name> {`');
    }
    const table: NftTable = { family: words[1], name: unquote(words[2]), line: i + 1, handle, comment: null, chains: [], sets: [], others: [] };
    i = parseTableBody(lines, i + 1, table, warnings);
    tables.push(table);
  }
  return warnings.length > 0 ? { tables, warnings } : { tables };
}

/**
 * nft's own stderr, when it is merged into the listing: `# Warning: table ip filter is managed
 * by iptables-nft, do not touch!` before a table, and warnings printed in the middle of a rule.
 */
const WARNING = '# Warning: ';

/**
 * A message nft prints on stderr while it prints a rule it cannot translate (the xtables
 * extension is missing): `XT match comment not found` (up to 1.0.7) or `# Warning: XT match
 * comment not found` (1.0.8 and later), after the rule's first words. The rule continues on
 * the next line. Returns the words before it, or null when the line does not end with one.
 */
function xtMessage(t: string): { before: string; message: string } | null {
  const at = t.lastIndexOf('XT ');
  if (at < 0 || (at > 0 && t[at - 1] !== ' ')) return null;
  const message = t.slice(at);
  if (!/^XT (match|target|watcher) [^ ]{1,64} not found$/.test(message)) return null;
  let before = t.slice(0, at).trimEnd();
  const warned = before.endsWith(WARNING.trimEnd());
  if (warned) before = before.slice(0, -WARNING.trimEnd().length).trimEnd();
  return { before, message: warned ? `${WARNING}${message}` : message };
}

function parseTableBody(lines: string[], start: number, table: NftTable, warnings: NftWarning[]): number {
  let i = start;
  const names = new Set<string>();
  while (i < lines.length) {
    const raw = lines[i];
    const { body: t, handle } = stripHandle(raw.trim());
    if (t === '') {
      i++;
      continue;
    }
    if (t.startsWith(WARNING)) {
      warnings.push({ line: i + 1, text: t });
      i++;
      continue;
    }
    if (t === '}') return i + 1;
    const words = t.split(' ').filter((w) => w !== '');
    const head = words[0];
    if (head === 'comment' && words.length >= 2) {
      table.comment = parseQuoted(t.slice(t.indexOf('"')), i + 1, raw);
      i++;
    } else if (head === 'flags' && words.length === 2 && /^[a-z,]+$/.test(words[1])) {
      i++;
    } else if ((head === 'chain' || head === 'set' || head === 'map' || head === 'meter') && words.length === 3 && isNftName(words[1]) && words[2] === '{') {
      const name = unquote(words[1]);
      const key = `${head === 'chain' ? 'chain' : 'set'}:${name}`;
      if (names.has(key)) throw new ParseError(TEXT, i + 1, raw, `a ${head} name not already used in table ${table.name}`);
      names.add(key);
      if (head === 'chain') {
        const chain: NftChain = { name, line: i + 1, handle, type: null, hook: null, priority: null, policy: null, comment: null, rules: [] };
        i = parseChainBody(lines, i + 1, chain, table.family, warnings);
        table.chains.push(chain);
      } else {
        // nft 0.9.0 lists a set the packet path adds to as `meter`: a set all the same.
        const set: NftSet = { kind: head === 'map' ? 'map' : 'set', name, line: i + 1, handle, type: '', flags: [], timeoutSeconds: null, size: null, comment: null, elements: [] };
        i = parseSetBody(lines, i + 1, set, warnings);
        table.sets.push(set);
      }
    } else if (OTHER_OBJECTS.has(head) && words.length === (head === 'ct' ? 4 : 3) && isNftName(words[words.length - 2]) && t.endsWith(' {')) {
      const name = unquote(words[words.length - 2]);
      table.others.push({ kind: head === 'ct' ? `ct ${words[1]}` : head, name, line: i + 1 });
      i = skipBlock(lines, i + 1);
    } else {
      throw new ParseError(TEXT, i + 1, raw, 'a chain, set, map or `}` in a table');
    }
  }
  throw new ParseError(TEXT, lines.length, lines[lines.length - 1] ?? '', `\`}\` closing table ${table.name}`);
}

function skipBlock(lines: string[], start: number): number {
  let depth = 1;
  for (let i = start; i < lines.length; i++) {
    const t = lines[i].trim();
    if (t === '}') depth--;
    else if (t.endsWith('{')) depth++;
    if (depth === 0) return i + 1;
  }
  throw new ParseError(TEXT, lines.length, lines[lines.length - 1] ?? '', '`}` closing a block');
}

function parseChainBody(lines: string[], start: number, chain: NftChain, family: string, warnings: NftWarning[]): number {
  let i = start;
  while (i < lines.length) {
    const raw = lines[i];
    const no = i + 1;
    let whole = raw.trim();
    if (whole === '') {
      i++;
      continue;
    }
    if (whole === '}') return i + 1;
    let xt = xtMessage(whole);
    if (xt === null && whole.startsWith(WARNING)) {
      warnings.push({ line: no, text: whole });
      i++;
      continue;
    }
    // A rule cut by nft's messages: the words before each, then the rest on the next line.
    const cut = xt !== null;
    if (xt !== null) {
      const pieces: string[] = [];
      let next = whole;
      while (xt !== null) {
        warnings.push({ line: i + 1, text: xt.message });
        if (xt.before !== '') pieces.push(xt.before);
        i++;
        if (i >= lines.length) throw new ParseError(TEXT, no, raw, "the rest of the rule after nft's message");
        next = lines[i].trim();
        xt = xtMessage(next);
      }
      if (next !== '') pieces.push(next);
      whole = pieces.join(' ');
    }
    // A chain binding spans lines: `… jump {`, the anonymous chain's rules, then `}`.
    const scan = { depth: 0, inQuote: false };
    if (opensBinding(whole) && braceDepth(whole, scan) === 1) {
      const pieces = [whole];
      while (scan.depth > 0) {
        i++;
        if (i >= lines.length) throw new ParseError(TEXT, no, raw, `\`}\` closing the anonymous chain this rule opens in chain ${chain.name}`);
        const next = lines[i].trim();
        const depth = braceDepth(next, scan);
        if (depth < 0 || (depth === 0 && next[0] !== '}')) throw new ParseError(TEXT, i + 1, lines[i], 'a rule of the anonymous chain, or `}` closing it');
        if (next !== '') pieces.push(next);
      }
      whole = joinBlock(pieces);
    }
    const { body: t, handle } = stripHandle(whole);
    if (t.startsWith('type ') && t.includes(' hook ')) {
      if (chain.type !== null || chain.rules.length > 0) throw new ParseError(TEXT, no, raw, 'a chain header only before the rules');
      parseChainHeader(t, no, raw, chain, family);
    } else if (t.startsWith('comment "') && chain.rules.length === 0 && chain.comment === null) {
      chain.comment = parseQuoted(t.slice(8), no, raw);
    } else if (t.endsWith('{') && /^(table|chain|set|map) /.test(t)) {
      throw new ParseError(TEXT, no, raw, `a rule or \`}\` closing chain ${chain.name}`);
    } else if (t === '' && cut) {
      // Every statement of the rule was one nft could not print: a rule, with nothing to show.
      chain.rules.push(parseRuleText(t, no, raw, handle));
    } else if (!RULE_STARTS.has(t.slice(0, t.indexOf(' ') < 0 ? t.length : t.indexOf(' '))) && t[0] !== '@') {
      throw new ParseError(TEXT, no, raw, 'a rule starting with a selector or statement nft prints (ip, tcp, meta, ct, counter, jump …)');
    } else {
      chain.rules.push(parseRuleText(t, no, raw, handle));
    }
    i++;
  }
  throw new ParseError(TEXT, lines.length, lines[lines.length - 1] ?? '', `\`}\` closing chain ${chain.name}`);
}

function parseChainHeader(t: string, no: number, raw: string, chain: NftChain, family: string): void {
  // `type filter hook input priority filter; policy accept;` (devices and policy optional)
  for (const part of t.split(';')) {
    const p = part.trim();
    if (p === '') continue;
    const w = p.split(' ').filter((x) => x !== '');
    if (w[0] === 'type') {
      const hookAt = w.indexOf('hook');
      const prioAt = w.indexOf('priority');
      if (w.length < 2 || hookAt !== 2 || hookAt + 1 >= w.length || prioAt < 0 || prioAt + 1 >= w.length) {
        throw new ParseError(TEXT, no, raw, '`type <type> hook <hook> [device …] priority <priority>`');
      }
      chain.type = w[1];
      chain.hook = w[3];
      chain.priority = parsePriority(w.slice(prioAt + 1).join(' '), family, no, raw);
    } else if (w[0] === 'policy' && w.length === 2) {
      chain.policy = w[1];
    } else if (w[0] === 'devices' || w[0] === 'device' || w[0] === 'flags') {
      // netdev/flowtable details: not modelled
    } else {
      throw new ParseError(TEXT, no, raw, 'chain header fields `type …`, `policy …`');
    }
  }
}

function parsePriority(s: string, family: string, no: number, raw: string): number {
  const n = toInt(s);
  if (n !== null) return n;
  const w = s.split(' ');
  const table = family === 'bridge' ? BRIDGE_PRIORITIES : NFT_PRIORITIES;
  const base = table[w[0]];
  if (base === undefined) throw new ParseError(TEXT, no, raw, 'a priority: a number or a name such as `filter`, `dstnat - 10`');
  if (w.length === 1) return base;
  const off = w.length === 3 ? toInt(w[2]) : null;
  if ((w[1] !== '+' && w[1] !== '-') || off === null) throw new ParseError(TEXT, no, raw, 'a priority offset such as `dstnat - 10`');
  return w[1] === '+' ? base + off : base - off;
}

function parseSetBody(lines: string[], start: number, set: NftSet, warnings: NftWarning[]): number {
  let i = start;
  let elementsAt: { no: number; raw: string } | null = null;
  while (i < lines.length) {
    const raw = lines[i];
    const t = raw.trim();
    if (t === '') {
      i++;
      continue;
    }
    if (t.startsWith(WARNING)) {
      warnings.push({ line: i + 1, text: t });
      i++;
      continue;
    }
    if (t === '}') {
      if (set.type === '') throw new ParseError(TEXT, i + 1, raw, `\`type\` or \`typeof\` in ${set.kind} ${set.name}`);
      if (elementsAt) checkElements(set, elementsAt.no, elementsAt.raw);
      return i + 1;
    }
    const sp = t.indexOf(' ');
    const key = sp < 0 ? t : t.slice(0, sp);
    const rest = sp < 0 ? '' : t.slice(sp + 1).trim();
    if (key === 'elements') {
      if (!rest.startsWith('= {')) throw new ParseError(TEXT, i + 1, raw, '`elements = { … }`');
      // Elements wrap over lines; gather up to the line that closes the brace.
      const startNo = i + 1;
      // Each piece is scanned once as it is added: rescanning the whole list per line made a
      // 10,000-element map quadratic.
      const scan = { depth: 1, inQuote: false };
      const pieces = [rest.slice(3)];
      let closedAt = closingBrace(pieces[0], scan);
      while (closedAt < 0) {
        i++;
        if (i >= lines.length) throw new ParseError(TEXT, startNo, raw, '`}` closing the element list');
        pieces.push(` ${lines[i].trim()}`);
        closedAt = closingBrace(pieces[pieces.length - 1], scan);
      }
      const last = pieces[pieces.length - 1];
      if (last.slice(closedAt + 1).trim() !== '') throw new ParseError(TEXT, i + 1, lines[i], 'nothing after the `}` closing the element list');
      pieces[pieces.length - 1] = last.slice(0, closedAt + 1);
      const acc = pieces.join('');
      if (elementsAt) throw new ParseError(TEXT, startNo, raw, `one element list in ${set.kind} ${set.name}`);
      set.elements = parseElements(acc.slice(0, -1), set.kind, startNo, raw);
      elementsAt = { no: startNo, raw };
    } else if (key === 'type' || key === 'typeof') {
      if (rest === '') throw new ParseError(TEXT, i + 1, raw, 'a set type');
      set.type = rest;
    } else if (key === 'flags') {
      set.flags = rest.split(',').map((f) => f.trim()).filter((f) => f !== '');
    } else if (key === 'timeout') {
      set.timeoutSeconds = parseDuration(rest, i + 1, raw);
    } else if (key === 'size') {
      // nft 1.1.4 and later add how many elements there are: `size 65535\t# count 3`.
      const hash = rest.indexOf('#');
      const n = toInt(hash < 0 ? rest : rest.slice(0, hash).trimEnd());
      const count = hash < 0 ? '' : rest.slice(hash);
      if (n === null || n < 0 || (count !== '' && !/^# count [0-9]{1,10}$/.test(count))) throw new ParseError(TEXT, i + 1, raw, 'a set size, then maybe `# count N`');
      set.size = n;
    } else if (key === 'comment') {
      set.comment = parseQuoted(rest, i + 1, raw);
    } else if (SET_PROPERTIES.has(key) && !t.endsWith('{')) {
      // policy, gc-interval, auto-merge, counter…: not modelled
    } else {
      throw new ParseError(TEXT, i + 1, raw, `a property of ${set.kind} ${set.name} or \`}\``);
    }
    i++;
  }
  throw new ParseError(TEXT, lines.length, lines[lines.length - 1] ?? '', `\`}\` closing ${set.kind} ${set.name}`);
}

/** Brace depth after `piece`, carried with quoting in `scan` from the lines before it. */
function braceDepth(piece: string, scan: { depth: number; inQuote: boolean }): number {
  for (let k = 0; k < piece.length; k++) {
    const c = piece[k];
    if (c === '"') scan.inQuote = !scan.inQuote;
    else if (!scan.inQuote && c === '{') scan.depth++;
    else if (!scan.inQuote && c === '}' && --scan.depth < 0) return scan.depth;
  }
  return scan.depth;
}

/** Whether a rule line ends by opening a chain binding: `… jump {` or `… goto {`. */
function opensBinding(t: string): boolean {
  return t === 'jump {' || t === 'goto {' || t.endsWith(' jump {') || t.endsWith(' goto {');
}

/**
 * A rule printed over several lines, as one: `jump {`, the anonymous chain's rules, `}`. The
 * rules inside are separated by `; `, as nft reads them back.
 */
function joinBlock(pieces: readonly string[]): string {
  if (pieces.length <= 2) return pieces.join(' ');
  return `${pieces[0]} ${pieces.slice(1, -1).join('; ')} ${pieces[pieces.length - 1]}`;
}

/**
 * Scan `piece` of an element list, carrying brace depth and quoting in `scan` from the pieces
 * before it: the index of the `}` that closes the list, or -1.
 */
function closingBrace(piece: string, scan: { depth: number; inQuote: boolean }): number {
  for (let k = 0; k < piece.length; k++) {
    const c = piece[k];
    if (c === '"') scan.inQuote = !scan.inQuote;
    else if (!scan.inQuote && c === '{') scan.depth++;
    else if (!scan.inQuote && c === '}' && --scan.depth === 0) return k;
  }
  return -1;
}

function parseElements(text: string, kind: 'set' | 'map', no: number, raw: string): NftElement[] {
  const out: NftElement[] = [];
  for (const part of splitTopLevel(text, ',', no, raw)) {
    const e = part.trim();
    if (e === '') throw new ParseError(TEXT, no, raw, 'an element between commas');
    out.push(parseElementText(e, kind, no, raw));
  }
  return out;
}

function parseElementText(e: string, kind: 'set' | 'map', no: number, raw: string): NftElement {
  let key = e;
  let value: string | null = null;
  if (kind === 'map') {
    const at = indexOfTopLevel(e, ' : ');
    if (at < 0) throw new ParseError(TEXT, no, raw, 'a map element `key : value`');
    key = e.slice(0, at).trim();
    value = e.slice(at + 3).trim();
  }
  let comment: string | null = null;
  const c = indexOfTopLevel(key, ' comment "');
  if (c >= 0) {
    comment = parseQuoted(key.slice(c + 9), no, raw);
    key = key.slice(0, c);
  }
  // Per-element timeouts and statements (counters, limits, quotas, ct count, last) are not
  // part of the key.
  for (const word of [' timeout ', ' expires ', ' counter ', ' limit ', ' quota ', ' ct ', ' last ']) {
    const at = indexOfTopLevel(`${key} `, word);
    if (at >= 0) key = key.slice(0, at);
  }
  return { key: key.trim(), value, comment };
}

/**
 * How many parts `a . b . c` has (concatenations join with ` . ` at top level; a part may be
 * an expression such as `fin | ack` or a quoted name), or null when a part is empty.
 */
function concatParts(s: string): number | null {
  let parts = 1;
  let partLength = 0;
  let inQuote = false;
  let depth = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    if (c === '"') inQuote = !inQuote;
    else if (!inQuote && (c === '{' || c === '(')) depth++;
    else if (!inQuote && (c === '}' || c === ')')) depth--;
    else if (!inQuote && depth === 0 && c === ' ' && s[k + 1] === '.' && s[k + 2] === ' ') {
      if (partLength === 0) return null;
      parts++;
      partLength = 0;
      k += 2;
      continue;
    }
    if (c !== ' ') partLength++;
  }
  return inQuote || depth !== 0 || partLength === 0 ? null : parts;
}

/** Each element must have as many parts as the set's type (`ipv4_addr . inet_proto . inet_service`). */
function checkElements(set: NftSet, no: number, raw: string): void {
  const colon = set.kind === 'map' ? set.type.indexOf(' : ') : -1;
  const keyType = colon < 0 ? set.type : set.type.slice(0, colon);
  const dataType = colon < 0 ? null : set.type.slice(colon + 3).trim();
  const keyParts = keyType.split(' . ').length;
  const dataParts = dataType === null ? 0 : dataType.split(' . ').length;
  for (const el of set.elements) {
    if (concatParts(el.key) !== keyParts) {
      throw new ParseError(TEXT, no, raw, `elements of ${set.kind} ${set.name} with ${keyParts} part${keyParts > 1 ? 's' : ''} (${keyType}), not ${JSON.stringify(el.key)}`);
    }
    if (el.value === null) continue;
    if (dataType === 'verdict') verdictFromWords(el.value.split(' '), no, raw);
    else if (concatParts(el.value) !== dataParts) throw new ParseError(TEXT, no, raw, `values of map ${set.name} of type ${dataType}, not ${JSON.stringify(el.value)}`);
  }
}

// ---------------------------------------------------------------- rules (text)

/** Split a rule into words at top level: `{ … }` groups and quoted strings stay whole. */
function tokenize(t: string, no: number, raw: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  let inQuote = false;
  for (let k = 0; k < t.length; k++) {
    const c = t[k];
    if (inQuote) {
      cur += c;
      if (c === '"') inQuote = false;
      continue;
    }
    if (c === '"') {
      inQuote = true;
      cur += c;
    } else if (c === '{') {
      depth++;
      cur += c;
    } else if (c === '}') {
      depth--;
      if (depth < 0) throw new ParseError(TEXT, no, raw, 'balanced `{ }` in a rule');
      cur += c;
    } else if (c === ' ' && depth === 0) {
      if (cur !== '') out.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  if (inQuote) throw new ParseError(TEXT, no, raw, 'a closing `"` in a rule');
  if (depth !== 0) throw new ParseError(TEXT, no, raw, 'balanced `{ }` in a rule');
  if (cur !== '') out.push(cur);
  return out;
}

function parseRuleText(t: string, no: number, raw: string, handle: number | null): NftRule {
  const w = tokenize(t, no, raw);
  let verdict: NftVerdict | null = null;
  let counter: NftCounters | null = null;
  let comment: string | null = null;
  let numgen: NftNumgen | null = null;
  for (let k = 0; k < w.length; k++) {
    const word = w[k];
    if (word === 'counter' && w[k + 1] === 'packets') {
      const packets = toInt(w[k + 2] ?? '');
      const bytes = w[k + 3] === 'bytes' ? toInt(w[k + 4] ?? '') : null;
      if (packets === null || bytes === null) throw new ParseError(TEXT, no, raw, '`counter packets <n> bytes <n>`');
      counter = { packets, bytes };
      k += 4;
    } else if (word === 'comment') {
      if (k + 1 >= w.length) throw new ParseError(TEXT, no, raw, 'a quoted comment after `comment`');
      comment = parseQuoted(w[k + 1], no, raw);
      k++;
    } else if (word === 'jump' || word === 'goto') {
      if (k + 1 >= w.length) throw new ParseError(TEXT, no, raw, `a chain name after \`${word}\``);
      // `jump { … }`: a chain binding, an anonymous chain with no name to go to.
      verdict = { kind: word, target: w[k + 1].startsWith('{') ? null : unquote(w[k + 1]) };
      k++;
    } else if (word === 'dnat' || word === 'snat' || word === 'redirect') {
      // `dnat to X`, `dnat ip to X`, `redirect to :port`; flags or a comment may follow.
      let j = k + 1;
      if (w[j] !== 'to' && w[j + 1] === 'to') j++;
      if (w[j] === 'to') {
        let end = j + 1;
        while (end < w.length && !isNatFlag(w[end]) && w[end] !== 'comment' && w[end] !== 'counter') end++;
        verdict = { kind: word, target: end > j + 1 ? w.slice(j + 1, end).join(' ') : null };
        // kube-proxy ≥ 1.36 picks the endpoint inside the dnat: `dnat ip to numgen … map { … }`.
        if (w[j + 1] === 'numgen') numgen = parseNumgenText(w, j + 1, no, raw);
        k = end - 1;
      } else {
        verdict = { kind: word, target: null };
      }
    } else if (word === 'vmap') {
      if (k + 1 >= w.length) throw new ParseError(TEXT, no, raw, 'a map after `vmap`');
      const m = w[k + 1];
      verdict = { kind: 'vmap', target: m.startsWith('{') ? null : m };
      k++;
    } else if (word === 'numgen') {
      numgen = parseNumgenText(w, k, no, raw);
    } else if (SIMPLE_VERDICTS.has(word)) {
      verdict = { kind: word as NftVerdictKind, target: null };
    }
  }
  return { line: no, text: t, handle, comment, counter, verdict, numgen };
}

function isNatFlag(x: string): boolean {
  return x === 'persistent' || x === 'random' || x === 'fully-random' || x.startsWith('random,') || x.startsWith('persistent,') || x.startsWith('fully-random,');
}

function parseNumgenText(w: string[], k: number, no: number, raw: string): NftNumgen | null {
  // numgen <mode> mod <n> [offset <m>] (vmap|map) { i : verdict, … }
  const mode = w[k + 1];
  const mod = w[k + 2] === 'mod' ? toInt(w[k + 3] ?? '') : null;
  if (mode === undefined || mod === null || mod <= 0) throw new ParseError(TEXT, no, raw, '`numgen <mode> mod <n>`');
  let j = k + 4;
  let offset = 0;
  if (w[j] === 'offset') {
    const o = toInt(w[j + 1] ?? '');
    if (o === null) throw new ParseError(TEXT, no, raw, 'a number after `offset`');
    offset = o;
    j += 2;
  }
  if ((w[j] !== 'vmap' && w[j] !== 'map') || !(w[j + 1] ?? '').startsWith('{')) return { mode, mod, offset, entries: [] };
  const isVmap = w[j] === 'vmap';
  const inner = w[j + 1].slice(1, -1);
  const entries: NftNumgenEntry[] = [];
  for (const part of splitTopLevel(inner, ',', no, raw)) {
    const at = part.indexOf(' : ');
    if (at < 0) throw new ParseError(TEXT, no, raw, 'numgen map entries `<index> : <verdict>`');
    const [index, last] = parseIndex(part.slice(0, at).trim(), no, raw);
    const v = part.slice(at + 3).trim();
    entries.push({ index, last, verdict: isVmap ? verdictFromWords(v.split(' '), no, raw) : { kind: 'dnat', target: v } });
  }
  return { mode, mod, offset, entries };
}

function parseIndex(s: string, no: number, raw: string): [number, number] {
  const dash = s.indexOf('-');
  const a = toInt(dash < 0 ? s : s.slice(0, dash));
  const b = dash < 0 ? a : toInt(s.slice(dash + 1));
  if (a === null || b === null) throw new ParseError(TEXT, no, raw, 'a numgen index such as `0` or `0-4`');
  return [a, b];
}

function verdictFromWords(w: string[], no: number, raw: string): NftVerdict {
  if ((w[0] === 'jump' || w[0] === 'goto') && w.length === 2) return { kind: w[0], target: w[1] };
  if (w.length >= 1 && SIMPLE_VERDICTS.has(w[0])) return { kind: w[0] as NftVerdictKind, target: null };
  throw new ParseError(TEXT, no, raw, 'a verdict (`goto <chain>`, `jump <chain>`, `accept`, `drop`…)');
}

// ---------------------------------------------------------------- text helpers

function stripHandle(t: string): { body: string; handle: number | null } {
  const at = t.lastIndexOf(' # handle ');
  if (at < 0) return { body: t, handle: null };
  const h = toInt(t.slice(at + 10).trim());
  if (h === null) return { body: t, handle: null };
  return { body: t.slice(0, at).trimEnd(), handle: h };
}

/**
 * A table line's trailing comment: nft ≥ 1.0.7 writes `# [handle N] [progname NAME]` after the
 * `{` of a table some program owns (iptables-nft, kube-proxy).
 */
function stripTableComment(t: string): { body: string; handle: number | null } {
  const at = t.indexOf(' { # ');
  if (at < 0) return stripHandle(t);
  const w = t.slice(at + 5).split(' ').filter((x) => x !== '');
  let handle: number | null = null;
  let k = 0;
  if (w[k] === 'handle' && toInt(w[k + 1] ?? '') !== null) {
    handle = toInt(w[k + 1]);
    k += 2;
  }
  if (w[k] === 'progname' && w[k + 1] !== undefined && isName(w[k + 1], 256)) k += 2;
  if (k === 0 || k !== w.length) return { body: t, handle: null };
  return { body: t.slice(0, at + 2), handle };
}

function toInt(s: string): number | null {
  if (!/^-?[0-9]{1,15}$/.test(s)) return null;
  return Number(s);
}

function unquote(s: string): string {
  return s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s;
}

/** `"text"` at the start of s → text; anything after the closing quote is ignored. */
function parseQuoted(s: string, no: number, raw: string): string {
  const t = s.trimStart();
  const end = t.indexOf('"', 1);
  if (!t.startsWith('"') || end < 0) throw new ParseError(TEXT, no, raw, 'a quoted string');
  return t.slice(1, end);
}

function splitTopLevel(s: string, sep: string, no: number, raw: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let inQuote = false;
  let from = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    if (c === '"') inQuote = !inQuote;
    else if (inQuote) continue;
    else if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === sep && depth === 0) {
      out.push(s.slice(from, k));
      from = k + 1;
    }
    if (depth < 0) throw new ParseError(TEXT, no, raw, 'balanced `{ }`');
  }
  if (inQuote || depth !== 0) throw new ParseError(TEXT, no, raw, 'balanced quotes and braces');
  out.push(s.slice(from));
  return out;
}

function indexOfTopLevel(s: string, needle: string): number {
  let inQuote = false;
  let depth = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    if (c === '"') inQuote = !inQuote;
    else if (!inQuote && c === '{') depth++;
    else if (!inQuote && c === '}') depth--;
    else if (!inQuote && depth === 0 && c === needle[0] && s.startsWith(needle, k)) return k;
  }
  return -1;
}

/** nft durations: `3h`, `1d2h3m4s`, `500ms`, `10800s`, or a bare number of seconds. */
function parseDuration(s: string, no: number, raw: string): number {
  const bare = toInt(s);
  if (bare !== null) return bare;
  const units: Record<string, number> = { d: 86400, h: 3600, m: 60, s: 1, ms: 0.001 };
  let total = 0;
  let k = 0;
  let any = false;
  while (k < s.length) {
    let j = k;
    while (j < s.length && s[j] >= '0' && s[j] <= '9') j++;
    if (j === k || j - k > 15) throw new ParseError(TEXT, no, raw, 'a duration such as `3h` or `1d2h`');
    const n = Number(s.slice(k, j));
    const unit = s.startsWith('ms', j) ? 'ms' : s[j];
    const mult = unit === undefined ? undefined : units[unit];
    if (mult === undefined) throw new ParseError(TEXT, no, raw, 'a duration unit d, h, m, s or ms');
    total += n * mult;
    k = j + unit.length;
    any = true;
  }
  if (!any) throw new ParseError(TEXT, no, raw, 'a duration');
  return total;
}

// ---------------------------------------------------------------- JSON

type J = unknown;
type JObj = Record<string, J>;

const isObj = (v: J): v is JObj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parse `nft -j list ruleset` into the same shape as parseNftRuleset. */
export function parseNftJson(text: string): NftRuleset {
  // With stderr merged, nft's notes about statements it has no JSON for come around the
  // document; blanked out, they keep every offset and line of the JSON where it was.
  const warnings: NftWarning[] = [];
  let start = 0;
  let no = 1;
  let json = '';
  for (let nl = text.indexOf('\n'); start < text.length; nl = text.indexOf('\n', start), no++) {
    const end = nl < 0 ? text.length : nl;
    const line = text.slice(start, end);
    if (JSON_NOTE.test(line)) {
      warnings.push({ line: no, text: line });
      json += ' '.repeat(line.length);
    } else json += line;
    if (nl < 0) break;
    json += '\n';
    start = nl + 1;
  }
  const doc = parseJsonText(warnings.length > 0 ? json : text, JSON_FORMAT, 'valid JSON (the output of nft -j)') as J;
  if (!isObj(doc) || !Array.isArray(doc.nftables)) {
    throw new ParseError(JSON_FORMAT, 1, text.slice(0, 200), 'an object `{"nftables": [ … ]}`');
  }
  const tables = new Map<string, NftTable>();
  const chains = new Map<string, NftChain>();
  const out: NftRuleset = { tables: [] };
  const items = doc.nftables;
  for (let i = 0; i < items.length; i++) {
    const no = i + 1;
    const item = items[i];
    const bad = (expected: string): never => {
      throw new ParseError(JSON_FORMAT, 1, JSON.stringify(item) ?? String(item), `nftables[${i}]: ${expected}`);
    };
    if (!isObj(item)) bad('an object');
    const keys = Object.keys(item as JObj);
    if (keys.length !== 1) bad('an object with one key (table, chain, set, map, rule, …)');
    const kind = keys[0];
    const v = (item as JObj)[kind];
    if (kind === 'metainfo') continue;
    if (!isObj(v)) bad(`"${kind}" to hold an object`);
    const o = v as JObj;
    const str = (k: string, optional = false): string | null => {
      const x = o[k];
      if (typeof x === 'string' && !hasBinary(x)) return x;
      if (optional && x === undefined) return null;
      return bad(`"${kind}"."${k}" as a string of text`);
    };
    const name_ = (k: string): string => {
      const x = str(k) as string;
      return isName(x, 256) ? x : bad(`"${kind}"."${k}" as a name (1-256 characters, no blanks)`);
    };
    const num = (k: string): number | null => {
      const x = o[k];
      if (x === undefined) return null;
      return typeof x === 'number' && Number.isFinite(x) ? x : bad(`"${kind}"."${k}" as a number`);
    };
    const family = str('family') as string;
    if (!FAMILIES.has(family)) bad(`"${kind}"."family" as one of ${[...FAMILIES].join(', ')}`);
    if (kind === 'table') {
      const name = name_('name');
      const key = `${family} ${name}`;
      if (tables.has(key)) bad(`a table not listed before (${key})`);
      const t: NftTable = { family, name, line: no, handle: num('handle'), comment: str('comment', true), chains: [], sets: [], others: [] };
      tables.set(key, t);
      out.tables.push(t);
      continue;
    }
    const tableName = name_('table');
    const table = tables.get(`${family} ${tableName}`) ?? bad(`table ${family} ${tableName} listed before its contents`);
    if (kind === 'chain') {
      const name = name_('name');
      if (chains.has(`${family} ${tableName} ${name}`)) bad(`a chain not listed before (${name})`);
      const chain: NftChain = {
        name, line: no, handle: num('handle'), type: str('type', true), hook: str('hook', true),
        priority: num('prio'), policy: str('policy', true), comment: str('comment', true), rules: [],
      };
      chains.set(`${family} ${tableName} ${name}`, chain);
      table.chains.push(chain);
    } else if (kind === 'set' || kind === 'map') {
      const name = name_('name');
      const type = typeText(o.type) ?? bad(`"${kind}"."type" as a string or list of strings`);
      const mapType = kind === 'map' ? (typeText(o.map) ?? bad('"map"."map" as the data type')) : null;
      const flags = o.flags === undefined ? [] : typeof o.flags === 'string' ? [o.flags] : Array.isArray(o.flags) && o.flags.every((f) => typeof f === 'string') ? (o.flags as string[]) : bad('"flags" as strings');
      const elemList = o.elem === undefined ? [] : Array.isArray(o.elem) ? o.elem : bad('"elem" as a list');
      const elements: NftElement[] = [];
      for (const el of elemList) {
        try {
          elements.push(jsonElement(el, kind));
        } catch (e) {
          if (e instanceof RenderError) bad(`an element of ${name}: ${e.message}`);
          throw e;
        }
      }
      table.sets.push({
        kind, name, line: no, handle: num('handle'), type: mapType ? `${type} : ${mapType}` : type, flags,
        timeoutSeconds: num('timeout'), size: num('size'), comment: str('comment', true), elements,
      });
    } else if (kind === 'rule') {
      const chainName = name_('chain');
      const chain = chains.get(`${family} ${tableName} ${chainName}`) ?? bad(`chain ${chainName} listed before its rules`);
      if (!Array.isArray(o.expr)) bad('"rule"."expr" as a list of statements');
      try {
        chain.rules.push(jsonRule(o.expr as J[], no, num('handle'), str('comment', true)));
      } catch (e) {
        if (e instanceof RenderError) bad(`a statement nft prints: ${e.message}`);
        throw e;
      }
    } else if (OTHER_OBJECTS.has(kind) || kind.startsWith('ct ')) {
      table.others.push({ kind, name: name_('name'), line: no });
    } else {
      bad('one of table, chain, set, map, rule, flowtable, counter, quota, ct …');
    }
  }
  if (warnings.length > 0) out.warnings = warnings;
  return out;
}

/** What nft writes to stderr for an expression or statement it cannot print as JSON. */
const JSON_NOTE = /^warning: (expr|stmt) ops [a-z0-9_ ]{1,32} have no json callback$/;

function typeText(t: J): string | null {
  if (typeof t === 'string') return t;
  if (Array.isArray(t) && t.length > 0 && t.every((x) => typeof x === 'string')) return t.join(' . ');
  // nft 1.1 writes a set declared with typeof as its expression: {"typeof": {"concat": […]}}.
  if (isObj(t) && Object.keys(t).length === 1 && t.typeof !== undefined) {
    try {
      return renderExpr(t.typeof, false);
    } catch (e) {
      if (e instanceof RenderError) return null;
      throw e;
    }
  }
  return null;
}

class RenderError extends Error {}

/** Statement keys of libnftables' JSON schema (libnftables-json(5)). */
const JSON_STATEMENTS = new Set([
  'accept', 'drop', 'continue', 'return', 'jump', 'goto', 'match', 'counter', 'mangle', 'quota', 'limit', 'fwd', 'notrack',
  'dup', 'snat', 'dnat', 'masquerade', 'redirect', 'reject', 'set', 'map', 'log', 'ct helper', 'ct timeout', 'ct expectation',
  'ct count', 'meter', 'queue', 'vmap', 'tproxy', 'synproxy', 'reset', 'secmark', 'xt', 'flow', 'last', 'inner', 'tunnel',
]);

function jsonElement(el: J, kind: 'set' | 'map'): NftElement {
  let keyJ: J = el;
  let value: string | null = null;
  if (kind === 'map') {
    if (!Array.isArray(el) || el.length !== 2) throw new RenderError('a [key, value] pair');
    keyJ = el[0];
    value = renderExpr(el[1], false);
  }
  let comment: string | null = null;
  if (isObj(keyJ) && isObj(keyJ.elem)) {
    const e = keyJ.elem;
    if (typeof e.comment === 'string') comment = e.comment;
    keyJ = e.val;
  }
  return { key: renderExpr(keyJ, false), value, comment };
}

function jsonRule(stmts: J[], no: number, handle: number | null, comment: string | null): NftRule {
  const parts: string[] = [];
  let verdict: NftVerdict | null = null;
  let counter: NftCounters | null = null;
  let numgen: NftNumgen | null = null;
  for (const s of stmts) {
    // A statement nft has no JSON for comes as the text it prints (nft 1.0.6: a chain binding).
    if (typeof s === 'string') {
      if (hasBinary(s.replaceAll('\n', ' ')) || s.trim() === '') throw new RenderError('a statement as text');
      const text = joinBlock(s.split('\n').map((l) => l.trim()).filter((l) => l !== ''));
      parts.push(text);
      const w = text.split(' ');
      if ((w[0] === 'jump' || w[0] === 'goto') && w.length > 1) verdict = { kind: w[0], target: w[1].startsWith('{') ? null : w[1] };
      continue;
    }
    if (!isObj(s) || Object.keys(s).length !== 1) throw new RenderError('a statement: an object with one key');
    const [k] = Object.keys(s);
    if (!JSON_STATEMENTS.has(k)) throw new RenderError(`a statement nft knows (match, counter, jump …), not ${JSON.stringify(k)}`);
    const v = s[k];
    parts.push(renderStmt(k, v));
    if (k === 'counter' && isObj(v) && typeof v.packets === 'number' && typeof v.bytes === 'number') {
      counter = { packets: v.packets, bytes: v.bytes };
    } else if ((k === 'jump' || k === 'goto') && isObj(v) && typeof v.target === 'string') {
      verdict = { kind: k, target: v.target };
    } else if (SIMPLE_VERDICTS.has(k)) {
      verdict = { kind: k as NftVerdictKind, target: null };
    } else if (k === 'dnat' || k === 'snat' || k === 'redirect') {
      verdict = { kind: k, target: isObj(v) ? natTarget(v) : null };
    } else if (k === 'vmap' && isObj(v)) {
      verdict = { kind: 'vmap', target: typeof v.data === 'string' ? v.data : null };
      numgen = jsonNumgen(v, true) ?? numgen;
    }
    if ((k === 'dnat' || k === 'snat') && isObj(v) && isObj(v.addr) && isObj(v.addr.map)) numgen = jsonNumgen(v.addr.map, false) ?? numgen;
  }
  let text = parts.join(' ');
  if (comment !== null) text += ` comment "${comment}"`;
  return { line: no, text, handle, comment, counter, verdict, numgen };
}

function jsonNumgen(m: JObj, isVmap: boolean): NftNumgen | null {
  if (!isObj(m.key) || !isObj(m.key.numgen)) return null;
  const ng = m.key.numgen;
  const entries: NftNumgenEntry[] = [];
  const data = isObj(m.data) && Array.isArray(m.data.set) ? m.data.set : [];
  for (const pair of data) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new RenderError('numgen map entries [index, value]');
    const [idx, val] = pair;
    let index: number;
    let last: number;
    if (typeof idx === 'number') index = last = idx;
    else if (isObj(idx) && Array.isArray(idx.range) && typeof idx.range[0] === 'number' && typeof idx.range[1] === 'number') [index, last] = [idx.range[0], idx.range[1]];
    else throw new RenderError('a numgen index');
    let verdict: NftVerdict;
    if (isVmap) {
      if (!isObj(val)) throw new RenderError('a verdict');
      const [vk] = Object.keys(val);
      const target = isObj(val[vk]) && typeof (val[vk] as JObj).target === 'string' ? ((val[vk] as JObj).target as string) : null;
      verdict = { kind: vk as NftVerdictKind, target };
    } else {
      verdict = { kind: 'dnat', target: renderExpr(val, false) };
    }
    entries.push({ index, last, verdict });
  }
  return {
    mode: typeof ng.mode === 'string' ? ng.mode : 'random',
    mod: typeof ng.mod === 'number' ? ng.mod : 0,
    offset: typeof ng.offset === 'number' ? ng.offset : 0,
    entries,
  };
}

function natTarget(v: JObj): string | null {
  if (v.addr === undefined && v.port === undefined) return null;
  return joinAddrPort(v.addr === undefined ? '' : renderExpr(v.addr, false), v.port === undefined ? null : renderExpr(v.port, false));
}

/** `ip:port`, with an IPv6 address in brackets as nft prints it (`[fd00::1]:80`), else the port would read as part of it. */
function joinAddrPort(addr: string, port: string | null): string {
  if (port === null) return addr;
  return `${addr.includes(':') && !addr.startsWith('[') ? `[${addr}]` : addr}:${port}`;
}

// Rendering JSON back into nft's own syntax, for the statements nft prints for kube-proxy
// and other common rules. Anything unknown becomes its JSON, so nothing is silently lost.

const UNQUALIFIED_META = new Set(['iif', 'oif', 'iifname', 'oifname', 'iiftype', 'oiftype', 'iifgroup', 'oifgroup']);
const BINOPS = ['&', '|', '^', '<<', '>>'];

function hex32(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

/** Marks print as 32-bit hex; this says whether an expression involves one. */
function isMarkExpr(e: J): boolean {
  if (!isObj(e)) return false;
  if (isObj(e.meta)) return e.meta.key === 'mark';
  if (isObj(e.ct)) return e.ct.key === 'mark';
  for (const op of BINOPS) if (Array.isArray(e[op])) return isMarkExpr((e[op] as J[])[0]);
  return false;
}

/** Meta keys whose values are names, which nft prints in double quotes: `oifname "lo"`. */
const NAME_META = new Set(['iifname', 'oifname', 'ibrname', 'obrname', 'iifkind', 'oifkind', 'sdifname']);

/** A name, or a set of names, as nft prints it: quoted, except a set reference. */
function quotedNames(e: J): string {
  if (typeof e === 'string') return e.startsWith('@') ? e : `"${e}"`;
  if (isObj(e) && Array.isArray(e.set)) return `{ ${e.set.map(quotedNames).join(', ')} }`;
  return renderExpr(e, false);
}

function renderExpr(e: J, hex: boolean): string {
  if (typeof e === 'string') return e;
  if (typeof e === 'number') return hex ? hex32(e) : String(e);
  if (typeof e === 'boolean') return e ? 'exists' : 'missing';
  if (Array.isArray(e)) return e.map((x) => renderExpr(x, hex)).join(',');
  if (!isObj(e)) throw new RenderError('an expression');
  const [k] = Object.keys(e);
  const v = e[k];
  if (k === 'payload' && isObj(v)) {
    if (typeof v.protocol === 'string') return `${v.protocol} ${v.field}`;
    return `@${v.base},${v.offset},${v.len}`;
  }
  if (k === 'meta' && isObj(v)) return UNQUALIFIED_META.has(String(v.key)) ? String(v.key) : `meta ${v.key}`;
  if (k === 'ct' && isObj(v)) return `ct ${v.dir ? `${v.dir} ` : ''}${v.key}`;
  if (k === 'fib' && isObj(v)) {
    const flags = Array.isArray(v.flags) ? v.flags.join(' . ') : String(v.flags ?? '');
    return `fib ${flags} ${v.result}`;
  }
  if (k === 'concat' && Array.isArray(v)) return v.map((x) => renderExpr(x, hex)).join(' . ');
  if (k === 'prefix' && isObj(v)) return `${renderExpr(v.addr, false)}/${v.len}`;
  if (k === 'range' && Array.isArray(v) && v.length === 2) return `${renderExpr(v[0], hex)}-${renderExpr(v[1], hex)}`;
  if (k === 'set') {
    const items = Array.isArray(v) ? v : [v];
    return `{ ${items.map((x) => (Array.isArray(x) && x.length === 2 ? `${renderExpr(x[0], hex)} : ${renderExpr(x[1], false)}` : renderExpr(x, hex))).join(', ')} }`;
  }
  if (k === 'elem' && isObj(v)) return renderExpr(v.val, hex);
  if (BINOPS.includes(k) && Array.isArray(v) && v.length === 2) {
    const h = hex || isMarkExpr(v[0]);
    return `${renderExpr(v[0], h)} ${k} ${renderExpr(v[1], h)}`;
  }
  if (k === 'numgen' && isObj(v)) return `numgen ${v.mode} mod ${v.mod}${v.offset ? ` offset ${v.offset}` : ''}`;
  if (k === 'map' && isObj(v)) return `${renderExpr(v.key, false)} map ${renderExpr(v.data, false)}`;
  if ((k === 'jump' || k === 'goto') && isObj(v)) return `${k} ${v.target}`;
  if (SIMPLE_VERDICTS.has(k) && v === null) return k;
  return JSON.stringify(e);
}

function renderStmt(k: string, v: J): string {
  const o = isObj(v) ? v : {};
  switch (k) {
    case 'match': {
      const hex = isMarkExpr(o.left);
      const left = renderExpr(o.left, hex);
      const right = isObj(o.left) && isObj(o.left.meta) && NAME_META.has(String(o.left.meta.key)) ? quotedNames(o.right) : renderExpr(o.right, hex);
      const leftIsBinop = isObj(o.left) && BINOPS.some((b) => b in (o.left as JObj));
      if (o.op === '==' && !leftIsBinop) return `${left} ${right}`;
      if (o.op === 'in') return `${left} ${right}`;
      return `${left} ${o.op} ${right}`;
    }
    case 'counter':
      return isObj(v) ? `counter packets ${v.packets} bytes ${v.bytes}` : `counter name ${quotedNames(v)}`;
    case 'mangle': {
      const hex = isMarkExpr(o.key);
      return `${renderExpr(o.key, hex)} set ${renderExpr(o.value, hex)}`;
    }
    case 'jump':
    case 'goto':
      return `${k} ${o.target}`;
    case 'reject': {
      if (v === null || (o.type === 'icmp' && o.expr === 'port-unreachable') || (o.type === 'icmpx' && o.expr === 'port-unreachable')) return 'reject';
      if (o.type === 'tcp reset') return 'reject with tcp reset';
      return `reject with ${o.type} ${o.expr}`;
    }
    case 'masquerade':
    case 'redirect':
    case 'dnat':
    case 'snat': {
      if (v === null) return k;
      const fam = typeof o.family === 'string' ? ` ${o.family}` : '';
      const to = o.addr !== undefined || o.port !== undefined ? ` to ${joinAddrPort(o.addr !== undefined ? renderExpr(o.addr, false) : '', o.port !== undefined ? renderExpr(o.port, false) : null)}` : '';
      const flags = o.flags === undefined ? '' : ` ${Array.isArray(o.flags) ? o.flags.join(',') : o.flags}`;
      return `${k}${fam}${to}${flags}`;
    }
    case 'vmap':
      return `${renderExpr(o.key, false)} vmap ${renderExpr(o.data, false)}`;
    case 'set':
      return `${o.op} ${o.set} { ${renderExpr(o.elem, false)} }`;
    default:
      if (SIMPLE_VERDICTS.has(k) && v === null) return k;
      return JSON.stringify({ [k]: v });
  }
}
