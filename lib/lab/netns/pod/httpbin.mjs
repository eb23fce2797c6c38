// @ts-check
// The httpbin pod of a netns lab: a small HTTP server answering the endpoints the labs use the
// way go-httpbin v2.15 does (with USE_REAL_HOSTNAME=true). Plain JavaScript with no dependencies,
// so a pod starts in tens of milliseconds.
//
//   node httpbin.mjs --port 8080 --hostname httpbin-86b8ffc5ff-cc2jv [--address 0.0.0.0] [--ready-file F]
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    hostname: { type: 'string' },
    address: { type: 'string', default: '0.0.0.0' },
    'ready-file': { type: 'string' },
  },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`--port must be 1..65535, got ${values.port}`);
if (!values.hostname) fail('--hostname is required');
const hostname = /** @type {string} */ (values.hostname);
const MAX_DELAY_SECONDS = 10; // go-httpbin's default -max-duration

/** @param {string} message */
function fail(message) {
  process.stderr.write(`httpbin: ${message}\n`);
  process.exit(2);
}

/**
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {unknown} body
 */
function json(res, status, body) {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** @param {import('node:http').IncomingMessage} req */
function origin(req) {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/** go-httpbin reports headers and query args as lists of values. @param {import('node:http').IncomingMessage} req */
function headers(req) {
  /** @type {Record<string, string[]>} */
  const out = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i].split('-').map((w) => w.charAt(0).toUpperCase() + w.slice(1).toLowerCase()).join('-');
    (out[k] ??= []).push(req.rawHeaders[i + 1]);
  }
  return out;
}

/** @param {import('node:http').IncomingMessage} req @param {URL} url */
function requestInfo(req, url) {
  /** @type {Record<string, string[]>} */
  const args = {};
  for (const [k, v] of url.searchParams) (args[k] ??= []).push(v);
  return { args, headers: headers(req), method: req.method, origin: origin(req), url: url.toString() };
}

/** @param {import('node:http').ServerResponse} res @param {number} status @param {string} message */
function error(res, status, message) {
  json(res, status, { status_code: status, error: message });
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', `http://${req.headers.host ?? `localhost:${port}`}`);
  const path = url.pathname;
  if (path === '/hostname') return json(res, 200, { hostname });
  if (path === '/get') {
    if (req.method !== 'GET' && req.method !== 'HEAD') return error(res, 405, 'Method Not Allowed');
    return json(res, 200, requestInfo(req, url));
  }
  if (path === '/headers') return json(res, 200, { headers: headers(req) });
  if (path === '/ip') return json(res, 200, { origin: origin(req) });
  if (path.startsWith('/status/')) {
    const codes = path.slice('/status/'.length).split(',');
    const code = Number(codes[Math.floor(Math.random() * codes.length)]);
    if (!codes.every((c) => /^[1-5][0-9][0-9]$/.test(c))) return error(res, 400, 'Invalid status code');
    if (code === 418) {
      res.writeHead(418, { 'Content-Type': 'text/plain; charset=utf-8', 'X-More-Info': 'http://tools.ietf.org/html/rfc2324' });
      return res.end("I'm a teapot!");
    }
    res.writeHead(code);
    return res.end();
  }
  if (path.startsWith('/delay/')) {
    const seconds = Number(path.slice('/delay/'.length));
    if (!Number.isFinite(seconds) || seconds < 0 || seconds > MAX_DELAY_SECONDS) return error(res, 400, `Invalid duration: must be between 0 and ${MAX_DELAY_SECONDS}s`);
    setTimeout(() => json(res, 200, requestInfo(req, url)), seconds * 1000);
    return;
  }
  if (path === '/') {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
    return res.end(`httpbin on ${hostname}: /get /headers /ip /hostname /status/{code} /delay/{n}\n`);
  }
  return error(res, 404, 'Not Found');
});

server.listen(port, values.address, () => {
  if (values['ready-file']) writeFileSync(values['ready-file'], 'ready\n');
  process.stdout.write(`httpbin listening on ${values.address}:${port} as ${hostname}\n`);
});
for (const sig of /** @type {const} */ (['SIGTERM', 'SIGINT'])) process.on(sig, () => server.close(() => process.exit(0)));
