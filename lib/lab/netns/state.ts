import { createHash, randomBytes } from 'node:crypto';
import { readdir, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProcessRef } from '../../exec/process.ts';
import { runner as defaultRunner, type Runner } from '../../exec/runner.ts';
import { LockBusyError, ensurePrivateDir, ensurePrivateSubdir, readOwnFile, replaceFile, takeLock, writeNewFile, type Lock } from '../../files/index.ts';
import type { Service } from '../../k8s/types.ts';
import type { ProxyMode } from '../../proxy/modes.ts';
import type { IptablesBackend } from '../../proxy/iptables-backend.ts';
import type { LabNode, Pod } from '../types.ts';

/** A Deployment as the netns backend runs it. */
export interface DeploymentState {
  namespace: string;
  name: string;
  replicas: number;
  /** The pod template's labels (what Services select). */
  labels: Record<string, string>;
  /** What runs in each pod: our httpbin server, or nothing (the curl client sleeps). */
  runs: 'httpbin' | 'sleep';
  containerPort: number | null;
  /** Pods ever created, so names stay unique after scale-down and up. */
  created: number;
}

export interface PodState extends Pod {
  deployment: string;
  /** Host-side veth in the node's namespace. */
  veth: string;
  /** The pod's server process, when it runs one (pid and start time, so a reused pid is told apart). */
  process: ProcessRef | null;
}

/**
 * Where a lab is in its life. Every phase but `up` is held under the lab's lock, so a lab found
 * in another phase with its lock free was left so by a process that died.
 */
export type LabPhase = 'creating' | 'deploying' | 'up' | 'deleting';

export interface LabState {
  version: 2;
  name: string;
  backend: 'netns';
  mode: ProxyMode;
  /** The iptables backend the nodes are programmed with; absent (older labs): nft. */
  iptablesBackend?: IptablesBackend;
  status: LabPhase;
  /** The process that created the lab. */
  creator: ProcessRef;
  /** Random token in the marker of every namespace and process the lab makes. */
  owner: string;
  /** The process whose life this lab shares (see NetnsLabOptions.heldBy); gc removes it once that has died. */
  heldBy?: ProcessRef;
  createdAt: string;
  nodes: LabNode[];
  services: Service[];
  deployments: DeploymentState[];
  pods: PodState[];
}

/** A state file that exists but cannot be used; names the fix. */
export class CorruptStateError extends Error {
  override readonly name = 'CorruptStateError';
  constructor(readonly lab: string, readonly problem: string) {
    super(`lab ${lab}: its state file is unusable (${problem}); \`kube-netlab down --name ${lab}\` removes the lab anyway`);
  }
}

/** Lab state lives in tmpfs beside the namespaces it describes: both vanish on reboot. */
export function stateDir(): string {
  return process.env.KUBE_NETLAB_STATE_DIR ?? '/run/kube-netlab';
}

export function labDir(lab: string): string {
  return join(stateDir(), 'labs', lab);
}

/** The lab's lock file; it sits beside the lab's folder, which `down` removes. */
export function lockPath(lab: string): string {
  return join(stateDir(), 'labs', `${lab}.lock`);
}

/** How long apply, scale and down wait for another process's work on the same lab. */
export const LOCK_WAIT_MS = 120_000;

/** Take lab `name`'s lock; a busy lab says who holds it. */
export async function lockLab(name: string, doing: string, waitMs: number, r: Runner = defaultRunner): Promise<Lock> {
  try {
    return await takeLock(lockPath(name), { what: `lab ${name}`, doing, waitMs, runner: r });
  } catch (e) {
    if (!(e instanceof LockBusyError)) throw e;
    const by = e.holder ? `pid ${e.holder.pid} is running \`${e.holder.doing}\` on it` : 'another process holds its lock';
    throw new LockBusyError(e.path, e.holder, `lab ${name}`, `lab ${name} is busy: ${by}${waitMs > 0 ? ` (waited ${Math.round(waitMs / 1000)} s)` : ''}; try again when it is done`);
  }
}

const ownerPath = (lab: string) => join(labDir(lab), 'owner');
const statePath = (lab: string) => join(labDir(lab), 'state.json');
export const podsDir = (lab: string) => join(labDir(lab), 'pods');

/** Check (and make) the state folder before anything is read or written in it. */
export async function ensureStateDir(): Promise<void> {
  await ensurePrivateDir(stateDir());
  await ensurePrivateSubdir(join(stateDir(), 'labs'));
}

/**
 * Which state folder this is, in markers: two state folders (KUBE_NETLAB_STATE_DIR) never judge
 * each other's labs.
 */
export async function stateId(): Promise<string> {
  return createHash('sha256').update(await realpath(stateDir())).digest('hex').slice(0, 12);
}

/**
 * The marker on a lab's namespaces and in its processes' environment:
 * `kube-netlab/<state folder id>/<lab>/<owner token>`.
 */
export function labMarker(id: string, lab: string, owner: string): string {
  return `kube-netlab/${id}/${lab}/${owner}`;
}

export function parseLabMarker(marker: string): { stateId: string; lab: string; owner: string } | null {
  const parts = marker.split('/');
  if (parts.length !== 4 || parts[0] !== 'kube-netlab') return null;
  return { stateId: parts[1], lab: parts[2], owner: parts[3] };
}

/**
 * Claim a lab's folder: created new with a fresh owner token, written before anything else
 * exists, so every later crash leaves a record that `gc` can act on.
 */
export async function claimLabDir(lab: string): Promise<string> {
  await ensureStateDir();
  await ensurePrivateSubdir(labDir(lab));
  const owner = randomBytes(8).toString('hex');
  await writeNewFile(ownerPath(lab), `${owner}\n`);
  return owner;
}

/** The lab's owner token, or null when its folder or token file is gone. */
export async function readOwner(lab: string): Promise<string | null> {
  const text = await readOwnFile(ownerPath(lab));
  const t = text?.trim() ?? null;
  return t && /^[0-9a-f]{16}$/.test(t) ? t : null;
}

export async function readState(lab: string): Promise<LabState | null> {
  const text = await readOwnFile(statePath(lab));
  if (text === null) return null;
  let v: Partial<LabState>;
  try {
    v = JSON.parse(text) as Partial<LabState>;
  } catch (e) {
    throw new CorruptStateError(lab, `not JSON: ${(e as Error).message}`);
  }
  if (v?.version !== 2) throw new CorruptStateError(lab, `version ${JSON.stringify(v?.version)}, expected 2 (written by another version of kube-netlab?)`);
  if (v.name !== lab || v.backend !== 'netns' || typeof v.owner !== 'string' || !Array.isArray(v.nodes) || !Array.isArray(v.pods)
    || !Array.isArray(v.services) || !Array.isArray(v.deployments) || typeof v.creator?.pid !== 'number'
    || !['creating', 'deploying', 'up', 'deleting'].includes(v.status as string)) {
    throw new CorruptStateError(lab, 'fields missing or of the wrong type');
  }
  return v as LabState;
}

/** Replaced atomically, so a crash never leaves half a state file. */
export async function writeState(state: LabState): Promise<void> {
  await replaceFile(statePath(state.name), `${JSON.stringify(state, null, 2)}\n`);
}

export async function removeLabDir(lab: string): Promise<boolean> {
  const existed = (await readdir(join(stateDir(), 'labs')).catch(() => [] as string[])).includes(lab);
  await rm(labDir(lab), { recursive: true, force: true });
  return existed;
}

/** Names of the labs this state folder has a folder for. */
export async function listStates(): Promise<string[]> {
  try {
    const entries = await readdir(join(stateDir(), 'labs'), { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  } catch {
    return [];
  }
}
