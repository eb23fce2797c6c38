import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProcessRef } from '../../exec/process.ts';
import type { Service } from '../../k8s/types.ts';
import type { ProxyMode } from '../../proxy/modes.ts';
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
  /** The server process, when the pod runs one. */
  pid: number | null;
}

export interface LabState {
  version: 1;
  name: string;
  backend: 'netns';
  mode: ProxyMode;
  /** `creating` until `up` finished; gc removes labs whose creator died while creating. */
  status: 'creating' | 'up';
  creatorPid: number;
  /** The process whose life this lab shares (see NetnsLabOptions.heldBy); gc removes it once that has died. */
  heldBy?: ProcessRef;
  createdAt: string;
  nodes: LabNode[];
  services: Service[];
  deployments: DeploymentState[];
  pods: PodState[];
}

/** Lab state lives in tmpfs beside the namespaces it describes: both vanish on reboot. */
export function stateDir(): string {
  return process.env.KUBE_NETLAB_STATE_DIR ?? '/run/kube-netlab';
}

export function labDir(lab: string): string {
  return join(stateDir(), 'labs', lab);
}

export async function readState(lab: string): Promise<LabState | null> {
  try {
    return JSON.parse(await readFile(join(labDir(lab), 'state.json'), 'utf8')) as LabState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`lab ${lab}: its state file is unreadable (${(e as Error).message}); \`kube-netlab down --name ${lab}\` removes the lab anyway`);
  }
}

/** Written to a temporary file and renamed, so a crash never leaves half a state file. */
export async function writeState(state: LabState): Promise<void> {
  const dir = labDir(state.name);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `state.json.${process.pid}`);
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, join(dir, 'state.json'));
}

export async function removeState(lab: string): Promise<void> {
  await rm(labDir(lab), { recursive: true, force: true });
}

export async function listStates(): Promise<string[]> {
  try {
    return await readdir(join(stateDir(), 'labs'));
  } catch {
    return [];
  }
}
