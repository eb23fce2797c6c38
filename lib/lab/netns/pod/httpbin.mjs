// @ts-check
// The httpbin pod of the netns backend: answers the endpoints the labs use the way
// go-httpbin v2.15.0 does (the image the kind backend runs), so both backends print the same.
// Plain ESM with node: built-ins only, because it starts once per pod and must start fast.
import { createServer } from 'node:http';
import { renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';
const HTML_TYPE = 'text/html; charset=utf-8';
// go-httpbin's DefaultMaxDuration.
const MAX_DELAY_MS = 10_000;
// go-httpbin's DefaultMaxBodySize (1 MiB).
const MAX_BODY = 1024 * 1024;

/** @typedef {import('node:http').IncomingMessage} Req */
/** @typedef {import('node:http').ServerResponse} Res */

/** @param {string} message @returns {never} */
function usage(message) {
  process.stderr.write(`httpbin: ${message}\nusage: httpbin.mjs --port PORT --hostname NAME [--address ADDR] [--ready-file PATH]\n`);
  process.exit(2);
}

function readOptions() {
  /** @type {ReturnType<typeof parseArgs<{options: {port: {type: 'string'}, hostname: {type: 'string'}, address: {type: 'string'}, 'ready-file': {type: 'string'}}}>>['values']} */
  let values;
  try {
    ({ values } = parseArgs({
      options: { port: { type: 'string' }, hostname: { type: 'string' }, address: { type: 'string' }, 'ready-file': { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    usage(/** @type {Error} */ (e).message);
  }
  const port = values.port === undefined ? 8080 : Number(values.port);
  if (!/^\d{1,5}$/.test(values.port ?? '8080') || port > 65535) usage(`--port must be an integer 0–65535, got ${JSON.stringify(values.port)}`);
  if (!values.hostname) usage('--hostname is required (the pod name /hostname reports)');
  return { port, hostname: values.hostname, address: values.address ?? '0.0.0.0', readyFile: values['ready-file'] };
}

/**
 * Go's http.CanonicalHeaderKey: go-httpbin echoes header names in this form.
 * @param {string} name
 */
function canonicalKey(name) {
  // Go leaves names with non-token characters alone.
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return name;
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase());
}

/**
 * go-httpbin's getRequestHeaders: http.Header, i.e. every value in an array, names canonical,
 * plus Host (Go keeps it out of the header map).
 * @param {Req} req
 */
function requestHeaders(req) {
  /** @type {Record<string, string[]>} */
  const out = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const key = canonicalKey(req.rawHeaders[i]);
    if (key === 'Host') continue;
    (out[key] ??= []).push(req.rawHeaders[i + 1]);
  }
  out.Host = [req.headers.host ?? ''];
  return sortKeys(out);
}

/**
 * Go's encoding/json writes map keys sorted.
 * @template T
 * @param {Record<string, T>} obj
 */
function sortKeys(obj) {
  /** @type {Record<string, T>} */
  const out = {};
  for (const k of Object.keys(obj).sort()) out[k] = obj[k];
  return out;
}

/** @param {URLSearchParams} params url.Values: every value in an array. */
function values(params) {
  /** @type {Record<string, string[]>} */
  const out = {};
  for (const [k, v] of params) (out[k] ??= []).push(v);
  return sortKeys(out);
}

/**
 * go-httpbin v2.15.0's getClientIP: forwarding headers first, else Go's RemoteAddr, which is
 * "ip:port" (v2.18.2 later dropped the port; v2.15.0 keeps it).
 * @param {Req} req
 */
function clientOrigin(req) {
  for (const h of ['fly-client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'true-client-ip']) {
    const v = req.headers[h];
    if (typeof v === 'string' && v !== '') return v;
  }
  const fwd = req.headers['x-forwarded-for'];
  const first = Array.isArray(fwd) ? fwd[0] : fwd;
  if (first) return first.split(',', 1)[0].trim();
  let ip = req.socket.remoteAddress ?? '';
  if (ip.startsWith('::ffff:') && ip.includes('.')) ip = ip.slice(7);
  return ip.includes(':') ? `[${ip}]:${req.socket.remotePort}` : `${ip}:${req.socket.remotePort}`;
}

/** @param {Req} req @param {URL} url go-httpbin's getURL. */
function fullURL(req, url) {
  let scheme = req.headers['x-forwarded-proto'] || req.headers['x-forwarded-protocol'];
  if (!scheme && req.headers['x-forwarded-ssl'] === 'on') scheme = 'https';
  return `${scheme || 'http'}://${req.headers.host ?? ''}${url.pathname}${url.search}`;
}

/**
 * Go's json.Encoder with SetIndent("", "  "): indented, with a trailing newline.
 * @param {Res} res @param {number} status @param {unknown} body
 */
function sendJSON(res, status, body) {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** @param {Res} res @param {number} status @param {string} type @param {string} body */
function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** @type {Record<number, string>} */
const STATUS_TEXT = { 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed' };

/**
 * go-httpbin's writeError: {"status_code", "error", "detail"?}.
 * @param {Res} res @param {number} code @param {string} [detail]
 */
function sendError(res, code, detail) {
  sendJSON(res, code, { status_code: code, error: STATUS_TEXT[code] ?? String(code), ...(detail ? { detail } : {}) });
}

/** Go's ServeMux answers unmatched paths in plain text, not with go-httpbin's JSON error. @param {Res} res */
function notFound(res) {
  send(res, 404, TEXT_TYPE, '404 page not found\n');
}

/** @param {Res} res @param {string} allow Go's ServeMux, for a path registered under other methods. */
function methodNotAllowed(res, allow) {
  res.setHeader('Allow', allow);
  send(res, 405, TEXT_TYPE, 'Method Not Allowed\n');
}

/** go-httpbin's response headers and bodies for special status codes (those the labs may meet). */
/** @type {Record<number, { headers?: Record<string, string>, body?: string }>} */
const SPECIAL_STATUS = {
  301: { headers: { Location: '/redirect/1' } },
  302: { headers: { Location: '/redirect/1' } },
  303: { headers: { Location: '/redirect/1' } },
  305: { headers: { Location: '/redirect/1' } },
  307: { headers: { Location: '/redirect/1' } },
  401: { headers: { 'WWW-Authenticate': 'Basic realm="Fake Realm"' } },
  407: { headers: { 'Proxy-Authenticate': 'Basic realm="Fake Realm"' } },
  418: { headers: { 'X-More-Info': 'http://tools.ietf.org/html/rfc2324' }, body: "I'm a teapot!" },
};

/**
 * Go's strconv.Atoi accepts an optional sign; go-httpbin then bounds codes to [100, 599].
 * @param {string} raw @returns {number | string} the code, or an error detail
 */
function parseStatusCode(raw) {
  if (!/^[+-]?\d+$/.test(raw)) return `invalid status code: ${JSON.stringify(raw)}: strconv.Atoi: parsing ${JSON.stringify(raw)}: invalid syntax`;
  const code = Number(raw);
  if (code < 100 || code > 599) return `invalid status code: ${code} not in range [100, 599]`;
  return code;
}

/**
 * /status/{code}, or a weighted choice from "200:0.7,503:0.3" (weights default to 1).
 * @param {Res} res @param {string} raw
 */
function status(res, raw) {
  let code;
  if (!raw.includes(',')) {
    const c = parseStatusCode(raw);
    if (typeof c === 'string') return sendError(res, 400, c);
    code = c;
  } else {
    /** @type {{ code: number, weight: number }[]} */
    const choices = [];
    for (const pair of raw.split(',')) {
      const [rawCode, rawWeight] = pair.split(/:(.*)/s);
      let weight = 1;
      if (rawWeight !== undefined) {
        weight = Number(rawWeight);
        if (rawWeight.trim() === '' || !Number.isFinite(weight)) return sendError(res, 400, `invalid weight value: ${JSON.stringify(rawWeight)}`);
      }
      const c = parseStatusCode(rawCode);
      if (typeof c === 'string') return sendError(res, 400, `invalid choice value: ${JSON.stringify(rawCode)}`);
      choices.push({ code: c, weight });
    }
    const total = choices.reduce((s, c) => s + c.weight, 0);
    let r = Math.random() * total;
    code = choices[choices.length - 1].code;
    for (const c of choices) {
      if (r < c.weight) { code = c.code; break; }
      r -= c.weight;
    }
  }
  const special = SPECIAL_STATUS[code];
  const body = special?.body ?? '';
  res.writeHead(code, { 'Content-Type': TEXT_TYPE, ...special?.headers, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/**
 * Go's time.ParseDuration for the forms people type ("1s", "500ms", "1m30s"), else seconds as
 * a float, as go-httpbin's parseDuration does. Returns milliseconds or null.
 * @param {string} raw
 */
function parseDurationMs(raw) {
  /** @type {Record<string, number>} */
  const unit = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const go = /^([0-9.]+(ns|us|µs|ms|s|m|h))+$/;
  if (go.test(raw)) {
    let ms = 0;
    for (const m of raw.matchAll(/([0-9.]+)(ns|us|µs|ms|s|m|h)/g)) {
      const n = Number(m[1]);
      if (!Number.isFinite(n)) return null;
      ms += n * unit[m[2]];
    }
    return ms;
  }
  if (raw.trim() === '' || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) return null;
  return Number(raw) * 1000;
}

/** Go prints durations like "11s" or "1.5s"; good enough for the error detail. @param {number} ms */
function goDuration(ms) {
  return ms >= 1000 ? `${+(ms / 1000).toFixed(9)}s` : `${+ms.toFixed(6)}ms`;
}

/** @param {Req} req @returns {Promise<string>} */
function readBody(req) {
  return new Promise((resolve, reject) => {
    /** @type {Buffer[]} */
    const chunks = [];
    let size = 0;
    req.on('data', (/** @type {Buffer} */ c) => {
      size += c.length;
      if (size > MAX_BODY) { reject(new Error('http: request body too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * go-httpbin's bodyResponse (what /delay answers with), with the parts of parseBody a lab needs:
 * raw data, JSON and url-encoded forms.
 * @param {Req} req @param {URL} url
 */
async function bodyResponse(req, url) {
  const data = await readBody(req);
  /** @type {Record<string, string[]>} */
  let form = {};
  /** @type {unknown} */
  let json = null;
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0].trim();
  if (data !== '' && type === 'application/json') json = JSON.parse(data);
  if (data !== '' && type === 'application/x-www-form-urlencoded') form = values(new URLSearchParams(data));
  return {
    args: values(url.searchParams), headers: requestHeaders(req), method: req.method, origin: clientOrigin(req), url: fullURL(req, url),
    data, files: {}, form, json,
  };
}

/**
 * /delay/{duration}: waits, then answers like /anything. A client that leaves early gets 499.
 * @param {Req} req @param {Res} res @param {URL} url @param {string} raw
 */
function delay(req, res, url, raw) {
  const ms = parseDurationMs(raw);
  if (ms === null) return sendError(res, 400, `invalid duration: time: invalid duration ${JSON.stringify(raw)}`);
  if (ms > MAX_DELAY_MS) return sendError(res, 400, `invalid duration: duration ${goDuration(ms)} longer than ${goDuration(MAX_DELAY_MS)}`);
  if (ms < 0) return sendError(res, 400, `invalid duration: duration ${goDuration(ms)} shorter than 0s`);
  const timer = setTimeout(async () => {
    res.setHeader('Server-Timing', `initial_delay;dur=${ms.toFixed(2)};desc="initial delay"`);
    try {
      sendJSON(res, 200, await bodyResponse(req, url));
    } catch (e) {
      sendError(res, 400, `error parsing request body: ${/** @type {Error} */ (e).message}`);
    }
  }, ms);
  res.on('close', () => {
    if (!res.writableEnded) { clearTimeout(timer); if (!res.headersSent) res.statusCode = 499; }
  });
}

/** @param {string} hostname */
function indexHTML(hostname) {
  const links = ['/get', '/headers', '/hostname', '/ip', '/status/418', '/delay/1'].map((p) => `<li><a href="${p}">${p}</a></li>`).join('\n');
  return `<!DOCTYPE html>\n<html>\n<head><title>go-httpbin (kube-netlab pod ${hostname.replace(/[<>&"]/g, '')})</title></head>\n<body>\n<h1>go-httpbin</h1>\n<p>The endpoints a kube-netlab netns pod answers:</p>\n<ul>\n${links}\n</ul>\n</body>\n</html>\n`;
}

/**
 * @param {{ hostname: string }} opts
 * @returns {(req: Req, res: Res) => void}
 */
export function handler(opts) {
  return (req, res) => {
    // go-httpbin's preflight middleware: CORS on every answer, OPTIONS answered outright.
    res.setHeader('Access-Control-Allow-Origin', req.headers.origin || '*');
    res.setHeader('Access-Control-Allow-Credentials', 'true');
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST, HEAD, PUT, DELETE, PATCH, OPTIONS');
      res.setHeader('Access-Control-Max-Age', '3600');
      const want = req.headers['access-control-request-headers'];
      if (want) res.setHeader('Access-Control-Allow-Headers', want);
      res.writeHead(200).end();
      return;
    }
    let url;
    try {
      url = new URL(req.url ?? '/', 'http://pod.invalid');
    } catch {
      return notFound(res);
    }
    const path = url.pathname;
    const getOrHead = req.method === 'GET' || req.method === 'HEAD';
    if (path === '/') return getOrHead ? send(res, 200, HTML_TYPE, indexHTML(opts.hostname)) : methodNotAllowed(res, 'GET, HEAD');
    if (path === '/hostname') return sendJSON(res, 200, { hostname: opts.hostname });
    if (path === '/get') {
      if (!getOrHead) return methodNotAllowed(res, 'GET, HEAD');
      return sendJSON(res, 200, { args: values(url.searchParams), headers: requestHeaders(req), method: req.method, origin: clientOrigin(req), url: fullURL(req, url) });
    }
    if (path === '/headers') return sendJSON(res, 200, { headers: requestHeaders(req) });
    if (path === '/ip') return sendJSON(res, 200, { origin: clientOrigin(req) });
    // One path segment after the prefix, as Go's "/status/{code}" pattern matches.
    const seg = /^\/(status|delay)\/([^/]+)$/.exec(path);
    if (seg) {
      let arg;
      try {
        arg = decodeURIComponent(seg[2]);
      } catch {
        // Go rejects a request line with a broken escape before any handler runs.
        return send(res, 400, TEXT_TYPE, '400 Bad Request');
      }
      return seg[1] === 'status' ? status(res, arg) : delay(req, res, url, arg);
    }
    notFound(res);
  };
}

function main() {
  const opts = readOptions();
  const server = createServer(handler(opts));
  server.on('error', (e) => {
    process.stderr.write(`httpbin: cannot listen on ${opts.address}:${opts.port}: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(opts.port, opts.address, () => {
    const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
    if (opts.readyFile) {
      // Rename so a watcher never reads a half-written file.
      writeFileSync(`${opts.readyFile}.tmp`, 'ready\n', { mode: 0o600, flag: 'wx' });
      renameSync(`${opts.readyFile}.tmp`, opts.readyFile);
    }
    const where = opts.address === '0.0.0.0' || opts.address === '::' ? '' : opts.address.includes(':') ? `[${opts.address}]` : opts.address;
    process.stdout.write(`httpbin listening on ${where}:${addr.port} as ${opts.hostname}\n`);
  });
  const stop = () => {
    // Idle keep-alive connections would hold close() open; a pod's SIGTERM means go now.
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main();
