/**
 * A Docker daemon of the test's own: Debian's dockerd on a socket, data root, exec root and pid
 * file in a private folder, with no bridge, no iptables and no forwarding, so it never touches
 * the host's network; started by the test and stopped by its pid. Never the default socket.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError, MissingToolError, runner, type ExecResult, type RunOptions } from '../../lib/exec/index.ts';
import { projectPath } from '../../lib/project/index.ts';

export interface PrivateDocker {
  dir: string;
  pid: number;
  /** The docker CLI (one that builds with BuildKit) and the env that points it at this daemon. */
  cli: string;
  env: Record<string, string>;
  docker(args: readonly string[], opts?: RunOptions): Promise<ExecResult>;
  stop(): Promise<void>;
}

/** dockerd's options besides the private paths: nothing on the host's network changes. */
export const DAEMON_FLAGS = [
  '--bridge=none', '--iptables=false', '--ip6tables=false',
  // Without it dockerd turns on the host's net.ipv4.ip_forward when it starts.
  '--ip-forward=false',
];

/** Free space the base, the image and the build cache need, with room to spare. */
const NEEDED_BYTES = 4 * 1024 ** 3;

/** The first version number in `docker --version` (`Docker version 20.10.24+dfsg1, build …`). */
function majorOf(versionLine: string): number | null {
  const m = /version (\d+)\./.exec(versionLine);
  return m ? Number(m[1]) : null;
}

/**
 * A docker CLI that builds with BuildKit (the Dockerfile mounts a secret): one with the buildx
 * plugin, or Docker 20.10–22's own CLI (DOCKER_BUILDKIT=1), such as Debian's docker.io. The one on
 * PATH first, then Debian's, which may sit behind another on PATH.
 */
async function buildkitCli(): Promise<{ cli: string } | { why: string }> {
  const tried: string[] = [];
  for (const cli of [...new Set(['docker', '/usr/bin/docker'])]) {
    let version: ExecResult;
    try {
      version = await runner.run([cli, '--version'], { allowFailure: true, timeoutMs: 10_000 });
    } catch (e) {
      if (e instanceof MissingToolError) { tried.push(`${cli}: not installed`); continue; }
      throw e;
    }
    const buildx = await runner.run([cli, 'buildx', 'version'], { allowFailure: true, timeoutMs: 10_000 });
    const major = majorOf(version.stdout);
    if (buildx.exitCode === 0 || (major !== null && major < 23)) return { cli };
    tried.push(`${cli}: ${version.stdout.trim()} without the buildx plugin`);
  }
  return { why: `no docker CLI here builds with BuildKit (${tried.join('; ')}): apt-get install -y docker.io` };
}

/** Why the container test cannot run on this machine, or null; probed, never assumed. */
export async function dockerSkipReason(): Promise<string | null> {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (a Docker daemon of its own)';
  if (!(await runner.has('dockerd'))) return 'dockerd is not installed: apt-get install -y docker.io';
  const cli = await buildkitCli();
  if ('why' in cli) return cli.why;
  if (!(await runner.has('debootstrap'))) return 'debootstrap is not installed: apt-get install -y debootstrap';
  const free = (() => { const s = statfsSync(tmpdir()); return s.bavail * s.bsize; })();
  if (free < NEEDED_BYTES) return `${tmpdir()} has ${(free / 1024 ** 3).toFixed(1)} GB free; the base, the image and the build need ${NEEDED_BYTES / 1024 ** 3} GB`;
  return null;
}

/**
 * Why the base or the image cannot be built from this network, or null: the Debian mirror
 * debian-base.sh would use (also the one apt uses in the build) and npm's registry, asked once each.
 */
export async function networkSkipReason(): Promise<string | null> {
  const script = projectPath('scripts', 'container', 'debian-base.sh');
  const mirror = (await runner.run(['bash', script, '--print-mirror'], { timeoutMs: 30_000 })).stdout.trim();
  const release = `${mirror}/dists/bookworm/Release`;
  try {
    const r = await fetch(release, { method: 'HEAD', signal: AbortSignal.timeout(15_000) });
    if (!r.ok) return `the Debian mirror answers ${r.status} for ${release}`;
  } catch (e) {
    return `the Debian mirror is not reachable (${release}: ${(e as Error).cause ?? (e as Error).message})`;
  }
  const ping = await runner.run(['npm', 'ping', '--fetch-timeout=15000', '--fetch-retries=0'], { allowFailure: true, timeoutMs: 60_000 });
  if (ping.exitCode !== 0) {
    const lines = ping.stderr.split('\n');
    const why = lines.find((l) => l.includes('request to')) ?? lines.find((l) => / code /.test(l)) ?? lines[0];
    return `npm's registry is not reachable (npm ping: ${why})`;
  }
  return null;
}

/**
 * The certificate authorities this machine trusts besides the usual ones, as one PEM file in dir
 * for the build's `--secret id=ca`, or null: the file Node.js is told to add (NODE_EXTRA_CA_CERTS),
 * else the one OpenSSL is pointed at (SSL_CERT_FILE), else the local authorities Debian's
 * update-ca-certificates installs. A network that intercepts TLS signs with one of them.
 */
export function extraCaBundle(dir: string): string | null {
  for (const file of [process.env.NODE_EXTRA_CA_CERTS, process.env.SSL_CERT_FILE]) {
    if (file && existsSync(file)) return file;
  }
  const local = '/usr/local/share/ca-certificates';
  const pems = existsSync(local) ? readdirSync(local, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.crt')) : [];
  if (pems.length === 0) return null;
  const bundle = join(dir, 'extra-ca.pem');
  writeFileSync(bundle, pems.map((f) => readFileSync(join(local, f), 'utf8')).join('\n'), { mode: 0o600 });
  return bundle;
}

function deadOrZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function waitUntil(test: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await test()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return test();
}

/** Start dockerd in a private folder under the temp dir; throws with its log when it does not answer. */
export async function startPrivateDocker(): Promise<PrivateDocker> {
  const cliFound = await buildkitCli();
  if ('why' in cliFound) throw new Error(cliFound.why);
  const dir = mkdtempSync(join(tmpdir(), 'kube-netlab-docker-'));
  const socket = join(dir, 'docker.sock');
  const log = join(dir, 'dockerd.log');
  mkdirSync(join(dir, 'config'), { mode: 0o700 });
  const pid = await runner.spawnDetached([
    'dockerd', ...DAEMON_FLAGS,
    '--host', `unix://${socket}`, '--data-root', join(dir, 'root'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'docker.pid'),
  ], log);
  // A crashed test run must not leave the daemon behind.
  const onExit = () => { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } };
  process.once('exit', onExit);
  // DOCKER_CONFIG: the CLI's own folder, so nothing of ~/.docker (contexts, credentials) is read.
  const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, 'config'), DOCKER_BUILDKIT: '1' };
  const docker = (args: readonly string[], opts: RunOptions = {}) => runner.run([cliFound.cli, ...args], { timeoutMs: 60_000, ...opts, env: { ...env, ...opts.env } });
  const answered = await waitUntil(async () => !deadOrZombie(pid) && (await docker(['version'], { allowFailure: true, timeoutMs: 5_000 })).exitCode === 0, 60_000);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!deadOrZombie(pid)) {
      // Containers first, so that dockerd has nothing to wait for; then the daemon, by its pid.
      const ids = (await docker(['ps', '-aq'], { allowFailure: true })).stdout.split('\n').filter(Boolean);
      if (ids.length) await docker(['rm', '-f', ...ids], { allowFailure: true, timeoutMs: 120_000 });
      process.kill(pid, 'SIGTERM');
      if (!(await waitUntil(() => deadOrZombie(pid), 60_000))) process.kill(pid, 'SIGKILL');
    }
    process.removeListener('exit', onExit);
    // The containerd dockerd started for itself keeps its pid file in the exec root.
    const containerdPid = join(dir, 'exec', 'containerd', 'containerd.pid');
    if (existsSync(containerdPid)) {
      const cpid = Number(readFileSync(containerdPid, 'utf8').trim());
      if (cpid > 0 && !deadOrZombie(cpid)) { process.kill(cpid, 'SIGTERM'); await waitUntil(() => deadOrZombie(cpid), 30_000); }
    }
    // Whatever is still mounted below the folder (a crashed container's overlay) before removing it.
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m) => m?.startsWith(`${dir}/`));
    for (const m of mounts.sort().reverse()) await runner.run(['umount', '-l', m], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  };
  if (!answered) {
    const tail = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-15).join('\n') : '(no log)';
    await stop();
    throw new Error(`dockerd did not answer on ${socket} within 60 s:\n${tail}`);
  }
  return { dir, pid, cli: cliFound.cli, env, docker, stop };
}

/** Run a docker command whose output is long (a build): on failure, the last lines of it. */
export async function dockerOrExplain(d: PrivateDocker, args: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  const r = await d.docker(args, { ...opts, allowFailure: true });
  if (r.exitCode !== 0) {
    const tail = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-40).join('\n');
    throw new CommandError([d.cli, ...args], r.exitCode, tail, 'exit');
  }
  return r;
}
