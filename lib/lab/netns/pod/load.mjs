// @ts-check
// The client pod's load generator: N HTTP requests, at most C at a time, each on a NEW TCP
// connection (kube-proxy picks a backend per connection, so keep-alive would hide the split).
// Prints one JSON line: {"total","ok","errors","byPod","durationMs","firstOkMs","errorSamples"}.
//
//   node load.mjs --url http://10.96.120.15:8000/hostname --requests 3000 [--concurrency 10] [--timeout-ms 5000]
import { connect } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    requests: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '10' },
    'timeout-ms': { type: 'string', default: '5000' },
  },
});

/** @param {string} message */
function fail(message) {
  process.stderr.write(`load: ${message}\n`);
  process.exit(2);
}

/** @param {string} name @param {string | undefined} raw @param {number} min */
function count(name, raw, min) {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > 10_000_000) fail(`--${name} must be a whole number ≥ ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

if (!values.url) fail('--url is required');
let target;
try {
  target = new URL(/** @type {string} */ (values.url));
} catch {
  fail(`--url ${JSON.stringify(values.url)} is not a URL`);
}
const url = /** @type {URL} */ (target);
const total = count('requests', values.requests, 1);
const concurrency = Math.min(count('concurrency', values.concurrency, 1), total);
const timeoutMs = count('timeout-ms', values['timeout-ms'], 1);

/** @type {Record<string, number>} */
const byPod = {};
/** @type {string[]} */
const errorSamples = [];
let ok = 0;
let errors = 0;
/** @type {number | null} */
let firstOkMs = null;
const t0 = performance.now();

const port = Number(url.port || 80);
// A bare HTTP/1.1 request on a raw socket: node:http's client costs more CPU per connection than
// the kernel path being measured, and this machine has few cores to share with the servers.
const head = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: kube-netlab-load\r\nConnection: close\r\n\r\n`;

/** One request on a fresh connection; resolves with the answering pod's name. @returns {Promise<string>} */
function once() {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: url.hostname, port });
    /** @type {Buffer[]} */
    const chunks = [];
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    sock.on('connect', () => sock.end(head));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = text.slice(9, 12);
      const bodyAt = text.indexOf('\r\n\r\n');
      if (status !== '200' || bodyAt < 0) return reject(new Error(text ? `HTTP ${status || '?'}` : 'connection closed without an answer'));
      try {
        const name = JSON.parse(text.slice(bodyAt + 4)).hostname;
        if (typeof name !== 'string') throw new Error('no hostname');
        resolve(name);
      } catch {
        reject(new Error(`unexpected answer: ${text.slice(bodyAt + 4, bodyAt + 84)}`));
      }
    });
  });
}

let next = 0;
async function worker() {
  while (next < total) {
    next++;
    try {
      const pod = await once();
      byPod[pod] = (byPod[pod] ?? 0) + 1;
      ok++;
      firstOkMs ??= performance.now() - t0;
    } catch (e) {
      errors++;
      if (errorSamples.length < 5) errorSamples.push(/** @type {Error} */ (e).message);
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
process.stdout.write(`${JSON.stringify({ total, ok, errors, byPod, durationMs: Math.round(performance.now() - t0), firstOkMs: firstOkMs === null ? null : Math.round(firstOkMs), errorSamples })}\n`);
