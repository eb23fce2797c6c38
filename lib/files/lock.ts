/**
 * An exclusive lock per lab, held for create, deploy and delete, so two `up` of one name, two
 * `down`, or a `gc` during an `up` never act on the same lab at once.
 *
 * It is a flock(2) lock on a file in the kit's private state folder, taken by util-linux's
 * `flock` on a descriptor this process opened and lends it: the lock belongs to the open file,
 * so it stays held after `flock` exits and is released by the kernel when this process closes the
 * file or dies, SIGKILL included. No stale lock can outlive its holder.
 */
import { constants as C, closeSync, openSync } from 'node:fs';
import { ftruncate, write } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { processRef, type ProcessRef } from '../exec/process.ts';
import { runner as defaultRunner, type Runner } from '../exec/runner.ts';
import { readOwnFile } from './private.ts';

/** Who holds a lock, written into the lock file once taken (for messages only). */
export interface LockHolder extends ProcessRef {
  /** What the holder is doing: "up", "down", "gc", … */
  doing: string;
}

export class LockBusyError extends Error {
  override readonly name = 'LockBusyError';
  constructor(readonly path: string, readonly holder: LockHolder | null, what: string, message?: string) {
    super(message ?? `${what} is busy: ${holder ? `pid ${holder.pid} is running \`${holder.doing}\` on it` : 'another process holds its lock'}`);
  }
}

export interface Lock {
  release(): void;
}

interface Held {
  fd: number;
  count: number;
}

// flock locks conflict between two opens of one file even in one process: count re-entries instead.
const held = new Map<string, Held>();

/**
 * Take the lock at `path` (created 0600 if missing, never through a symlink). `waitMs` 0 fails at
 * once when another process holds it; otherwise waits that long. Re-entrant within a process.
 */
export async function takeLock(
  path: string,
  o: { what: string; doing: string; waitMs?: number; runner?: Runner },
): Promise<Lock> {
  const mine = held.get(path);
  if (mine) {
    mine.count++;
    return once(() => release(path));
  }
  const fd = openSync(path, C.O_RDWR | C.O_CREAT | C.O_NOFOLLOW, 0o600);
  const waitMs = o.waitMs ?? 0;
  const argv = waitMs > 0 ? ['flock', '-x', '-w', String(Math.ceil(waitMs / 1000)), '3'] : ['flock', '-x', '-n', '3'];
  let got: boolean;
  try {
    const r = await (o.runner ?? defaultRunner).run(argv, { allowFailure: true, lendFd: fd, timeoutMs: waitMs + 10_000 });
    got = r.exitCode === 0;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  if (!got) {
    closeSync(fd);
    throw new LockBusyError(path, await lockHolder(path), o.what);
  }
  // Re-check: another caller in this process may have taken it while flock ran.
  const raced = held.get(path);
  if (raced) {
    closeSync(fd);
    raced.count++;
    return once(() => release(path));
  }
  held.set(path, { fd, count: 1 });
  // One line, written over the old one before the rest is cut: a reader always finds a whole line.
  const text = `${JSON.stringify({ ...processRef(process.pid), doing: o.doing } satisfies LockHolder)}\n`;
  await promisify(write)(fd, text, 0);
  await promisify(ftruncate)(fd, Buffer.byteLength(text));
  return once(() => release(path));
}

function release(path: string): void {
  const h = held.get(path);
  if (!h) return;
  if (--h.count > 0) return;
  held.delete(path);
  // Closing the last descriptor of the open file releases the flock.
  closeSync(h.fd);
}

function once(fn: () => void): Lock {
  let done = false;
  return {
    release() {
      if (!done) {
        done = true;
        fn();
      }
    },
  };
}

/** Whether this process holds the lock at `path`. */
export function holdsLock(path: string): boolean {
  return held.has(path);
}

/** Who last took the lock at `path` (it may have released it since); null when unknown. */
export async function lockHolder(path: string): Promise<LockHolder | null> {
  try {
    const text = await readOwnFile(path);
    if (!text) return null;
    const v = JSON.parse(text.slice(0, text.indexOf('\n') + 1 || undefined)) as Partial<LockHolder>;
    return typeof v.pid === 'number' && typeof v.doing === 'string' ? (v as LockHolder) : null;
  } catch {
    return null;
  }
}

/** Run fn while holding the lock. */
export async function withLock<T>(path: string, o: Parameters<typeof takeLock>[1], fn: () => Promise<T>): Promise<T> {
  const lock = await takeLock(path, o);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/**
 * Whether some process holds the lock at `path`, without taking it (a status check must not
 * make a concurrent `up` fail): flock locks are listed in /proc/locks by device and inode.
 */
export async function isLocked(path: string): Promise<boolean> {
  let s;
  try {
    s = await lstat(path);
  } catch {
    return false;
  }
  const dev = BigInt(s.dev);
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  const id = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${s.ino}`;
  const locks = await readFile('/proc/locks', 'utf8').catch(() => '');
  return locks.split('\n').some((l) => l.includes(' FLOCK ') && l.split(/\s+/).includes(id));
}
