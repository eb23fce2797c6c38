import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { listKindRecords, readKindRecord } from '../../lib/lab/kind/state.ts';
import { UpInterrupted, upLab } from '../../scripts/commands/lab.ts';
import { fakeToolchain, type FakeToolchain, dockerOnlyPath } from './kind-fakes.ts';

// `kube-netlab up --backend kind` as a user runs it: the real CLI in its own process, with the
// real docker CLI where the failure is docker's, and fake kind/kubectl/docker where it must get
// further than this machine allows (no kind, no Docker engine here).

let tmp: string;
const xdg = process.env.XDG_STATE_HOME;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kn-kind-up-test-'));
  process.env.XDG_STATE_HOME = join(tmp, 'state');
});
afterAll(async () => {
  if (xdg === undefined) delete process.env.XDG_STATE_HOME;
  else process.env.XDG_STATE_HOME = xdg;
  await rm(tmp, { recursive: true, force: true });
});

interface Cli { code: number | null; signal: NodeJS.Signals | null; out: string; err: string; ms: number }

/** stderr without `up`'s timed progress lines (`[0.01s] preflight: …`). */
const said = (r: Cli) => r.err.split('\n').filter((l) => !/^\[\d+\.\d\ds\] /.test(l)).join('\n');

/** The CLI in a child process; `onStart` gets its pid (to signal it). */
function cli(args: string[], env: Record<string, string>, onStart?: (pid: number) => void): Promise<Cli> {
  const t0 = performance.now();
  const child = spawn(process.execPath, ['scripts/kube-netlab.mjs', ...args], {
    env: { ...process.env, XDG_STATE_HOME: join(tmp, 'state'), ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  onStart?.(child.pid as number);
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out, err, ms: performance.now() - t0 })));
}

async function until(what: string, cond: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Lock files stay behind by design (a lock is its holder's open file, not the file's existence).
const stateFiles = async () => (await readdir(join(tmp, 'state', 'kube-netlab', 'kind')).catch(() => [] as string[])).filter((f) => !f.endsWith('.lock'));

describe('kube-netlab up --backend kind where it cannot run: fails fast, says why and the fix, leaves nothing', () => {
  let dockerOnly: string;
  let fakeDocker: FakeToolchain;
  const noDaemon = () => `unix://${join(tmp, 'no-daemon.sock')}`;

  beforeAll(async () => {
    // A PATH holding the real docker CLI and nothing else: no kind.
    dockerOnly = await dockerOnlyPath(join(tmp, 'docker-only'));
    fakeDocker = await fakeToolchain(join(tmp, 'fake-docker'), ['docker']);
  });

  it('no docker at all', async () => {
    const r = await cli(['up', '--backend', 'kind'], { PATH: join(tmp, 'empty') });
    expect(r.code).toBe(1);
    expect(r.err.split('\n')[0]).toMatch(/^\[0\.\d\ds\] preflight: docker daemon, kind, kubectl$/);
    expect(said(r)).toBe([
      'kube-netlab up: the kind backend cannot run here: docker not installed',
      '  fix: install it with `apt-get install -y docker.io` (or Docker Engine from docs.docker.com/engine/install)', '',
    ].join('\n'));
    expect(r.ms).toBeLessThan(20_000);
    expect(await stateFiles()).toEqual([]);
  });

  it('the docker CLI without a daemon (the real CLI)', async () => {
    const r = await cli(['up', '--backend', 'kind', '--mode', 'nftables'], { PATH: dockerOnly, DOCKER_HOST: noDaemon() });
    expect(r.code).toBe(1);
    expect(said(r)).toMatch(/^kube-netlab up: the kind backend cannot run here: docker daemon unreachable\n {2}Cannot connect to the Docker daemon at unix:\/\/.*no-daemon\.sock\. Is the docker daemon running\?\n {2}fix: start it \(`sudo systemctl start docker`/);
    expect(r.ms).toBeLessThan(20_000);
    expect(await stateFiles()).toEqual([]);
  });

  it('a docker daemon, but no kind on PATH', async () => {
    const r = await cli(['up', '--backend', 'kind'], { PATH: `${fakeDocker.dir}:/usr/bin:/bin` });
    expect(r.code).toBe(1);
    expect(said(r)).toBe([
      'kube-netlab up: the kind backend cannot run here: kind not installed',
      '  fix: install kind v0.29.0 or later: `go install sigs.k8s.io/kind@v0.29.0`, or the release binary from kind.sigs.k8s.io/docs/user/quick-start', '',
    ].join('\n'));
    expect(await fakeDocker.log()).toEqual(['docker -v', 'docker info --format {{.ServerVersion}}']);
    expect(await stateFiles()).toEqual([]);
  });
});

describe('kube-netlab up --backend kind where kind would use podman or nerdctl: refuses and names it', () => {
  let fakes: FakeToolchain;
  beforeAll(async () => {
    fakes = await fakeToolchain(join(tmp, 'fake-providers'), ['docker', 'kind', 'kubectl', 'podman', 'nerdctl']);
  });

  it('KIND_EXPERIMENTAL_PROVIDER=podman, with Docker installed and running', async () => {
    await fakes.reset('ok');
    const r = await cli(['up', '--backend', 'kind'], { PATH: fakes.path, KIND_EXPERIMENTAL_PROVIDER: 'podman' });
    expect(r.code).toBe(1);
    expect(said(r)).toBe([
      'kube-netlab up: the kind backend cannot run here: kind would use podman',
      '  kind picks podman: KIND_EXPERIMENTAL_PROVIDER=podman is set',
      '  fix: kube-netlab runs its kind nodes through Docker only: unset KIND_EXPERIMENTAL_PROVIDER, and install Docker (Docker Desktop, Docker Engine or rootless Docker) so that `docker -v` prints "Docker version …"', '',
    ].join('\n'));
    // Nothing ran past the question kind asks itself: no docker info, no kind create.
    expect(await fakes.log()).toEqual([]);
    expect(await stateFiles()).toEqual([]);
  });

  it('`docker` is podman-docker\'s shim: kind would pick nerdctl first, then podman', async () => {
    await fakes.reset('ok');
    await fakes.set('docker-banner', 'podman version 5.4.0\n');
    try {
      const r = await cli(['up', '--backend', 'kind'], { PATH: fakes.path });
      expect(r.code).toBe(1);
      expect(said(r)).toMatch(/^kube-netlab up: the kind backend cannot run here: kind would use nerdctl\n {2}kind picks nerdctl: `nerdctl -v` answers \(`docker -v` printed "podman version 5\.4\.0", not Docker's banner\)\n/);
      expect(await fakes.log()).toEqual(['docker -v', 'nerdctl -v']);
      // What kind does with KIND_EXPERIMENTAL_PROVIDER=docker it would do here too: then docker it is
      // (the cluster's objects given, every endpoint programmed, so that `up` gets all the way at once).
      for (const [file, fixture] of [['nodes.json', 'kind/kubectl-get-nodes.json'], ['pods.json', 'kind/kubectl-get-pods.json'], ['cluster.json', 'kind-httpbin.kubectl.json']]) {
        await fakes.set(file, await readFile(new URL(`../fixtures/${fixture}`, import.meta.url), 'utf8'));
      }
      const settled = ['*nat', ...['172.18.0.2:6443', '10.244.0.2:53', '10.244.0.3:53', '10.244.0.2:9153', '10.244.0.3:9153', '10.244.1.2:8080', '10.244.2.2:8080', '10.244.2.3:8080']
        .map((ip) => `-A KUBE-SEP-X -p tcp -m tcp -j DNAT --to-destination ${ip}`), 'COMMIT', ''].join('\n');
      await fakes.set('rules', settled);
      await fakes.set('rules.after', settled);
      const forced = await cli(['up', '--backend', 'kind', '--name', 'netlab'], { PATH: fakes.path, KIND_EXPERIMENTAL_PROVIDER: 'docker' });
      expect(forced.code, forced.err).toBe(0);
      expect(said(forced)).not.toMatch(/kind would use/);
      // Without nerdctl, podman is next.
      const noNerdctl = await fakeToolchain(join(tmp, 'fake-podman'), ['docker', 'kind', 'kubectl', 'podman']);
      await noNerdctl.reset('ok');
      await noNerdctl.set('docker-banner', 'podman version 5.4.0\n');
      const podman = await cli(['up', '--backend', 'kind'], { PATH: noNerdctl.path });
      expect(podman.code).toBe(1);
      expect(said(podman)).toMatch(/^kube-netlab up: the kind backend cannot run here: kind would use podman\n {2}kind picks podman: `podman -v` answers /);
      expect(await noNerdctl.log()).toEqual(['docker -v', 'podman -v']);
    } finally {
      await rm(join(fakes.dir, 'docker-banner'), { force: true });
      await runner.run([process.execPath, 'scripts/kube-netlab.mjs', 'down', '--name', 'netlab', '--backend', 'kind'], {
        allowFailure: true, env: { PATH: fakes.path, XDG_STATE_HOME: join(tmp, 'state') },
      });
    }
  }, 60_000);
});

describe('Ctrl-C during kube-netlab up --backend kind removes what was made', () => {
  let fake: FakeToolchain;
  const FIX = new URL('../fixtures/', import.meta.url);
  beforeAll(async () => {
    fake = await fakeToolchain(join(tmp, 'fake'), undefined, {
      'nodes.json': await readFile(new URL('kind/kubectl-get-nodes.json', FIX), 'utf8'),
      'pods.json': await readFile(new URL('kind/kubectl-get-pods.json', FIX), 'utf8'),
      'cluster.json': await readFile(new URL('kind-httpbin.kubectl.json', FIX), 'utf8'),
      rules: '*nat\nCOMMIT\n', 'rules.after': '*nat\nCOMMIT\n',
    });
  });

  it('SIGINT while kind creates the cluster: kind is stopped, the cluster deleted, exit 130', async () => {
    await fake.reset('hang');
    let pid = 0;
    const run = cli(['up', '--backend', 'kind', '--name', 'kntest'], { PATH: fake.path }, (p) => (pid = p));
    await until('kind create', async () => (await fake.log()).some((l) => l.startsWith('kind create')));
    expect(await readKindRecord('kntest')).toMatchObject({ status: 'creating', creator: { pid } });
    process.kill(pid, 'SIGINT');
    const r = await run;
    expect(r.code).toBe(130);
    expect(r.err).toContain('SIGINT: stopping, and removing what was made');
    expect(r.err).toMatch(/kube-netlab up: kind create cluster kntest interrupted \(SIGINT or abort\); the half-made cluster was deleted\n$/);
    expect((await fake.log()).slice(-3)).toEqual(['kind delete cluster --name kntest', 'kind get nodes --name kntest', 'kind get nodes --name kntest']);
    expect(await readFile(join(fake.dir, 'clusters'), 'utf8')).toBe('');
    expect(await stateFiles()).toEqual([]);
  }, 60_000);

  it('kill -9 before kind configured the nodes: `gc` proves them kube-netlab\'s by their mount and deletes them', async () => {
    await fake.reset('early');
    let pid = 0;
    const run = cli(['up', '--backend', 'kind', '--name', 'kntest'], { PATH: fake.path }, (p) => (pid = p));
    await until('kind create', async () => (await fake.log()).some((l) => l.startsWith('kind create')));
    process.kill(pid, 'SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    // No node has /kind/kubeadm.conf: before the owner mount, gc kept such a cluster forever.
    expect(existsSync(join(fake.dir, 'kubeadm', 'kntest-worker'))).toBe(false);
    const gc = await cli(['gc', '--backend', 'kind'], { PATH: fake.path });
    expect(gc.out).toMatch(/^kind: {2}deleted kntest: half-made or orphaned: its creator, pid \d+, died before `kind create` finished$/m);
    expect(await readFile(join(fake.dir, 'clusters'), 'utf8')).toBe('');
    expect(await stateFiles()).toEqual([]);
  }, 60_000);

  it('SIGINT while the workloads roll out: their commands are cancelled, the lab removed, exit 130 at once', async () => {
    await fake.reset('ok');
    await fake.set('rollout-hangs', '');
    try {
      let pid = 0;
      const run = cli(['up', '--backend', 'kind', '--name', 'netlab'], { PATH: fake.path }, (p) => (pid = p));
      await until('the rollout', async () => (await fake.log()).some((l) => l.includes('rollout status deployment/')));
      expect(await readKindRecord('netlab')).toMatchObject({ status: 'up' });
      const t0 = performance.now();
      process.kill(pid, 'SIGINT');
      const r = await run;
      expect(r.code).toBe(130);
      expect(r.err).toMatch(/kube-netlab up: interrupted; lab netlab removed\n$/);
      // The hanging `kubectl rollout status` (a 30 s sleep) was killed, not waited for.
      expect(performance.now() - t0).toBeLessThan(10_000);
      expect((await fake.log()).filter((l) => l.startsWith('kind delete'))).toEqual(['kind delete cluster --name netlab']);
      expect(await readFile(join(fake.dir, 'clusters'), 'utf8')).toBe('');
      expect(await stateFiles()).toEqual([]);
    } finally {
      await rm(join(fake.dir, 'rollout-hangs'), { force: true });
    }
  }, 60_000);

  it('the same through upLab with an AbortController, aborted mid-deploy', async () => {
    await fake.reset('ok');
    await fake.set('rollout-hangs', '');
    try {
      const ac = new AbortController();
      const steps: string[] = [];
      const p = upLab({
        backend: 'kind', mode: 'iptables', workers: 2, replicas: 3, name: 'netlab', runner: fake.runner, onProgress: (s) => steps.push(s), signal: ac.signal,
      }).catch((e: unknown) => e);
      await until('the rollout', async () => (await fake.log()).some((l) => l.includes('rollout status deployment/')));
      ac.abort();
      const err = await p;
      expect(err).toBeInstanceOf(UpInterrupted);
      expect((err as Error).message).toBe('interrupted; lab netlab removed');
      expect(steps.slice(-2)).toEqual(['deploy httpbin (3 replicas) and curl (1 replica)', 'remove lab netlab (interrupted)']);
      expect(await listKindRecords()).toEqual([]);
      expect(await readFile(join(fake.dir, 'clusters'), 'utf8')).toBe('');
    } finally {
      await rm(join(fake.dir, 'rollout-hangs'), { force: true });
    }
  });

  it('a deploy that fails keeps the cluster and says how to go on; `up` again continues with it', async () => {
    await fake.reset('ok');
    // Reading the cluster back fails: kubectl prints no JSON.
    await fake.set('cluster.json', 'not json');
    try {
      const err = await upLab({ backend: 'kind', mode: 'iptables', workers: 2, replicas: 3, name: 'netlab', runner: fake.runner, onProgress: () => undefined })
        .catch((e: unknown) => e);
      expect((err as Error).message).toMatch(/is not valid JSON; the cluster is kept: `kube-netlab up --name netlab` again continues with it, `kube-netlab down --name netlab` deletes it$/);
      expect(await readKindRecord('netlab')).toMatchObject({ status: 'up', kept: 'a failed deploy' });
      expect((await fake.log()).some((l) => l.startsWith('kind delete'))).toBe(false);
      expect(await readFile(join(fake.dir, 'clusters'), 'utf8')).toBe('netlab\n');
      // createLab (the notebooks' way in too) side-loaded the images before the deploy.
      const l = await fake.log();
      expect(l.findIndex((x) => x.startsWith('kind load image-archive '))).toBeGreaterThan(-1);
      expect(l.findIndex((x) => x.startsWith('kind load image-archive '))).toBeLessThan(l.findIndex((x) => x.includes(' apply -f -')));
    } finally {
      await fake.set('cluster.json', await readFile(new URL('kind-httpbin.kubectl.json', FIX), 'utf8'));
    }
    await fake.set('log', '');
    const again = await cli(['up', '--backend', 'kind', '--name', 'netlab'], { PATH: fake.path });
    expect(again.code).toBe(0);
    expect(again.err).toContain('cluster netlab is kube-netlab\'s, kept after a failed deploy: continuing with it');
    expect(again.out).toMatch(/^lab netlab is up on kind/);
    expect((await fake.log()).some((l) => l.startsWith('kind create'))).toBe(false);
    expect((await readKindRecord('netlab'))?.kept).toBeUndefined();
    const down = await cli(['down', '--backend', 'kind', '--name', 'netlab'], { PATH: fake.path });
    expect(down.out).toBe('removed lab netlab: kind cluster netlab\n');
    expect(await stateFiles()).toEqual([]);
  }, 60_000);
});
