/**
 * What kube-netlab remembers about the kind clusters it creates, and how it recognises them.
 *
 * Two pieces of evidence, both needed before anything is deleted:
 * - a record, written before `kind create cluster` runs: the lab, its creator process, and a
 *   random owner token;
 * - the same token on the cluster's nodes, twice: the generated kind config gives every node a
 *   read-only mount at /kube-netlab/owner/<token> (kind's `extraMounts`, part of the container
 *   from `docker run` on, so even a create killed at once leaves nodes that say whose they are),
 *   and the label `kube-netlab/owner=<token>` (kind's node `labels:`), which kind writes into each
 *   node's /kind/kubeadm.conf; clusters made before the mount existed carry only the label.
 * A user's own kind cluster has neither, so `gc` and `down` leave it alone.
 */
import { randomBytes } from 'node:crypto';
import { pidAlive, processRef, processStart, stillRuns } from '../../exec/process.ts';
import { readdir, rm } from 'node:fs/promises';
import { ensurePrivateDir, readOwnFile, replaceFile, writeNewFile } from '../../files/index.ts';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import type { ProxyMode } from '../../proxy/modes.ts';

/** The node label (kind config `nodes[].labels`) that carries a cluster's owner token. */
export const OWNER_LABEL = 'kube-netlab/owner';

/** Where in every node the owner token is mounted: `/kube-netlab/owner/<token>` (kind `extraMounts`). */
export const OWNER_MOUNT_DIR = '/kube-netlab/owner';

export interface KindRecord {
  version: 1;
  name: string;
  backend: 'kind';
  mode: ProxyMode;
  /** The token in every node's OWNER_LABEL. */
  owner: string;
  /** `creating` until kind create returned; `retained` when a failed create kept its nodes. */
  status: 'creating' | 'up' | 'retained';
  /** Why an `up` lab was kept after a failure that did not spoil it (nodes slow to be Ready, a failed deploy); `up` again continues with it. */
  kept?: string;
  /** The process that ran `kind create`: pid, its start time (/proc, so a reused pid is told apart), host. */
  creator: { pid: number; start: string | null; host: string };
  /** The process whose life this lab shares (a notebook kernel); gc deletes the lab once it has died. */
  heldBy?: { pid: number; start: string | null; host: string };
  createdAt: string;
}

/**
 * Records outlive reboots because kind clusters do (docker restarts their nodes), so they live in
 * the user's state directory ($XDG_STATE_HOME), not in /run beside the netns labs' state.
 */
export function kindStateDir(): string {
  return join(process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'kube-netlab', 'kind');
}

const recordPath = (name: string) => join(kindStateDir(), `${name}.json`);

/** The kind config kube-netlab generated for a lab (the labs/ file plus the owner label). */
export function kindConfigFile(name: string): string {
  return join(kindStateDir(), `${name}.yaml`);
}

/** `kn` + 16 hex digits: a valid label value that YAML never reads as a number. */
export function newOwnerToken(): string {
  return `kn${randomBytes(8).toString('hex')}`;
}

export function thisCreator(): KindRecord['creator'] {
  return { ...processRef(process.pid), host: hostname() };
}

export async function readKindRecord(name: string): Promise<KindRecord | null> {
  const text = await readOwnFile(recordPath(name));
  if (text === null) return null;
  const r = JSON.parse(text) as Partial<KindRecord>;
  if (r.version !== 1 || r.name !== name || typeof r.owner !== 'string' || typeof r.creator?.pid !== 'number') {
    throw new Error(`${recordPath(name)}: not a kube-netlab kind record`);
  }
  return r as KindRecord;
}

/** Replaced atomically in a private folder (0700, ours), so a crash never leaves half a record. */
export async function writeKindRecord(rec: KindRecord): Promise<void> {
  await ensurePrivateDir(kindStateDir());
  await replaceFile(recordPath(rec.name), `${JSON.stringify(rec, null, 2)}\n`);
}

/**
 * The record of a lab about to be created, made with O_EXCL: of two `up`s of one name, the second
 * finds the first's record and stops (it never overwrites it, nor later deletes it).
 * Returns false when a record is already there.
 */
export async function createKindRecord(rec: KindRecord): Promise<boolean> {
  await ensurePrivateDir(kindStateDir());
  try {
    await writeNewFile(recordPath(rec.name), `${JSON.stringify(rec, null, 2)}\n`);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

export async function removeKindRecord(name: string): Promise<void> {
  await rm(recordPath(name), { force: true });
  await rm(kindConfigFile(name), { force: true });
}

/** Every record, by lab name; unreadable ones are skipped (gc never acts on them). */
export async function listKindRecords(): Promise<KindRecord[]> {
  let files: string[];
  try {
    files = await readdir(kindStateDir());
  } catch {
    return [];
  }
  const out: KindRecord[] = [];
  for (const f of files.filter((x) => x.endsWith('.json')).sort()) {
    const rec = await readKindRecord(f.slice(0, -'.json'.length)).catch(() => null);
    if (rec) out.push(rec);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Evidence, and the decisions made from it (pure)

export type OwnerLiveness = 'alive' | 'dead' | 'unknown';

export interface HostProbe {
  host: string;
  alive(pid: number): boolean;
  start(pid: number): string | null;
}

export const thisHost: HostProbe = {
  host: hostname(),
  alive: pidAlive,
  start: processStart,
};

/** Whether the record's creator still runs. Another host's process can't be checked: unknown. */
export function creatorLiveness(creator: KindRecord['creator'], probe: HostProbe = thisHost): OwnerLiveness {
  if (creator.host !== probe.host) return 'unknown';
  return stillRuns(creator, probe) ? 'alive' : 'dead';
}

/** What one node container says about its owner. */
export type NodeMarker =
  | { node: string; state: 'marked'; owner: string }
  | { node: string; state: 'unmarked' }
  | { node: string; state: 'unreadable'; why: string };

/**
 * The owner token in a node's /kind/kubeadm.conf (kind writes node labels there as the kubelet's
 * `node-labels`). A complete file without the label is `unmarked`; a file still being written
 * (kind copies it in with `cp /dev/stdin`) proves nothing either way.
 */
export function markerOf(node: string, res: { exitCode: number; stdout: string; stderr: string }): NodeMarker {
  if (res.exitCode !== 0) {
    return { node, state: 'unreadable', why: res.stderr.trim().split('\n').at(-1) || `exit ${res.exitCode}` };
  }
  const text = res.stdout;
  const key = `${OWNER_LABEL}=`;
  const at = text.indexOf(key);
  if (at >= 0) {
    let end = at + key.length;
    while (end < text.length && /[A-Za-z0-9._-]/.test(text[end])) end++;
    if (end < text.length && (text[end] === '"' || text[end] === ',')) return { node, state: 'marked', owner: text.slice(at + key.length, end) };
  }
  if (text.includes('kind: KubeletConfiguration')) return { node, state: 'unmarked' };
  return { node, state: 'unreadable', why: '/kind/kubeadm.conf is not complete yet' };
}

/**
 * The owner token mounted in each node, from `docker inspect --format '{{.Name}}{{range .Mounts}}
 * {{.Destination}}{{end}}' N…` (one line per container: `/<name> <destination>…`). A node missing
 * from the output (gone, or never made) is left out; a node without the mount maps to null.
 */
export function ownerMounts(stdout: string): Map<string, string | null> {
  const out = new Map<string, string | null>();
  const prefix = `${OWNER_MOUNT_DIR}/`;
  for (const line of stdout.split('\n')) {
    const [name, ...dests] = line.trim().split(/\s+/);
    if (!name?.startsWith('/')) continue;
    const mount = dests.find((d) => d.startsWith(prefix));
    const token = mount?.slice(prefix.length) ?? '';
    out.set(name.slice(1), /^[a-z0-9]{1,63}$/.test(token) ? token : null);
  }
  return out;
}

export type Proof = 'ours' | 'not-ours' | 'unproven';

/**
 * Do the nodes prove the cluster is the record's? Any node with another token or none at all says
 * no; at least one node with the record's token, and no node against it, says yes. Without a
 * record, any kube-netlab token will do (the cluster was made by kube-netlab; its record is gone).
 */
export function proveOwnership(record: Pick<KindRecord, 'owner'> | null, markers: readonly NodeMarker[]): Proof {
  let seen = false;
  for (const m of markers) {
    if (m.state === 'unmarked') return 'not-ours';
    if (m.state === 'marked') {
      if (record && m.owner !== record.owner) return 'not-ours';
      seen = true;
    }
  }
  return seen ? 'ours' : 'unproven';
}

export type GcAction = 'delete' | 'forget' | 'keep';

export interface GcDecision {
  name: string;
  /** delete: the cluster and its record; forget: the stale record only; keep: nothing. */
  action: GcAction;
  why: string;
}

export interface GcEvidence {
  name: string;
  /** `kind get clusters` lists it (it has node containers, running or not). */
  exists: boolean;
  record: KindRecord | null;
  creator: OwnerLiveness | null;
  /** Whether the record's holder (heldBy) still runs; null when the lab has none. */
  holder?: OwnerLiveness | null;
  /** Read only for clusters that have a record. */
  markers: readonly NodeMarker[];
  /** Milliseconds since the record was written (default: long ago). */
  ageMs?: number;
}

/**
 * How long after its creator died a `creating` record with no cluster yet is kept: the `kind
 * create` it started does not die with it (killed with -9, say) and may still be pulling the node
 * image, then make nodes that only the record lets gc delete.
 */
export const ORPHAN_KIND_GRACE_MS = 20 * 60_000;

/**
 * What `gc` does with one cluster name. It deletes only a cluster whose record says its creation
 * never finished, whose creator is gone, and whose nodes carry the record's owner token.
 */
export function decideGc(e: GcEvidence): GcDecision {
  const { name, record: rec } = e;
  const keep = (why: string): GcDecision => ({ name, action: 'keep', why });
  if (!rec) return keep('not made by kube-netlab (no record of it): left alone');
  const busy = e.creator === 'alive' && rec.status === 'creating';
  const by = `pid ${rec.creator.pid}${e.creator === 'unknown' ? ` on ${rec.creator.host}` : ''}`;
  if (!e.exists) {
    if (busy) return keep(`being created by ${by}`);
    if (rec.status === 'creating' && e.creator === 'dead' && (e.ageMs ?? Infinity) < ORPHAN_KIND_GRACE_MS) {
      return keep(`no cluster yet, and its creator, ${by}, died ${Math.floor((e.ageMs ?? 0) / 60_000)} min ago: the \`kind create\` it started may still be making nodes; gc looks again later (record kept for ${ORPHAN_KIND_GRACE_MS / 60_000} min)`);
    }
    return { name, action: 'forget', why: 'no such kind cluster any more: its record was stale' };
  }
  const proof = proveOwnership(rec, e.markers);
  if (proof === 'not-ours') {
    if (busy) return keep(`its nodes are not this lab's, and ${by} is still creating it`);
    return { name, action: 'forget', why: 'a kind cluster by this name exists but its nodes carry no kube-netlab owner label of this lab: left alone, stale record removed' };
  }
  if (rec.status === 'up' && rec.heldBy && e.holder === 'dead' && proof === 'ours') {
    return { name, action: 'delete', why: `its holder, pid ${rec.heldBy.pid} (a notebook kernel or script), has died` };
  }
  if (rec.status === 'up' && rec.kept) {
    return keep(`kept after ${rec.kept}: \`kube-netlab up --name ${name}\` again continues with it, \`kube-netlab down --name ${name}\` removes it`);
  }
  if (rec.status === 'up') return keep(`a lab that is up: \`kube-netlab down --name ${name}\` removes it`);
  if (rec.status === 'retained') return keep(`kept for debugging after a failed create (--retain): \`kube-netlab down --name ${name}\` removes it`);
  if (e.creator === 'alive') return keep(`being created by ${by}`);
  if (e.creator === 'unknown') return keep(`created from another host (${rec.creator.host}), whose processes can't be checked from here`);
  if (proof === 'unproven') {
    const why = e.markers.find((m) => m.state === 'unreadable');
    return keep(`half-made by ${by}, which died, but no node could be read to prove it is kube-netlab's${why && why.state === 'unreadable' ? ` (${why.node}: ${why.why})` : ''}; if it is yours: \`kind delete cluster --name ${name}\``);
  }
  return { name, action: 'delete', why: `half-made or orphaned: its creator, ${by}, died before \`kind create\` finished` };
}
