import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { projectPath } from '../../lib/project/index.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import {
  LockBusyError, UnsafePathError, ensurePrivateDir, ensurePrivateSubdir, isLocked, readOwnFile, replaceFile, takeLock, writeNewFile,
} from '../../lib/files/index.ts';
import { testRunTag } from '../helpers/netns.ts';

// The kit runs as root; another user on the machine is played by `nobody`, through setpriv.
const asNobody = (...argv: string[]) => runner.run(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', ...argv]);

let tmp: string;
beforeAll(async () => {
  // Under /run (root-only), so only what a test makes here is another user's.
  tmp = await mkdtemp(join('/run', `kn-test-${testRunTag()}-files-`));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('private folders', () => {
  it('are created 0700 whatever the umask, and a folder of ours with wider modes is narrowed', async () => {
    const old = process.umask(0);
    try {
      await ensurePrivateDir(join(tmp, 'a', 'b'));
      expect((await stat(join(tmp, 'a', 'b'))).mode & 0o777).toBe(0o700);
      await writeNewFile(join(tmp, 'a', 'b', 'f'), 'x');
      expect((await stat(join(tmp, 'a', 'b', 'f'))).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(old);
    }
    await runner.run(['chmod', '0777', join(tmp, 'a', 'b')]);
    await ensurePrivateDir(join(tmp, 'a', 'b'));
    expect((await stat(join(tmp, 'a', 'b'))).mode & 0o777).toBe(0o700);
    await runner.run(['chmod', '0755', join(tmp, 'a', 'b')]);
    await ensurePrivateSubdir(join(tmp, 'a', 'b'));
    expect((await stat(join(tmp, 'a', 'b'))).mode & 0o777).toBe(0o700);
  });

  it('refuse a folder another user made first, or one below a folder others can write', async () => {
    await runner.run(['chmod', '0755', tmp]);
    const planted = join(tmp, 'planted');
    await runner.run(['mkdir', '-m', '0777', planted]);
    await runner.run(['chown', 'nobody:nogroup', planted]);
    // nobody prepares what root would later trust.
    await asNobody('mkdir', join(planted, 'labs'));
    await expect(ensurePrivateDir(planted)).rejects.toThrow(UnsafePathError);
    await expect(ensurePrivateDir(planted)).rejects.toThrow(/owned by uid 65534.*refusing to use it/);
    // A root-owned folder inside nobody's is no better: nobody can swap it.
    await expect(ensurePrivateDir(join(planted, 'inner'))).rejects.toThrow(/a folder above it is owned by uid 65534/);
    const open = join(tmp, 'open');
    await runner.run(['mkdir', '-m', '0777', open]);
    await expect(ensurePrivateDir(join(open, 'state'))).rejects.toThrow(/writable by other users and not sticky/);
    await runner.run(['chmod', '1777', open]);
    await ensurePrivateDir(join(open, 'state'));
    await runner.run(['chmod', '0700', tmp]);
  });

  it('refuse a symlink in the folder\'s place', async () => {
    await ensurePrivateDir(join(tmp, 'real'));
    await symlink(join(tmp, 'real'), join(tmp, 'link'));
    await expect(ensurePrivateDir(join(tmp, 'link'))).rejects.toThrow(/is a symbolic link/);
  });
});

describe('private files', () => {
  it('never write through a symlink, and records and logs are created new', async () => {
    await ensurePrivateDir(join(tmp, 'f'));
    const target = join(tmp, 'root-only');
    await writeFile(target, 'secret\n', { mode: 0o600 });
    await symlink(target, join(tmp, 'f', 'planted.log'));
    await expect(writeNewFile(join(tmp, 'f', 'planted.log'), 'appended\n')).rejects.toThrow(/EEXIST/);
    await expect(readOwnFile(join(tmp, 'f', 'planted.log'))).rejects.toThrow(/is a symbolic link/);
    // An atomic replace swaps the link itself, never the file it points at.
    await replaceFile(join(tmp, 'f', 'planted.log'), 'replaced\n');
    expect(await readFile(target, 'utf8')).toBe('secret\n');
    expect(await readOwnFile(join(tmp, 'f', 'planted.log'))).toBe('replaced\n');
    expect((await stat(join(tmp, 'f', 'planted.log'))).mode & 0o777).toBe(0o600);
  });

  it('owned by another user are not trusted', async () => {
    await ensurePrivateDir(join(tmp, 'g'));
    await writeFile(join(tmp, 'g', 'state.json'), '{}');
    await runner.run(['chown', 'nobody', join(tmp, 'g', 'state.json')]);
    await expect(readOwnFile(join(tmp, 'g', 'state.json'))).rejects.toThrow(/owned by uid 65534/);
  });
});

describe('the per-lab lock', () => {
  /** A second process that takes the lock and holds it until killed. */
  async function holder(path: string): Promise<import('node:child_process').ChildProcess> {
    const child = spawn(process.execPath, ['-e', `
      const { openSync } = require('node:fs');
      const { spawnSync } = require('node:child_process');
      const fd = openSync(${JSON.stringify(path)}, 'a');
      const r = spawnSync('flock', ['-x', '-n', '3'], { stdio: ['ignore', 'ignore', 'ignore', fd] });
      process.stdout.write(r.status === 0 ? 'held\\n' : 'busy\\n');
      setInterval(() => {}, 1000);
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    const first = await new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d))));
    expect(first).toBe('held\n');
    return child;
  }

  it('excludes another process, and is free again the moment that process is SIGKILLed', async () => {
    const path = join(tmp, 'lab.lock');
    const other = await holder(path);
    expect(await isLocked(path)).toBe(true);
    await expect(takeLock(path, { what: 'lab x', doing: 'up' })).rejects.toThrow(LockBusyError);
    other.kill('SIGKILL');
    await new Promise((resolve) => other.once('close', resolve));
    expect(await isLocked(path)).toBe(false);
    const lock = await takeLock(path, { what: 'lab x', doing: 'up' });
    expect(await isLocked(path)).toBe(true);
    // Re-entrant in the holder: `up` deploys while it holds the lock.
    const again = await takeLock(path, { what: 'lab x', doing: 'apply' });
    again.release();
    expect(await isLocked(path)).toBe(true);
    lock.release();
    expect(await isLocked(path)).toBe(false);
  });

  it('waits for a holder that finishes, and says who holds it when it gives up', async () => {
    const path = join(tmp, 'wait.lock');
    const other = await holder(path);
    const waiting = takeLock(path, { what: 'lab y', doing: 'down', waitMs: 5000 });
    setTimeout(() => other.kill('SIGTERM'), 300);
    (await waiting).release();
    const lock = await takeLock(path, { what: 'lab y', doing: 'up' });
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      const { takeLock } = await import(${JSON.stringify(pathToFileURL(projectPath('out/build/lib/files/lock.js')).href)});
      await takeLock(${JSON.stringify(path)}, { what: 'lab y', doing: 'gc' }).then(() => console.log('taken'), (e) => console.log(e.message));
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    const said = await new Promise<string>((resolve) => { let s = ''; child.stdout!.on('data', (d) => (s += d)); child.once('close', () => resolve(s)); });
    lock.release();
    expect(said).toContain(`lab y is busy: pid ${process.pid} is running \`up\` on it`);
  });
});
