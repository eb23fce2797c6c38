/**
 * conntrack's event stream on a node (`conntrack -E`), for connections too short-lived to list
 * afterwards: a refused connection's entry is destroyed at once, but its NEW event is seen.
 */
import type { ExecResult } from '../exec/index.ts';
import type { Lab } from '../lab/types.ts';
import { parseConntrack, type ConntrackEntry } from '../parse/conntrack.ts';

export interface ConntrackWatchOptions {
  /** How long the watch runs, from its start (default 6 s). */
  seconds?: number;
  /** How long to wait for conntrack to listen before giving up (default 3 s). */
  readyMs?: number;
}

export interface ConntrackWatch {
  node: string;
  /** The command as one would type it on the node. */
  command: string;
  /** Every event seen, once the watch has ended. */
  events(): Promise<ConntrackEntry[]>;
}

/** NETLINK_NETFILTER in /proc/net/netlink's `Eth` column. */
const NETLINK_NETFILTER = '12';

/**
 * The inodes of the node's netfilter netlink sockets that listen to multicast groups: an event
 * listener's socket (`conntrack -E`) is one of them from the moment it subscribes.
 * /proc/net/netlink columns: sk, Eth, Pid, Groups, Rmem, Wmem, Dump, Locks, Drops, Inode.
 */
export function eventListenerInodes(procNetNetlink: string): string[] {
  return procNetNetlink.split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === NETLINK_NETFILTER && /^[0-9a-f]+$/i.test(f[3] ?? '') && parseInt(f[3], 16) !== 0 && f[9] !== undefined)
    .map((f) => f[9]);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A test for a new event listener on a node: the node's netfilter netlink listeners now, and a
 * function that says whether one has appeared since (an event monitor prints nothing until an
 * event arrives, so that it listens is read from the kernel).
 */
export async function newNetlinkListener(exec: (argv: string[]) => Promise<ExecResult>): Promise<() => Promise<boolean>> {
  const listeners = async () => eventListenerInodes((await exec(['cat', '/proc/net/netlink'])).stdout);
  const before = new Set(await listeners());
  return async () => (await listeners()).some((inode) => !before.has(inode));
}

/**
 * Wait until a monitor started on a node (`run`, its whole run) listens, as `listening` tells;
 * throws, with its stderr, if it ends first, or after `readyMs` (an overloaded machine).
 */
export async function untilListening(o: {
  run: Promise<ExecResult>; listening: () => Promise<boolean>; what: string; readyMs: number; pollMs: number;
  signal?: AbortSignal; hint?: (r: ExecResult) => string;
}): Promise<void> {
  let ended = false;
  o.run.finally(() => { ended = true; }).catch(() => undefined);
  const readyBy = performance.now() + o.readyMs;
  while (!(await o.listening())) {
    if (ended) {
      const r = await o.run;
      throw new Error(`${o.what} ended before it listened (exit ${r.exitCode}): ${r.stderr.trim() || '(no stderr)'}${o.hint?.(r) ?? ''}`);
    }
    if (performance.now() > readyBy) throw new Error(`${o.what} was not listening after ${o.readyMs / 1000} s: the machine is overloaded; try again`);
    o.signal?.throwIfAborted();
    await sleep(o.pollMs);
  }
}

/**
 * Start `conntrack -E <filter>` on a node and resolve once it listens, so that every connection
 * made after this resolves is seen. conntrack prints nothing until an event arrives, so whether it
 * listens is read from the kernel: its event socket appearing in the node's /proc/net/netlink.
 */
export async function watchConntrack(
  lab: Pick<Lab, 'exec'>, node: string, filter: readonly string[], opts: ConntrackWatchOptions = {},
): Promise<ConntrackWatch> {
  const seconds = opts.seconds ?? 6;
  const readyMs = opts.readyMs ?? 3000;
  const listening = await newNetlinkListener((argv) => lab.exec(node, argv));
  const argv = ['timeout', String(seconds), 'conntrack', '-E', ...filter];
  const watching = lab.exec(node, argv, { allowFailure: true, timeoutMs: seconds * 1000 + 15_000 });
  // Awaited in events() or below; this only keeps an early failure from going unhandled meanwhile.
  watching.catch(() => undefined);
  await untilListening({
    run: watching, listening, what: `conntrack -E on ${node}`, readyMs, pollMs: 50,
    hint: (w) => (w.exitCode === 127 ? '; install conntrack: apt-get install -y conntrack' : ''),
  });
  return {
    node,
    command: `conntrack -E ${filter.join(' ')}`,
    events: async () => parseConntrack((await watching).stdout).entries,
  };
}
