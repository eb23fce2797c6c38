/**
 * The kit in one container, built and run here with the README's two commands for Docker users,
 * on a Docker daemon of the test's own (test/helpers/docker.ts). The base is Debian bookworm from
 * debootstrap plus this machine's Node.js, since no image registry need be reachable. Inside:
 * Jupyter answers, `doctor` sees every option, the netns lab runs in iptables and nftables mode
 * (up, traffic with χ², capture into the mounted folder, down), notebook 00 runs headless in both,
 * and the container's own network is left as it was, as the host's is.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCapture } from '../lib/capture/index.ts';
import { runner } from '../lib/exec/index.ts';
import { projectPath } from '../lib/project/index.ts';
import { failedCells } from '../scripts/notebooks.ts';
import { dockerOrExplain, dockerSkipReason, extraCaBundle, networkSkipReason, startPrivateDocker, type PrivateDocker } from './helpers/docker.ts';

const skip = (await dockerSkipReason()) ?? (await networkSkipReason());
/**
 * What is worth keeping between runs, the test's own: debootstrap's tree (a week). Everything
 * else (the daemon, its data root with the images, the mounted folder) goes after each run.
 */
const CACHE = projectPath('out', 'container-test');
if (skip !== null) console.log(`skipped the container test: ${skip}`);

/** The commands under README's "Any laptop with Docker", as words (`"${PWD}/x:/out"` is one). */
function readmeCommands(): { build: string[]; run: string[] } {
  const readme = readFileSync(projectPath('README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Any laptop with Docker'));
  if (!section) throw new Error('README.md has no section "Any laptop with Docker"');
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const words = (line: string | undefined) => [...(line ?? '').matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);
  const lines = block.split('\n');
  return { build: words(lines.find((l) => l.startsWith('docker build '))), run: words(lines.find((l) => l.startsWith('docker run '))) };
}

/** What the host's network holds; dockerd, the image and the labs inside must leave it as it was. */
const HOST_STATE: string[][] = [
  ['ip', '-d', 'link'], ['ip', 'addr'], ['ip', 'route'], ['ip', '-6', 'route'], ['ip', 'rule'],
  ['iptables-save'], ['ip6tables-save'], ['nft', 'list', 'ruleset'],
  ['sysctl', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'],
];
/** The same inside the container, whose own network the kit treats as the host's. */
const CONTAINER_STATE: string[][] = [
  ['ip', '-d', 'link'], ['ip', 'route'], ['ip', 'rule'], ['iptables-save'], ['nft', 'list', 'ruleset'],
  ['ipset', 'list'], ['ip', 'netns', 'list'], ['sysctl', 'net.ipv4.ip_forward'],
];

/** Counters, timestamps and address lifetimes change by themselves; the rest must not. */
function normalise(out: string): string {
  return out.split('\n').filter((l) => !l.startsWith('#') && !/^\s+valid_lft /.test(l)).map((l) => l.replace(/ \[\d+:\d+\]$/, '')).join('\n');
}

/**
 * The slow steps of a build, from BuildKit's plain progress (`#7 [3/6] RUN …` … `#7 DONE 41.2s`),
 * so that the test's cost says where it goes.
 */
function buildSteps(progress: string): [string, number][] {
  const KINDS: [RegExp, string][] = [[/apt-get/, 'apt-get'], [/npm ci/, 'npm ci'], [/npm rebuild/, 'npm rebuild and the build'], [/exporting to image/, 'export']];
  const names = new Map<string, string>();
  const seconds = new Map<string, number>();
  for (const line of progress.split('\n')) {
    const head = /^#(\d+) (.*)$/.exec(line);
    if (!head) continue;
    const done = /^DONE ([\d.]+)s$/.exec(head[2]);
    if (done && names.has(head[1])) seconds.set(names.get(head[1])!, Number(done[1]));
    // A step's first line names it (`[3/6] RUN …`, `exporting to image`); its output follows.
    const kind = /^(\[|exporting)/.test(head[2]) && !names.has(head[1]) ? KINDS.find(([re]) => re.test(head[2])) : undefined;
    if (kind && !done) names.set(head[1], kind[1]);
  }
  return KINDS.map(([, k]) => k).filter((k) => seconds.has(k)).map((k) => [k, seconds.get(k)!]);
}

async function hostState(): Promise<string> {
  const parts: string[] = [];
  for (const argv of HOST_STATE) {
    const r = await runner.run(argv, { allowFailure: true });
    parts.push(`$ ${argv.join(' ')}\n${normalise(r.stdout + r.stderr)}`);
  }
  return parts.join('\n');
}

describe.skipIf(skip !== null)(`the kit in one container${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const BASE = 'kube-netlab-base:bookworm';
  const NAME = 'kube-netlab-box';
  let d: PrivateDocker;
  let work: string;
  let hostBefore: string;
  let containerBefore: string;
  const timings: Record<string, string> = {};
  /** Set when the base cannot be built here (this machine's node does not run on bookworm). */
  let noImage: string | null = null;
  const needImage = (ctx: { skip: () => void }) => { if (noImage !== null) ctx.skip(); };
  const commands = readmeCommands();
  /** The options and image of README's `docker run`, with the test's folder for `${PWD}`. */
  const runWords = () => commands.run.slice(2).map((w) => w.replaceAll('${PWD}', work));
  const exec = (argv: readonly string[], timeoutMs = 120_000) => d.docker(['exec', NAME, ...argv], { allowFailure: true, timeoutMs });
  const state = async () => {
    const parts: string[] = [];
    for (const argv of CONTAINER_STATE) {
      const r = await exec(argv);
      parts.push(`$ ${argv.join(' ')}\n${normalise(r.stdout + r.stderr)}`);
    }
    return parts.join('\n');
  };

  beforeAll(async () => {
    hostBefore = await hostState();
    work = mkdtempSync(join(tmpdir(), 'kube-netlab-box-'));
    d = await startPrivateDocker();
  }, 120_000);

  afterAll(async () => {
    await d?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
    console.log(`container test: ${Object.entries(timings).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    // After the daemon is gone: nothing it, the image or the labs did may show on the host.
    if (hostBefore) expect(await hostState()).toBe(hostBefore);
  }, 300_000);

  it('has the two commands README gives Docker users, with exactly the options labs need', () => {
    expect(commands.build).toEqual(['docker', 'build', '-t', 'kube-netlab', '.']);
    expect(commands.run).toEqual(['docker', 'run', '--rm', '-it', '-p', '8888:8888',
      '--cap-add', 'NET_ADMIN', '--cap-add', 'SYS_ADMIN', '--security-opt', 'systempaths=unconfined',
      '-v', '${PWD}/kube-netlab-out:/out', 'kube-netlab']);
  });

  it('builds a Debian bookworm base with debootstrap and this machine\'s Node.js', async (ctx) => {
    const t0 = performance.now();
    const r = await runner.run(['bash', projectPath('scripts', 'container', 'debian-base.sh'), BASE], {
      allowFailure: true, timeoutMs: 15 * 60_000, env: { ...d.env, DOCKER: d.cli, CACHE },
    });
    // Exit 3: this machine's node does not run on bookworm's C library; nothing to build on.
    if (r.exitCode === 3) {
      noImage = r.stderr.trim();
      console.log(`skipped the container test's image and everything after it: ${noImage}`);
      ctx.skip();
    }
    expect(r.exitCode, r.stderr).toBe(0);
    const debootstrap = /debootstrap took (\d+) s/.exec(r.stdout);
    timings.base = `${((performance.now() - t0) / 1000).toFixed(0)} s (${debootstrap ? `debootstrap ${debootstrap[1]} s` : 'debootstrap\'s tree from the cache'})`;
    const node = await d.docker(['run', '--rm', BASE, 'node', '--version']);
    expect(node.stdout.trim()).toBe(process.version);
  }, 16 * 60_000);

  it('builds the image with README\'s build command, from the local base, through this network\'s CA', async (ctx) => {
    needImage(ctx);
    // What this machine adds to README's command: the local base (no registry), the CA bundle npm
    // and apt trust here (a network that intercepts TLS), and the host's network for the build's
    // downloads, since this daemon has no bridge.
    const ca = extraCaBundle(work);
    const extra = ['--build-arg', `BASE=${BASE}`, '--network', 'host', '--progress', 'plain', ...(ca ? ['--secret', `id=ca,src=${ca}`] : [])];
    if (!ca) console.log('container test: no CA bundle found; building without --secret id=ca');
    const [, ...args] = commands.build;
    const t0 = performance.now();
    const build = await dockerOrExplain(d, [...args.slice(0, -1), ...extra, args.at(-1)!], { timeoutMs: 30 * 60_000, cwd: projectPath() });
    const steps = buildSteps(build.stderr).map(([step, s]) => `${step} ${s.toFixed(0)} s`).join(', ');
    timings.build = `${((performance.now() - t0) / 1000).toFixed(0)} s (${steps})`;
    const size = Number((await d.docker(['image', 'inspect', '--format', '{{.Size}}', 'kube-netlab'])).stdout.trim());
    timings.image = `${(size / 1e6).toFixed(0)} MB`;
    expect(size).toBeGreaterThan(0);
  }, 31 * 60_000);

  it('serves the notebooks with Jupyter on port 8888 by default, with README\'s run command', async (ctx) => {
    needImage(ctx);
    // Detached instead of -it: a test has no terminal. The daemon has no bridge, so -p publishes
    // nothing here and Jupyter is asked from inside the container.
    const words = runWords();
    expect(words).toContain('-it');
    const t0 = performance.now();
    await d.docker(['run', '-d', '--name', NAME, ...words.filter((w) => w !== '-it')]);
    const ask = ['python3', '-c', 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8888/api", timeout=2).read().decode())'];
    let answer = '';
    for (let i = 0; i < 300 && !answer.includes('"version"'); i++) {
      answer = (await exec(ask, 10_000)).stdout;
      if (!answer.includes('"version"')) await new Promise((r) => setTimeout(r, 100));
    }
    timings.jupyter = `first answer ${((performance.now() - t0) / 1000).toFixed(1)} s after docker run`;
    expect(answer).toContain('"version"');
    const logs = await d.docker(['logs', NAME]);
    expect(logs.stdout).toMatch(/Open http:\/\/127\.0\.0\.1:8888\/notebooks\/00-setup\.ipynb\?token=[0-9a-f]{48}/);
    containerBefore = await state();
  }, 120_000);

  it('doctor inside says it runs in a Docker container, with every option in effect', async (ctx) => {
    needImage(ctx);
    const r = await exec(['npx', 'kube-netlab', 'doctor', '--json']);
    const report = JSON.parse(r.stdout) as { where: { container: { engine: string } | null; flags: { flag: string; inEffect: boolean }[] }; netns: { ok: boolean } };
    expect(report.where.container?.engine).toBe('docker');
    expect(report.where.flags.map((f) => [f.flag, f.inEffect])).toEqual([
      ['--cap-add NET_ADMIN', true], ['--cap-add SYS_ADMIN', true], ['--security-opt systempaths=unconfined', true]]);
    expect(report.netns.ok).toBe(true);
  });

  for (const mode of ['iptables', 'nftables'] as const) {
    it(`${mode}: up, traffic beside the prediction with χ², capture into the mounted folder, down`, async (ctx) => {
    needImage(ctx);
      const lab = `box-${mode.slice(0, 3)}`;
      const t0 = performance.now();
      const up = await exec(['npx', 'kube-netlab', 'up', '--mode', mode, '--name', lab]);
      // A failed check must not leave this lab up for the next test to trip over.
      ctx.onTestFinished(async () => { await exec(['npx', 'kube-netlab', 'down', '--name', lab]); });
      expect(up.exitCode, up.stderr).toBe(0);
      const traffic = await exec(['npx', 'kube-netlab', 'traffic', '--name', lab, '--requests', '600', '--json']);
      timings[mode] = `up + 600 requests ${((performance.now() - t0) / 1000).toFixed(1)} s`;
      expect(traffic.exitCode, traffic.stderr).toBe(0);
      const m = JSON.parse(traffic.stdout) as {
        total: number; ok: number; chiSquare: { pValue: number } | null;
        pods: { pod: string; answers: number; conntrack: number | null; sepPackets: number | null }[];
      };
      expect([m.total, m.ok]).toEqual([600, 600]);
      expect(m.pods).toHaveLength(3);
      for (const p of m.pods) {
        expect(p.answers).toBeGreaterThan(0);
        // One entry per flow, but a new connection reusing the ports of a flow in TIME_WAIT takes
        // over its entry, so conntrack may fall a little short (as the netns lab test allows).
        expect(p.conntrack).toBeLessThanOrEqual(p.answers);
        expect(p.conntrack).toBeGreaterThan(p.answers * 0.9);
        if (mode === 'iptables') expect(p.sepPackets).toBe(p.answers);
      }
      expect(m.chiSquare!.pValue).toBeGreaterThan(0.001);

      const capture = await exec(['npx', 'kube-netlab', 'capture', '--name', lab, '--out', `runs/${lab}`]);
      expect(capture.exitCode, capture.stderr).toBe(0);
      // runs/ in the image leads to /out/runs, the host's folder.
      const nodes = readdirSync(join(work, 'kube-netlab-out', 'runs', lab));
      expect(nodes).toHaveLength(3);
      const worker = await loadCapture(join(work, 'kube-netlab-out', 'runs', lab, `${lab}-worker`));
      expect(worker.provenance).toMatchObject({ source: 'captured', backend: 'netns', mode });
      const rules = mode === 'iptables' ? worker.items['iptables-save']?.stdout : worker.items.nft?.stdout;
      expect(rules).toContain(mode === 'iptables' ? 'KUBE-SVC-' : 'table ip kube-proxy');

      const down = await exec(['npx', 'kube-netlab', 'down', '--name', lab]);
      expect(down.exitCode, down.stderr).toBe(0);
      expect((await exec(['ip', 'netns', 'list'])).stdout).toBe('');
    }, 300_000);
  }

  it('runs notebook 00 headless in both modes; the executed notebook, its HTML and figures land in the mounted folder', async (ctx) => {
    needImage(ctx);
    for (const mode of ['iptables', 'nftables']) {
      const t0 = performance.now();
      const r = await exec(['npm', 'run', '-s', 'notebooks', '--', '00', '--mode', mode], 15 * 60_000);
      timings[`notebook 00 ${mode}`] = `${((performance.now() - t0) / 1000).toFixed(0)} s`;
      expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
      const out = join(work, 'kube-netlab-out', 'notebooks');
      const executed = readFileSync(join(out, '00-setup.ipynb'), 'utf8');
      expect(failedCells(executed)).toEqual([]);
      expect(executed).toContain(`mode: '${mode}'`);
      expect(existsSync(join(out, '00-setup.html'))).toBe(true);
      expect(readdirSync(join(out, 'figures')).filter((f) => f.endsWith('.png')).length).toBeGreaterThan(0);
    }
  }, 31 * 60_000);

  it('leaves the container\'s own network as it found it, as it leaves the host\'s', async (ctx) => {
    needImage(ctx);
    expect(containerBefore).toBeTruthy();
    expect(await state()).toBe(containerBefore);
  });

  it('runs the demo with README\'s run command and `npx kube-netlab demo`', async (ctx) => {
    needImage(ctx);
    const r = await d.docker(['run', ...runWords().filter((w) => w !== '-it'), 'npx', 'kube-netlab', 'demo'], { allowFailure: true, timeoutMs: 10 * 60_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/iptables on netns: up with httpbin/);
    expect(r.stdout).toMatch(/nftables on netns: up with httpbin/);
    expect(r.stdout).toContain('Every lab is down again');
  }, 11 * 60_000);

  it('answers from a lab in a fresh container: docker run, up, the first request', async (ctx) => {
    needImage(ctx);
    // What an attendee waits for: README's run command (a command instead of Jupyter, so that
    // nothing else starts), `up`, and one request through the Service to an answer.
    const name = `${NAME}-first`;
    const lab = 'box-first';
    const t0 = performance.now();
    await d.docker(['run', '-d', '--name', name, ...runWords().filter((w) => w !== '-it'), 'sleep', 'infinity']);
    const inside = (argv: string[]) => d.docker(['exec', name, ...argv], { allowFailure: true, timeoutMs: 120_000 });
    try {
      const up = await inside(['npx', 'kube-netlab', 'up', '--mode', 'iptables', '--name', lab]);
      expect(up.exitCode, up.stderr).toBe(0);
      const one = await inside(['npx', 'kube-netlab', 'traffic', '--name', lab, '--requests', '1', '--json']);
      timings['first answer'] = `${((performance.now() - t0) / 1000).toFixed(1)} s after docker run`;
      expect(one.exitCode, one.stderr).toBe(0);
      expect(JSON.parse(one.stdout)).toMatchObject({ total: 1, ok: 1 });
      expect((await inside(['npx', 'kube-netlab', 'down', '--name', lab])).exitCode).toBe(0);
    } finally {
      await d.docker(['rm', '-f', name], { allowFailure: true });
    }
  }, 300_000);

  it('without the options, doctor and up name the ones to add instead of failing on a sysctl', async (ctx) => {
    needImage(ctx);
    const image = 'kube-netlab';
    const bare = await d.docker(['run', '--rm', image, 'npx', 'kube-netlab', 'doctor', '--json'], { allowFailure: true });
    const report = JSON.parse(bare.stdout) as { where: { flags: { flag: string; inEffect: boolean }[] }; netns: { ok: boolean; detail: string } };
    expect(report.where.flags.filter((f) => !f.inEffect).map((f) => f.flag)).toEqual(['--cap-add NET_ADMIN', '--cap-add SYS_ADMIN', '--security-opt systempaths=unconfined']);
    expect(report.netns).toMatchObject({ ok: false });
    expect(report.netns.detail).toContain('--cap-add NET_ADMIN --cap-add SYS_ADMIN --security-opt systempaths=unconfined');

    const text = await d.docker(['run', '--rm', '--cap-add', 'NET_ADMIN', '--cap-add', 'SYS_ADMIN', image, 'npx', 'kube-netlab', 'doctor'], { allowFailure: true });
    expect(text.stdout).toContain('FAIL --security-opt systempaths=unconfined: not in effect (/proc/sys is mounted read-only)');
    expect(text.stdout).toContain('fix: add --security-opt systempaths=unconfined to `docker run`');

    const up = await d.docker(['run', '--rm', '--cap-add', 'NET_ADMIN', '--cap-add', 'SYS_ADMIN', image, 'npx', 'kube-netlab', 'up', '--backend', 'netns'], { allowFailure: true });
    expect(up.exitCode).not.toBe(0);
    expect(up.stderr).toContain('started without --security-opt systempaths=unconfined');
    expect(up.stderr).not.toContain('sysctl');
  });
});
