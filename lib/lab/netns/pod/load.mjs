// @ts-check
// The client pod's load generator: N HTTP requests, at most C at a time, each on a NEW TCP
// connection (kube-proxy picks a backend per connection, so keep-alive would hide the split).
// Answers must be HTTP/1.1 with the body closed by the server (Connection: close).
// Prints one JSON line: {"total","ok","errors","byPod","durationMs","firstOkMs","errorSamples"}.
// Failed requests are counted, never fatal: exit 0 unless the arguments are wrong (exit 2).
//
//   node load.mjs --url http://10.96.120.15:8000/hostname --requests 3000 [--concurrency 10] [--timeout-ms 5000]
import { connect } from 'node:net';
import { parseArgs } from 'node:util';

// Whoever started the load reads its one result line. Once that process is gone (this one has
// been handed to another parent, as after a SIGKILL), nobody will: stop instead of running out
// the requests.
// The starter names itself (it may die before this line runs); process.ppid asks the kernel on
// every read.
const startedBy = Number(process.env.KUBE_NETLAB_LOAD_PARENT ?? process.ppid);
setInterval(() => { if (process.ppid !== startedBy) process.exit(1); }, 250).unref();

/** @param {string} message @returns {never} */
function fail(message) {
  process.stderr.write(`load: ${message}\nusage: load.mjs --url http://IP:PORT/hostname --requests N [--concurrency C] [--timeout-ms T]\n`);
  process.exit(2);
}

/** @param {string} name @param {string | undefined} raw @param {number} min @param {number} max */
function wholeNumber(name, raw, min, max) {
  const n = Number(raw);
  if (raw === undefined || !/^\d+$/.test(raw) || n < min || n > max) fail(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

function readOptions() {
  /** @type {{ url?: string, requests?: string, concurrency?: string, 'timeout-ms'?: string }} */
  let v = {};
  try {
    v = parseArgs({
      options: { url: { type: 'string' }, requests: { type: 'string' }, concurrency: { type: 'string' }, 'timeout-ms': { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    fail(/** @type {Error} */ (e).message);
  }
  if (!v.url) fail('--url is required');
  /** @type {URL} */
  let url;
  try {
    url = new URL(v.url);
  } catch {
    fail(`--url ${JSON.stringify(v.url)} is not a URL`);
  }
  if (url.protocol !== 'http:') fail(`--url must be http://…, got ${JSON.stringify(v.url)}`);
  if (v.requests === undefined) fail('--requests is required');
  const total = wholeNumber('requests', v.requests, 1, 10_000_000);
  const concurrency = wholeNumber('concurrency', v.concurrency ?? '10', 1, 10_000);
  const timeoutMs = wholeNumber('timeout-ms', v['timeout-ms'] ?? '5000', 1, 3_600_000);
  return { url, total, concurrency: Math.min(concurrency, total), timeoutMs };
}

/**
 * One GET on its own connection, written on a bare socket: node:http's client spends more CPU per
 * connection than the kernel path under test, and the client shares few cores with the servers.
 * Resolves with the answering pod's name, or '' when a 2xx answer names none (e.g. --url …/get).
 * @param {URL} url @param {number} timeoutMs @returns {Promise<string>}
 */
function once(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: url.hostname, port: Number(url.port || 80) });
    /** @type {Buffer[]} */
    const chunks = [];
    // A deadline for the whole exchange (connect + answer), not per idle gap.
    const timer = setTimeout(() => sock.destroy(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => sock.end(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: kube-netlab-load\r\nConnection: close\r\n\r\n`));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('close', (hadError) => {
      clearTimeout(timer);
      if (hadError) return;
      const answer = parseAnswer(Buffer.concat(chunks).toString('utf8'));
      if (answer === null) return reject(new Error('connection closed without a complete answer'));
      if (answer.status < 200 || answer.status > 299) return reject(new Error(`HTTP ${answer.status}`));
      try {
        const name = JSON.parse(answer.body).hostname;
        resolve(typeof name === 'string' ? name : '');
      } catch {
        reject(new Error(`answer is not JSON: ${JSON.stringify(answer.body.slice(0, 80))}`));
      }
    });
  });
}

/** Status and body of an HTTP/1.1 answer read to the end; chunked bodies are decoded. @param {string} text */
function parseAnswer(text) {
  const end = text.indexOf('\r\n\r\n');
  if (!text.startsWith('HTTP/1.') || end < 0) return null;
  const status = Number(text.slice(9, 12));
  const head = text.slice(0, end).toLowerCase();
  let body = text.slice(end + 4);
  if (head.includes('\r\ntransfer-encoding: chunked')) {
    let out = '';
    let at = 0;
    for (;;) {
      const eol = body.indexOf('\r\n', at);
      const size = eol < 0 ? NaN : parseInt(body.slice(at, eol), 16);
      if (!(size >= 0)) return null;
      if (size === 0) break;
      out += body.slice(eol + 2, eol + 2 + size);
      at = eol + 2 + size + 2;
    }
    body = out;
  }
  return { status, body };
}

async function main() {
  const { url, total, concurrency, timeoutMs } = readOptions();
  /** @type {Record<string, number>} */
  const byPod = {};
  /** @type {string[]} */
  const errorSamples = [];
  let ok = 0;
  let errors = 0;
  /** @type {number | null} */
  let firstOkMs = null;
  let started = 0;
  const t0 = performance.now();

  async function worker() {
    while (started < total) {
      started++;
      try {
        const pod = await once(url, timeoutMs);
        if (pod !== '') byPod[pod] = (byPod[pod] ?? 0) + 1;
        ok++;
        firstOkMs ??= performance.now() - t0;
      } catch (e) {
        errors++;
        // Distinct messages: five copies of ECONNREFUSED say less than one each of two causes.
        const msg = /** @type {Error} */ (e).message || String(e);
        if (errorSamples.length < 5 && !errorSamples.includes(msg)) errorSamples.push(msg);
      }
    }
  }

  await Promise.all(Array.from({ length: concurrency }, worker));
  const round = (/** @type {number} */ ms) => Math.round(ms * 10) / 10;
  process.stdout.write(`${JSON.stringify({
    total, ok, errors, byPod: Object.fromEntries(Object.entries(byPod).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    durationMs: round(performance.now() - t0), firstOkMs: firstOkMs === null ? null : round(firstOkMs), errorSamples,
  })}\n`);
}

await main();
