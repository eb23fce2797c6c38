import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { createNetnsLab, gcNetns, inspectNetnsLabs, removeNetnsLab, type NetnsLab } from '../../lib/lab/netns/index.ts';
import { labDir, readState } from '../../lib/lab/netns/state.ts';
import { deploymentPodName } from '../../lib/k8s/workshop.ts';
import { measureTraffic } from '../../lib/traffic/index.ts';
import { namespacesOfLab, processesOfLab, runCli } from '../helpers/cli-process.ts';
import { testRunTag } from '../helpers/netns.ts';

// gc and down delete and kill only what they can prove the kit made, whatever was done by hand
// around a lab; each case sets up the tampering for real, then checks what is left.

const tag = testRunTag().slice(0, 4);
let stateDir: string;
let otherStateDir: string;
beforeAll(async () => {
  stateDir = await mkdtemp(join('/run', `kn-test-${tag}-own-`));
  otherStateDir = await mkdtemp(join('/run', `kn-test-${tag}-own2-`));
  // This file's labs live in a state folder of its own (the module reads it at every call).
  process.env.KUBE_NETLAB_STATE_DIR = stateDir;
});
afterAll(async () => {
  await gcNetns().catch(() => undefined);
  await rm(stateDir, { recursive: true, force: true });
  await rm(otherStateDir, { recursive: true, force: true });
});

const workloads = async () => [...(await loadManifest('httpbin')), ...(await loadManifest('curl'))];
/** Running, not a zombie. */
function alive(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('tampering around a lab', () => {
  it('a pod namespace deleted by hand: status says so, and down still ends its server', async () => {
    const lab = await createNetnsLab({ name: `o${tag}-pod`, mode: 'iptables', workers: 1, workloads: await workloads() });
    const state = await readState(lab.name);
    const pod = state!.pods.find((p) => p.deployment === 'httpbin')!;
    await runner.run(['ip', 'netns', 'del', `kn-${lab.name}.pod.${pod.name}`]);
    expect(alive(pod.process!.pid)).toBe(true); // the server lives on in its now-unnamed namespace
    const [h] = (await inspectNetnsLabs()).filter((x) => x.name === lab.name);
    expect(h.problems).toEqual([`namespace kn-${lab.name}.pod.${pod.name} is missing`]);
    expect(h.fix).toBe(`kube-netlab down --name ${lab.name}, then up again`);
    const removed = await removeNetnsLab(lab.name);
    expect(removed.processes).toContain(pod.process!.pid);
    expect(alive(pod.process!.pid)).toBe(false);
    expect(await processesOfLab(lab.name)).toEqual([]);
    expect(await namespacesOfLab(lab.name)).toEqual([]);
  });

  it('a pod whose server died: status says which, and the fix', async () => {
    const lab = await createNetnsLab({ name: `o${tag}-dead`, mode: 'iptables', workers: 1, workloads: await workloads() });
    try {
      const pod = (await readState(lab.name))!.pods.find((p) => p.deployment === 'httpbin')!;
      process.kill(pod.process!.pid, 'SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 200));
      const [h] = (await inspectNetnsLabs()).filter((x) => x.name === lab.name);
      expect(h.problems).toEqual([`pod ${pod.name} is not running (its server, pid ${pod.process!.pid}, has exited)`]);
      expect(h.fix).toBe(`kube-netlab down --name ${lab.name}, then up again`);
    } finally {
      await lab.destroy();
    }
  });

  it('a namespace made by hand under the lab\'s prefix, and a process started by hand in a node: left alone, and said', async () => {
    const lab = await createNetnsLab({ name: `o${tag}-hand`, mode: 'iptables', workers: 1 });
    const mine = `kn-${lab.name}.mine`;
    await runner.run(['ip', 'netns', 'add', mine]);
    await runner.run(['ip', '-n', mine, 'link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'a1']);
    const sleeper = spawn('ip', ['netns', 'exec', `kn-${lab.name}.${lab.name}-worker`, 'sleep', '60'], { stdio: 'ignore' });
    await new Promise((resolve) => sleeper.once('spawn', resolve));
    try {
      const removed = await removeNetnsLab(lab.name);
      expect(removed.namespaces).not.toContain(mine);
      expect(removed.leftAlone).toContainEqual({ what: `namespace ${mine}`, why: `not marked as made by kube-netlab for this lab; if it is yours to delete: \`ip netns del ${mine}\`` });
      expect(removed.leftAlone.some((l) => l.what.startsWith(`process ${sleeper.pid} (sleep) in kn-${lab.name}.${lab.name}-worker`))).toBe(true);
      expect(alive(sleeper.pid!)).toBe(true);
      expect(await namespacesOfLab(lab.name)).toEqual([mine]);
    } finally {
      sleeper.kill('SIGKILL');
      await runner.run(['ip', 'netns', 'del', mine]);
    }
  });

  it('gc leaves alone a namespace made by hand that merely looks like a lab\'s, and a healthy lab under another state folder', async () => {
    const byHand = `kn-o${tag}-x.y`;
    await runner.run(['ip', 'netns', 'add', byHand]);
    process.env.KUBE_NETLAB_STATE_DIR = otherStateDir;
    const other = await createNetnsLab({ name: `o${tag}-oth`, mode: 'nftables', workers: 1, workloads: await workloads() });
    process.env.KUBE_NETLAB_STATE_DIR = stateDir;
    try {
      const report = await gcNetns();
      expect(report.namespaces).toEqual([]);
      expect(report.decisions).toContainEqual({ name: `o${tag}-x`, action: 'kept', why: `namespace ${byHand}: not marked as made by kube-netlab for this lab; if it is yours to delete: \`ip netns del ${byHand}\`` });
      expect(report.decisions.filter((d) => d.name === other.name).map((d) => d.why))
        .toContain(`namespace kn-${other.name}.net: made by kube-netlab under another state folder (KUBE_NETLAB_STATE_DIR): remove it from there, or with \`kube-netlab down --name ${other.name} --force\``);
      // It still works, untouched.
      const m = await measureTraffic(other, { requests: 30 });
      expect(m.ok).toBe(30);
      // A plain down from here refuses it too; --force is the user's explicit say-so.
      const down = await removeNetnsLab(other.name);
      expect(down.namespaces).toEqual([]);
      expect((await removeNetnsLab(other.name, runner, { force: true })).namespaces.length).toBeGreaterThan(5);
      expect(await processesOfLab(other.name)).toEqual([]);
    } finally {
      process.env.KUBE_NETLAB_STATE_DIR = otherStateDir;
      await removeNetnsLab(other.name, runner, { force: true }).catch(() => undefined);
      process.env.KUBE_NETLAB_STATE_DIR = stateDir;
      await runner.run(['ip', 'netns', 'del', byHand]);
    }
  });

  it('a corrupt state file: status says broken with the fix, gc keeps it, down removes it', async () => {
    const lab = await createNetnsLab({ name: `o${tag}-bad`, mode: 'iptables', workers: 1 });
    await writeFile(join(labDir(lab.name), 'state.json'), '{ "half": ');
    const [h] = (await inspectNetnsLabs()).filter((x) => x.name === lab.name);
    expect(h.problems[0]).toMatch(/^its state file is unusable \(not JSON/);
    expect(h.fix).toBe(`kube-netlab down --name ${lab.name}`);
    expect((await gcNetns()).decisions.find((d) => d.name === lab.name)?.why).toMatch(/^broken: its state file is unusable/);
    expect(await namespacesOfLab(lab.name)).not.toEqual([]);
    const removed = await removeNetnsLab(lab.name);
    expect(removed.namespaces.length).toBeGreaterThan(3);
    expect(await namespacesOfLab(lab.name)).toEqual([]);
  });

  it('a symlink planted at the next pod\'s log path is not written through', async () => {
    const lab: NetnsLab = await createNetnsLab({ name: `o${tag}-sym`, mode: 'iptables', workers: 1, workloads: await workloads() });
    try {
      const target = join(stateDir, 'root-only');
      await writeFile(target, 'secret\n', { mode: 0o600 });
      const next = deploymentPodName('httpbin', 3);
      await symlink(target, join(labDir(lab.name), 'pods', `${next}.log`));
      await expect(lab.scale('httpbin', 4)).rejects.toThrow(/EEXIST/);
      expect(await readFile(target, 'utf8')).toBe('secret\n');
    } finally {
      await lab.destroy();
    }
    expect(await processesOfLab(lab.name)).toEqual([]);
  });

  it('under umask 000, folders are 0700 and files 0600', async () => {
    const old = process.umask(0);
    try {
      const lab = await createNetnsLab({ name: `o${tag}-um`, mode: 'iptables', workers: 1, workloads: await workloads() });
      // Folders 0700, files 0600: what is not so is listed.
      const wrong: string[] = [];
      const seen: string[] = [];
      const walk = async (dir: string) => {
        for (const e of await readdir(dir, { withFileTypes: true })) {
          const p = join(dir, e.name);
          const mode = (await stat(p)).mode & 0o777;
          seen.push(p);
          if (mode !== (e.isDirectory() ? 0o700 : 0o600)) wrong.push(`${p} ${mode.toString(8)}`);
          if (e.isDirectory()) await walk(p);
        }
      };
      await walk(labDir(lab.name));
      await lab.destroy();
      expect(wrong).toEqual([]);
      const modes = Object.fromEntries(seen.map((p) => [p, true]));
      expect(Object.keys(modes).some((p) => p.endsWith('.log'))).toBe(true);
    } finally {
      process.umask(old);
    }
  });
});

describe('another user\'s state folder', () => {
  it('up, status and gc refuse it, say why, and make nothing', async () => {
    const planted = await mkdtemp(join('/tmp', 'kn-planted-'));
    await runner.run(['chown', 'nobody:nogroup', planted]);
    await runner.run(['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', 'mkdir', join(planted, 'labs')]);
    try {
      const env = { KUBE_NETLAB_STATE_DIR: planted };
      const name = `o${tag}-pl`;
      for (const args of [['up', '--name', name, '--workers', '1'], ['status'], ['gc', '--backend', 'netns']]) {
        const r = await runCli(args, env);
        expect(r.code, args.join(' ')).toBe(1);
        expect(r.err).toContain(`${planted}: is owned by uid 65534, not by the user running kube-netlab (uid 0); refusing to use it (another user could plant files there)`);
      }
      expect(await namespacesOfLab(name)).toEqual([]);
      expect(await readdir(join(planted, 'labs'))).toEqual([]);
    } finally {
      await rm(planted, { recursive: true, force: true });
    }
  });
});
