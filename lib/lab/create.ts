import { runner as defaultRunner, type Runner } from '../exec/index.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import type { Backend, Lab } from './types.ts';

export type BackendChoice = Backend | 'auto';

export interface CreateLabOptions {
  backend?: BackendChoice;
  mode: ProxyMode;
  workers?: number;
  name: string;
  runner?: Runner;
  onProgress?: (step: string) => void;
}

/**
 * `auto`: netns on Linux as root with the tools present, otherwise kind when docker and kind
 * answer, otherwise an error that says what to install. KUBE_NETLAB_BACKEND overrides the choice.
 */
export async function chooseBackend(choice: BackendChoice = 'auto', r: Runner = defaultRunner): Promise<Backend> {
  const wanted = (process.env.KUBE_NETLAB_BACKEND as BackendChoice | undefined) ?? choice;
  if (wanted !== 'auto' && wanted !== 'netns' && wanted !== 'kind') {
    throw new Error(`KUBE_NETLAB_BACKEND=${wanted}: expected netns, kind or auto`);
  }
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
export async function openLab(name: string, backend: BackendChoice = 'auto', r: Runner = defaultRunner): Promise<Lab> {
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
