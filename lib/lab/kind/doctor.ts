/**
 * Can this machine run the kind labs, and what to do when it can't: one check per prerequisite,
 * each with what was found and the fix. Reads only; `prefetch` is the one that pulls images.
 */
import { CommandError, MissingToolError, installHint, runner as defaultRunner, type Runner } from '../../exec/index.ts';
import {
  IPVS_SCHEDULER, MIN_KIND, ipvsModules, compareSemver, dockerImageInspect, dockerInfo, formatSemver, kindGetClusters,
  kindVersion, parseKindClusters, parseKindVersion, parseKubectlVersion,
} from './commands.ts';
import { ensureImage, labImages, sideLoadImages, type ImageStep } from './images.ts';
import { BackendUnavailableError, KIND_INSTALL, dockerUnavailable, kindProvider, preflight, providerProblem } from './index.ts';
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

export { labImages };

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

  // Not read from this host: on macOS and Windows the kernel is Docker Desktop's VM's, and on
  // Linux a module that is not loaded yet is loaded by `up` itself, from inside a node.
  const mods = ipvsModules(IPVS_SCHEDULER);
  add({
    name: 'IPVS mode', ok: true,
    detail: `checked by \`up --mode ipvs\`: it loads ${mods.join(' and ')} (scheduler ${IPVS_SCHEDULER}) from inside a node (\`docker exec <node> modprobe -a ${mods.join(' ')}\`), in the kernel Docker runs on; iptables and nftables modes need neither`,
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
      detail: res.exitCode === 0 ? "in Docker's image store" : 'not pulled yet (the first `up` pulls it, which takes minutes on a conference network)',
      fix: res.exitCode === 0 ? undefined : "`npx kube-netlab prefetch` pulls it, once, into Docker's image store",
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

export type PrefetchStep = ImageStep;

/**
 * Pull every image a kind lab runs into Docker's image store, once (what is there already is left
 * as it is, so running it again at the venue fetches nothing), before the workshop: from
 * then on `up` and the notebooks side-load the workloads' images into each new cluster from there,
 * and kind finds its node image there, so a fresh cluster pulls nothing. With `name`, also load
 * them into that existing cluster.
 */
export async function prefetch(r: Runner = defaultRunner, opts: { name?: string } = {}): Promise<PrefetchStep[]> {
  await preflight(r);
  const images = await labImages();
  const steps: PrefetchStep[] = [];
  // Pinned references: one already in the store is that very image, so it is not fetched again.
  for (const image of [images.node, ...images.workloads]) steps.push((await ensureImage(r, image))!);
  if (opts.name && steps.every((x) => x.ok)) {
    const clusters = parseKindClusters((await r.run(kindGetClusters(), { timeoutMs: 10_000 })).stdout);
    if (clusters.includes(opts.name)) steps.push(...(await sideLoadImages(r, opts.name, images.workloads)));
  }
  return steps;
}
