/**
 * Removing netns labs, and finding broken ones, deleting and killing only what can be proven to
 * be the kit's (see exec/owned.ts): a namespace whose marker names this state folder and lab, a
 * process whose environment carries that marker. A namespace made by hand, or by a lab under
 * another KUBE_NETLAB_STATE_DIR, is left alone and reported; so is a process the kit did not start.
 */
import { readFileSync } from 'node:fs';
import {
  parseScratchMarker, processesMarked, readNamespaceMark, removeScratchNetns, runner as defaultRunner, stillRuns,
  stopProcesses, type ProcessRef, type Runner,
} from '../../exec/index.ts';
import { LockBusyError, isLocked, lockHolder } from '../../files/index.ts';
import { checkLabName } from '../types.ts';
import { labOfNamespace, labPrefix, networkNs, nodeNs, podNs } from './names.ts';
import {
  CorruptStateError, LOCK_WAIT_MS, ensureStateDir, labMarker, listStates, lockLab, lockPath, parseLabMarker, readOwner,
  readState, removeLabDir, stateId, writeState, type LabPhase, type LabState,
} from './state.ts';
import { deleteNamespace, listNamespaces, namespacePids } from './topology.ts';

export interface RemoveReport {
  lab: string;
  /** Namespaces deleted. */
  namespaces: string[];
  /** Processes the lab had started, stopped. */
  processes: number[];
  /** The lab's folder in the state folder was there and is gone. */
  state: boolean;
  /** What looked like the lab's but could not be proven so, with why and what to do. */
  leftAlone: { what: string; why: string }[];
}

const isLabName = (n: string) => /^[a-z][a-z0-9-]{0,14}$/.test(n) && !n.endsWith('-');

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/**
 * Remove lab `name` and what it made, even half-made or after a crash, under the lab's lock.
 * `force` (the user's `down --force`) also removes a lab held by a running process (a notebook
 * kernel), and namespaces of this lab name that kube-netlab made under another state folder (one
 * deleted since, say).
 */
export async function removeNetnsLab(
  name: string,
  r: Runner = defaultRunner,
  opts: { force?: boolean; waitMs?: number } = {},
): Promise<RemoveReport> {
  checkLabName(name);
  await ensureStateDir();
  const lock = await lockLab(name, 'down', opts.waitMs ?? LOCK_WAIT_MS, r);
  try {
    const force = opts.force ?? false;
    return await removeLocked(name, r, { ignoreHolder: force, otherStateFolders: force });
  } finally {
    lock.release();
  }
}

async function readStateOrProblem(name: string): Promise<{ state: LabState | null; corrupt: string | null }> {
  try {
    return { state: await readState(name), corrupt: null };
  } catch (e) {
    if (e instanceof CorruptStateError) return { state: null, corrupt: e.problem };
    throw e;
  }
}

interface RemoveScope {
  /** Remove the lab even while its holder runs. */
  ignoreHolder: boolean;
  /** Also namespaces of this lab name that kube-netlab made under another state folder. */
  otherStateFolders: boolean;
}

async function removeLocked(name: string, r: Runner, scope: RemoveScope): Promise<RemoveReport> {
  const report: RemoveReport = { lab: name, namespaces: [], processes: [], state: false, leftAlone: [] };
  const { state, corrupt } = await readStateOrProblem(name);
  if (state?.heldBy && !scope.ignoreHolder && state.heldBy.pid !== process.pid && stillRuns(state.heldBy)) {
    throw new Error(`lab ${name} is held by pid ${state.heldBy.pid} (${comm(state.heldBy.pid)}: a notebook kernel or script using it); stop that first, or remove it anyway with \`kube-netlab down --name ${name} --force\``);
  }
  if (state && state.status !== 'deleting') {
    state.status = 'deleting';
    await writeState(state);
  }
  const id = await stateId();
  const owner = state?.owner ?? (await readOwner(name));
  const hasRecord = state !== null || corrupt !== null || owner !== null || (await listStates()).includes(name);
  const markers = new Set<string>(owner ? [labMarker(id, name, owner)] : []);

  const ours: string[] = [];
  for (const ns of (await listNamespaces(r)).filter((x) => x.startsWith(labPrefix(name)))) {
    const mark = await readNamespaceMark(r, ns);
    if (!mark.exists) continue;
    const parsed = mark.marker === null ? null : parseLabMarker(mark.marker);
    if (parsed && parsed.lab === name && (parsed.stateId === id || scope.otherStateFolders)) {
      ours.push(ns);
      markers.add(mark.marker as string);
    } else if (mark.marker === null && hasRecord && mark.otherLinks === 0) {
      // `ip -batch` creates and marks in one process; only its own death in between leaves this.
      ours.push(ns);
    } else if (parsed && parsed.stateId !== id) {
      report.leftAlone.push({ what: `namespace ${ns}`, why: `made by kube-netlab under another state folder (KUBE_NETLAB_STATE_DIR): remove it from there, or with \`kube-netlab down --name ${name} --force\`` });
    } else {
      report.leftAlone.push({ what: `namespace ${ns}`, why: `not marked as made by kube-netlab for this lab; if it is yours to delete: \`ip netns del ${ns}\`` });
    }
  }

  // The lab's processes carry its marker wherever they are, even in a namespace deleted by hand.
  for (const m of markers) report.processes.push(...(await stopProcesses(await processesMarked(m))));
  // Pods first, then nodes, then the network: each veth pair dies with its first end.
  const rank = (ns: string) => (ns.startsWith(`${labPrefix(name)}pod.`) ? 0 : ns === networkNs(name) ? 2 : 1);
  for (const k of [0, 1, 2]) {
    await Promise.all(ours.filter((ns) => rank(ns) === k).map(async (ns) => {
      for (const pid of await namespacePids(r, ns)) {
        report.leftAlone.push({ what: `process ${pid} (${comm(pid)}) in ${ns}`, why: 'not started by kube-netlab: left running; its namespace lives on, unnamed, until it exits' });
      }
      await deleteNamespace(r, ns);
      report.namespaces.push(ns);
    }));
  }
  report.state = await removeLabDir(name);
  return report;
}

export interface GcDecision {
  /** A lab name, or a scratch namespace. */
  name: string;
  action: 'removed' | 'kept';
  why: string;
}

export interface GcReport {
  /** Labs removed. */
  labs: string[];
  /** Namespaces deleted. */
  namespaces: string[];
  /** Processes stopped. */
  processes: number[];
  /** One per lab or kit-looking namespace looked at, with why. */
  decisions: GcDecision[];
}

const PHASE_WORK: Record<LabPhase, string> = { creating: 'creation', deploying: 'deploy', up: 'work', deleting: 'removal' };

/** Why gc removes a lab, or null when the lab is not gc's to remove. */
function gcReason(state: LabState): string | null {
  if (state.status !== 'up') return `its ${PHASE_WORK[state.status]} was interrupted: the process doing it died`;
  if (state.heldBy && !stillRuns(state.heldBy)) return `its holder, pid ${state.heldBy.pid} (a notebook kernel or script), has died`;
  return null;
}

/**
 * Remove what crashed runs left: labs whose creation, deploy or removal was interrupted (their
 * lock is free, their phase is not `up`), labs whose holder died, the kit's namespaces whose record
 * in this state folder is gone, and scratch namespaces whose owner process is gone. Labs that are
 * up, busy labs, broken labs (an unusable state file) and anything not provably the kit's are left
 * alone, each with the reason.
 */
export async function gcNetns(r: Runner = defaultRunner): Promise<GcReport> {
  await ensureStateDir();
  const report: GcReport = { labs: [], namespaces: [], processes: [], decisions: [] };
  const namespaces = await listNamespaces(r);
  const labs = new Set([...namespaces.map(labOfNamespace).filter((x): x is string => x !== null), ...(await listStates())]);
  for (const name of [...labs].sort()) {
    if (!isLabName(name)) {
      report.decisions.push({ name, action: 'kept', why: 'not a kube-netlab lab name' });
      continue;
    }
    let lock;
    try {
      lock = await lockLab(name, 'gc', 0, r);
    } catch (e) {
      if (!(e instanceof LockBusyError)) throw e;
      report.decisions.push({ name, action: 'kept', why: e.message });
      continue;
    }
    try {
      const { state, corrupt } = await readStateOrProblem(name);
      let why: string | null;
      if (corrupt !== null) {
        report.decisions.push({ name, action: 'kept', why: `broken: its state file is unusable (${corrupt}); \`kube-netlab down --name ${name}\` removes it` });
        continue;
      } else if (state) {
        why = gcReason(state);
        if (why === null) {
          report.decisions.push({ name, action: 'kept', why: state.heldBy ? `up, held by pid ${state.heldBy.pid}, which runs` : `up: \`kube-netlab down --name ${name}\` removes it` });
          continue;
        }
      } else {
        why = (await listStates()).includes(name) ? 'its creation died before it wrote its state' : 'its record in this state folder is gone';
      }
      const removed = await removeLocked(name, r, { ignoreHolder: true, otherStateFolders: false });
      report.namespaces.push(...removed.namespaces);
      report.processes.push(...removed.processes);
      if (removed.namespaces.length > 0 || removed.state || removed.processes.length > 0) {
        report.labs.push(name);
        const parts = [`${removed.namespaces.length} namespaces`, `${removed.processes.length} processes`, ...(removed.state ? ['its state'] : [])];
        report.decisions.push({ name, action: 'removed', why: `${why}: removed ${parts.join(', ')}` });
      }
      for (const l of removed.leftAlone) report.decisions.push({ name, action: 'kept', why: `${l.what}: ${l.why}` });
    } finally {
      lock.release();
    }
  }
  // Scratch namespaces (`kn-<purpose>-<pid>-<hex>`, no dot): gone with their owner.
  for (const ns of namespaces.filter((x) => x.startsWith('kn-') && !x.includes('.'))) {
    const mark = await readNamespaceMark(r, ns);
    if (!mark.exists) continue;
    const owner = mark.marker === null ? null : parseScratchMarker(mark.marker);
    if (owner === null) {
      report.decisions.push({ name: ns, action: 'kept', why: `not marked as made by kube-netlab; if it is yours to delete: \`ip netns del ${ns}\`` });
    } else if (!stillRuns(owner)) {
      const before = await processesMarked(mark.marker as string);
      await removeScratchNetns(r, ns, mark.marker as string);
      report.processes.push(...before.map((p) => p.pid));
      report.namespaces.push(ns);
      report.decisions.push({ name: ns, action: 'removed', why: `its owner, pid ${owner.pid}, is gone` });
    }
  }
  return report;
}

/** What `status` says of one lab. */
export interface LabHealth {
  name: string;
  state: LabState | null;
  phase: LabPhase | 'unknown';
  /** Who is working on it right now, if anyone. */
  busy: { pid: number; doing: string } | null;
  holder: { pid: number; alive: boolean } | null;
  /** Empty when the lab is healthy (or busy). */
  problems: string[];
  /** The command that fixes the problems. */
  fix: string | null;
}

/**
 * Every lab this state folder knows of, or whose namespaces exist, with what is wrong with it: an
 * unusable state file, an interrupted phase, a missing namespace, a pod whose server died, a dead
 * holder. Reads only; takes no lock.
 */
export async function inspectNetnsLabs(r: Runner = defaultRunner): Promise<LabHealth[]> {
  await ensureStateDir();
  const namespaces = await listNamespaces(r);
  const names = new Set([...namespaces.map(labOfNamespace).filter((x): x is string => x !== null && isLabName(x)), ...(await listStates())]);
  const out: LabHealth[] = [];
  for (const name of [...names].sort()) {
    const h: LabHealth = { name, state: null, phase: 'unknown', busy: null, holder: null, problems: [], fix: null };
    if (await isLocked(lockPath(name))) {
      const who = await lockHolder(lockPath(name));
      h.busy = who ? { pid: who.pid, doing: who.doing } : { pid: 0, doing: 'unknown' };
    }
    const { state, corrupt } = await readStateOrProblem(name);
    h.state = state;
    if (corrupt !== null) {
      h.problems.push(`its state file is unusable (${corrupt})`);
      h.fix = `kube-netlab down --name ${name}`;
    } else if (!state) {
      if (!h.busy) {
        h.problems.push((await listStates()).includes(name) ? 'its creation died before it wrote its state' : 'namespaces with no record in this state folder');
        h.fix = 'kube-netlab gc';
      }
    } else {
      h.phase = state.status;
      if (state.heldBy) h.holder = { pid: state.heldBy.pid, alive: stillRuns(state.heldBy as ProcessRef) };
      if (state.status !== 'up') {
        if (!h.busy) {
          h.problems.push(`its ${PHASE_WORK[state.status]} was interrupted (the process doing it died)`);
          h.fix = 'kube-netlab gc';
        }
      } else {
        const want = [networkNs(name), ...state.nodes.map((n) => nodeNs(name, n.name)), ...state.pods.map((p) => podNs(name, p.name))];
        for (const ns of want) if (!namespaces.includes(ns)) h.problems.push(`namespace ${ns} is missing`);
        for (const p of state.pods) {
          if (p.process && !stillRuns(p.process)) h.problems.push(`pod ${p.name} is not running (its server, pid ${p.process.pid}, has exited)`);
        }
        if (h.holder && !h.holder.alive) {
          h.problems.push(`its holder, pid ${h.holder.pid}, has died`);
          h.fix = 'kube-netlab gc';
        } else if (h.problems.length > 0) {
          h.fix = `kube-netlab down --name ${name}${h.holder?.alive ? ' --force' : ''}, then up again`;
        }
      }
    }
    out.push(h);
  }
  return out;
}
