import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { httpbinArgv, loadArgv, LoadOutputError, parseLoadOutput, type HttpbinOptions } from '../../lib/lab/netns/pod/index.ts';
import { withNetns, type TestNetns } from '../helpers/netns.ts';

// Real processes, real sockets: the pod programs as the netns backend starts them.

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kn-pod-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stop(): Promise<number | null>;
}

/** Start httpbin (optionally under `ip netns exec`) and wait for its ready file. */
async function startHttpbin(o: Omit<HttpbinOptions, 'readyFile'>, ns?: TestNetns): Promise<Running> {
  const readyFile = join(dir, `${o.hostname}-${o.port}-${Math.random().toString(36).slice(2)}.ready`);
  const argv = [...(ns ? ['ip', 'netns', 'exec', ns.name] : []), ...httpbinArgv({ ...o, readyFile })];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (err += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    try {
      return await exited;
    } finally {
      clearTimeout(t);
    }
  };
  const deadline = Date.now() + 10_000;
  while (!existsSync(readyFile)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`httpbin ${o.hostname} did not become ready: ${err || out || '(no output)'}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(await readFile(readyFile, 'utf8')).toBe('ready\n');
  return { child, stdout: () => out, stop };
}

/** A port nobody is listening on right now (the kernel picks it, we release it). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

async function getJSON(url: string, init?: RequestInit) {
  const res = await fetch(url, init);
  return { status: res.status, type: res.headers.get('content-type'), res, body: (await res.json()) as Record<string, unknown> };
}

const JSON_TYPE = 'application/json; charset=utf-8';

describe('httpbin.mjs answers like go-httpbin v2.15.0', () => {
  let pod: Running;
  let base: string;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    const t0 = performance.now();
    pod = await startHttpbin({ port, hostname: 'httpbin-7d9c6b5f4-x2x9q', address: '127.0.0.1' });
    console.log(`httpbin ready after ${(performance.now() - t0).toFixed(0)} ms`);
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await pod?.stop();
  });

  it('says where it listens, once', async () => {
    // The ready file can land before the line has crossed the pipe.
    await vi.waitFor(() => expect(pod.stdout()).toBe(`httpbin listening on 127.0.0.1:${port} as httpbin-7d9c6b5f4-x2x9q\n`));
  });

  it('GET /hostname names the pod', async () => {
    const r = await getJSON(`${base}/hostname`);
    expect(r.status).toBe(200);
    expect(r.type).toBe(JSON_TYPE);
    expect(r.body).toEqual({ hostname: 'httpbin-7d9c6b5f4-x2x9q' });
  });

  it('GET /get echoes args and headers as lists, origin as Go\'s RemoteAddr (ip:port), and the URL', async () => {
    const r = await getJSON(`${base}/get?a=1&a=2&b=x`, { headers: { 'X-Lab': 'one' } });
    expect(r.status).toBe(200);
    expect(r.type).toBe(JSON_TYPE);
    expect(Object.keys(r.body)).toEqual(['args', 'headers', 'method', 'origin', 'url']);
    expect(r.body.args).toEqual({ a: ['1', '2'], b: ['x'] });
    const headers = r.body.headers as Record<string, string[]>;
    expect(headers.Host).toEqual([`127.0.0.1:${port}`]);
    expect(headers['X-Lab']).toEqual(['one']);
    expect(Object.values(headers).every((v) => Array.isArray(v))).toBe(true);
    expect(r.body.method).toBe('GET');
    expect(r.body.origin).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(r.body.url).toBe(`${base}/get?a=1&a=2&b=x`);
  });

  it('GET /get honours X-Forwarded-For; other methods get 405 from the mux', async () => {
    const r = await getJSON(`${base}/get`, { headers: { 'X-Forwarded-For': '10.1.1.1, 10.2.2.2' } });
    expect(r.body.origin).toBe('10.1.1.1');
    const post = await fetch(`${base}/get`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('GET /headers and GET /ip', async () => {
    const h = await getJSON(`${base}/headers`);
    expect(h.status).toBe(200);
    expect(Object.keys(h.body)).toEqual(['headers']);
    expect((h.body.headers as Record<string, string[]>).Host).toEqual([`127.0.0.1:${port}`]);
    const ip = await getJSON(`${base}/ip`);
    expect(ip.status).toBe(200);
    expect(ip.type).toBe(JSON_TYPE);
    expect(Object.keys(ip.body)).toEqual(['origin']);
    expect(ip.body.origin).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('/status/{code}: the code in plain text, special bodies, weighted lists, 400 for bad codes', async () => {
    const tea = await fetch(`${base}/status/418`);
    expect(tea.status).toBe(418);
    expect(tea.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(tea.headers.get('x-more-info')).toBe('http://tools.ietf.org/html/rfc2324');
    expect(await tea.text()).toBe("I'm a teapot!");
    expect((await fetch(`${base}/status/204`)).status).toBe(204);
    // Weight 0 is never chosen, so the answer is certain.
    expect((await fetch(`${base}/status/503:0,202:1`)).status).toBe(202);
    const bad = await getJSON(`${base}/status/abc`);
    expect(bad.status).toBe(400);
    expect(bad.type).toBe(JSON_TYPE);
    expect(bad.body).toMatchObject({ status_code: 400, error: 'Bad Request' });
    expect(bad.body.detail).toContain('"abc"');
    expect((await fetch(`${base}/status/600`)).status).toBe(400);
    expect((await fetch(`${base}/status/200,x`)).status).toBe(400);
    expect((await fetch(`${base}/status/200/extra`)).status).toBe(404);
  });

  it('/delay/1 waits a second and answers like /anything; over 10 s is a 400', async () => {
    const t0 = performance.now();
    const r = await getJSON(`${base}/delay/1`);
    const took = performance.now() - t0;
    // libuv's timer clock has millisecond granularity; allow that much.
    expect(took).toBeGreaterThanOrEqual(995);
    expect(r.status).toBe(200);
    expect(r.res.headers.get('server-timing')).toBe('initial_delay;dur=1000.00;desc="initial delay"');
    expect(Object.keys(r.body)).toEqual(['args', 'headers', 'method', 'origin', 'url', 'data', 'files', 'form', 'json']);
    expect(r.body).toMatchObject({ method: 'GET', url: `${base}/delay/1`, data: '', files: {}, form: {}, json: null });
    const long = await getJSON(`${base}/delay/11`);
    expect(long.status).toBe(400);
    expect(long.body.detail).toBe('invalid duration: duration 11s longer than 10s');
  });

  it('unknown paths get Go\'s plain-text 404; / is a small HTML index', async () => {
    const nf = await fetch(`${base}/nope`);
    expect(nf.status).toBe(404);
    expect(nf.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await nf.text()).toBe('404 page not found\n');
    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await index.text()).toContain('/hostname');
  });

  it('exits 0 on SIGTERM', async () => {
    expect(await pod.stop()).toBe(0);
  });
});

describe('httpbin.mjs arguments', () => {
  it('refuses a missing --hostname and a bad --port, naming them', async () => {
    const file = httpbinArgv({ port: 1, hostname: 'x' }).slice(0, 2);
    const noName = await runner.run([...file, '--port', '8080'], { allowFailure: true });
    expect(noName.exitCode).toBe(2);
    expect(noName.stderr).toContain('--hostname');
    const badPort = await runner.run([...file, '--port', 'http', '--hostname', 'x'], { allowFailure: true });
    expect(badPort.exitCode).toBe(2);
    expect(badPort.stderr).toContain('--port');
  });
});

describe('load.mjs', () => {
  it('tallies answers by pod, one new connection per request', async () => {
    const pods: Running[] = [];
    try {
      const ports = [await freePort(), await freePort(), await freePort()];
      for (const [i, port] of ports.entries()) pods.push(await startHttpbin({ port, hostname: `pod-${i}`, address: '127.0.0.1' }));
      for (const [i, port] of ports.entries()) {
        const out = await runner.run(loadArgv({ url: `http://127.0.0.1:${port}/hostname`, requests: 40 + i, concurrency: 8 }));
        const r = parseLoadOutput(out.stdout);
        expect(r).toMatchObject({ total: 40 + i, ok: 40 + i, errors: 0, byPod: { [`pod-${i}`]: 40 + i }, errorSamples: [] });
        expect(r.firstOkMs).not.toBeNull();
        expect(r.firstOkMs!).toBeLessThanOrEqual(r.durationMs);
      }
      // /get names no pod: the answers count as ok, the tally stays empty.
      const get = parseLoadOutput((await runner.run(loadArgv({ url: `http://127.0.0.1:${ports[0]}/get`, requests: 3 }))).stdout);
      expect(get).toMatchObject({ ok: 3, errors: 0, byPod: {} });
      const teapot = parseLoadOutput((await runner.run(loadArgv({ url: `http://127.0.0.1:${ports[0]}/status/418`, requests: 2 }))).stdout);
      expect(teapot).toMatchObject({ ok: 0, errors: 2, errorSamples: ['HTTP 418'] });
    } finally {
      await Promise.all(pods.map((p) => p.stop()));
    }
  });

  it('splits across three pods behind a kube-proxy style DNAT in a private namespace', async () => {
    await withNetns(async (ns) => {
      const pods: Running[] = [];
      try {
        await ns.run(['ip', 'link', 'set', 'lo', 'up']);
        const podIPs = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
        for (const ip of podIPs) await ns.run(['ip', 'addr', 'add', `${ip}/32`, 'dev', 'lo']);
        // The first route lookup happens before nat OUTPUT, so the VIP needs a route to exist.
        await ns.run(['ip', 'route', 'add', '10.96.0.0/16', 'dev', 'lo', 'src', podIPs[0]]);
        // kube-proxy's shape: endpoint i of n jumps with probability 1/(n-i), the last always.
        await ns.run(['iptables-restore'], {
          input: [
            '*nat',
            ':KN-SVC-HTTPBIN - [0:0]',
            '-A OUTPUT -d 10.96.120.15/32 -p tcp -m tcp --dport 8000 -j KN-SVC-HTTPBIN',
            `-A KN-SVC-HTTPBIN -p tcp -m statistic --mode random --probability 0.3333333333 -j DNAT --to-destination ${podIPs[0]}:8080`,
            `-A KN-SVC-HTTPBIN -p tcp -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination ${podIPs[1]}:8080`,
            `-A KN-SVC-HTTPBIN -p tcp -j DNAT --to-destination ${podIPs[2]}:8080`,
            'COMMIT',
            '',
          ].join('\n'),
        });
        const t0 = performance.now();
        pods.push(...(await Promise.all(podIPs.map((address, i) => startHttpbin({ port: 8080, address, hostname: `httpbin-${i}` }, ns)))));
        console.log(`3 httpbin pods ready in the namespace after ${(performance.now() - t0).toFixed(0)} ms`);
        const out = await ns.run(loadArgv({ url: 'http://10.96.120.15:8000/hostname', requests: 600, concurrency: 20, timeoutMs: 5000 }));
        const r = parseLoadOutput(out.stdout);
        console.log(`600 requests through the DNAT: ${r.durationMs} ms, ${(600 / (r.durationMs / 1000)).toFixed(0)} req/s, byPod ${JSON.stringify(r.byPod)}`);
        expect(r).toMatchObject({ total: 600, ok: 600, errors: 0 });
        expect(Object.keys(r.byPod).sort()).toEqual(['httpbin-0', 'httpbin-1', 'httpbin-2']);
        // Binomial(600, 1/3): sd ≈ 11.5, so ±70 is six sd — a real bias, not bad luck.
        for (const n of Object.values(r.byPod)) expect(Math.abs(n - 200)).toBeLessThanOrEqual(70);
      } finally {
        await Promise.all(pods.map((p) => p.stop()));
      }
    });
  });

  it('opens one TCP connection per request even when the server offers keep-alive', async () => {
    // kube-proxy balances connections, not requests: reuse would pin every request to one pod.
    const sockets: Socket[] = [];
    const body = '{"hostname":"keepalive-pod"}';
    const server = createServer((s) => {
      sockets.push(s);
      s.on('data', () => s.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: keep-alive\r\n\r\n${body}`));
      s.on('error', () => undefined);
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    try {
      const { port } = server.address() as { port: number };
      const r = parseLoadOutput((await runner.run(loadArgv({ url: `http://127.0.0.1:${port}/hostname`, requests: 50, concurrency: 5 }))).stdout);
      expect(r).toMatchObject({ ok: 50, byPod: { 'keepalive-pod': 50 } });
      expect(sockets).toHaveLength(50);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((res) => server.close(res));
    }
  });

  it('counts refused and silent servers as errors and still exits 0', async () => {
    const port = await freePort();
    const refused = await runner.run(loadArgv({ url: `http://127.0.0.1:${port}/hostname`, requests: 7, concurrency: 3 }));
    expect(refused.exitCode).toBe(0);
    const r = parseLoadOutput(refused.stdout);
    expect(r).toMatchObject({ total: 7, ok: 0, errors: 7, byPod: {}, firstOkMs: null });
    expect(r.errorSamples).toEqual([`connect ECONNREFUSED 127.0.0.1:${port}`]);

    // Accepts connections and never answers: every request hits --timeout-ms.
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => void sockets.push(s));
    await new Promise<void>((res) => silent.listen(0, '127.0.0.1', res));
    try {
      const { port: sp } = silent.address() as { port: number };
      const t = parseLoadOutput((await runner.run(loadArgv({ url: `http://127.0.0.1:${sp}/hostname`, requests: 4, concurrency: 4, timeoutMs: 200 }))).stdout);
      expect(t).toMatchObject({ total: 4, ok: 0, errors: 4, errorSamples: ['timed out after 200 ms'] });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((res) => silent.close(res));
    }
  });

  it('exits non-zero on bad arguments, naming the argument', async () => {
    const file = loadArgv({ url: 'http://127.0.0.1:1/', requests: 1 }).slice(0, 2);
    const cases: Array<[string[], string]> = [
      [['--url', 'http://127.0.0.1:1/', '--requests', 'many'], '--requests'],
      [['--url', 'http://127.0.0.1:1/', '--requests', '0'], '--requests'],
      [['--url', 'http://127.0.0.1:1/'], '--requests'],
      [['--url', 'http://127.0.0.1:1/', '--requests', '5', '--concurrency', '-1'], '--concurrency'],
      [['--url', 'http://127.0.0.1:1/', '--requests', '5', '--timeout-ms', '1.5'], '--timeout-ms'],
      [['--url', 'not a url', '--requests', '5'], '--url'],
      [['--requests', '5'], '--url'],
      [['--url', 'http://127.0.0.1:1/', '--requests', '5', '--keepalive'], '--keepalive'],
    ];
    for (const [args, name] of cases) {
      const r = await runner.run([...file, ...args], { allowFailure: true });
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr, args.join(' ')).toContain(name);
    }
  });
});

describe('parseLoadOutput', () => {
  const good = { total: 3, ok: 2, errors: 1, byPod: { a: 2 }, durationMs: 12.5, firstOkMs: 3.1, errorSamples: ['HTTP 503'] };

  it('reads the last line of stdout', () => {
    expect(parseLoadOutput(`noise\n${JSON.stringify(good)}\n`)).toEqual(good);
    expect(parseLoadOutput(JSON.stringify({ ...good, firstOkMs: null, errorSamples: undefined }))).toEqual({ ...good, firstOkMs: null, errorSamples: [] });
  });

  it('says what is wrong with a malformed line', () => {
    const bad = (v: unknown) => () => parseLoadOutput(typeof v === 'string' ? v : JSON.stringify(v));
    expect(bad('')).toThrow(/is empty/);
    expect(bad('Segmentation fault')).toThrow(LoadOutputError);
    expect(bad('Segmentation fault')).toThrow(/is not JSON.*Segmentation fault/);
    expect(bad([1])).toThrow(/not a JSON object/);
    expect(bad({ ...good, total: -1 })).toThrow(/"total" = -1/);
    expect(bad({ ...good, ok: 3 })).toThrow(/ok \+ errors = 4, expected total = 3/);
    expect(bad({ ...good, byPod: null })).toThrow(/no "byPod"/);
    expect(bad({ ...good, byPod: { a: 'two' } })).toThrow(/byPod\["a"\]/);
    expect(bad({ ...good, byPod: { a: 2, b: 1 } })).toThrow(/tallies 3 answers by pod but only 2 ok/);
    expect(bad({ ...good, durationMs: 'soon' })).toThrow(/"durationMs"/);
    expect(bad({ ...good, firstOkMs: -4 })).toThrow(/"firstOkMs"/);
    expect(bad({ ...good, errorSamples: [1] })).toThrow(/"errorSamples"/);
  });
});
