import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { createNetnsLab, destroyNetnsLab, gcNetns } from '../../lib/lab/netns/index.ts';
import { readState } from '../../lib/lab/netns/state.ts';
import { testRunTag } from '../helpers/netns.ts';

const name = `t${testRunTag()}-held`;
afterAll(async () => {
  await destroyNetnsLab(name);
});

describe('a lab held by a process (what a notebook does)', () => {
  it('survives gc while its holder runs, and is removed by gc once the holder has died', async () => {
    // A real holder process: a notebook kernel stands in the same place.
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    await new Promise((resolve) => holder.once('spawn', resolve));
    const lab = await createNetnsLab({ name, mode: 'iptables', workers: 1, heldBy: holder.pid! });
    expect((await readState(name))?.heldBy?.pid).toBe(holder.pid);

    expect((await gcNetns()).labs).not.toContain(name);
    expect(await readState(name)).not.toBeNull();

    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    const report = await gcNetns();
    expect(report.labs).toContain(name);
    expect(report.namespaces.some((ns) => ns.startsWith(`kn-${name}.`))).toBe(true);
    expect(await readState(name)).toBeNull();
    await expect(lab.nodes()).resolves.toBeDefined(); // the object lives on; its lab does not
  });

  it('a lab without a holder (made by `kube-netlab up`) is never gc\'s to remove', async () => {
    await createNetnsLab({ name, mode: 'iptables', workers: 1 });
    expect((await gcNetns()).labs).not.toContain(name);
    await expect(createNetnsLab({ name, mode: 'iptables', workers: 1 })).rejects.toThrow(`lab ${name} already exists`);
    await destroyNetnsLab(name);
  });
});
