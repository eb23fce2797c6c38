/**
 * The kind backend: real Kubernetes in Docker containers, driven through the kind, kubectl and
 * docker CLIs. kind's kube-proxy writes the rules; this backend only watches what changed.
 */
import { diffLines } from '../diff.ts';
import { readFile } from 'node:fs/promises';
import { ensurePrivateDir, replaceFile, takeLock, type Lock } from '../../files/index.ts';
import { dirname, join } from 'node:path';
import { isMap, isNode, parse as parseYaml, parseDocument } from 'yaml';
import {
  CommandError, MissingToolError, installHint, processRef, runner as defaultRunner,
  type EchoSink, type ExecResult, type RunOptions, type Runner,
} from '../../exec/index.ts';
import { readCluster } from '../../k8s/read.ts';
import { resolveServicePorts, usableEndpoints } from '../../k8s/resolve.ts';
import type { Cluster, EndpointSlice, Service } from '../../k8s/types.ts';
import { projectPath } from '../../project/index.ts';
import type { ProxyMode } from '../../proxy/modes.ts';
import type { Capabilities, K8sObject, Lab, LabNode, LoadResult, LoadSpec, Pod, SyncReport } from '../types.ts';
import { checkLabName } from '../types.ts';
import {
  IPVS_SCHEDULER, KIND_PROVIDER_PROBES, dockerInspectMounts, ipvsModules, parseKubeProxyScheduler, kubectlRolloutStatusDaemonSet, kubectlWaitNodesReady, KIND_PROVIDER_VALUES, MIN_KIND, classifyDockerInfoFailure, classifyKindFailure, compareSemver, dockerExec, dockerInfo, formatSemver,
  kindCreate, kindDelete, kindErrors, kindGetClusters, kindGetNodes, kindVersion, kubectlApply, kubectlDeleteServices, kubectlExec, kubectlGetJson,
  kubectlGetKubeProxyConfig, kubectlGetKubeProxyPod, kubectlGetNodes, kubectlRolloutStatus, kubectlScale,
  loadArgv, parseKindClusters, parseKindNodes, parseKindVersion, parseKubeProxyMode, parseKubectlVersion, parseLoadOutput,
  isProviderBanner, parseNodesJson, parsePodsJson, toolVersionBanner, type NodeProvider, type Semver,
} from './commands.ts';
import {
  OWNER_LABEL, OWNER_MOUNT_DIR, createKindRecord, creatorLiveness, kindConfigFile, kindStateDir, markerOf, newOwnerToken, ownerMounts,
  proveOwnership, readKindRecord, removeKindRecord, thisCreator, writeKindRecord, type KindRecord, type NodeMarker,
} from './state.ts';

export * from './commands.ts';

/** The kind backend cannot run on this machine: what is wrong, and what to do about it. */
export class BackendUnavailableError extends Error {
  override readonly name = 'BackendUnavailableError';
  constructor(
    /** Short and stable, e.g. 'docker daemon unreachable'; tests and callers match on it. */
    override readonly cause: string,
    /** What to type or install. */
    readonly fix: string,
    /** The tool's own words (stderr), when there are any. */
    readonly detail = '',
  ) {
    super(`the kind backend cannot run here: ${cause}${detail ? `\n  ${detail.trim().split('\n').slice(-2).join('\n  ')}` : ''}\n  fix: ${fix}`);
  }
}

/** kind's config per mode, in labs/ (each pins the node image). */
export function kindConfigPath(mode: ProxyMode): string {
  return projectPath('labs', `kind-${mode}.yaml`);
}

export const KIND_INSTALL = 'install kind v0.29.0 or later: `go install sigs.k8s.io/kind@v0.29.0`, or the release binary from kind.sigs.k8s.io/docs/user/quick-start';
const QUICK = 10_000; // a CLI that answers at all answers in well under 10 s

export interface Toolchain { docker: string; kind: Semver; kubectl: string }

/**
 * The provider kind will use, then Docker's daemon, kind and kubectl, checked in that order with
 * short timeouts; the first problem throws a BackendUnavailableError that names its cause and its fix.
 */
export async function preflight(r: Runner): Promise<Toolchain> {
  await checkProvider(r);
  const docker = await checkDocker(r);
  const kind = await checkKind(r);
  return { docker, kind, kubectl: await checkKubectl(r) };
}

/** Which node provider kind picks here, and why (see KIND_PROVIDER_PROBES). */
export async function kindProvider(r: Runner): Promise<{ provider: NodeProvider; why: string }> {
  const asked = r.defaults.env?.KIND_EXPERIMENTAL_PROVIDER ?? process.env.KIND_EXPERIMENTAL_PROVIDER ?? '';
  const chosen = KIND_PROVIDER_VALUES.find((p) => p === asked);
  if (chosen) return { provider: chosen, why: `KIND_EXPERIMENTAL_PROVIDER=${asked} is set` };
  const seen: string[] = [];
  for (const { provider, banner } of KIND_PROVIDER_PROBES) {
    const res = await r.run(toolVersionBanner(provider), { allowFailure: true, timeoutMs: QUICK }).catch((e: unknown) => {
      if (e instanceof MissingToolError) return null;
      throw e;
    });
    if (res && res.exitCode === 0 && isProviderBanner(res.stdout, banner)) {
      return { provider, why: `\`${provider} -v\` answers${seen.length ? ` (${seen.join('; ')})` : ''}` };
    }
    if (res && provider === 'docker') seen.push(`\`docker -v\` printed ${JSON.stringify(res.stdout.trim().split('\n')[0] ?? '')}, not Docker's banner`);
  }
  return { provider: 'docker', why: 'none of docker, nerdctl, finch or podman answers, so kind falls back to docker' };
}

/**
 * kube-netlab drives the nodes through docker (exec, inspect, save); with another provider its
 * captures would come back empty, so it refuses up front and names the provider kind would pick.
 */
export function providerProblem(p: { provider: NodeProvider; why: string }): BackendUnavailableError | null {
  if (p.provider === 'docker') return null;
  const unset = p.why.startsWith('KIND_EXPERIMENTAL_PROVIDER') ? 'unset KIND_EXPERIMENTAL_PROVIDER, and ' : '';
  return new BackendUnavailableError(`kind would use ${p.provider}`,
    `kube-netlab runs its kind nodes through Docker only: ${unset}install Docker (Docker Desktop, Docker Engine or rootless Docker) so that \`docker -v\` prints "Docker version …"`,
    `kind picks ${p.provider}: ${p.why}`);
}

export async function checkProvider(r: Runner): Promise<void> {
  const problem = providerProblem(await kindProvider(r));
  if (problem) throw problem;
}

/** The daemon's version, or a BackendUnavailableError that says why docker can't be used. */
export async function checkDocker(r: Runner): Promise<string> {
  let docker: string;
  try {
    docker = (await r.run(dockerInfo(), { timeoutMs: QUICK })).stdout.trim();
  } catch (e) {
    throw dockerUnavailable(e);
  }
  if (docker === '') throw new BackendUnavailableError('docker daemon unreachable', 'start Docker and check that `docker info` shows a Server section');
  return docker;
}

/** kind's version: v0.29.0 or later in every mode (see MIN_KIND). */
export async function checkKind(r: Runner): Promise<Semver> {
  let kind: Semver;
  try {
    kind = parseKindVersion((await r.run(kindVersion(), { timeoutMs: QUICK })).stdout);
  } catch (e) {
    if (e instanceof MissingToolError) throw new BackendUnavailableError('kind not installed', KIND_INSTALL);
    if (e instanceof CommandError) throw new BackendUnavailableError('kind does not run', KIND_INSTALL, e.stderr);
    throw e;
  }
  if (compareSemver(kind, MIN_KIND) < 0) {
    throw new BackendUnavailableError('kind too old', KIND_INSTALL,
      `kind ${formatSemver(kind)} is older than ${formatSemver(MIN_KIND)}, the release whose node image labs/kind-*.yaml pin`);
  }
  return kind;
}

async function checkKubectl(r: Runner): Promise<string> {
  try {
    return parseKubectlVersion((await r.run(['kubectl', 'version', '--client', '-o', 'json'], { timeoutMs: QUICK })).stdout);
  } catch (e) {
    if (e instanceof MissingToolError) throw new BackendUnavailableError('kubectl not installed', installHint('kubectl')!);
    if (e instanceof CommandError) throw new BackendUnavailableError('kubectl does not run', `re${installHint('kubectl')}`, e.stderr);
    throw e;
  }
}

/** A failed `docker info` as a BackendUnavailableError (anything else is rethrown as is). */
export function dockerUnavailable(e: unknown): Error {
  if (e instanceof MissingToolError) return new BackendUnavailableError('docker not installed', installHint('docker')!);
  if (!(e instanceof CommandError)) return e as Error;
  if (e.reason === 'timeout') return new BackendUnavailableError('docker daemon unreachable', 'the daemon did not answer `docker info` within 10 s: restart Docker', 'docker info timed out');
  switch (classifyDockerInfoFailure(e.stderr)) {
    case 'daemon-unreachable':
      return new BackendUnavailableError('docker daemon unreachable',
        'start it (`sudo systemctl start docker`, or open Docker Desktop) and check `docker info`; a set DOCKER_HOST must point at a running daemon', e.stderr);
    case 'permission-denied':
      return new BackendUnavailableError('docker permission denied',
        'add yourself to the docker group (`sudo usermod -aG docker $USER`, then log in again), or run as root', e.stderr);
    default:
      return new BackendUnavailableError('docker info failed', 'run `docker info` and fix what it reports', e.stderr);
  }
}

/** Why the kind backend cannot run here, or null when it can (for createLab's `auto`). */
export async function kindUnavailable(r: Runner = defaultRunner): Promise<string | null> {
  return unavailable(() => preflight(r));
}

/**
 * Why kind clusters can't be listed or deleted here, or null: kind (checked first: it needs no
 * daemon) and docker; kubectl is not needed.
 */
export async function kindClustersUnavailable(r: Runner = defaultRunner): Promise<string | null> {
  return unavailable(async () => {
    await checkKind(r);
    await checkProvider(r);
    await checkDocker(r);
  });
}

async function unavailable(check: () => Promise<unknown>): Promise<string | null> {
  try {
    await check();
    return null;
  } catch (e) {
    if (e instanceof BackendUnavailableError) return `${e.cause}; ${e.fix}`;
    throw e;
  }
}

export interface KindLabOptions {
  name: string;
  mode: ProxyMode;
  /** Worker nodes besides the control plane (the labs/ configs have 2). */
  workers?: number;
  runner?: Runner;
  /** Print every command as the shell would read it. */
  echo?: EchoSink;
  /** Keep the nodes of a failed create for debugging (kind's --retain); nothing is deleted then. */
  retain?: boolean;
  /** kind's --wait for the control plane (default 120s). */
  wait?: string;
  onProgress?: (step: string) => void;
  /** Aborting it stops a running create the way Ctrl-C does (and cleans up the same way). */
  signal?: AbortSignal;
  /** The process whose life this lab shares (a notebook kernel): gc deletes the lab once it has died. */
  heldBy?: number;
  /** IPVS mode: how long /proc/net/ip_vs gets to appear in the nodes after modprobe (60 s). */
  ipvsWaitMs?: number;
  /** How long every node gets to be Ready after `kind create` (300 s). */
  nodesReadyMs?: number;
}

/**
 * The kind config for one lab: labs/kind-<mode>.yaml with `workers` workers, and every node
 * labelled OWNER_LABEL=<owner> and given the owner mount (OWNER_MOUNT_DIR/<owner>), so that `gc`
 * and `down` can prove the cluster is kube-netlab's. The mount's source is /lib/modules, which
 * kind mounts into every node anyway (pkg/cluster/internal/providers/docker/provision.go,
 * `--volume /lib/modules:/lib/modules:ro`), so it exists wherever kind runs, Docker Desktop too.
 */
export async function kindClusterConfig(mode: ProxyMode, workers: number, owner: string): Promise<string> {
  if (!/^[a-z0-9]{1,63}$/.test(owner)) throw new Error(`owner token ${JSON.stringify(owner)}: expected 1-63 lower-case letters and digits`);
  const doc = parseDocument(await readFile(kindConfigPath(mode), 'utf8'));
  type Mount = { hostPath: string; containerPath: string; readOnly?: boolean };
  type NodeCfg = { role: string; image?: string; labels?: Record<string, string>; extraMounts?: Mount[] };
  const nodes = (doc.toJS() as { nodes?: NodeCfg[] }).nodes ?? [];
  const cp = nodes.find((n) => n.role === 'control-plane') ?? { role: 'control-plane' };
  const worker = nodes.find((n) => n.role === 'worker') ?? { role: 'worker', image: cp.image };
  const mark = (n: NodeCfg): NodeCfg => ({
    ...n, labels: { ...n.labels, [OWNER_LABEL]: owner },
    extraMounts: [...(n.extraMounts ?? []), { hostPath: '/lib/modules', containerPath: `${OWNER_MOUNT_DIR}/${owner}`, readOnly: true }],
  });
  doc.set('nodes', [mark(cp), ...Array.from({ length: workers }, () => mark(worker))]);
  // The labs/ file's header explains that file; this one gets its own.
  if (isMap(doc.contents)) {
    doc.contents.commentBefore = undefined;
    const first = doc.contents.items[0]?.key;
    if (isNode(first)) first.commentBefore = undefined;
  }
  doc.commentBefore = ` Generated by kube-netlab from labs/kind-${mode}.yaml: ${workers} worker${workers === 1 ? '' : 's'}, and the label ${OWNER_LABEL} on every\n`
    + ` node (and a mount at ${OWNER_MOUNT_DIR}/<token>), so that \`kube-netlab gc\` and \`kube-netlab down\` can tell this cluster\n`
    + ' from other kind clusters.';
  return doc.toString();
}

/** A kind lab's lock, beside its record (see files/lock.ts). */
async function lockKindLab(name: string, doing: string, waitMs: number, r: Runner): Promise<Lock> {
  await ensurePrivateDir(kindStateDir());
  return takeLock(join(kindStateDir(), `${name}.lock`), { what: `kind lab ${name}`, doing, waitMs, runner: r });
}

/**
 * Create the kind cluster for a lab: preflight first (fails in seconds with a cause and a fix),
 * then a record of the lab (see state.ts), then `kind create cluster --wait` on a generated config
 * that marks every node with the record's owner token, then `prepare` (nodes and kube-proxy
 * Ready, IPVS, images). A failed or interrupted (Ctrl-C, or `signal`) create deletes what it
 * made, unless `retain`; a crash leaves the record for `gc`. A cluster kind finished but whose
 * nodes are slow is kept instead, and a later create of the same lab continues with it.
 */
export async function createKindLab(opts: KindLabOptions): Promise<KindLab> {
  const name = checkLabName(opts.name);
  const workers = opts.workers ?? 2;
  if (!Number.isInteger(workers) || workers < 1 || workers > 10) throw new Error(`workers must be 1..10 for kind, got ${workers}`);
  const base = opts.runner ?? defaultRunner;
  const r = opts.echo ? base.withEcho(opts.echo) : base;
  const progress = opts.onProgress ?? (() => undefined);

  progress('preflight: docker daemon, kind, kubectl');
  const tools = await preflight(r);
  // Held until `kind create` has returned: two `up` of one name never write one record twice.
  const lock = await lockKindLab(name, 'up', 0, base);
  try {
    return await createLocked(opts, name, workers, r, tools, progress);
  } finally {
    lock.release();
  }
}

async function createLocked(
  opts: KindLabOptions, name: string, workers: number, r: Runner, tools: Toolchain, progress: (s: string) => void,
): Promise<KindLab> {
  const existing = parseKindClusters((await r.run(kindGetClusters(), { timeoutMs: QUICK })).stdout);
  if (existing.includes(name)) {
    const ours = await readKindRecord(name).catch(() => null);
    if (ours?.kept && (await resumable(r, ours, opts))) return resume(opts, ours, r, progress);
    throw new Error(`kind cluster ${name} already exists: ${ours
      ? `it is a kube-netlab lab (${ours.status}${ours.mode !== opts.mode ? `, mode ${ours.mode}` : ''}); use it, or remove it with \`kube-netlab down --name ${name}\``
      : `use it, or pick another --name (kube-netlab did not make it, so it will not delete it: \`kind delete cluster --name ${name}\` does)`}`);
  }

  if (opts.signal?.aborted) throw new Error(`kind create cluster ${name} interrupted before it began; nothing was made`);
  const wait = opts.wait ?? '120s';
  const owner = newOwnerToken();
  const config = kindConfigFile(name);
  const record: KindRecord = {
    version: 1, name, backend: 'kind', mode: opts.mode, owner, status: 'creating', creator: thisCreator(), createdAt: new Date().toISOString(),
    ...(opts.heldBy !== undefined ? { heldBy: { ...processRef(opts.heldBy), host: thisCreator().host } } : {}),
  };
  // Made exclusively, before anything exists, so a crash at any later point leaves something gc finds.
  if (!(await createKindRecord(record))) {
    const other = await readKindRecord(name).catch(() => null);
    if (other?.status === 'creating' && creatorLiveness(other.creator) !== 'dead') {
      const who = other.creator.host !== record.creator.host ? ` on ${other.creator.host}` : other.creator.pid === process.pid ? ' (this process)' : '';
      throw new Error(`lab ${name} is being created by pid ${other.creator.pid}${who}: wait for that \`up\` to finish, or pick another --name`);
    }
    // No cluster by this name (listed above) and nobody creating it: the record is stale.
    await removeKindRecord(name);
    if (!(await createKindRecord(record))) throw new Error(`lab ${name}: another \`up\` of this name began just now; pick another --name`);
  }
  const stop = interruption(opts.signal);
  let started = false;
  let made = false;
  try {
    await ensurePrivateDir(dirname(config));
    await replaceFile(config, await kindClusterConfig(opts.mode, workers, owner));
    progress(`kind ${formatSemver(tools.kind)}: create cluster ${name} (kube-proxy ${opts.mode}, 1 control plane + ${workers} workers)`);
    if (stop.interrupted()) throw new Error('interrupted');
    // Image pulls on a first run take minutes; --wait bounds the rest.
    started = true;
    await r.run(kindCreate({ name, config, wait, retain: opts.retain }), { signal: stop.signal, timeoutMs: 20 * 60_000 });
    made = true;
    await prepare(new KindLab(name, opts.mode, r.withSignal(stop.signal)), opts, stop.interrupted, progress);
  } catch (e) {
    const theirs = e instanceof CommandError && classifyKindFailure(e.stderr) === 'cluster-exists';
    // kind made the cluster and only readiness failed (a slow laptop): keep minutes of work.
    if (made && !stop.interrupted() && !(e instanceof BackendUnavailableError)) {
      await writeKindRecord({ ...record, status: 'up', kept: 'nodes not ready' });
      throw new Error(`${(e as Error).message}; ${keptAdvice(name)}`, { cause: e });
    }
    // Never delete a cluster that was there before us (a race with another create), nor one
    // another process may have made by this name before our kind even started.
    const cleaned = started && !opts.retain && !theirs;
    let deleted = false;
    if (cleaned) {
      progress(`delete the half-made cluster ${name}`);
      deleted = await deleteUntilGone(r, name, owner);
    }
    // Keep the record while our nodes may still exist (retained, or kind delete failed): gc needs it.
    if (theirs || deleted || !started) await removeKindRecord(name);
    else if (opts.retain) await writeKindRecord({ ...record, status: 'retained' });
    const after = !started ? 'nothing was made'
      : opts.retain ? `its nodes are kept (--retain): \`kube-netlab down --name ${name}\` removes them`
        : deleted ? 'the half-made cluster was deleted'
          : cleaned ? `deleting the half-made cluster failed: \`kube-netlab gc\` retries` : '';
    if (stop.interrupted()) throw new Error(`kind create cluster ${name} interrupted (SIGINT or abort); ${after}`);
    if (e instanceof BackendUnavailableError) throw new BackendUnavailableError(e.cause, e.fix, `${e.detail}${after ? `; ${after}` : ''}`);
    if (e instanceof CommandError) {
      const why = classifyKindFailure(e.stderr);
      if (why === 'docker-missing') throw new BackendUnavailableError('docker not installed', installHint('docker')!, e.stderr);
      if (why === 'docker-unreachable') throw new BackendUnavailableError('docker daemon unreachable', 'start Docker and check `docker info`', e.stderr);
      const said = kindErrors(e.stderr);
      throw new Error(`kind create cluster ${name} failed: ${said.length ? said.join('; ') : e.message}${after ? `; ${after}` : ''}`, { cause: e });
    }
    throw e;
  } finally {
    stop.release();
  }
  await writeKindRecord({ ...record, status: 'up' });
  progress(`cluster ${name} is up (context ${`kind-${name}`})`);
  return new KindLab(name, opts.mode, r);
}

/** Note on lab `name`'s record why it was kept (a failed deploy), so that `up` again continues with it. */
export async function keepKindLab(name: string, why: string): Promise<void> {
  const rec = await readKindRecord(name);
  if (rec) await writeKindRecord({ ...rec, kept: why });
}

/** What to do with a cluster kept after a failure that did not spoil it. */
export function keptAdvice(name: string): string {
  return `the cluster is kept: \`kube-netlab up --name ${name}\` again continues with it, \`kube-netlab down --name ${name}\` deletes it`;
}

/**
 * Ctrl-C (SIGINT) or `signal` during a create: noted, and `signal` aborts the running command;
 * the create then cleans up instead of this process dying mid-way.
 */
function interruption(outer?: AbortSignal): { signal: AbortSignal; interrupted: () => boolean; release: () => void } {
  const ac = new AbortController();
  const onStop = () => ac.abort();
  // From here on Ctrl-C stops kind and removes what it made, instead of killing this process.
  process.once('SIGINT', onStop);
  if (outer?.aborted) onStop();
  outer?.addEventListener('abort', onStop, { once: true });
  return {
    signal: ac.signal,
    interrupted: () => ac.signal.aborted,
    release: () => {
      process.removeListener('SIGINT', onStop);
      outer?.removeEventListener('abort', onStop);
    },
  };
}

/**
 * A lab kept after a failed deploy or readiness wait, that this `up` may continue with: same
 * mode, nobody else holding it, and its nodes proven the record's.
 */
async function resumable(r: Runner, rec: KindRecord, opts: KindLabOptions): Promise<boolean> {
  if (rec.status !== 'up' || rec.mode !== opts.mode) return false;
  if (rec.heldBy && rec.heldBy.pid !== opts.heldBy && creatorLiveness(rec.heldBy) === 'alive') return false;
  return proveOwnership(rec, await readMarkers(r, rec.name)) === 'ours';
}

async function resume(opts: KindLabOptions, rec: KindRecord, r: Runner, progress: (s: string) => void): Promise<KindLab> {
  progress(`cluster ${rec.name} is kube-netlab's, kept after ${rec.kept}: continuing with it`);
  const stop = interruption(opts.signal);
  try {
    await prepare(new KindLab(rec.name, rec.mode, r.withSignal(stop.signal)), opts, stop.interrupted, progress);
  } catch (e) {
    throw new Error(`${stop.interrupted() ? 'interrupted' : (e as Error).message}; ${keptAdvice(rec.name)}`, { cause: e });
  } finally {
    stop.release();
  }
  const { kept: _done, ...clean } = rec;
  await writeKindRecord({ ...clean, ...(opts.heldBy !== undefined ? { heldBy: { ...processRef(opts.heldBy), host: thisCreator().host } } : {}) });
  progress(`cluster ${rec.name} is up (context kind-${rec.name})`);
  return new KindLab(rec.name, rec.mode, r);
}

/**
 * After `kind create`: every node Ready (kind's --wait covers only the control plane, and its
 * timeout is not an error), IPVS loaded in ipvs mode, kube-proxy Ready on every node, and the
 * workloads' images side-loaded from Docker's image store.
 */
async function prepare(lab: KindLab, opts: KindLabOptions, interrupted: () => boolean, progress: (s: string) => void): Promise<void> {
  const r = lab.runner;
  const readyS = Math.round((opts.nodesReadyMs ?? 300_000) / 1000);
  progress(`wait for every node to be Ready (up to ${readyS} s)`);
  try {
    await r.run(kubectlWaitNodesReady(lab.name, `${readyS}s`), { timeoutMs: readyS * 1000 + 30_000 });
  } catch (e) {
    if (!(e instanceof CommandError) || interrupted()) throw e;
    throw new Error(`not every node of ${lab.name} is Ready after ${readyS} s: ${e.stderr.trim().split('\n').at(-1) ?? e.message}`, { cause: e });
  }
  if (opts.mode === 'ipvs') await loadIpvs(lab, opts.ipvsWaitMs ?? 60_000, interrupted, progress);
  progress('wait for kube-proxy to be Ready on every node');
  await r.run(kubectlRolloutStatusDaemonSet(lab.name, 'kube-proxy', 'kube-system', '180s'), { timeoutMs: 200_000 });
  if (interrupted()) throw new Error('interrupted');
  const { labImages, sideLoadImages } = await import('./images.ts');
  const images = (await labImages()).workloads;
  progress(`side-load ${images.join(', ')} from Docker's image store (docker save, kind load image-archive)`);
  const steps = await sideLoadImages(r, lab.name, images).catch((e: unknown) => [{ command: 'side-load', ok: false, detail: (e as Error).message }]);
  if (interrupted()) throw new Error('interrupted');
  const failed = steps.find((x) => !x.ok);
  if (failed) progress(`side-loading failed (${failed.command}: ${failed.detail}); the nodes will pull the images themselves`);
}

/**
 * IPVS mode needs ip_vs and the module of the scheduler in use in the kernel Docker runs on (Docker Desktop's
 * VM on macOS and Windows). They are loaded from inside a node, whose image has kmod and gets
 * /lib/modules from kind, so this works wherever that kernel ships them; then /proc/net/ip_vs
 * must appear in the nodes.
 */
async function loadIpvs(lab: KindLab, waitMs: number, interrupted: () => boolean, progress: (s: string) => void): Promise<void> {
  const node = `${lab.name}-control-plane`;
  // The scheduler kube-proxy will use; rr when its ConfigMap can't be read (kind's default).
  const cm = await lab.runner.run(kubectlGetKubeProxyConfig(lab.name), { allowFailure: true, timeoutMs: 30_000 });
  const mods = ipvsModules(cm.exitCode === 0 ? parseKubeProxyScheduler(cm.stdout, parseYaml) : IPVS_SCHEDULER);
  progress(`load ${mods.join(' ')} from inside ${node} (docker exec ${node} modprobe -a ${mods.join(' ')})`);
  const loaded = await lab.exec(node, ['modprobe', '-a', ...mods], { allowFailure: true, timeoutMs: QUICK });
  const unavailable = (detail: string) => new BackendUnavailableError('kernel has no IP_VS',
    `use --mode iptables or --mode nftables (they need no extra module); on a Linux host, \`sudo modprobe -a ${mods.join(' ')}\` first (rootless Docker cannot load modules itself), and if modprobe finds none, install them (Ubuntu: \`sudo apt-get install linux-modules-extra-$(uname -r)\`)`,
    detail);
  if (loaded.exitCode !== 0) throw unavailable(`\`modprobe -a ${mods.join(' ')}\` in ${node} failed: ${loaded.stderr.trim().split('\n').at(-1) ?? ''}`);
  const deadline = Date.now() + waitMs;
  while (!(await lab.capabilities()).ipvs) {
    if (interrupted()) throw new Error('interrupted');
    if (Date.now() >= deadline) throw unavailable(`/proc/net/ip_vs stayed absent on the nodes for ${Math.round(waitMs / 1000)} s after modprobe`);
    await new Promise((res) => setTimeout(res, Math.min(2_000, waitMs)));
  }
}

/** openKindLab found no kind cluster by that name. */
export class NoKindClusterError extends Error {
  override readonly name = 'NoKindClusterError';
}

/** A kind lab made earlier; its mode is read back from kube-proxy's ConfigMap. */
export async function openKindLab(name: string, r: Runner = defaultRunner): Promise<KindLab> {
  checkLabName(name);
  await preflight(r);
  const clusters = parseKindClusters((await r.run(kindGetClusters(), { timeoutMs: QUICK })).stdout);
  if (!clusters.includes(name)) {
    throw new NoKindClusterError(`no kind cluster named ${name}${clusters.length ? ` (there are: ${clusters.join(', ')})` : ''}: \`kube-netlab up --backend kind --name ${name}\` creates one`);
  }
  const cm = await r.run(kubectlGetKubeProxyConfig(name), { timeoutMs: 30_000 });
  return new KindLab(name, parseKubeProxyMode(cm.stdout, parseYaml), r);
}

/**
 * What each node container of cluster `name` says about its owner, read from outside: the owner
 * mount (docker inspect); only a node without one (made before the mount existed, or not
 * kube-netlab's) is asked for its /kind/kubeadm.conf. Read-only.
 */
export async function readMarkers(r: Runner, name: string): Promise<NodeMarker[]> {
  return markersOf(r, parseKindNodes((await r.run(kindGetNodes(name), { timeoutMs: QUICK })).stdout));
}

async function markersOf(r: Runner, nodes: readonly string[]): Promise<NodeMarker[]> {
  if (nodes.length === 0) return [];
  // Exits 1 when a container went away meanwhile; the others are still printed.
  const mounts = ownerMounts((await r.run(dockerInspectMounts(nodes), { allowFailure: true, timeoutMs: QUICK })).stdout);
  return Promise.all(nodes.map(async (node): Promise<NodeMarker> => {
    const owner = mounts.get(node);
    if (owner) return { node, state: 'marked', owner };
    return markerOf(node, await r.run(dockerExec(node, ['cat', '/kind/kubeadm.conf']), { allowFailure: true, timeoutMs: QUICK }));
  }));
}

/**
 * `kind delete cluster`, then look again, twice, a second apart: a `docker run` kind had started
 * before it was stopped can add a node after the delete listed them (kind has no signal handler).
 * A node that comes back is deleted again only when it provably is `owner`'s (when given).
 * True once two looks found no node; false when the delete failed, nodes kept coming back, or a
 * node that came back is not `owner`'s.
 */
export async function deleteUntilGone(r: Runner, name: string, owner?: string): Promise<boolean> {
  const look = async (): Promise<string[] | null> => {
    await new Promise((res) => setTimeout(res, 1_000));
    const res = await r.run(kindGetNodes(name), { allowFailure: true, timeoutMs: QUICK });
    return res.exitCode === 0 ? parseKindNodes(res.stdout) : null;
  };
  for (let round = 0; round < 5; round++) {
    if ((await r.run(kindDelete(name), { allowFailure: true, timeoutMs: 180_000 })).exitCode !== 0) return false;
    let nodes = await look();
    if (nodes?.length === 0) nodes = await look();
    if (nodes?.length === 0) return true;
    if (nodes === null) return false;
    if (owner && proveOwnership({ owner }, await markersOf(r, nodes)) !== 'ours') return false;
  }
  return false;
}

/**
 * Delete the kind cluster of lab `name` and its record, found by name even when the cluster is
 * half-made (no kubeconfig context yet). Refuses a cluster kube-netlab cannot prove it made:
 * its nodes carry another owner label or none, or (without a record) none can be read.
 * Returns what it removed.
 */
export async function destroyKindLab(name: string, r: Runner = defaultRunner, opts: { force?: boolean } = {}): Promise<string[]> {
  checkLabName(name);
  await checkKind(r);
  await checkProvider(r);
  await checkDocker(r);
  const lock = await lockKindLab(name, 'down', 180_000, r);
  try {
    return await destroyLocked(name, r, opts.force ?? false);
  } finally {
    lock.release();
  }
}

async function destroyLocked(name: string, r: Runner, force: boolean): Promise<string[]> {
  const record = await readKindRecord(name);
  const clusters = parseKindClusters((await r.run(kindGetClusters(), { timeoutMs: QUICK })).stdout);
  if (!clusters.includes(name)) {
    if (record) await removeKindRecord(name);
    return [];
  }
  const markers = await readMarkers(r, name);
  const proof = proveOwnership(record, markers);
  if (proof === 'not-ours' || (proof === 'unproven' && !record)) {
    const why = proof === 'not-ours' ? `its nodes carry no ${OWNER_LABEL} label${record ? ' of this lab' : ''}` : 'no record of it, and no node could be read';
    throw new Error(`kind cluster ${name} was not made by kube-netlab (${why}), so kube-netlab leaves it alone; \`kind delete cluster --name ${name}\` deletes it if you mean to`);
  }
  if (!force && record?.heldBy && record.heldBy.pid !== process.pid && creatorLiveness(record.heldBy) === 'alive') {
    throw new Error(`lab ${name} is held by pid ${record.heldBy.pid} (a notebook kernel or script using it); stop that first, or remove it anyway with \`kube-netlab down --name ${name} --force\``);
  }
  await r.run(kindDelete(name), { timeoutMs: 180_000 });
  await removeKindRecord(name);
  return [`kind cluster ${name}`];
}

/** Tools kindest/node lacks that kube-proxy's image ships (registry.k8s.io/kube-proxy has ipset, not ipvsadm). */
const IN_KUBE_PROXY_POD = new Set(['ipset']);

/** How long to wait for kube-proxy to finish syncing after a change (it syncs on its own clock). */
const SETTLE = { intervalMs: 1_000, maxMs: 20_000 };

export class KindLab implements Lab {
  readonly backend = 'kind' as const;

  private removed = false;

  constructor(readonly name: string, readonly mode: ProxyMode, private readonly r: Runner) {}

  /** The runner its commands go through. */
  get runner(): Runner {
    return this.r;
  }

  private alive(): void {
    if (this.removed) throw new Error(`lab ${this.name} was removed`);
  }

  private kubectl(argv: string[], opts: RunOptions = {}): Promise<ExecResult> {
    return this.r.run(argv, { timeoutMs: 60_000, ...opts });
  }

  /** Node containers are named `<cluster>-control-plane`, `<cluster>-worker`, `<cluster>-worker2`, … */
  private checkNode(node: string): string {
    const rest = node.startsWith(`${this.name}-`) ? node.slice(this.name.length + 1) : '';
    if (rest !== 'control-plane' && !/^worker\d*$/.test(rest)) {
      throw new Error(`${JSON.stringify(node)} is not a node of kind cluster ${this.name} (${this.name}-control-plane, ${this.name}-worker, …)`);
    }
    return node;
  }

  async capabilities(): Promise<Capabilities> {
    this.alive();
    // /proc/net/ip_vs appears in a node's network namespace once the host kernel has ip_vs.
    const r = await this.exec(`${this.name}-control-plane`, ['test', '-e', '/proc/net/ip_vs'], { allowFailure: true, timeoutMs: QUICK });
    return { ipvs: r.exitCode === 0 };
  }

  async nodes(): Promise<LabNode[]> {
    this.alive();
    return parseNodesJson((await this.kubectl(kubectlGetNodes(this.name))).stdout);
  }

  /**
   * `docker exec` into the node container. kindest/node has no ipset: that runs in kube-proxy's
   * pod on the node instead, which shares the node's network namespace (the echo shows where).
   */
  async exec(node: string, argv: string[], opts?: RunOptions): Promise<ExecResult> {
    this.alive();
    this.checkNode(node);
    if (IN_KUBE_PROXY_POD.has(argv[0])) return this.kubeProxyExec(node, argv, opts);
    return this.r.run(dockerExec(node, argv, { stdin: opts?.input !== undefined }), opts);
  }

  /** argv in the kube-proxy pod on `node`: it ships ipset (and iptables) that the node image lacks. */
  async kubeProxyExec(node: string, argv: string[], opts?: RunOptions): Promise<ExecResult> {
    this.alive();
    const pods = parsePodsJson((await this.kubectl(kubectlGetKubeProxyPod(this.name, this.checkNode(node)))).stdout);
    if (pods.length === 0) throw new Error(`no kube-proxy pod on ${node} (kubectl -n kube-system get pods -l k8s-app=kube-proxy)`);
    return this.r.run(kubectlExec(this.name, pods[0].name, argv, { namespace: 'kube-system', stdin: opts?.input !== undefined }), opts);
  }

  async apply(objects: K8sObject[]): Promise<SyncReport[]> {
    this.alive();
    if (objects.length === 0) return [];
    const before = await this.snapshotAll();
    const list = { apiVersion: 'v1', kind: 'List', items: objects };
    await this.kubectl(kubectlApply(this.name), { input: JSON.stringify(list) });
    for (const d of objects.filter((o) => o.kind === 'Deployment')) {
      await this.rollout(d.metadata.name, d.metadata.namespace ?? 'default');
    }
    return this.syncReports(before);
  }

  async scale(deployment: string, replicas: number, namespace = 'default'): Promise<SyncReport[]> {
    this.alive();
    const before = await this.snapshotAll();
    await this.kubectl(kubectlScale(this.name, deployment, replicas, namespace));
    await this.rollout(deployment, namespace);
    return this.syncReports(before);
  }

  /**
   * Delete the Services in `namespace` that carry every label of `selector`, and only those. A
   * clean-up: it runs to the end even once a signal has stopped the lab's other commands (Ctrl-C).
   */
  async deleteServices(selector: Record<string, string>, namespace = 'default'): Promise<void> {
    this.alive();
    await this.kubectl(kubectlDeleteServices(this.name, selector, namespace), { timeoutMs: 120_000, signal: new AbortController().signal });
  }

  private rollout(deployment: string, namespace: string): Promise<ExecResult> {
    return this.kubectl(kubectlRolloutStatus(this.name, deployment, namespace, '180s'), { timeoutMs: 200_000 });
  }

  /**
   * Pods on the pod network, in every namespace. Host-network pods (kube-proxy, kindnet, the
   * control plane's static pods) are left out, as a netns lab has none: they own no pod IP.
   */
  async pods(selector?: Record<string, string>): Promise<Pod[]> {
    this.alive();
    return parsePodsJson((await this.kubectl(kubectlGetJson(this.name, ['pods'], { selector }))).stdout, { podNetworkOnly: true });
  }

  private async cluster(): Promise<Cluster> {
    return readCluster(JSON.parse((await this.kubectl(kubectlGetJson(this.name, ['services', 'endpointslices']))).stdout));
  }

  async services(): Promise<Service[]> {
    this.alive();
    return (await this.cluster()).services;
  }

  async endpointSlices(): Promise<EndpointSlice[]> {
    this.alive();
    return (await this.cluster()).endpointSlices;
  }

  async load(spec: LoadSpec): Promise<LoadResult> {
    this.alive();
    const timeoutSeconds = Math.max(1, Math.ceil((spec.timeoutMs ?? 5_000) / 1000));
    const concurrency = spec.concurrency ?? 1;
    const argv = loadArgv({ url: spec.url, requests: spec.requests, concurrency, timeoutSeconds });
    // Worst case every request times out; add room for kubectl exec to start.
    const timeoutMs = Math.ceil(spec.requests / concurrency) * timeoutSeconds * 1000 + 60_000;
    let out: ExecResult;
    if (spec.from && 'node' in spec.from) {
      out = await this.exec(spec.from.node, argv, { timeoutMs });
    } else {
      const pod = spec.from?.pod ?? (await this.pods({ app: 'curl' })).find((p) => p.ready)?.name;
      if (!pod) throw new Error(`lab ${this.name} has no ready client pod (app=curl): apply labs/manifests/curl.yaml first`);
      // Our client pod's container is `curl`; a pod named by the caller runs its default container.
      out = await this.r.run(kubectlExec(this.name, pod, argv, { container: spec.from ? undefined : 'curl' }), { timeoutMs });
    }
    return parseLoadOutput(out.stdout);
  }

  async destroy(): Promise<void> {
    if (this.removed) return;
    await destroyKindLab(this.name, this.r, { force: true });
    this.removed = true;
  }

  // -- what kube-proxy changed -------------------------------------------------------------

  private async snapshotAll(): Promise<Map<string, string[]>> {
    const nodes = (await this.nodes()).map((n) => n.name);
    const snaps = await Promise.all(nodes.map(async (n) => [n, await this.snapshot(n)] as const));
    return new Map(snaps);
  }

  /** The node's kube-proxy state as comparable lines, read with the node image's own tools. */
  private async snapshot(node: string): Promise<string[]> {
    const run = (argv: string[]) => this.exec(node, argv, { allowFailure: true, timeoutMs: 30_000 }).then((r) => (r.exitCode === 0 ? r.stdout : ''));
    if (this.mode === 'nftables') return ruleLines('nftables', await run(['nft', 'list', 'table', 'ip', 'kube-proxy']));
    const saved = ruleLines('iptables', await run(['iptables-save']));
    if (this.mode === 'iptables') return saved;
    return [...saved, ...ruleLines('ipvs', await run(['cat', '/proc/net/ip_vs']))];
  }

  /**
   * kube-proxy syncs on its own clock after the EndpointSlices change. Wait until every node's
   * rules send traffic to every usable endpoint, to nothing the slices don't name, and hold still
   * for a second; after SETTLE.maxMs, report what is there.
   */
  private async syncReports(before: Map<string, string[]>): Promise<SyncReport[]> {
    let prev = await this.snapshotAll();
    const started = performance.now();
    for (;;) {
      await new Promise((res) => setTimeout(res, SETTLE.intervalMs));
      const { want, known } = endpointDestinations(await this.cluster());
      const now = await this.snapshotAll();
      const settled = [...now].every(([n, lines]) => {
        const have = programmedDestinations(this.mode, lines);
        return sameLines(lines, prev.get(n) ?? []) && [...want].every((d) => have.has(d)) && [...have].every((d) => known.has(d));
      });
      prev = now;
      if (settled || performance.now() - started > SETTLE.maxMs) break;
    }
    return [...prev].map(([node, lines]) => ({ node, mode: this.mode, ...diffLines(before.get(node) ?? [], lines) }));
  }
}

/** Run argv in kube-proxy's pod on a node (ipset, which kindest/node does not ship). */
export function kubeProxyPodExec(lab: KindLab, node: string, argv: string[], opts?: RunOptions): Promise<ExecResult> {
  return lab.kubeProxyExec(node, argv, opts);
}

/**
 * Lines of rule text that say what kube-proxy programmed, without what changes on its own:
 * iptables-save keeps KUBE-* lines minus counters; nft drops counter values; /proc/net/ip_vs keeps
 * services and real servers minus connection counts.
 */
export function ruleLines(kind: 'iptables' | 'nftables' | 'ipvs', text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (kind === 'iptables') {
      if (!line.includes('KUBE-')) continue;
      out.push(line.startsWith(':') ? line.split(' ')[0] : line.replace(/^\[\d+:\d+\] /, ''));
    } else if (kind === 'nftables') {
      out.push(line.replace(/counter packets \d+ bytes \d+/g, 'counter'));
    } else {
      if (line.startsWith('IP Virtual Server') || line.startsWith('Prot ') || line.startsWith('-> RemoteAddress')) continue;
      const w = line.split(/\s+/);
      out.push(w[0] === '->' ? w.slice(0, 4).join(' ') : line);
    }
  }
  return out;
}

/**
 * Endpoint `ip:port`s every node must program (usable endpoints of cluster-wide services) and
 * every one the slices name at all (anything else in the rules is stale).
 */
export function endpointDestinations(cluster: Cluster): { want: Set<string>; known: Set<string> } {
  const want = new Set<string>();
  const known = new Set<string>();
  for (const sp of resolveServicePorts(cluster)) {
    for (const e of sp.endpoints) known.add(`${e.ip}:${e.port}`);
    if (sp.internalTrafficPolicy !== 'Cluster') continue;
    for (const e of usableEndpoints(sp.endpoints)) want.add(`${e.ip}:${e.port}`);
  }
  return { want, known };
}

/** The `ip:port`s the rules DNAT to (iptables, nftables) or forward to (IPVS real servers). */
export function programmedDestinations(mode: ProxyMode, lines: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const line of lines) {
    const w = line.split(' ');
    if (mode === 'nftables') {
      const i = w.indexOf('dnat');
      if (i >= 0 && w[i + 1] === 'to' && w[i + 2]) out.add(w[i + 2]);
    } else if (w[0] === '->' && /^[0-9A-F]{8}:[0-9A-F]{4}$/.test(w[1] ?? '')) {
      const h = w[1];
      const ip = [0, 2, 4, 6].map((k) => parseInt(h.slice(k, k + 2), 16)).join('.');
      out.add(`${ip}:${parseInt(h.slice(9), 16)}`);
    } else {
      const i = w.indexOf('--to-destination');
      if (i >= 0 && w[i + 1]) out.add(w[i + 1]);
    }
  }
  return out;
}

function sameLines(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((l, i) => l === b[i]);
}

export { diffLines };
