/**
 * Files the kit keeps for itself while running as root: lab state, owner tokens, pod logs, kind
 * records. Folders are 0700 and files 0600 whatever the umask; nothing follows a symlink; records
 * and logs are created exclusively; and a folder another user owns or can write is refused,
 * because whoever can write there can make root read, write or run what they planted.
 */
import { constants as C, openSync } from 'node:fs';
import { chmod, lstat, mkdir, open, realpath, rename, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const OTHERS_WRITE = 0o022;
const STICKY = 0o1000;

/** A path the kit will not use: owned by someone else, writable by others, or a symlink. */
export class UnsafePathError extends Error {
  override readonly name = 'UnsafePathError';
  constructor(readonly path: string, readonly problem: string, readonly fix: string) {
    super(`${path}: ${problem}; refusing to use it (another user could plant files there). ${fix}`);
  }
}

const euid = () => process.geteuid?.() ?? 0;

/**
 * Owners whose folders we trust: root, us, and the user who ran us through sudo (who could do
 * anything as root anyway). Anyone else's folder is a place to plant things.
 */
function trusted(uid: number): boolean {
  const sudo = Number(process.env.SUDO_UID);
  return uid === 0 || uid === euid() || (Number.isInteger(sudo) && uid === sudo);
}

/**
 * The ancestors of a real path must not let another user swap what lies below them: each is owned
 * by a trusted user, and is not writable by others unless sticky (as /tmp is).
 */
async function checkAncestors(real: string): Promise<void> {
  for (let dir = dirname(real); ; dir = dirname(dir)) {
    const s = await stat(dir);
    if (!trusted(s.uid)) {
      throw new UnsafePathError(dir, `a folder above it is owned by uid ${s.uid}`, 'Keep the kit\'s state under a folder only root can change.');
    }
    if ((s.mode & OTHERS_WRITE) !== 0 && (s.mode & STICKY) === 0) {
      throw new UnsafePathError(dir, 'a folder above it is writable by other users and not sticky', 'Keep the kit\'s state under a folder only root can change.');
    }
    if (dir === dirname(dir)) return;
  }
}

/**
 * Make sure `path` is a private folder: create it (and missing parents) 0700, or accept an existing
 * one only if it is a real folder of a trusted owner that no one else can write; a folder of ours
 * with wider modes is narrowed to 0700.
 */
export async function ensurePrivateDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: DIR_MODE });
  const s = await lstat(path);
  if (s.isSymbolicLink()) throw new UnsafePathError(path, 'is a symbolic link', 'Remove the link, or point the kit at a real folder.');
  if (!s.isDirectory()) throw new UnsafePathError(path, 'is not a folder', 'Remove it, or point the kit elsewhere.');
  if (!trusted(s.uid)) {
    throw new UnsafePathError(path, `is owned by uid ${s.uid}, not by the user running kube-netlab (uid ${euid()})`, 'Remove it, or point the kit at a folder of its own.');
  }
  if (s.uid === euid()) {
    if ((s.mode & 0o777) !== DIR_MODE) await chmod(path, DIR_MODE);
  } else if ((s.mode & OTHERS_WRITE) !== 0) {
    throw new UnsafePathError(path, 'is writable by other users', 'Narrow its modes (chmod go-w), or point the kit elsewhere.');
  }
  await checkAncestors(await realpath(path));
}

/** A folder inside a private folder: created (or narrowed to) 0700, and never a symlink. */
export async function ensurePrivateSubdir(path: string): Promise<void> {
  try {
    await mkdir(path, { mode: DIR_MODE });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const s = await lstat(path);
  if (!s.isDirectory() || s.isSymbolicLink() || s.uid !== euid()) {
    throw new UnsafePathError(path, 'is not a folder of ours', 'Remove it; the kit recreates it.');
  }
  // One made by an earlier version, or by hand, with wider modes.
  if ((s.mode & 0o777) !== DIR_MODE) await chmod(path, DIR_MODE);
}

/** Create a new file with `text`; fails if anything (a file, a symlink) is already there. */
export async function writeNewFile(path: string, text: string): Promise<void> {
  const fh = await open(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, FILE_MODE);
  try {
    await fh.writeFile(text);
  } finally {
    await fh.close();
  }
}

/** Replace a file's contents atomically: a crash leaves the old file or the new, never half. */
export async function replaceFile(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  await writeNewFile(tmp, text);
  // rename() replaces a symlink at `path` itself; it never writes through it.
  await rename(tmp, path);
}

/** Read a file of ours; a symlink in its place is an error, not followed. Null when absent. */
export async function readOwnFile(path: string): Promise<string | null> {
  let fh;
  try {
    fh = await open(path, C.O_RDONLY | C.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw new UnsafePathError(path, 'is a symbolic link', 'Remove it.');
    throw e;
  }
  try {
    const s = await fh.stat();
    if (!s.isFile()) throw new UnsafePathError(path, 'is not a regular file', 'Remove it.');
    if (s.uid !== euid()) throw new UnsafePathError(path, `is owned by uid ${s.uid}`, 'Remove it.');
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/** A log file for a process the kit starts: created new, 0600; the caller closes the descriptor. */
export function openNewLog(path: string): number {
  return openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_APPEND, FILE_MODE);
}
