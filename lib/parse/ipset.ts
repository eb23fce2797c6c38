import { isDigits, isIpOrPrefix, isName } from './addr.ts';
import { ParseError, rejectBinary, splitLines } from './errors.ts';
import type { IpsetSet, IpsetState } from './ipset-types.ts';

/*
 * `ipset list` prints one block per set:
 *
 *   Name: KUBE-CLUSTER-IP
 *   Type: hash:ip,port
 *   Revision: 7
 *   Header: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x29bf0188
 *   Size in memory: 360
 *   References: 2
 *   Number of entries: 1
 *   Members:
 *   10.96.0.10,udp:53
 *
 * with a blank line between sets (`-t` leaves out Members). `ipset save` prints the same as
 * `create NAME TYPE OPTIONS…` and `add NAME MEMBER [EXTENSIONS…]` lines, which is also what
 * `ipset restore` reads.
 */

const FORMAT_LIST = 'ipset list';
const FORMAT_SAVE = 'ipset save';

/** Options that stand alone; every other option takes one value. */
const HEADER_FLAGS = new Set(['comment', 'counters', 'skbinfo', 'forceadd']);
const MEMBER_FLAGS = new Set(['nomatch']);

/** Split on spaces, keeping a double-quoted token (`"hello world"`) whole, quotes included. */
function tokenize(format: string, lineNo: number, line: string): string[] {
  const out: string[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && (line[i] === ' ' || line[i] === '\t')) i++;
    if (i >= n) break;
    const start = i;
    if (line[i] === '"') {
      const close = line.indexOf('"', i + 1);
      if (close < 0) throw new ParseError(format, lineNo, line, 'a closing double quote');
      i = close + 1;
      if (i < n && line[i] !== ' ' && line[i] !== '\t') throw new ParseError(format, lineNo, line, 'a space after a quoted value');
    } else {
      while (i < n && line[i] !== ' ' && line[i] !== '\t') {
        if (line[i] === '"') throw new ParseError(format, lineNo, line, 'quotes only around a whole value');
        i++;
      }
    }
    out.push(line.slice(start, i));
  }
  return out;
}

function options(format: string, lineNo: number, line: string, tokens: string[], flags: Set<string>, what: string): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let k = 0; k < tokens.length; k++) {
    const key = tokens[k];
    if (!/^[a-z][a-z0-9-]*$/.test(key) || Object.hasOwn(out, key)) {
      throw new ParseError(format, lineNo, line, `${what}: option names such as hashsize, each once (got ${JSON.stringify(key)})`);
    }
    if (flags.has(key)) {
      out[key] = true;
      continue;
    }
    const value = tokens[++k];
    if (value === undefined) throw new ParseError(format, lineNo, line, `${what}: a value after ${key}`);
    out[key] = value;
  }
  return out;
}

function checkName(format: string, lineNo: number, line: string, name: string | undefined): string {
  if (name === undefined || name.length === 0 || name.length > 31 || name.startsWith('"') || /[\s]/.test(name)) {
    throw new ParseError(format, lineNo, line, 'a set name of 1 to 31 characters');
  }
  return name;
}

function checkType(format: string, lineNo: number, line: string, type: string | undefined): string {
  if (type === undefined || !/^(hash|bitmap|list):[a-z]+(,[a-z]+)*$/.test(type)) {
    throw new ParseError(format, lineNo, line, 'a set type such as hash:ip,port or bitmap:port');
  }
  return type;
}

function isPortPart(s: string): boolean {
  // `8080`, `tcp:8080`, `icmp:echo-request`, `ipv6-icmp:128/0`
  const colon = s.indexOf(':');
  const proto = colon < 0 ? 'x' : s.slice(0, colon);
  const value = s.slice(colon + 1);
  if (!isName(proto, 16) || value.length === 0 || value.length > 32) return false;
  for (let k = 0; k < value.length; k++) {
    const c = value.charCodeAt(k);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 122) || c === 45 || c === 47)) return false;
  }
  return true;
}

function isMac(s: string): boolean {
  if (s.length !== 17) return false;
  for (let k = 0; k < 17; k++) {
    const c = s.charCodeAt(k);
    const hex = (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
    if (k % 3 === 2 ? c !== 58 : !hex) return false;
  }
  return true;
}

/** What one dimension of a set type (`ip`, `port`, `net` …) looks like in a member. */
const DIMENSIONS: Record<string, { what: string; ok: (s: string) => boolean }> = {
  ip: { what: 'an IP address', ok: isIpOrPrefix },
  net: { what: 'an address or prefix', ok: isIpOrPrefix },
  port: { what: 'a port such as tcp:8080', ok: isPortPart },
  mark: { what: 'a mark such as 0x10', ok: (s) => isDigits(s, 10) || (s.startsWith('0x') && s.length <= 10 && /^0x[0-9a-f]+$/i.test(s)) },
  mac: { what: 'a MAC address', ok: isMac },
  iface: { what: 'an interface name', ok: (s) => isName(s.startsWith('physdev:') ? s.slice(8) : s, 15) },
  set: { what: 'a set name', ok: (s) => isName(s, 31) },
};

/** A member must have one part per dimension of its set's type, each of that dimension's form. */
function checkMember(format: string, lineNo: number, line: string, set: IpsetSet, elem: string): void {
  const dims = set.type.slice(set.type.indexOf(':') + 1).split(',');
  const parts = elem.split(',');
  const fail = (why: string): never => {
    throw new ParseError(format, lineNo, line, `a member of ${set.name} (${set.type}): ${why}`);
  };
  if (parts.length !== dims.length) fail(`${dims.length} comma-separated part${dims.length > 1 ? 's' : ''} (${dims.join(',')})`);
  dims.forEach((d, k) => {
    const dim = DIMENSIONS[d];
    if (dim ? !dim.ok(parts[k]) : !isName(parts[k], 255)) fail(`${dim?.what ?? 'a value'} for ${d}, not ${JSON.stringify(parts[k])}`);
  });
}

/** Add one member line (`ELEMENT [EXTENSIONS…]`) to a set. */
function addMember(format: string, lineNo: number, line: string, set: IpsetSet, tokens: string[]): void {
  const elem = tokens[0];
  if (elem === undefined || elem.startsWith('"')) throw new ParseError(format, lineNo, line, `a member of ${set.name}`);
  checkMember(format, lineNo, line, set, elem);
  set.members.push(elem);
  if (tokens.length > 1) {
    set.memberOptions ??= {};
    // defineProperty: a member string such as __proto__ must stay a plain key.
    Object.defineProperty(set.memberOptions, elem, {
      value: options(format, lineNo, line, tokens.slice(1), MEMBER_FLAGS, 'member extensions'),
      enumerable: true, writable: true, configurable: true,
    });
  }
}

function uintValue(format: string, lineNo: number, line: string, value: string, what: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new ParseError(format, lineNo, line, `${what} as a whole number`);
  return Number(value);
}

/** Parse `ipset list [-t]` output. */
export function parseIpsetList(text: string): IpsetState {
  rejectBinary(FORMAT_LIST, text);
  const lines = splitLines(text);
  const sets: IpsetSet[] = [];
  const seen = new Set<string>();
  let i = 0;
  while (i < lines.length) {
    if (lines[i] === '') {
      i++;
      continue;
    }
    const nameLine = i;
    if (!lines[i].startsWith('Name: ')) throw new ParseError(FORMAT_LIST, i + 1, lines[i], '"Name: SETNAME" to start a set');
    const name = checkName(FORMAT_LIST, i + 1, lines[i], lines[i].slice(6));
    if (seen.has(name)) throw new ParseError(FORMAT_LIST, i + 1, lines[i], `set ${name} listed once`);
    seen.add(name);
    const set: IpsetSet = { name, type: '', header: {}, members: [] };
    i++;
    let members = false;
    const keys = new Set<string>();
    for (; i < lines.length; i++) {
      const l = lines[i];
      if (l === '' || l.startsWith('Name: ')) break;
      if (l === 'Members:') {
        members = true;
        i++;
        break;
      }
      const colon = l.indexOf(':');
      const key = colon < 0 ? '' : l.slice(0, colon);
      const value = l.slice(colon + 1).trim();
      if (keys.has(key)) throw new ParseError(FORMAT_LIST, i + 1, l, `${key} once per set`);
      keys.add(key);
      switch (key) {
        case 'Type':
          set.type = checkType(FORMAT_LIST, i + 1, l, value);
          break;
        case 'Revision':
          set.revision = uintValue(FORMAT_LIST, i + 1, l, value, 'Revision');
          break;
        case 'Header':
          set.header = options(FORMAT_LIST, i + 1, l, tokenize(FORMAT_LIST, i + 1, value), HEADER_FLAGS, 'Header');
          break;
        case 'Size in memory':
          set.sizeInMemory = uintValue(FORMAT_LIST, i + 1, l, value, 'Size in memory');
          break;
        case 'References':
          set.references = uintValue(FORMAT_LIST, i + 1, l, value, 'References');
          break;
        case 'Number of entries':
          set.entries = uintValue(FORMAT_LIST, i + 1, l, value, 'Number of entries');
          break;
        default:
          throw new ParseError(FORMAT_LIST, i + 1, l, 'Type:, Revision:, Header:, Size in memory:, References:, Number of entries: or Members:');
      }
    }
    if (set.type === '') throw new ParseError(FORMAT_LIST, nameLine + 1, lines[nameLine], `a "Type:" line for set ${name}`);
    if (members) {
      for (; i < lines.length && lines[i] !== '' && !lines[i].startsWith('Name: '); i++) {
        addMember(FORMAT_LIST, i + 1, lines[i], set, tokenize(FORMAT_LIST, i + 1, lines[i]));
      }
    }
    sets.push(set);
  }
  return { sets };
}

/** Parse `ipset save` output (also the input of `ipset restore`). */
export function parseIpsetSave(text: string): IpsetState {
  rejectBinary(FORMAT_SAVE, text);
  const lines = splitLines(text);
  const byName = new Map<string, IpsetSet>();
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.trim() === '') continue;
    const t = tokenize(FORMAT_SAVE, i + 1, l);
    if (t[0] === 'create') {
      const name = checkName(FORMAT_SAVE, i + 1, l, t[1]);
      if (byName.has(name)) throw new ParseError(FORMAT_SAVE, i + 1, l, `set ${name} created once`);
      const type = checkType(FORMAT_SAVE, i + 1, l, t[2]);
      byName.set(name, { name, type, header: options(FORMAT_SAVE, i + 1, l, t.slice(3), HEADER_FLAGS, 'create options'), members: [] });
    } else if (t[0] === 'add') {
      const name = checkName(FORMAT_SAVE, i + 1, l, t[1]);
      const set = byName.get(name);
      if (!set) throw new ParseError(FORMAT_SAVE, i + 1, l, `a "create ${name} …" line before its members`);
      addMember(FORMAT_SAVE, i + 1, l, set, t.slice(2));
    } else {
      throw new ParseError(FORMAT_SAVE, i + 1, l, '"create NAME TYPE …" or "add NAME MEMBER …"');
    }
  }
  return { sets: [...byName.values()] };
}

/** `ipset list` or `ipset save`, told apart by the first line. */
export function parseIpsetAuto(text: string): IpsetState {
  const first = splitLines(text).find((l) => l.trim() !== '') ?? '';
  return first.startsWith('Name: ') ? parseIpsetList(text) : parseIpsetSave(text);
}

function renderOptions(o: Record<string, string | true>): string[] {
  return Object.entries(o).map(([k, v]) => (v === true ? k : `${k} ${v}`));
}

function memberLine(set: IpsetSet, m: string): string {
  const o = set.memberOptions && Object.hasOwn(set.memberOptions, m) ? set.memberOptions[m] : undefined;
  return o ? [m, ...renderOptions(o)].join(' ') : m;
}

/** `ipset save` text for a state: what `ipset restore` reads. */
export function renderIpsetSave(state: IpsetState): string {
  const out: string[] = [];
  for (const s of state.sets) {
    out.push(['create', s.name, s.type, ...renderOptions(s.header)].join(' '));
    for (const m of s.members) out.push(`add ${s.name} ${memberLine(s, m)}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/** `ipset list` text for a state (fields that were not parsed are printed as 0). */
export function renderIpsetList(state: IpsetState): string {
  return state.sets
    .map((s) =>
      [
        `Name: ${s.name}`,
        `Type: ${s.type}`,
        `Revision: ${s.revision ?? 0}`,
        `Header: ${renderOptions(s.header).join(' ')}`,
        `Size in memory: ${s.sizeInMemory ?? 0}`,
        `References: ${s.references ?? 0}`,
        `Number of entries: ${s.entries ?? s.members.length}`,
        'Members:',
        ...s.members.map((m) => memberLine(s, m)),
      ].join('\n'),
    )
    .join('\n\n')
    .concat(state.sets.length ? '\n' : '');
}
