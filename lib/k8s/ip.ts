/**
 * IP addresses and CIDRs read the way kube-proxy and the API server read them: Go's net.ParseIP
 * and net.ParseCIDR with Go 1.16 rules, which Kubernetes keeps as ParseIPSloppy/ParseCIDRSloppy
 * (k8s.io/utils/net) for values stored before Go 1.17. Octets are decimal even with leading
 * zeros (`172.30.0.041` is .41, where inet_aton and ipaddr.js read octal .33); hex octets,
 * fewer than four parts and single-number forms are not addresses; `::ffff:a.b.c.d` is IPv4.
 * Every loop is a single pass over the text.
 */

export type ParsedIp = { family: 4; value: number } | { family: 6; bytes: Uint8Array };
export type ParsedCidr = { family: 4; network: number; prefix: number } | { family: 6; bytes: Uint8Array; prefix: number };

/** Go's dtoi limit: a number this large is rejected, so runs of digits stay cheap. */
const BIG = 0xffffff;

function decimalRun(s: string, at: number): { n: number; end: number } | null {
  let n = 0;
  let i = at;
  for (; i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57; i++) {
    n = n * 10 + (s.charCodeAt(i) - 48);
    if (n >= BIG) return null;
  }
  return i === at ? null : { n, end: i };
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function hexRun(s: string, at: number): { n: number; end: number } | null {
  let n = 0;
  let i = at;
  for (; i < s.length; i++) {
    const d = hexDigit(s.charCodeAt(i));
    if (d < 0) break;
    n = n * 16 + d;
    if (n >= BIG) return null;
  }
  return i === at ? null : { n, end: i };
}

/** Four decimal octets separated by dots, the whole text; the value as an unsigned 32-bit number. */
function parseDotted(s: string, at = 0): number | null {
  let value = 0;
  let i = at;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (s[i] !== '.') return null;
      i++;
    }
    const run = decimalRun(s, i);
    if (run === null || run.n > 255) return null;
    value = value * 256 + run.n;
    i = run.end;
  }
  return i === s.length ? value : null;
}

function parseIpv6(s: string): Uint8Array | null {
  const ip = new Uint8Array(16);
  let ellipsis = -1;
  let at = 0;
  if (s.startsWith('::')) {
    ellipsis = 0;
    at = 2;
    if (at === s.length) return ip;
  }
  let i = 0;
  while (i < 16) {
    const run = hexRun(s, at);
    if (run === null || run.n > 0xffff) return null;
    if (run.end < s.length && s[run.end] === '.') {
      // A trailing dotted quad fills the last four bytes.
      if ((ellipsis < 0 && i !== 12) || i + 4 > 16) return null;
      const v4 = parseDotted(s, at);
      if (v4 === null) return null;
      ip[i] = v4 >>> 24;
      ip[i + 1] = (v4 >>> 16) & 255;
      ip[i + 2] = (v4 >>> 8) & 255;
      ip[i + 3] = v4 & 255;
      at = s.length;
      i += 4;
      break;
    }
    ip[i] = run.n >> 8;
    ip[i + 1] = run.n & 255;
    i += 2;
    at = run.end;
    if (at === s.length) break;
    if (s[at] !== ':' || at + 1 === s.length) return null;
    at++;
    if (s[at] === ':') {
      if (ellipsis >= 0) return null;
      ellipsis = i;
      at++;
      if (at === s.length) break;
    }
  }
  if (at !== s.length) return null;
  if (i < 16) {
    if (ellipsis < 0) return null;
    const n = 16 - i;
    for (let j = i - 1; j >= ellipsis; j--) ip[j + n] = ip[j];
    for (let j = ellipsis + n - 1; j >= ellipsis; j--) ip[j] = 0;
  } else if (ellipsis >= 0) {
    return null;
  }
  return ip;
}

/** Go's To4: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is an IPv4 address. */
function mappedIpv4(bytes: Uint8Array): number | null {
  for (let j = 0; j < 10; j++) if (bytes[j] !== 0) return null;
  if (bytes[10] !== 0xff || bytes[11] !== 0xff) return null;
  return ((bytes[12] << 24) | (bytes[13] << 16) | (bytes[14] << 8) | bytes[15]) >>> 0;
}

/** Go 1.16 net.ParseIP: the first `.` or `:` decides the family; null when it is not an address. */
export function parseIpSloppy(s: string): ParsedIp | null {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '.') {
      const value = parseDotted(s);
      return value === null ? null : { family: 4, value };
    }
    if (s[i] === ':') {
      const bytes = parseIpv6(s);
      if (bytes === null) return null;
      const v4 = mappedIpv4(bytes);
      return v4 === null ? { family: 6, bytes } : { family: 4, value: v4 };
    }
  }
  return null;
}

/**
 * Go 1.16 net.ParseCIDR: address, `/`, decimal prefix length (leading zeros allowed); the
 * network has the host bits cleared. An IPv6-form CIDR whose network is IPv4-mapped is the
 * IPv4 CIDR Go prints for it (`::ffff:10.0.0.0/104` is 10.0.0.0/8).
 */
export function parseCidrSloppy(s: string): ParsedCidr | null {
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const addr = s.slice(0, slash);
  const lenText = s.slice(slash + 1);
  const run = decimalRun(lenText, 0);
  if (run === null || run.end !== lenText.length) return null;
  const v4 = parseDotted(addr);
  if (v4 !== null) {
    if (run.n > 32) return null;
    return { family: 4, network: maskIpv4(v4, run.n), prefix: run.n };
  }
  const v6 = parseIpv6(addr);
  if (v6 === null || run.n > 128) return null;
  const masked = v6.map((b, i) => {
    const bits = Math.min(8, Math.max(0, run.n - i * 8));
    return b & ((0xff00 >> bits) & 0xff);
  });
  const mapped = mappedIpv4(masked);
  return mapped === null ? { family: 6, bytes: masked, prefix: run.n } : { family: 4, network: mapped, prefix: run.n - 96 };
}

export function maskIpv4(value: number, prefix: number): number {
  return prefix === 0 ? 0 : (value & ((0xffffffff << (32 - prefix)) >>> 0)) >>> 0;
}

export function formatIpv4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** The dotted quad kube-proxy's IPv4 proxier writes for s, or null (IPv6, or not an address). */
export function canonicalIpv4(s: string): string | null {
  const ip = parseIpSloppy(s);
  return ip?.family === 4 ? formatIpv4(ip.value) : null;
}

/** `a.b.c.d/n` with the host bits cleared, or null (IPv6, or not a CIDR). */
export function canonicalIpv4Cidr(s: string): string | null {
  const c = parseCidrSloppy(s);
  return c?.family === 4 ? `${formatIpv4(c.network)}/${c.prefix}` : null;
}

/** Go's strings.TrimSpace: Unicode White_Space at both ends (unlike String.trim, not U+FEFF). */
export function goTrimSpace(s: string): string {
  const space = (c: string) => /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/.test(c);
  let start = 0;
  let end = s.length;
  while (start < end && space(s[start])) start++;
  while (end > start && space(s[end - 1])) end--;
  return s.slice(start, end);
}

/**
 * Why the API server refuses this address for an endpoint or external IP (its
 * ValidateNonSpecialIP: unspecified, loopback, link-local unicast or multicast), or null.
 */
export function specialIpProblem(ip: ParsedIp): string | null {
  if (ip.family === 4) {
    const v = ip.value;
    if (v === 0) return 'may not be unspecified (0.0.0.0)';
    if (v >>> 24 === 127) return 'may not be in the loopback range (127.0.0.0/8)';
    if (v >>> 16 === 0xa9fe) return 'may not be in the link-local range (169.254.0.0/16)';
    if (v >>> 8 === 0xe00000) return 'may not be in the link-local multicast range (224.0.0.0/24)';
    return null;
  }
  const b = ip.bytes;
  if (b.every((x) => x === 0)) return 'may not be unspecified (::)';
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return 'may not be the loopback address (::1)';
  if (b[0] === 0xfe && (b[1] & 0xc0) === 0x80) return 'may not be in the link-local range (fe80::/10)';
  if (b[0] === 0xff && (b[1] & 0x0f) === 0x02) return 'may not be in the link-local multicast range (ff02::/16)';
  return null;
}

/** Go's net.IP.String() for a 16-byte address: lower-case groups, the first longest run of 2+ zero groups as `::`. */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  let zeroStart = -1;
  let zeroLen = 0;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i >= 2 && j - i > zeroLen) {
      zeroStart = i;
      zeroLen = j - i;
    }
  }
  if (zeroStart < 0) return groups.map((g) => g.toString(16)).join(':');
  const head = groups.slice(0, zeroStart).map((g) => g.toString(16)).join(':');
  const tail = groups.slice(zeroStart + zeroLen).map((g) => g.toString(16)).join(':');
  return `${head}::${tail}`;
}

/** The text kube-proxy writes for a parsed address (Go's IP.String()). */
export function formatIp(ip: ParsedIp): string {
  return ip.family === 4 ? formatIpv4(ip.value) : formatIpv6(ip.bytes);
}

/** The text kube-proxy writes for a parsed CIDR (Go's IPNet.String()): network with host bits cleared. */
export function formatCidrParsed(c: ParsedCidr): string {
  return c.family === 4 ? `${formatIpv4(c.network)}/${c.prefix}` : `${formatIpv6(c.bytes)}/${c.prefix}`;
}

/** Canonical text of an address of either family, or null when it is not one. */
export function canonicalIp(s: string): string | null {
  const ip = parseIpSloppy(s);
  return ip === null ? null : formatIp(ip);
}

/** Canonical CIDR of either family (host bits cleared), or null when it is not one. */
export function canonicalCidr(s: string): string | null {
  const c = parseCidrSloppy(s);
  return c === null ? null : formatCidrParsed(c);
}

/** Whether `ip` lies inside `cidr` (both parsed, same family). */
export function cidrHolds(cidr: ParsedCidr, ip: ParsedIp): boolean {
  if (cidr.family === 4) return ip.family === 4 && maskIpv4(ip.value, cidr.prefix) === cidr.network;
  if (ip.family !== 6) return false;
  for (let i = 0; i < 16; i++) {
    const bits = Math.min(8, Math.max(0, cidr.prefix - i * 8));
    const mask = (0xff00 >> bits) & 0xff;
    if ((ip.bytes[i] & mask) !== cidr.bytes[i]) return false;
  }
  return true;
}

/** Address order kube-proxy's listings use: numeric, IPv4 before IPv6. */
export function compareIps(a: ParsedIp, b: ParsedIp): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.family === 4 && b.family === 4) return a.value - b.value;
  const x = (a as { bytes: Uint8Array }).bytes;
  const y = (b as { bytes: Uint8Array }).bytes;
  for (let i = 0; i < 16; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
}
