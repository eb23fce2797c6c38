import { MissingToolError, runner as defaultRunner, type Runner } from '../exec/index.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import type { IptablesBackend } from '../proxy/iptables-backend.ts';
import type { KindGcReport } from './kind/gc.ts';
import type { GcReport } from './netns/index.ts';
import { checkLabName, type Backend, type K8sObject, type Lab } from './types.ts';

export type BackendChoice = Backend | 'auto';

export interface CreateLabOptions {
  backend?: BackendChoice;
  mode: ProxyMode;
  /** netns only: program the nodes with iptables-legacy or iptables-nft (default nft). */
  iptablesBackend?: IptablesBackend;
  workers?: number;
  name: string;
  runner?: Runner;
  onProgress?: (step: string) => void;
  /** Aborting stops a kind create and deletes what it made (a netns create finishes first). */
  signal?: AbortSignal;
  /**
   * The process whose life this lab shares (a notebook kernel): once it has died, `gc` removes the
   * lab, so a notebook never has to delete a lab by name that someone else may be using.
   */
  heldBy?: number;
  /** Deployed as part of bringing the lab up: interrupted, the lab is removed; failed, a kind cluster is kept. */
  workloads?: K8sObject[];
}

/** A create or deploy stopped by its signal; what was made is gone (or `gc` removes it). */
export class CreateInterrupted extends Error {
  override readonly name = 'CreateInterrupted';
}

/** The backend KUBE_NETLAB_BACKEND asks for, else `choice`. */
function wantedBackend(choice: BackendChoice): BackendChoice {
  const wanted = (process.env.KUBE_NETLAB_BACKEND as BackendChoice | undefined) || choice;
  if (wanted !== 'auto' && wanted !== 'netns' && wanted !== 'kind') {
    throw new Error(`KUBE_NETLAB_BACKEND=${wanted}: expected netns, kind or auto`);
  }
  return wanted;
}

/**
 * `auto`: netns on Linux as root with the tools present, otherwise kind when docker and kind
 * answer, otherwise an error that says what to install. KUBE_NETLAB_BACKEND overrides the choice.
 */
export async function chooseBackend(choice: BackendChoice = 'auto', r: Runner = defaultRunner): Promise<Backend> {
  const wanted = wantedBackend(choice);
  if (wanted !== 'auto') return wanted;
  const { netnsUnavailable } = await import('./netns/index.ts');
  const netnsWhy = await netnsUnavailable(r);
  if (netnsWhy === null) return 'netns';
  const { kindUnavailable } = await import('./kind/index.ts');
  const kindWhy = await kindUnavailable(r);
  if (kindWhy === null) return 'kind';
  throw new Error(`no backend can run here.\n  netns: ${netnsWhy}\n  kind: ${kindWhy}`);
}

export async function createLab(opts: CreateLabOptions): Promise<Lab> {
  const backend = await chooseBackend(opts.backend, opts.runner);
  try {
    if (backend !== 'netns' && opts.iptablesBackend !== undefined) {
      throw new Error(`only the netns backend programs its nodes with a chosen iptables backend; kind's nodes pick their own (kube-netlab capture says which), so leave out iptables-${opts.iptablesBackend} with ${backend}`);
    }
    if (backend === 'netns') {
      const { createNetnsLab } = await import('./netns/index.ts');
      return await createNetnsLab(opts);
    }
    return await createKindLabWith(opts);
  } catch (e) {
    // The backends remove what they made before they throw, and say so.
    if (opts.signal?.aborted && !(e instanceof CreateInterrupted)) throw new CreateInterrupted((e as Error).message, { cause: e });
    throw e;
  }
}

/** `deploy httpbin (3 replicas) and curl (1 replica)`: what a list of manifests rolls out. */
export function describeWorkloads(objects: readonly K8sObject[]): string {
  const parts = objects.filter((o) => o.kind === 'Deployment').map((o) => {
    const n = (o.spec as { replicas?: number } | undefined)?.replicas ?? 1;
    return `${o.metadata.name} (${n} replica${n === 1 ? '' : 's'})`;
  });
  return `deploy ${parts.length > 1 ? `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}` : parts[0] ?? 'nothing'}`;
}

/**
 * kind creates the cluster, then the workloads roll out. A signal cancels whichever runs, and the
 * cluster is then deleted; a failed rollout keeps it (`up` again continues with it).
 */
async function createKindLabWith(opts: CreateLabOptions): Promise<Lab> {
  const r = opts.runner ?? defaultRunner;
  const { createKindLab } = await import('./kind/index.ts');
  // The deploy's commands are cancelled by the signal; the clean-up after it must not be.
  const deploy = new AbortController();
  const lab = await createKindLab({ ...opts, runner: r.withSignal(deploy.signal) });
  if (!opts.workloads?.length) return lab;
  let stop: () => void = () => undefined;
  const stopped = new Promise<never>((_, reject) => {
    stop = () => {
      deploy.abort();
      reject(new CreateInterrupted('interrupted'));
    };
    opts.signal?.addEventListener('abort', stop, { once: true });
  });
  stopped.catch(() => undefined);
  try {
    if (opts.signal?.aborted) stop();
    opts.onProgress?.(describeWorkloads(opts.workloads));
    const work = lab.apply(opts.workloads);
    // Once interrupted nobody waits for what is left of it: its commands are being cancelled.
    work.catch(() => undefined);
    await Promise.race([work, stopped]);
    return lab;
  } catch (e) {
    if (!opts.signal?.aborted) {
      // The cluster took minutes to make and is fine: keep it, and say how to go on.
      const { keepKindLab, keptAdvice } = await import('./kind/index.ts');
      await keepKindLab(lab.name, 'a failed deploy');
      throw new Error(`${(e as Error).message}; ${keptAdvice(lab.name)}`, { cause: e });
    }
    opts.onProgress?.(`remove lab ${lab.name} (interrupted)`);
    const removed = await removeLab(lab.name, 'kind', r).catch((err: unknown) => err as Error);
    const after = removed instanceof Error ? `removing it failed (${removed.message}); \`kube-netlab gc\` and \`kube-netlab down --name ${lab.name}\` retry` : `lab ${lab.name} removed`;
    throw new CreateInterrupted(`interrupted; ${after}`);
  } finally {
    opts.signal?.removeEventListener('abort', stop);
  }
}

/** A lab that is already up, by name, on whichever backend holds it. */
export async function openLab(name: string, choice: BackendChoice = 'auto', r: Runner = defaultRunner): Promise<Lab> {
  const backend = wantedBackend(choice);
  checkLabName(name);
  const { openNetnsLab } = await import('./netns/index.ts');
  const { listStates } = await import('./netns/state.ts');
  const netnsHere = backend === 'auto' && process.getuid?.() === 0 && (await listStates()).includes(name);
  if (backend === 'netns' || netnsHere) return openNetnsLab(name, r);
  const { kindUnavailable, openKindLab } = await import('./kind/index.ts');
  if (backend === 'auto') {
    const why = await kindUnavailable(r);
    if (why !== null) throw new Error(`no lab named ${name}: \`kube-netlab up --name ${name}\` brings one up (no netns lab by that name; kind: ${why.split('\n')[0]})`);
  }
  return openKindLab(name, r);
}

export interface RemoveLabOptions {
  /** Remove a netns lab even while the process holding it (a notebook kernel) runs. */
  force?: boolean;
  /** What was proven the lab's and removed, and what was left alone, as each is decided. */
  report?: (r: import('./netns/cleanup.ts').RemoveReport) => void;
}

/**
 * Remove lab `name` on whichever backend holds it, even half-made (a netns lab without its state,
 * a kind cluster with no kubeconfig context yet). `auto` looks at netns, then at kind when docker
 * and kind answer. Only what is proven the kit's is removed: a netns namespace must carry the
 * lab's marker, and a kind cluster kube-netlab can't prove it made is refused, never deleted.
 */
export async function removeLab(name: string, choice: BackendChoice = 'auto', r: Runner = defaultRunner, opts: RemoveLabOptions = {}): Promise<string[]> {
  checkLabName(name);
  const backend = wantedBackend(choice);
  const removed: string[] = [];
  if (backend === 'netns' || (backend === 'auto' && process.platform === 'linux' && process.getuid?.() === 0)) {
    const { removeNetnsLab } = await import('./netns/index.ts');
    const report = await removeNetnsLab(name, r, { force: opts.force });
    opts.report?.(report);
    removed.push(...report.namespaces);
  }
  if (backend !== 'netns') {
    const { destroyKindLab, kindClustersUnavailable } = await import('./kind/index.ts');
    if (backend === 'kind' || (await kindClustersUnavailable(r)) === null) removed.push(...(await destroyKindLab(name, r, { force: opts.force })));
  }
  return removed;
}

export interface GcLabsReport {
  netns: GcReport | { skipped: string };
  kind: KindGcReport;
}

/**
 * `kube-netlab gc` on both backends (or the one asked for); a backend that can't run here is
 * skipped with the reason.
 */
export async function gcLabs(r: Runner = defaultRunner, choice: BackendChoice = 'auto'): Promise<GcLabsReport> {
  const backend = wantedBackend(choice);
  let netns: GcLabsReport['netns'];
  if (backend === 'kind') netns = { skipped: 'only kind was asked for' };
  else if (process.platform !== 'linux') netns = { skipped: 'network namespaces need Linux' };
  else if (process.getuid?.() !== 0) netns = { skipped: 'network namespaces need root (run with sudo)' };
  else {
    const { gcNetns } = await import('./netns/index.ts');
    try {
      netns = await gcNetns(r);
    } catch (e) {
      if (!(e instanceof MissingToolError)) throw e;
      netns = { skipped: e.message };
    }
  }
  if (backend === 'netns') return { netns, kind: { skipped: 'only netns was asked for', deleted: [], decisions: [] } };
  const { gcKind } = await import('./kind/gc.ts');
  return { netns, kind: await gcKind(r) };
}
