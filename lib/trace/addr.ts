/**
 * Addresses as the tracer compares them: one family-tagged BigInt per address, so IPv4 and IPv6
 * dumps share one code path. Parsed CIDRs are cached: a dump names few distinct ones, and a
 * trace tests the same rule text many times.
 */
import ipaddr from 'ipaddr.js';
import { isIpv4, isIpv6 } from '../parse/addr.ts';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  network: bigint;
  prefix: number;
}

export interface Addr {
  family: Family;
  value: bigint;
}

const cidrCache = new Map<string, Cidr | null>();
const addrCache = new Map<string, Addr | null>();
const CACHE_MAX = 100_000;

function remember<T>(cache: Map<string, T>, key: string, value: T): T {
  // Bounded: a hostile dump with millions of distinct addresses must not grow memory forever.
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(key, value);
  return value;
}

/** The address, or null when the text is not one (canonical dotted quad or IPv6 only). */
export function parseAddr(s: string): Addr | null {
  const hit = addrCache.get(s);
  if (hit !== undefined) return hit;
  let out: Addr | null = null;
  if (isIpv4(s)) {
    const p = s.split('.');
    out = { family: 4, value: BigInt(((+p[0] << 24) | (+p[1] << 16) | (+p[2] << 8) | +p[3]) >>> 0) };
  } else if (isIpv6(s) && !s.includes('%')) {
    const bytes = ipaddr.IPv6.parse(s).toByteArray();
    let v = 0n;
    for (const b of bytes) v = (v << 8n) | BigInt(b);
    out = { family: 6, value: v };
  }
  return remember(addrCache, s, out);
}

/** `ADDR` (a host route: /32 or /128) or `ADDR/LEN`; null when it is neither. */
export function parseCidr(s: string): Cidr | null {
  const hit = cidrCache.get(s);
  if (hit !== undefined) return hit;
  const slash = s.indexOf('/');
  const a = parseAddr(slash < 0 ? s : s.slice(0, slash));
  let out: Cidr | null = null;
  if (a) {
    const width = a.family === 4 ? 32 : 128;
    const lenText = slash < 0 ? String(width) : s.slice(slash + 1);
    const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
    if (len >= 0 && len <= width) {
      const shift = BigInt(width - len);
      out = { family: a.family, network: (a.value >> shift) << shift, prefix: len };
    }
  }
  return remember(cidrCache, s, out);
}

export function cidrHas(c: Cidr, a: Addr): boolean {
  if (c.family !== a.family) return false;
  const shift = BigInt((c.family === 4 ? 32 : 128) - c.prefix);
  return (a.value >> shift) << shift === c.network;
}

const LOOPBACK4 = parseCidr('127.0.0.0/8') as Cidr;
const LOOPBACK6 = parseCidr('::1/128') as Cidr;

export function isLoopback(a: Addr): boolean {
  return cidrHas(a.family === 4 ? LOOPBACK4 : LOOPBACK6, a);
}

/** `ip:port`, or `[ip]:port` for IPv6, as Go's net.JoinHostPort writes it. */
export function joinHostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The inverse of joinHostPort; null when the text has no port. */
export function splitHostPort(s: string): { host: string; port: number } | null {
  if (s.startsWith('[')) {
    const end = s.indexOf(']:');
    if (end < 0) return null;
    return { host: s.slice(1, end), port: Number(s.slice(end + 2)) };
  }
  const colon = s.lastIndexOf(':');
  if (colon < 0 || s.indexOf(':') !== colon) return null;
  return { host: s.slice(0, colon), port: Number(s.slice(colon + 1)) };
}
