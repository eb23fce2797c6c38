/**
 * Values as nft prints them (`nft list ruleset`, or the parser's rendering of `nft -j`): literals,
 * ranges, prefixes, set and map elements, read by the type of what they are compared with.
 */
import { parseIpSloppy } from '../k8s/ip.ts';

/**
 * The type of a selector's value. Numeric kinds (addresses included) compare as bigints;
 * interface names and fib types as strings; ct state as one bit of its bitmask.
 */
export type ValueKind = 'ipv4' | 'ipv6' | 'proto' | 'port' | 'u32' | 'ctstate' | 'fibtype' | 'ifname' | 'nfproto';

/** One part of a literal or element: a closed range, a (wildcard) name, or a set of bits. */
export type Part =
  | { t: 'range'; lo: bigint; hi: bigint }
  | { t: 'name'; s: string; wildcard: boolean }
  | { t: 'bits'; mask: bigint };

export type Value = bigint | string;

/** What a literal could not be read as; the caller names the rule. */
export class ValueError extends Error {}

const PROTOCOLS: Record<string, number> = {
  icmp: 1, igmp: 2, tcp: 6, udp: 17, dccp: 33, gre: 47, esp: 50, ah: 51, 'ipv6-icmp': 58, icmpv6: 58, sctp: 132, udplite: 136,
};
/** nf_tables ct state bits (NF_CT_STATE_BIT and the untracked bit). */
export const CT_STATE: Record<string, bigint> = { invalid: 1n, established: 2n, related: 4n, new: 8n, untracked: 64n };
const NFPROTO: Record<string, bigint> = { ipv4: 2n, ipv6: 10n };
const FIB_TYPES = new Set(['local']);

const DIGITS = /^[0-9]{1,20}$/;
const HEX = /^0x[0-9a-fA-F]{1,16}$/;

/** An IP address as a bigint of its family's width, or null when the text is not one. */
export function addressValue(text: string, family: 4 | 6): bigint | null {
  const ip = parseIpSloppy(text);
  if (ip === null || ip.family !== family) return null;
  if (ip.family === 4) return BigInt(ip.value >>> 0);
  let v = 0n;
  for (const b of ip.bytes) v = (v << 8n) | BigInt(b);
  return v;
}

export function familyOf(address: string): 4 | 6 | null {
  return parseIpSloppy(address)?.family ?? null;
}

function number(text: string, max: bigint): bigint | null {
  if (!DIGITS.test(text) && !HEX.test(text)) return null;
  const v = BigInt(text);
  return v <= max ? v : null;
}

function single(kind: ValueKind, text: string): bigint {
  let v: bigint | null = null;
  switch (kind) {
    case 'ipv4':
    case 'ipv6':
      v = addressValue(text, kind === 'ipv4' ? 4 : 6);
      break;
    case 'proto':
      v = Object.hasOwn(PROTOCOLS, text) ? BigInt(PROTOCOLS[text]) : number(text, 255n);
      break;
    case 'port':
      v = number(text, 65535n);
      if (v === null && /^[a-z][a-z0-9-]{0,30}$/.test(text)) throw new ValueError(`port ${text} is a service name: list the ruleset with numeric ports (nft without -S)`);
      break;
    case 'u32':
      v = number(text, 0xffffffffn);
      break;
    case 'nfproto':
      v = Object.hasOwn(NFPROTO, text) ? NFPROTO[text] : null;
      break;
    default:
      break;
  }
  if (v === null) throw new ValueError(`${JSON.stringify(text)} is not a ${kindName(kind)}`);
  return v;
}

export function kindName(kind: ValueKind): string {
  return ({
    ipv4: 'IPv4 address', ipv6: 'IPv6 address', proto: 'protocol', port: 'port', u32: 'number', ctstate: 'ct state',
    fibtype: 'fib address type', ifname: 'interface name', nfproto: 'family (ipv4, ipv6)',
  } as const)[kind];
}

/** `a`, `a-b`, `addr/len` (addresses), `"eth*"` (names), `new,established` (ct state). */
export function parsePart(kind: ValueKind, raw: string): Part {
  const text = raw.trim();
  if (kind === 'ifname') {
    const s = text.length >= 2 && text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1) : text;
    if (s === '' || s.includes('"') || s.includes(' ')) throw new ValueError(`${JSON.stringify(text)} is not an interface name`);
    const wildcard = s.endsWith('*') && !s.endsWith('\\*');
    return { t: 'name', s: wildcard ? s.slice(0, -1) : s, wildcard };
  }
  if (kind === 'fibtype') {
    if (!FIB_TYPES.has(text)) throw new ValueError(`fib type ${JSON.stringify(text)} is not traced (only local: the tracer knows the node's addresses, not its routes)`);
    return { t: 'name', s: text, wildcard: false };
  }
  if (kind === 'ctstate') {
    let mask = 0n;
    for (const name of text.split(',')) {
      const bit = Object.hasOwn(CT_STATE, name) ? CT_STATE[name] : undefined;
      if (bit === undefined) throw new ValueError(`${JSON.stringify(name)} is not a ct state`);
      mask |= bit;
    }
    return { t: 'bits', mask };
  }
  if (kind === 'ipv4' || kind === 'ipv6') {
    const slash = text.indexOf('/');
    if (slash >= 0) {
      const width = kind === 'ipv4' ? 32 : 128;
      const len = Number(text.slice(slash + 1));
      if (!DIGITS.test(text.slice(slash + 1)) || len > width) throw new ValueError(`${JSON.stringify(text)} is not a ${kindName(kind)} prefix`);
      const host = (1n << BigInt(width - len)) - 1n;
      const base = single(kind, text.slice(0, slash)) & ~host;
      return { t: 'range', lo: base, hi: base | host };
    }
  }
  // A range `a-b`: addresses and numbers hold no dash, so the first one splits.
  const dash = text.indexOf('-', 1);
  if (dash > 0 && kind !== 'proto') {
    const lo = single(kind, text.slice(0, dash));
    const hi = single(kind, text.slice(dash + 1));
    if (hi < lo) throw new ValueError(`range ${JSON.stringify(text)} runs backwards`);
    return { t: 'range', lo, hi };
  }
  const v = single(kind, text);
  return { t: 'range', lo: v, hi: v };
}

export function partMatches(part: Part, v: Value): boolean {
  if (part.t === 'name') return typeof v === 'string' && (part.wildcard ? v.startsWith(part.s) : v === part.s);
  if (typeof v !== 'bigint') return false;
  if (part.t === 'bits') return (v & part.mask) !== 0n;
  return v >= part.lo && v <= part.hi;
}

/** The key of an exact element, comparable with a packet's values. */
export function exactKey(parts: readonly Part[]): string | null {
  const keys: string[] = [];
  for (const p of parts) {
    if (p.t !== 'range' || p.lo !== p.hi) return null;
    keys.push(p.lo.toString(16));
  }
  return keys.join(' ');
}

export function valueKey(values: readonly Value[]): string {
  return values.map((v) => (typeof v === 'bigint' ? v.toString(16) : `"${v}`)).join(' ');
}

/**
 * Split an element or concatenated literal `a . b . c` into its parts. Values hold no ` . `
 * (addresses use `.` without spaces), so splitting on it is exact.
 */
export function concatParts(text: string): string[] {
  return text.split(' . ').map((s) => s.trim());
}

/** Split `{ a, b : c }` at its top-level commas (quoted names may hold commas). */
export function braceItems(token: string): string[] {
  const inner = token.slice(1, -1);
  const out: string[] = [];
  let from = 0;
  let depth = 0;
  let quoted = false;
  for (let k = 0; k < inner.length; k++) {
    const c = inner[k];
    if (c === '"') quoted = !quoted;
    else if (quoted) continue;
    else if (c === '{') depth++;
    else if (c === '}') depth--;
    else if (c === ',' && depth === 0) {
      out.push(inner.slice(from, k));
      from = k + 1;
    }
  }
  out.push(inner.slice(from));
  return out.map((s) => s.trim()).filter((s) => s !== '');
}

/** An item's key and value around ` : ` (outside quotes), and without a trailing comment. */
export function splitMapItem(item: string): { key: string; value: string | null } {
  let quoted = false;
  let key = item;
  let value: string | null = null;
  for (let k = 0; k < item.length; k++) {
    const c = item[k];
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === ' ' && item.startsWith(' : ', k)) {
      key = item.slice(0, k);
      value = item.slice(k + 3).trim();
      break;
    }
  }
  const comment = key.indexOf(' comment "');
  if (comment >= 0) key = key.slice(0, comment);
  for (const word of [' timeout ', ' expires ', ' counter ']) {
    const at = key.indexOf(word);
    if (at >= 0) key = key.slice(0, at);
  }
  return { key: key.trim(), value };
}

const TWO_32 = 1n << 32n;

/**
 * How often `numgen random mod n` yields r in [from, to]: the kernel scales a random u32 into
 * [0, n) as reciprocal_scale does, ⌊x·n / 2^32⌋, so r takes ⌈(r+1)·2^32/n⌉ − ⌈r·2^32/n⌉ of the
 * 2^32 draws. That is 1/n to within 2^-32 (exactly 1/n when n is a power of two); every share is
 * a multiple of 2^-32, so the shares of 0…n-1 add up to exactly 1 in floating point.
 */
export function numgenShare(n: number, from: number, to: number): number {
  const lo = Math.max(0, from);
  const hi = Math.min(n - 1, to);
  if (hi < lo) return 0;
  const N = BigInt(n);
  const ceilDiv = (a: bigint) => (a + N - 1n) / N;
  const draws = ceilDiv(BigInt(hi + 1) * TWO_32) - ceilDiv(BigInt(lo) * TWO_32);
  return Number(draws) / 2 ** 32;
}
