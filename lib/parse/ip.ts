/**
 * Parsers for iproute2 output: `ip -j route`, `ip -j addr` (JSON, shape-checked) and plain
 * `ip route` text (what notebooks and the workshop article show).
 *
 * JSON errors name the line JSON.parse stumbled on; shape errors name the array index and
 * field (`[3].dst`), on line 1 (ip -j prints the whole array on one line).
 * Pure and linear-time.
 */
import { ParseError, splitLines } from './errors.ts';

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

/**
 * Where JSON.parse failed, as an offset: Node's messages do not always say. A small
 * iterative syntax scan (no recursion, so deep nesting cannot overflow the stack).
 */
export function jsonErrorOffset(s: string): number {
  const n = s.length;
  const stack: number[] = []; // 91 '[' or 123 '{'
  // 0 value, 1 value-or-']', 2 key-or-'}', 3 key, 4 colon, 5 after-value
  let state = 0;
  let i = 0;
  const isWs = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;
  const isDigit = (c: number) => c >= 48 && c <= 57;
  const scanString = (): number => {
    // s[i] is '"'; returns the index after the closing quote, or -(error offset) - 1.
    let j = i + 1;
    while (j < n) {
      const c = s.charCodeAt(j);
      if (c === 34) return j + 1;
      if (c < 32) return -j - 1;
      if (c === 92) {
        const e = s[j + 1];
        if (e === undefined) return -n - 1;
        if (e === 'u') {
          for (let k = 2; k < 6; k++) {
            const h = s.charCodeAt(j + k);
            const hex = isDigit(h) || (h >= 65 && h <= 70) || (h >= 97 && h <= 102);
            if (!hex) return -(Number.isNaN(h) ? n : j + k) - 1;
          }
          j += 6;
          continue;
        }
        if ('"\\/bfnrt'.indexOf(e) < 0) return -(j + 1) - 1;
        j += 2;
        continue;
      }
      j++;
    }
    return -n - 1;
  };
  const scanNumber = (): number => {
    let j = i;
    if (s[j] === '-') j++;
    if (s[j] === '0') j++;
    else if (isDigit(s.charCodeAt(j))) while (isDigit(s.charCodeAt(j))) j++;
    else return -j - 1;
    if (s[j] === '.') {
      j++;
      if (!isDigit(s.charCodeAt(j))) return -j - 1;
      while (isDigit(s.charCodeAt(j))) j++;
    }
    if (s[j] === 'e' || s[j] === 'E') {
      j++;
      if (s[j] === '+' || s[j] === '-') j++;
      if (!isDigit(s.charCodeAt(j))) return -j - 1;
      while (isDigit(s.charCodeAt(j))) j++;
    }
    return j;
  };
  while (true) {
    while (i < n && isWs(s.charCodeAt(i))) i++;
    if (i >= n) return stack.length === 0 && state === 5 ? -1 : n;
    const c = s.charCodeAt(i);
    if (state === 1 && c === 93) {
      stack.pop();
      i++;
      state = 5;
      continue;
    }
    if (state === 2 && c === 125) {
      stack.pop();
      i++;
      state = 5;
      continue;
    }
    if (state === 0 || state === 1) {
      if (c === 123 || c === 91) {
        stack.push(c);
        i++;
        state = c === 123 ? 2 : 1;
        continue;
      }
      let end: number;
      if (c === 34) end = scanString();
      else if (c === 45 || isDigit(c)) end = scanNumber();
      else {
        const lit = s.startsWith('true', i) ? 4 : s.startsWith('false', i) ? 5 : s.startsWith('null', i) ? 4 : 0;
        if (lit === 0) return i;
        end = i + lit;
      }
      if (end < 0) return -end - 1;
      i = end;
      state = 5;
      continue;
    }
    if (state === 2 || state === 3) {
      if (c !== 34) return i;
      const end = scanString();
      if (end < 0) return -end - 1;
      i = end;
      state = 4;
      continue;
    }
    if (state === 4) {
      if (c !== 58) return i;
      i++;
      state = 0;
      continue;
    }
    // state 5: after a value
    const top = stack[stack.length - 1];
    if (top === undefined) return i;
    if (c === 44) state = top === 91 ? 0 : 3;
    else if ((c === 93 && top === 91) || (c === 125 && top === 123)) {
      stack.pop();
      state = 5;
    } else return i;
    i++;
  }
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  let from = 0;
  while (true) {
    const nl = text.indexOf('\n', from);
    if (nl < 0 || nl >= offset) return line;
    line++;
    from = nl + 1;
  }
}

function parseJsonArray(text: string, format: string): unknown[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    const off = jsonErrorOffset(text);
    const lines = splitLines(text);
    const line = Math.min(lineAt(text, off < 0 ? text.length : off), Math.max(1, lines.length));
    throw new ParseError(format, line, lines[line - 1] ?? '', 'valid JSON (the output of ip -j)');
  }
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
    return v as string;
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
      if (typeof x !== 'string') this.fail(`${path}.${key}[${k}]`, 'a string', x);
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
function scalars(o: Record<string, unknown>, skip: Set<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) {
    if (!skip.has(k) && (typeof v === 'string' || typeof v === 'number')) out[k] = String(v);
  }
  return out;
}

/** Parse `ip -j route` (any table, `-4`/`-6`, `-d`). */
export function parseIpRouteJson(text: string): IpRoute[] {
  const format = 'ip -j route';
  return parseJsonArray(text, format).map((item, index) => {
    const sh = new Shape(format, index);
    const o = sh.obj(item, '');
    // `table` is a name (`local`) or, for unnamed tables, a number: keep it as text.
    const table = typeof o.table === 'number' ? String(o.table) : sh.optStr(o, 'table', '');
    return {
      type: sh.optStr(o, 'type', '') ?? 'unicast',
      dst: sh.str(o, 'dst', ''),
      gateway: sh.optStr(o, 'gateway', ''),
      dev: sh.optStr(o, 'dev', ''),
      protocol: sh.optStr(o, 'protocol', ''),
      scope: sh.optStr(o, 'scope', ''),
      prefsrc: sh.optStr(o, 'prefsrc', ''),
      metric: sh.optNum(o, 'metric', ''),
      table: table === 'main' ? null : table,
      flags: sh.strings(o, 'flags', ''),
      nexthops: sh.array(o, 'nexthops', '').map((nh, k) => {
        const p = `.nexthops[${k}]`;
        const h = sh.obj(nh, p);
        return {
          gateway: sh.optStr(h, 'gateway', p), dev: sh.optStr(h, 'dev', p),
          weight: sh.optNum(h, 'weight', p), flags: sh.strings(h, 'flags', p),
        };
      }),
      other: scalars(o, ROUTE_JSON_KEYS),
    };
  });
}

/** Parse `ip -j addr` (links with their addresses). */
export function parseIpAddrJson(text: string): IpLink[] {
  const format = 'ip -j addr';
  return parseJsonArray(text, format).map((item, index) => {
    const sh = new Shape(format, index);
    const o = sh.obj(item, '');
    return {
      ifindex: sh.num(o, 'ifindex', ''),
      ifname: sh.str(o, 'ifname', ''),
      link: sh.optStr(o, 'link', ''),
      flags: sh.strings(o, 'flags', ''),
      mtu: sh.optNum(o, 'mtu', ''),
      operstate: sh.optStr(o, 'operstate', ''),
      linkType: sh.optStr(o, 'link_type', ''),
      address: sh.optStr(o, 'address', ''),
      addrInfo: sh.array(o, 'addr_info', '').map((a, k) => {
        const p = `.addr_info[${k}]`;
        const ai = sh.obj(a, p);
        return {
          family: sh.str(ai, 'family', p),
          local: sh.str(ai, 'local', p),
          prefixlen: sh.num(ai, 'prefixlen', p),
          scope: sh.optStr(ai, 'scope', p),
          label: sh.optStr(ai, 'label', p),
          broadcast: sh.optStr(ai, 'broadcast', p),
        };
      }),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Plain text `ip route`

const ROUTE_TYPES = new Set(['unicast', 'local', 'broadcast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'anycast']);
/** Keywords followed by one value; other words (`onlink`, `linkdown`) are flags. */
const ROUTE_KEYS = new Set(['via', 'dev', 'proto', 'scope', 'src', 'metric', 'table', 'pref', 'mtu', 'advmss', 'weight', 'expires', 'error', 'realm', 'realms', 'hoplimit', 'initcwnd', 'initrwnd', 'rtt', 'rttvar', 'quickack', 'congctl', 'features', 'ssthresh', 'window', 'nhid', 'tos', 'dsfield', 'onlink-weight']);

/** Parse plain `ip route` / `ip route show table all` text. */
export function parseIpRoute(text: string): IpRoute[] {
  const format = 'ip route';
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
    const nexthopLine = ws[0] === 'nexthop' && (line[0] === ' ' || line[0] === '\t');
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
      if (i >= ws.length || ROUTE_KEYS.has(ws[i])) fail('a destination ("default" or a prefix)');
      route.dst = ws[i++];
      routes.push(route);
    }
    while (i < ws.length) {
      const k = ws[i++];
      if (!ROUTE_KEYS.has(k)) {
        (nh ?? route).flags.push(k);
        continue;
      }
      let v = ws[i++];
      if (v === undefined) fail(`a value after "${k}"`);
      // `via inet6 fe80::1`, `mtu lock 1400`: skip the qualifier.
      if ((k === 'via' && (v === 'inet' || v === 'inet6')) || (k === 'mtu' && v === 'lock')) {
        v = ws[i++];
        if (v === undefined) fail(`a value after "${k}"`);
      }
      const number = () => {
        if (!/^\d{1,15}$/.test(v!)) fail(`a number after "${k}", not ${JSON.stringify(v)}`);
        return Number(v);
      };
      if (nh) {
        if (k === 'via') nh.gateway = v!;
        else if (k === 'dev') nh.dev = v!;
        else if (k === 'weight') nh.weight = number();
        else nh.flags.push(`${k} ${v}`);
        continue;
      }
      switch (k) {
        case 'via': route.gateway = v!; break;
        case 'dev': route.dev = v!; break;
        case 'proto': route.protocol = v!; break;
        case 'scope': route.scope = v!; break;
        case 'src': route.prefsrc = v!; break;
        case 'metric': route.metric = number(); break;
        case 'table': route.table = v === 'main' ? null : v!; break;
        default: route.other[k] = v!;
      }
    }
  }
  return routes;
}
