// @ts-check
// The scale lab's two in-namespace programs, plain ESM so each starts in tens of milliseconds.
//
//   node probe.mjs serve --port 8080 --ready-file PATH
//     Accepts on 0.0.0.0:PORT and answers every connection with one JSON line naming the
//     address it was reached on ({"local","localPort","remote"}), then closes. With
//     `ip route add local <pod CIDR> dev lo`, this one server answers every endpoint IP.
//
//   node probe.mjs connect --targets IP:PORT[,IP:PORT…] --samples N [--bind IP] [--warmup W] [--timeout-ms T]
//     N fresh TCP connections per target, targets interleaved so drift hits all alike, one at a
//     time. Times connect() (SYN out, SYN-ACK back: the packet that walks the nat rules) and
//     reads the server's line to learn where DNAT sent it. Prints one JSON line:
//     {"targets":[{"target","samplesUs":[…],"reached":{"ip:port":n},"remotes":{"ip":n},"errors":n,"errorSamples":[…]}]}
import { connect, createServer } from 'node:net';
import { renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** @param {string} message @returns {never} */
function fail(message) {
  process.stderr.write(`probe: ${message}\nusage: probe.mjs serve --port P [--ready-file F] | probe.mjs connect --targets IP:PORT,… --samples N [--bind IP] [--warmup W] [--timeout-ms T]\n`);
  process.exit(2);
}

/** @param {string} name @param {string | undefined} raw @param {number} min @param {number} max */
function whole(name, raw, min, max) {
  const n = Number(raw);
  if (raw === undefined || !/^\d+$/.test(raw) || n < min || n > max) fail(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

/** @param {string} s */
function hostPort(s) {
  const i = s.lastIndexOf(':');
  const host = s.slice(0, i);
  if (i < 1 || !/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) fail(`target ${JSON.stringify(s)} is not IP:PORT`);
  return { host, port: whole('targets port', s.slice(i + 1), 1, 65535), text: s };
}

function serve(/** @type {string[]} */ args) {
  /** @type {{ port?: string, 'ready-file'?: string }} */
  let v = {};
  try {
    v = parseArgs({ args, options: { port: { type: 'string' }, 'ready-file': { type: 'string' } }, strict: true }).values;
  } catch (e) {
    fail(/** @type {Error} */ (e).message);
  }
  const port = whole('port', v.port, 1, 65535);
  const server = createServer((sock) => {
    sock.on('error', () => {});
    sock.end(`${JSON.stringify({ local: sock.localAddress, localPort: sock.localPort, remote: sock.remoteAddress })}\n`);
  });
  server.on('error', (e) => {
    process.stderr.write(`probe: cannot listen on 0.0.0.0:${port}: ${e.message}\n`);
    process.exit(1);
  });
  // A deep backlog: the client never has more than one connection open, but a slow accept
  // must not turn into a dropped SYN and a 1 s retransmit in the measurement.
  server.listen({ port, host: '0.0.0.0', backlog: 4096 }, () => {
    const ready = v['ready-file'];
    if (ready) {
      writeFileSync(`${ready}.tmp`, 'ready\n', { mode: 0o600, flag: 'wx' });
      renameSync(`${ready}.tmp`, ready);
    }
  });
  const stop = () => process.exit(0);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/**
 * One connection: microseconds from connect() to the connect event, and the server's line.
 * @param {{host: string, port: number}} t @param {string | undefined} bind @param {number} timeoutMs
 * @returns {Promise<{ us: number, local: string, remote: string }>}
 */
function once(t, bind, timeoutMs) {
  return new Promise((resolve, reject) => {
    let us = -1;
    const t0 = process.hrtime.bigint();
    const sock = connect({ host: t.host, port: t.port, ...(bind ? { localAddress: bind } : {}) });
    const timer = setTimeout(() => sock.destroy(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    /** @type {Buffer[]} */
    const chunks = [];
    sock.once('connect', () => { us = Number(process.hrtime.bigint() - t0) / 1000; });
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('close', (hadError) => {
      clearTimeout(timer);
      if (hadError) return;
      try {
        const a = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (us < 0) return reject(new Error('closed before connecting'));
        resolve({ us, local: `${a.local}:${a.localPort}`, remote: String(a.remote) });
      } catch {
        reject(new Error(`answer is not the probe server's JSON line: ${JSON.stringify(Buffer.concat(chunks).toString('utf8').slice(0, 80))}`));
      }
    });
  });
}

async function connectMany(/** @type {string[]} */ args) {
  /** @type {{ targets?: string, samples?: string, bind?: string, warmup?: string, 'timeout-ms'?: string }} */
  let v = {};
  try {
    v = parseArgs({
      args,
      options: { targets: { type: 'string' }, samples: { type: 'string' }, bind: { type: 'string' }, warmup: { type: 'string' }, 'timeout-ms': { type: 'string' } },
      strict: true,
    }).values;
  } catch (e) {
    fail(/** @type {Error} */ (e).message);
  }
  if (!v.targets) fail('--targets is required');
  const targets = v.targets.split(',').map(hostPort);
  const samples = whole('samples', v.samples, 1, 1_000_000);
  const warmup = whole('warmup', v.warmup ?? '5', 0, 10_000);
  const timeoutMs = whole('timeout-ms', v['timeout-ms'] ?? '5000', 1, 600_000);
  const out = targets.map((t) => ({
    target: t.text,
    samplesUs: /** @type {number[]} */ ([]),
    reached: /** @type {Record<string, number>} */ ({}),
    remotes: /** @type {Record<string, number>} */ ({}),
    errors: 0,
    errorSamples: /** @type {string[]} */ ([]),
  }));
  for (let i = -warmup; i < samples; i++) {
    for (let k = 0; k < targets.length; k++) {
      const o = out[k];
      try {
        const r = await once(targets[k], v.bind, timeoutMs);
        // Warm-up connections still count where they went: every packet must be DNATed.
        o.reached[r.local] = (o.reached[r.local] ?? 0) + 1;
        o.remotes[r.remote] = (o.remotes[r.remote] ?? 0) + 1;
        if (i >= 0) o.samplesUs.push(Math.round(r.us * 10) / 10);
      } catch (e) {
        o.errors++;
        const msg = /** @type {Error} */ (e).message || String(e);
        if (o.errorSamples.length < 5 && !o.errorSamples.includes(msg)) o.errorSamples.push(msg);
      }
    }
  }
  process.stdout.write(`${JSON.stringify({ targets: out })}\n`);
}

const [cmd, ...rest] = process.argv.slice(2);
if (cmd === 'serve') serve(rest);
else if (cmd === 'connect') await connectMany(rest);
else fail(`unknown subcommand ${JSON.stringify(cmd)}`);
