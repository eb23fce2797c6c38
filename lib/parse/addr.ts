/**
 * Address checks for the parsers and the CLI. Strict on purpose: tools print dotted quads
 * and canonical IPv6, never `1.2.3`, `01.2.3.4` or `0x7f.1`, which ipaddr.js's isValid accepts.
 * Lengths are bounded before any library call, so hostile tokens cost O(1).
 */
import ipaddr from 'ipaddr.js';

export function isIpv4(s: string): boolean {
  if (s.length < 7 || s.length > 15) return false;
  let parts = 0;
  let digits = 0;
  let value = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || value > 255) return false;
      parts++;
      digits = 0;
      value = 0;
    } else if (c >= 48 && c <= 57) {
      // `01` is octal to some readers and decimal to others; no tool prints it.
      if (++digits > 3 || (digits === 2 && value === 0)) return false;
      value = value * 10 + (c - 48);
    } else {
      return false;
    }
  }
  return parts === 4;
}

export function isIpv6(s: string): boolean {
  if (s.length < 2 || s.length > 64) return false;
  const pct = s.indexOf('%');
  const addr = pct < 0 ? s : s.slice(0, pct);
  if (pct >= 0 && !isName(s.slice(pct + 1), 15)) return false;
  if (!addr.includes(':')) return false;
  for (let i = 0; i < addr.length; i++) {
    const c = addr.charCodeAt(i);
    const ok = (c >= 48 && c <= 58) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102) || c === 46;
    if (!ok) return false;
  }
  return ipaddr.IPv6.isValid(s);
}

export function isIp(s: string): boolean {
  return isIpv4(s) || isIpv6(s);
}

/** `ADDR` or `ADDR/LEN` with LEN within the family's width. */
export function isIpOrPrefix(s: string): boolean {
  const slash = s.indexOf('/');
  if (slash < 0) return isIp(s);
  const addr = s.slice(0, slash);
  const len = s.slice(slash + 1);
  if (len.length === 0 || len.length > 3) return false;
  for (let i = 0; i < len.length; i++) if (len.charCodeAt(i) < 48 || len.charCodeAt(i) > 57) return false;
  const n = Number(len);
  return isIpv4(addr) ? n <= 32 : isIpv6(addr) && n <= 128;
}

/** Characters of names the kernel accepts for interfaces, chains and sets: printable, no blanks. */
export function isName(s: string, max: number): boolean {
  if (s.length === 0 || s.length > max) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f)) return false;
  }
  return true;
}

/** Decimal digits only, at most `max` of them. */
export function isDigits(s: string, max = 20): boolean {
  if (s.length === 0 || s.length > max) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}
