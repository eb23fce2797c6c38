/**
 * Parsers for iproute2 output: `ip -j route`, `ip -j addr` (JSON, shape-checked) and plain
 * `ip route` text (what notebooks and the workshop article show).
 *
 * JSON errors name the line JSON.parse stumbled on; shape errors name the array index and
 * field (`[3].dst`), on line 1 (ip -j prints the whole array on one line). Addresses, device
 * names and flags are checked, so text that is not ip's output is an error, not a route.
 * Pure and linear-time.
 */
import { isDigits, isIp, isIpOrPrefix, isName } from './addr.ts';
import { ParseError, hasBinary, rejectBinary, splitLines } from './errors.ts';
import { parseJsonText } from './json.ts';

export { jsonErrorOffset } from './json.ts';

export interface IpNexthop {
  gateway: string | null;
  dev: string | null;
  weight: number | null;
  flags: string[];
}

export interface IpRoute {
  /** `unicast` (ip omits it), `local`, `broadcast`, `blackhole`, `unreachable`, … */
  type: string;
  /** `default`, a prefix like `10.244.1.0/24`, or a host address like `10.244.1.2`. */
  dst: string;
  gateway: string | null;
  dev: string | null;
  /** `kernel`, `static`, `boot`, … (ip's `proto`). */
  protocol: string | null;
  scope: string | null;
  /** ip's `src`. */
  prefsrc: string | null;
  metric: number | null;
  /** null for the main table. */
  table: string | null;
  flags: string[];
  /** Multipath routes; empty otherwise. */
  nexthops: IpNexthop[];
  /** Other keys with a value, as printed: `pref` → `medium`, `expires` → `300sec` … */
  other: Record<string, string>;
}

export interface IpAddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  scope: string | null;
  label: string | null;
  broadcast: string | null;
}

export interface IpLink {
  ifindex: number;
  ifname: string;
  /** The peer or parent (`link` in JSON: e.g. the other end of a veth), or null. */
  link: string | null;
  flags: string[];
  mtu: number | null;
  operstate: string | null;
  linkType: string | null;
  address: string | null;
  addrInfo: IpAddrInfo[];
}

// ---------------------------------------------------------------------------------------------
// JSON

function parseJsonArray(text: string, format: string): unknown[] {
  const doc = parseJsonText(text, format, 'valid JSON (the output of ip -j)');
  if (!Array.isArray(doc)) throw new ParseError(format, 1, splitLines(text)[0] ?? '', 'a JSON array');
  return doc;
}

/** Field readers that report `[index].path` on a mismatch. */
class Shape {
  constructor(
    readonly format: string,
    readonly index: number,
  ) {}

  fail(path: string, want: string, got: unknown): never {
    const shown = got === undefined ? 'undefined' : JSON.stringify(got) ?? String(got);
    throw new ParseError(this.format, 1, shown, `[${this.index}]${path} to be ${want}`);
  }

  obj(v: unknown, path: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'an object', v);
    return v as Record<string, unknown>;
  }

  str(o: Record<string, unknown>, key: string, path: string): string {
    const v = o[key];
    if (typeof v !== 'string') this.fail(`${path}.${key}`, 'a string', v);
    if (hasBinary(v as string)) this.fail(`${path}.${key}`, 'a string without control characters', v);
    return v as string;
  }

  /** A string field that must pass `ok` (an address, a device name …). */
  checked(o: Record<string, unknown>, key: string, path: string, want: string, ok: (v: string) => boolean): string {
    const v = this.str(o, key, path);
    if (!ok(v)) this.fail(`${path}.${key}`, want, v);
    return v;
  }

  optChecked(o: Record<string, unknown>, key: string, path: string, want: string, ok: (v: string) => boolean): string | null {
    return o[key] === undefined ? null : this.checked(o, key, path, want, ok);
  }

  optStr(o: Record<string, unknown>, key: string, path: string): string | null {
    return o[key] === undefined ? null : this.str(o, key, path);
  }

  num(o: Record<string, unknown>, key: string, path: string): number {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(`${path}.${key}`, 'a number', v);
    return v as number;
  }

  optNum(o: Record<string, unknown>, key: string, path: string): number | null {
    return o[key] === undefined ? null : this.num(o, key, path);
  }

  strings(o: Record<string, unknown>, key: string, path: string): string[] {
    const v = o[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) this.fail(`${path}.${key}`, 'an array of strings', v);
    (v as unknown[]).forEach((x, k) => {
      if (typeof x !== 'string' || !isName(x, 64)) this.fail(`${path}.${key}[${k}]`, 'a word', x);
    });
    return v as string[];
  }

  array(o: Record<string, unknown>, key: string, path: string): unknown[] {
    const v = o[key];
    if (v === undefined) return [];
    if (!Array.isArray(v)) this.fail(`${path}.${key}`, 'an array', v);
    return v as unknown[];
  }
}

const ROUTE_JSON_KEYS = new Set(['type', 'dst', 'gateway', 'dev', 'protocol', 'scope', 'prefsrc', 'metric', 'table', 'flags', 'nexthops']);

/** String and number fields not otherwise read, as text. */
function scalars(sh: Shape, o: Record<string, unknown>, skip: Set<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) {
    if (skip.has(k) || (typeof v !== 'string' && typeof v !== 'number')) continue;
    if (hasBinary(k) || (typeof v === 'string' && hasBinary(v))) sh.fail(`.${k}`, 'text', v);
    // defineProperty: a key such as __proto__ must stay a plain key.
    Object.defineProperty(out, k, { value: String(v), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

const ROUTE_TYPES = new Set(['unicast', 'local', 'broadcast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'anycast', 'xresolve']);
const isWord = (v: string) => isName(v, 64);
const isDst = (v: string) => v === 'default' || isIpOrPrefix(v);
const isDev = (v: string) => isName(v, 15);
const DST = '"default" or an address or prefix';
const ADDR = 'an IP address';
const DEV = 'a device name (1-15 characters, no blanks)';

/** Parse `ip -j route` (any table, `-4`/`-6`, `-d`). */
export function parseIpRouteJson(text: string): IpRoute[] {
  const format = 'ip -j route';
  return parseJsonArray(text, format).map((item, index) => {
    const sh = new Shape(format, index);
    const o = sh.obj(item, '');
    // `table` is a name (`local`) or, for unnamed tables, a number: keep it as text.
    const table = typeof o.table === 'number' ? String(o.table) : sh.optChecked(o, 'table', '', 'a table name or number', isWord);
    return {
      type: sh.optChecked(o, 'type', '', 'a route type', (v) => ROUTE_TYPES.has(v)) ?? 'unicast',
      dst: sh.checked(o, 'dst', '', DST, isDst),
      gateway: sh.optChecked(o, 'gateway', '', ADDR, isIp),
      dev: sh.optChecked(o, 'dev', '', DEV, isDev),
      protocol: sh.optChecked(o, 'protocol', '', 'a protocol name', isWord),
      scope: sh.optChecked(o, 'scope', '', 'a scope name', isWord),
      prefsrc: sh.optChecked(o, 'prefsrc', '', ADDR, isIp),
      metric: sh.optNum(o, 'metric', ''),
      table: table === 'main' ? null : table,
      flags: sh.strings(o, 'flags', ''),
      nexthops: sh.array(o, 'nexthops', '').map((nh, k) => {
        const p = `.nexthops[${k}]`;
        const h = sh.obj(nh, p);
        return {
          gateway: sh.optChecked(h, 'gateway', p, ADDR, isIp), dev: sh.optChecked(h, 'dev', p, DEV, isDev),
          weight: sh.optNum(h, 'weight', p), flags: sh.strings(h, 'flags', p),
        };
      }),
      other: scalars(sh, o, ROUTE_JSON_KEYS),
    };
  });
}

/** Parse `ip -j addr` (links with their addresses). */
export function parseIpAddrJson(text: string): IpLink[] {
  const format = 'ip -j addr';
  return parseJsonArray(text, format).map((item, index) => {
    const sh = new Shape(format, index);
    const o = sh.obj(item, '');
    const ifindex = sh.num(o, 'ifindex', '');
    if (!Number.isInteger(ifindex) || ifindex < 1) sh.fail('.ifindex', 'an interface index (a whole number ≥ 1)', ifindex);
    return {
      ifindex,
      ifname: sh.checked(o, 'ifname', '', DEV, isDev),
      link: sh.optChecked(o, 'link', '', DEV, isDev),
      flags: sh.strings(o, 'flags', ''),
      mtu: sh.optNum(o, 'mtu', ''),
      operstate: sh.optChecked(o, 'operstate', '', 'an operational state', isWord),
      linkType: sh.optChecked(o, 'link_type', '', 'a link type', isWord),
      address: sh.optChecked(o, 'address', '', 'a link-layer address', (v) => isName(v, 100)),
      addrInfo: sh.array(o, 'addr_info', '').map((a, k) => {
        const p = `.addr_info[${k}]`;
        const ai = sh.obj(a, p);
        const family = sh.checked(ai, 'family', p, 'an address family', isWord);
        const inet = family === 'inet' || family === 'inet6';
        const prefixlen = sh.num(ai, 'prefixlen', p);
        if (!Number.isInteger(prefixlen) || prefixlen < 0 || prefixlen > 128) sh.fail(`${p}.prefixlen`, 'a prefix length 0-128', prefixlen);
        return {
          family,
          local: sh.checked(ai, 'local', p, ADDR, inet ? isIp : (v) => isName(v, 100)),
          prefixlen,
          scope: sh.optChecked(ai, 'scope', p, 'a scope name', isWord),
          label: sh.optChecked(ai, 'label', p, 'a label', (v) => isName(v, 15)),
          broadcast: sh.optChecked(ai, 'broadcast', p, ADDR, inet ? isIp : (v) => isName(v, 100)),
        };
      }),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Plain text `ip route`

/** Keywords followed by one value, as iproute2's print_route writes them. */
const ROUTE_KEYS = new Set([
  'via', 'dev', 'proto', 'scope', 'src', 'from', 'metric', 'table', 'pref', 'weight', 'expires', 'error', 'realm', 'realms',
  'nhid', 'tos', 'dsfield', 'mark', 'iif', 'as', 'encap', 'ttl-propagate', 'uid', 'onlink-weight',
  // print_rta_metrics: each may carry `lock` before its value.
  'mtu', 'advmss', 'rtt', 'rttvar', 'reordering', 'window', 'cwnd', 'ssthresh', 'hoplimit', 'initcwnd', 'features',
  'rto_min', 'initrwnd', 'quickack', 'congctl', 'fastopen_no_cookie',
]);
const METRICS = new Set(['mtu', 'advmss', 'rtt', 'rttvar', 'reordering', 'window', 'cwnd', 'ssthresh', 'hoplimit', 'initcwnd', 'features', 'rto_min', 'initrwnd', 'quickack', 'congctl', 'fastopen_no_cookie']);
/** Words print_rt_flags writes on their own. */
const ROUTE_FLAGS = new Set(['dead', 'onlink', 'pervasive', 'offload', 'trap', 'notify', 'linkdown', 'unresolved', 'rt_offload', 'rt_trap', 'rt_offload_failed']);
const NUMERIC_KEYS = new Set(['metric', 'weight', 'nhid']);

/** Parse plain `ip route` / `ip route show table all` text. */
export function parseIpRoute(text: string): IpRoute[] {
  const format = 'ip route';
  rejectBinary(format, text);
  const routes: IpRoute[] = [];
  const lines = splitLines(text);
  for (let idx = 0; idx < lines.length; idx++) {
    const lineNo = idx + 1;
    const line = lines[idx];
    const fail = (expected: string): never => {
      throw new ParseError(format, lineNo, line, expected);
    };
    const ws = line.split(/[ \t]/).filter((w) => w.length > 0);
    if (ws.length === 0) continue;
    const indented = line[0] === ' ' || line[0] === '\t';
    if (indented && ws[0] === 'nh_info') {
      // `ip -d route` shows the nexthop object of an `nhid` route on its own line.
      const last = routes[routes.length - 1];
      if (!last || last.other.nhid === undefined || last.other.nh_info !== undefined) fail('"nh_info" only after a route with nhid');
      last!.other.nh_info = ws.slice(1).join(' ');
      continue;
    }
    const nexthopLine = ws[0] === 'nexthop' && indented;
    let i = 0;
    let route: IpRoute;
    let nh: IpNexthop | null = null;
    if (nexthopLine) {
      const last = routes[routes.length - 1];
      if (!last) fail('a route before its "nexthop" line');
      nh = { gateway: null, dev: null, weight: null, flags: [] };
      last!.nexthops.push(nh);
      route = last!;
      i = 1;
    } else {
      route = {
        type: 'unicast', dst: '', gateway: null, dev: null, protocol: null, scope: null, prefsrc: null,
        metric: null, table: null, flags: [], nexthops: [], other: {},
      };
      if (ROUTE_TYPES.has(ws[0])) {
        route.type = ws[0];
        i = 1;
      }
      const dst = ws[i++];
      if (dst === undefined || !isDst(dst)) fail(`a destination (${DST}) to start a route`);
      route.dst = dst!;
      routes.push(route);
    }
    const seen = new Set<string>();
    while (i < ws.length) {
      const k = ws[i++];
      if (seen.has(k)) fail(`"${k}" once per ${nh ? 'nexthop' : 'route'}`);
      seen.add(k);
      if (!ROUTE_KEYS.has(k)) {
        if (!ROUTE_FLAGS.has(k)) fail(`a route keyword (via, dev, proto, scope, src, metric …) or flag (onlink, linkdown …), not ${JSON.stringify(k)}`);
        (nh ?? route).flags.push(k);
        continue;
      }
      let v = ws[i++];
      if (v === undefined) fail(`a value after "${k}"`);
      // `via inet6 fe80::1`, `as to 10.1.1.1`, `mtu lock 1400`: qualifiers kept only where they mean something.
      if ((k === 'via' && (v === 'inet' || v === 'inet6')) || (k === 'as' && v === 'to')) {
        v = ws[i++];
        if (v === undefined) fail(`a value after "${k}"`);
      } else if (METRICS.has(k) && v === 'lock') {
        const locked = ws[i++];
        if (locked === undefined) fail(`a value after "${k} lock"`);
        v = `lock ${locked}`;
      } else if (k === 'encap') {
        // `encap mpls 200/300`, `encap ip id 1 src … dst …`: the tunnel's words, up to via or dev.
        const words = [v];
        while (i < ws.length && ws[i] !== 'via' && ws[i] !== 'dev') words.push(ws[i++]);
        v = words.join(' ');
      }
      const value = v!;
      if (NUMERIC_KEYS.has(k) && !isDigits(value, 15)) fail(`a number after "${k}", not ${JSON.stringify(value)}`);
      if ((k === 'via' || k === 'src' || k === 'as') && !isIp(value)) fail(`an IP address after "${k}", not ${JSON.stringify(value)}`);
      if (k === 'from' && !isIpOrPrefix(value)) fail(`an address or prefix after "from", not ${JSON.stringify(value)}`);
      if ((k === 'dev' || k === 'iif') && !isDev(value)) fail(`${DEV} after "${k}"`);
      if (nh) {
        if (k === 'via') nh.gateway = value;
        else if (k === 'dev') nh.dev = value;
        else if (k === 'weight') nh.weight = Number(value);
        else nh.flags.push(`${k} ${value}`);
        continue;
      }
      switch (k) {
        case 'via': route.gateway = value; break;
        case 'dev': route.dev = value; break;
        case 'proto': route.protocol = value; break;
        case 'scope': route.scope = value; break;
        case 'src': route.prefsrc = value; break;
        case 'metric': route.metric = Number(value); break;
        case 'table': route.table = value === 'main' ? null : value; break;
        default: route.other[k] = value;
      }
    }
  }
  return routes;
}

// ---------------------------------------------------------------------------------------------
// Rendering, so a parsed table can be written back and tests can check the round trip.

/** `ip route` text for routes, in the order print_route writes the fields. */
export function renderIpRoute(routes: readonly IpRoute[]): string {
  const out: string[] = [];
  for (const r of routes) {
    const w: string[] = [];
    if (r.type !== 'unicast') w.push(r.type);
    w.push(r.dst);
    if (r.gateway !== null) w.push('via', r.gateway);
    if (r.dev !== null) w.push('dev', r.dev);
    if (r.table !== null) w.push('table', r.table);
    if (r.protocol !== null) w.push('proto', r.protocol);
    if (r.scope !== null) w.push('scope', r.scope);
    if (r.prefsrc !== null) w.push('src', r.prefsrc);
    if (r.metric !== null) w.push('metric', String(r.metric));
    for (const [k, v] of Object.entries(r.other)) if (k !== 'nh_info') w.push(k, v);
    w.push(...r.flags);
    out.push(w.join(' '));
    if (r.other.nh_info !== undefined) out.push(`\tnh_info ${r.other.nh_info}`);
    for (const h of r.nexthops) {
      const n = ['\tnexthop'];
      if (h.gateway !== null) n.push('via', h.gateway);
      if (h.dev !== null) n.push('dev', h.dev);
      if (h.weight !== null) n.push('weight', String(h.weight));
      n.push(...h.flags);
      out.push(n.join(' '));
    }
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

function compact(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && !(Array.isArray(v) && v.length === 0)));
}

/** `ip -j route` JSON for routes. */
export function renderIpRouteJson(routes: readonly IpRoute[]): string {
  return JSON.stringify(routes.map((r) => ({
    ...r.other,
    ...compact({
      type: r.type, dst: r.dst, gateway: r.gateway, dev: r.dev, protocol: r.protocol, scope: r.scope, prefsrc: r.prefsrc,
      metric: r.metric, table: r.table, flags: r.flags,
      nexthops: r.nexthops.map((h) => compact({ gateway: h.gateway, dev: h.dev, weight: h.weight, flags: h.flags })),
    }),
  })));
}

/** `ip -j addr` JSON for links. */
export function renderIpAddrJson(links: readonly IpLink[]): string {
  return JSON.stringify(links.map((l) => ({
    ...compact({ ifindex: l.ifindex, ifname: l.ifname, link: l.link, mtu: l.mtu, operstate: l.operstate, link_type: l.linkType, address: l.address }),
    flags: l.flags,
    addr_info: l.addrInfo.map((a) => compact({ family: a.family, local: a.local, prefixlen: a.prefixlen, scope: a.scope, label: a.label, broadcast: a.broadcast })),
  })));
}
