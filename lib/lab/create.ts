import { MissingToolError, runner as defaultRunner, type Runner } from '../exec/index.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import type { KindGcReport } from './kind/gc.ts';
import type { GcReport } from './netns/index.ts';
import type { Backend, Lab } from './types.ts';

export type BackendChoice = Backend | 'auto';

export interface CreateLabOptions {
  backend?: BackendChoice;
  mode: ProxyMode;
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
  if (backend === 'netns') {
    const { createNetnsLab } = await import('./netns/index.ts');
    return createNetnsLab(opts);
  }
  const { createKindLab } = await import('./kind/index.ts');
  return createKindLab(opts);
}

/** A lab that is already up, by name, on whichever backend holds it. */
export async function openLab(name: string, choice: BackendChoice = 'auto', r: Runner = defaultRunner): Promise<Lab> {
  const backend = wantedBackend(choice);
  const { openNetnsLab } = await import('./netns/index.ts');
  const { readState } = await import('./netns/state.ts');
  if (backend === 'netns' || (backend === 'auto' && (await readState(name)))) return openNetnsLab(name, r);
  const { kindUnavailable, openKindLab } = await import('./kind/index.ts');
  if (backend === 'auto') {
    const why = await kindUnavailable(r);
    if (why !== null) throw new Error(`no lab named ${name}: \`kube-netlab up --name ${name}\` brings one up (no netns lab by that name; kind: ${why.split('\n')[0]})`);
  }
  return openKindLab(name, r);
}

/**
 * Remove lab `name` on whichever backend holds it, even half-made (a netns lab without its state,
 * a kind cluster with no kubeconfig context yet). `auto` looks at netns, then at kind when docker
 * and kind answer; a kind cluster kube-netlab can't prove it made is refused, never deleted.
 */
export async function removeLab(name: string, choice: BackendChoice = 'auto', r: Runner = defaultRunner): Promise<string[]> {
  const backend = wantedBackend(choice);
  const removed: string[] = [];
  if (backend !== 'kind' && process.platform === 'linux') {
    const { destroyNetnsLab } = await import('./netns/index.ts');
    removed.push(...(await destroyNetnsLab(name, r)));
  }
  if (backend !== 'netns') {
    const { destroyKindLab, kindClustersUnavailable } = await import('./kind/index.ts');
    if (backend === 'kind' || (await kindClustersUnavailable(r)) === null) removed.push(...(await destroyKindLab(name, r)));
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
