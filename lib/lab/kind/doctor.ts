/**
 * Can this machine run the kind labs, and what to do when it can't: one check per prerequisite,
 * each with what was found and the fix. Reads only; `prefetch` is the one that pulls images.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { CommandError, MissingToolError, installHint, runner as defaultRunner, type Runner } from '../../exec/index.ts';
import { loadManifest } from '../manifests.ts';
import {
  IPVS_MODULES, MIN_KIND, compareSemver, dockerImageInspect, dockerInfo, dockerPull, formatSemver, kindGetClusters, kindLoadImage,
  kindVersion, parseKindClusters, parseKindVersion, parseKubectlVersion,
} from './commands.ts';
import { BackendUnavailableError, KIND_INSTALL, dockerUnavailable, kindConfigPath, kindProvider, preflight, providerProblem } from './index.ts';
import { readKindRecord } from './state.ts';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

export interface DoctorReport {
  checks: DoctorCheck[];
  /** True when every check passed. */
  ok: boolean;
}

export { IPVS_MODULES };

/** The images a kind lab runs: the node image (from labs/kind-iptables.yaml) and the manifests'. */
export async function labImages(): Promise<{ node: string; workloads: string[] }> {
  const config = parseYaml(await readFile(kindConfigPath('iptables'), 'utf8')) as { nodes?: { image?: string }[] };
  const node = config.nodes?.find((n) => n.image)?.image;
  if (!node) throw new Error('labs/kind-iptables.yaml pins no node image');
  const workloads = new Set<string>();
  for (const m of ['httpbin', 'curl'] as const) {
    for (const o of await loadManifest(m)) {
      const containers = (o.spec as { template?: { spec?: { containers?: { image?: string }[] } } } | undefined)?.template?.spec?.containers ?? [];
      for (const c of containers) if (c.image) workloads.add(c.image);
    }
  }
  return { node, workloads: [...workloads] };
}

/** Which of IPVS_MODULES the kernel has: loaded (in /proc/modules) or built in (/sys/module/NAME). */
export function kernelModules(procModules: string, sysModuleExists: (name: string) => boolean): Record<string, boolean> {
  const loaded = new Set(procModules.split('\n').map((l) => l.split(' ')[0]).filter(Boolean));
  return Object.fromEntries(IPVS_MODULES.map((m) => [m, loaded.has(m) || sysModuleExists(m)]));
}

export interface DoctorOptions {
  /** The lab name to check is free (default netlab). */
  name?: string;
}

export async function doctor(r: Runner = defaultRunner, opts: DoctorOptions = {}): Promise<DoctorReport> {
  const name = opts.name ?? 'netlab';
  const checks: DoctorCheck[] = [];
  const add = (c: DoctorCheck) => checks.push(c);

  // docker: the same classification of `docker info` failures as preflight.
  let dockerUp = false;
  try {
    const v = (await r.run(dockerInfo(), { timeoutMs: 10_000 })).stdout.trim();
    dockerUp = v !== '';
    add({ name: 'docker daemon', ok: dockerUp, detail: dockerUp ? `Docker Engine ${v}` : 'docker info printed no server version', fix: dockerUp ? undefined : 'start Docker' });
  } catch (e) {
    const why = dockerUnavailable(e);
    if (!(why instanceof BackendUnavailableError)) throw e;
    add({ name: 'docker daemon', ok: false, detail: why.cause, fix: why.fix });
  }

  // The provider kind picks: anything but docker would leave kube-netlab's docker commands empty.
  const picked = await kindProvider(r);
  add({ name: 'kind node provider', ok: picked.provider === 'docker', detail: `${picked.provider}: ${picked.why}`, fix: providerProblem(picked)?.fix });

  try {
    const v = parseKindVersion((await r.run(kindVersion(), { timeoutMs: 10_000 })).stdout);
    const recent = compareSemver(v, MIN_KIND) >= 0;
    add({
      name: 'kind', ok: recent,
      detail: `kind ${formatSemver(v)}${recent ? '' : `: older than ${formatSemver(MIN_KIND)}, the release whose node image the labs pin`}`,
      fix: recent ? undefined : KIND_INSTALL,
    });
  } catch (e) {
    add(toolProblem('kind', e, KIND_INSTALL));
  }

  try {
    const v = parseKubectlVersion((await r.run(['kubectl', 'version', '--client', '-o', 'json'], { timeoutMs: 10_000 })).stdout);
    add({ name: 'kubectl', ok: true, detail: `kubectl ${v}` });
  } catch (e) {
    add(toolProblem('kubectl', e, installHint('kubectl')!));
  }

  // IPVS under kind runs in the host's kernel (nodes are containers). Read-only: we never modprobe.
  const procModules = await readFile('/proc/modules', 'utf8').catch(() => '');
  const mods = kernelModules(procModules, (m) => existsSync(`/sys/module/${m}`));
  const missing = IPVS_MODULES.filter((m) => !mods[m]);
  add({
    name: 'kernel modules for IPVS mode', ok: missing.length === 0,
    detail: missing.length === 0 ? `${IPVS_MODULES.join(', ')} present` : `not loaded: ${missing.join(', ')} (only ipvs mode needs them; WSL2 and Docker Desktop often lack them)`,
    fix: missing.length === 0 ? undefined : `sudo modprobe -a ${missing.join(' ')}`,
  });

  try {
    const clusters = parseKindClusters((await r.run(kindGetClusters(), { timeoutMs: 10_000 })).stdout);
    const taken = clusters.includes(name);
    const ours = taken ? await readKindRecord(name).catch(() => null) : null;
    add({
      name: `cluster name ${name}`, ok: !taken,
      detail: !taken ? (clusters.length ? `free (existing: ${clusters.join(', ')})` : 'free (no kind clusters)')
        : ours ? `a kube-netlab lab named ${name} exists (${ours.mode}, ${ours.status} since ${ours.createdAt})`
          : `a kind cluster named ${name} exists, not made by kube-netlab`,
      fix: !taken ? undefined
        : ours ? (ours.status === 'creating' ? `\`kube-netlab gc\` removes it if its creation died, or \`kube-netlab down --name ${name}\`` : `use it, pick another --name, or \`kube-netlab down --name ${name}\``)
          : `pick another --name, or \`kind delete cluster --name ${name}\` if you no longer need it`,
    });
  } catch (e) {
    add(toolProblem(`cluster name ${name}`, e, 'fix kind and docker first'));
  }

  const images = await labImages();
  for (const image of [images.node, ...images.workloads]) {
    if (!dockerUp) {
      add({ name: `image ${image}`, ok: false, detail: 'not checked: docker daemon unreachable', fix: 'start Docker, then prefetch' });
      continue;
    }
    const res = await r.run(dockerImageInspect(image), { allowFailure: true, timeoutMs: 10_000 });
    add({
      name: `image ${image}`, ok: res.exitCode === 0,
      detail: res.exitCode === 0 ? 'present' : 'not pulled yet (the first `up` pulls it, which takes minutes on a conference network)',
      fix: res.exitCode === 0 ? undefined : `docker pull ${image}`,
    });
  }
  return { checks, ok: checks.every((c) => c.ok) };
}

function toolProblem(name: string, e: unknown, fix: string): DoctorCheck {
  if (e instanceof MissingToolError) return { name, ok: false, detail: e.message, fix };
  if (e instanceof CommandError) return { name, ok: false, detail: e.message, fix };
  if (e instanceof Error) return { name, ok: false, detail: e.message, fix };
  throw e;
}

export interface PrefetchStep { command: string; ok: boolean; detail: string }

/**
 * Pull every image a kind lab runs, so the workshop doesn't depend on the room's network; when a
 * cluster `name` exists, also `kind load docker-image` the workload images into its nodes.
 */
export async function prefetch(r: Runner = defaultRunner, opts: { name?: string } = {}): Promise<PrefetchStep[]> {
  await preflight(r);
  const images = await labImages();
  const steps: PrefetchStep[] = [];
  for (const image of [images.node, ...images.workloads]) {
    const res = await r.run(dockerPull(image), { allowFailure: true, timeoutMs: 20 * 60_000 });
    steps.push({ command: res.command, ok: res.exitCode === 0, detail: res.exitCode === 0 ? 'pulled' : res.stderr.trim().split('\n').slice(-1)[0] ?? '' });
  }
  if (opts.name) {
    const clusters = parseKindClusters((await r.run(kindGetClusters(), { timeoutMs: 10_000 })).stdout);
    if (clusters.includes(opts.name)) {
      const res = await r.run(kindLoadImage(opts.name, images.workloads), { allowFailure: true, timeoutMs: 10 * 60_000 });
      steps.push({ command: res.command, ok: res.exitCode === 0, detail: res.exitCode === 0 ? `loaded into ${opts.name}'s nodes` : res.stderr.trim().split('\n').slice(-1)[0] ?? '' });
    }
  }
  return steps;
}
