import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { removeLab } from '../../lib/lab/create.ts';
import { gcKind } from '../../lib/lab/kind/gc.ts';
import { BackendUnavailableError, destroyKindLab } from '../../lib/lab/kind/index.ts';
import {
  creatorLiveness, decideGc, listKindRecords, markerOf, proveOwnership, readKindRecord, thisCreator, writeKindRecord,
  type GcEvidence, type HostProbe, type KindRecord, type NodeMarker,
} from '../../lib/lab/kind/state.ts';
import { EnvRunner, fakeToolchain, type FakeToolchain, dockerOnlyPath } from './kind-fakes.ts';

let tmp: string;
const xdg = process.env.XDG_STATE_HOME;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kn-kind-gc-test-'));
  // Lab records go to a directory of this test's own (this file runs in its own process).
  process.env.XDG_STATE_HOME = join(tmp, 'state');
});
afterAll(async () => {
  if (xdg === undefined) delete process.env.XDG_STATE_HOME;
  else process.env.XDG_STATE_HOME = xdg;
  await rm(tmp, { recursive: true, force: true });
});

/** A pid that ran and is gone. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid as number;
}

const record = (name: string, o: Partial<KindRecord> = {}): KindRecord => ({
  version: 1, name, backend: 'kind', mode: 'iptables', owner: `kn${name.padEnd(16, '0').slice(0, 16).replace(/[^a-z0-9]/g, '0')}`,
  status: 'creating', creator: { pid: deadPid(), start: null, host: hostname() }, createdAt: '2026-01-01T00:00:00.000Z', ...o,
});

/** /kind/kubeadm.conf as kind v0.29 writes it (kubeadm v1beta4), with the node labels it was given. */
function kubeadmConf(labels: string): string {
  return [
    'apiVersion: kubeadm.k8s.io/v1beta4', 'kind: InitConfiguration', 'nodeRegistration:', '  criSocket: "unix:///run/containerd/containerd.sock"',
    '  kubeletExtraArgs:', '    - name: "node-ip"', '      value: "172.18.0.3"', '    - name: "node-labels"', `      value: "${labels}"`,
    '---', 'apiVersion: kubeadm.k8s.io/v1beta4', 'kind: JoinConfiguration', 'nodeRegistration:', '  kubeletExtraArgs:',
    '    - name: "node-labels"', `      value: "${labels}"`, '---', 'apiVersion: kubelet.config.k8s.io/v1beta1', 'kind: KubeletConfiguration', 'cgroupRoot: /kubelet', '',
  ].join('\n');
}
const ok = (stdout: string) => ({ exitCode: 0, stdout, stderr: '' });

describe('kind ownership: the evidence, read purely', () => {
  it('reads the owner token kind wrote into /kind/kubeadm.conf, and nothing from a file being written', () => {
    expect(markerOf('n1', ok(kubeadmConf('kube-netlab/owner=kn0123456789abcdef')))).toEqual({ node: 'n1', state: 'marked', owner: 'kn0123456789abcdef' });
    // kind joins several labels with commas, in Go map order.
    expect(markerOf('n1', ok(kubeadmConf('tier=lab,kube-netlab/owner=kn1,zone=a')))).toMatchObject({ state: 'marked', owner: 'kn1' });
    // kubeadm v1beta3 (older kind) puts node-labels in a map.
    expect(markerOf('n1', ok('kubeletExtraArgs:\n    node-labels: "kube-netlab/owner=kn77"\n---\nkind: KubeletConfiguration\n'))).toMatchObject({ state: 'marked', owner: 'kn77' });
    expect(markerOf('n1', ok(kubeadmConf('')))).toEqual({ node: 'n1', state: 'unmarked' });
    expect(markerOf('n1', ok(kubeadmConf('other.io/owner=kn1')))).toEqual({ node: 'n1', state: 'unmarked' });
    // Cut short while kind copies it in: proves nothing either way.
    const full = kubeadmConf('kube-netlab/owner=kn0123456789abcdef');
    expect(markerOf('n1', ok(full.slice(0, full.indexOf('kn0123') + 6)))).toMatchObject({ state: 'unreadable' });
    expect(markerOf('n1', ok(full.slice(0, 40)))).toMatchObject({ state: 'unreadable', why: '/kind/kubeadm.conf is not complete yet' });
    expect(markerOf('n1', { exitCode: 1, stdout: '', stderr: 'Error response from daemon: container 4f2e is not running\n' }))
      .toEqual({ node: 'n1', state: 'unreadable', why: 'Error response from daemon: container 4f2e is not running' });
  });

  it('proves ownership only with the record\'s token and nothing against it', () => {
    const m = (state: NodeMarker['state'], owner = 'kna'): NodeMarker =>
      (state === 'marked' ? { node: 'x', state, owner } : state === 'unmarked' ? { node: 'x', state } : { node: 'x', state, why: 'stopped' });
    const rec = { owner: 'kna' };
    expect(proveOwnership(rec, [m('marked'), m('marked'), m('unreadable')])).toBe('ours');
    expect(proveOwnership(rec, [m('marked'), m('marked', 'knb')])).toBe('not-ours');
    expect(proveOwnership(rec, [m('marked'), m('unmarked')])).toBe('not-ours');
    expect(proveOwnership(rec, [m('unreadable'), m('unreadable')])).toBe('unproven');
    expect(proveOwnership(rec, [])).toBe('unproven');
    // Without a record, any kube-netlab token says kube-netlab made it.
    expect(proveOwnership(null, [m('marked', 'knz'), m('unreadable')])).toBe('ours');
    expect(proveOwnership(null, [m('unmarked')])).toBe('not-ours');
  });

  it('tells a live creator from a dead one, a reused pid, and another host\'s', () => {
    const probe = (alive: boolean, start: string | null): HostProbe => ({ host: 'lab1', alive: () => alive, start: () => start });
    const c = { pid: 4242, start: '9001', host: 'lab1' };
    expect(creatorLiveness(c, probe(true, '9001'))).toBe('alive');
    expect(creatorLiveness(c, probe(false, null))).toBe('dead');
    expect(creatorLiveness(c, probe(true, '12345'))).toBe('dead'); // same pid, another process
    expect(creatorLiveness({ ...c, start: null }, probe(true, '12345'))).toBe('alive');
    expect(creatorLiveness({ ...c, host: 'laptop2' }, probe(false, null))).toBe('unknown');
    // This process, for real.
    expect(creatorLiveness(thisCreator())).toBe('alive');
    expect(creatorLiveness({ ...thisCreator(), pid: deadPid() })).toBe('dead');
  });

  it('deletes only a cluster whose creation died and whose nodes carry the record\'s token', () => {
    const rec = record('lab', { owner: 'kna' });
    const marked: NodeMarker[] = [{ node: 'lab-control-plane', state: 'marked', owner: 'kna' }, { node: 'lab-worker', state: 'marked', owner: 'kna' }];
    const base: GcEvidence = { name: 'lab', exists: true, record: rec, creator: 'dead', markers: marked };
    const act = (e: Partial<GcEvidence>, r: Partial<KindRecord> = {}) => decideGc({ ...base, ...e, record: e.record === null ? null : { ...rec, ...r } }).action;
    expect(decideGc(base)).toEqual({ name: 'lab', action: 'delete', why: expect.stringMatching(/^half-made or orphaned: its creator, pid \d+, died/) });
    // Anything less, and the cluster stays.
    expect(act({ record: null, creator: null })).toBe('keep');
    expect(act({ creator: 'alive' })).toBe('keep');
    expect(act({ creator: 'unknown' })).toBe('keep');
    expect(act({}, { status: 'up' })).toBe('keep');
    expect(act({}, { status: 'retained' })).toBe('keep');
    expect(act({ markers: [{ node: 'lab-worker', state: 'unreadable', why: 'not running' }] })).toBe('keep');
    expect(decideGc({ ...base, markers: [{ node: 'lab-worker', state: 'unreadable', why: 'not running' }] }).why)
      .toMatch(/no node could be read to prove it is kube-netlab's \(lab-worker: not running\); if it is yours: `kind delete cluster --name lab`/);
    // Someone else's cluster by that name: left alone, our stale record dropped (unless we are mid-create).
    expect(act({ markers: [...marked, { node: 'lab-worker2', state: 'marked', owner: 'knb' }] })).toBe('forget');
    expect(act({ markers: [{ node: 'lab-worker', state: 'unmarked' }] })).toBe('forget');
    expect(act({ creator: 'alive', markers: [{ node: 'lab-worker', state: 'unmarked' }] })).toBe('keep');
    // No cluster: the record is stale, unless its creator is still at it.
    expect(act({ exists: false, markers: [] })).toBe('forget');
    expect(act({ exists: false, markers: [], creator: 'alive' })).toBe('keep');
    // A lab held by a process (a notebook kernel) goes once that process has died, and only then.
    const held = { status: 'up' as const, heldBy: { pid: 1, start: null, host: hostname() } };
    expect(decideGc({ ...base, record: { ...rec, ...held }, holder: 'dead' })).toEqual({ name: 'lab', action: 'delete', why: 'its holder, pid 1 (a notebook kernel or script), has died' });
    expect(act({ holder: 'alive' }, held)).toBe('keep');
    expect(act({ holder: 'unknown' }, held)).toBe('keep');
    expect(act({ holder: 'dead', markers: [{ node: 'lab-worker', state: 'unmarked' }] }, held)).toBe('forget');
    expect(act({ holder: 'dead', markers: [{ node: 'lab-worker', state: 'unreadable', why: 'stopped' }] }, held)).toBe('keep');
    expect(act({ exists: false, markers: [] }, { status: 'up' })).toBe('forget');
  });
});

describe('kube-netlab gc and down for kind: when kind or the docker daemon is missing (real binaries)', () => {
  let dockerOnly: string;
  let fakeKind: FakeToolchain;
  const noDaemon = () => `unix://${join(tmp, 'no-daemon.sock')}`;

  beforeAll(async () => {
    // A PATH holding the real docker CLI and nothing else: no kind.
    dockerOnly = await dockerOnlyPath(join(tmp, 'docker-only'));
    // Only kind is faked here; docker is the real CLI, talking to a socket where no daemon is.
    fakeKind = await fakeToolchain(join(tmp, 'fake-kind'), ['kind']);
    await writeKindRecord(record('leftover'));
  });

  it('says kind is not installed, deletes nothing and keeps the records', async () => {
    const r = new EnvRunner({ PATH: dockerOnly, DOCKER_HOST: noDaemon() });
    const report = await gcKind(r);
    expect(report.skipped).toMatch(/^kind not installed; install kind v0\.29\.0 or later/);
    expect(report.skipped).toMatch(/1 kube-netlab kind lab record left unchecked: leftover\)$/);
    expect(report).toMatchObject({ deleted: [], decisions: [] });
    expect((await listKindRecords()).map((x) => x.name)).toEqual(['leftover']);
    const err = await destroyKindLab('leftover', r).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).cause).toBe('kind not installed');
    // `down` on auto asks kind only when it can answer.
    expect(await removeLab('leftover', 'kind', r).catch((e: unknown) => (e as Error).message)).toMatch(/kind not installed/);
  });

  it('says the docker daemon is unreachable, with the real docker CLI', async () => {
    // The fake kind is a bash script: it needs coreutils, found after the real docker CLI.
    const r = new EnvRunner({ PATH: `${fakeKind.dir}:${dockerOnly}:/usr/bin:/bin`, DOCKER_HOST: noDaemon() });
    const t0 = performance.now();
    const report = await gcKind(r);
    expect(report.skipped).toMatch(/^docker daemon unreachable; start it/);
    expect(report.deleted).toEqual([]);
    expect(performance.now() - t0).toBeLessThan(15_000);
    // kind was asked its version and nothing else: no cluster was listed or touched.
    expect(await fakeKind.log()).toEqual(['kind version']);
    expect(await readKindRecord('leftover')).not.toBeNull();
  });

  it('`kube-netlab gc --backend kind` prints the reason and exits 0', async () => {
    const res = await runner.run([process.execPath, 'scripts/kube-netlab.mjs', 'gc', '--backend', 'kind'], {
      allowFailure: true, timeoutMs: 60_000, env: { PATH: dockerOnly, DOCKER_HOST: noDaemon(), XDG_STATE_HOME: join(tmp, 'state') },
    });
    expect(res.stderr).toBe('');
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toBe([
      'netns: not checked: only kind was asked for',
      'kind:  not checked: kind not installed; install kind v0.29.0 or later: `go install sigs.k8s.io/kind@v0.29.0`, or the release binary from kind.sigs.k8s.io/docs/user/quick-start (1 kube-netlab kind lab record left unchecked: leftover)',
      '',
    ].join('\n'));
  });
});

describe('kube-netlab gc and down for kind: which clusters go (fake kind and docker)', () => {
  let fake: FakeToolchain;
  const conf = (labels: string) => kubeadmConf(labels);
  const nodesOf = (c: string) => [`${c}-control-plane`, `${c}-worker`, `${c}-worker2`];

  beforeAll(async () => {
    fake = await fakeToolchain(join(tmp, 'fake'), ['kind', 'docker']);
    await rm(join(tmp, 'state'), { recursive: true, force: true });
  });

  /** Clusters as kind would list them, each node's kubeadm.conf with these labels (null: no file). */
  async function clusters(spec: Record<string, string | null>): Promise<void> {
    await fake.set('log', '');
    await fake.set('clusters', Object.keys(spec).map((c) => `${c}\n`).join(''));
    await rm(join(fake.dir, 'kubeadm'), { recursive: true, force: true });
    await mkdir(join(fake.dir, 'kubeadm'));
    for (const [c, labels] of Object.entries(spec)) {
      if (labels !== null) for (const n of nodesOf(c)) await writeFile(join(fake.dir, 'kubeadm', n), conf(labels));
    }
  }

  it('deletes the half-made cluster of a dead create, and leaves everything it cannot prove alone', async () => {
    const recs = {
      crashed: record('crashed'), running: record('running', { status: 'up' }), impostor: record('impostor'),
      mute: record('mute'), gone: record('gone', { status: 'up' }), busy: record('busy', { creator: thisCreator() }),
    };
    for (const rec of Object.values(recs)) await writeKindRecord(rec);
    const label = (rec: KindRecord) => `kube-netlab/owner=${rec.owner}`;
    await clusters({
      crashed: label(recs.crashed), running: label(recs.running), mine: '', impostor: 'kube-netlab/owner=kn9999999999999999',
      mute: null, busy: label(recs.busy),
    });
    const report = await gcKind(fake.runner);
    expect(report.skipped).toBeNull();
    expect(report.deleted).toEqual(['crashed']);
    expect(Object.fromEntries(report.decisions.map((d) => [d.name, d.action]))).toEqual({
      busy: 'keep', crashed: 'delete', gone: 'forget', impostor: 'forget', mine: 'keep', mute: 'keep', running: 'keep',
    });
    const log = await fake.log();
    expect(log.filter((l) => l.startsWith('kind delete'))).toEqual(['kind delete cluster --name crashed']);
    // The user's own cluster was not even read.
    expect(log.some((l) => l.includes('mine-'))).toBe(false);
    expect(await readFile(join(fake.dir, 'clusters'), 'utf8')).toBe('running\nmine\nimpostor\nmute\nbusy\n');
    expect((await listKindRecords()).map((x) => x.name)).toEqual(['busy', 'mute', 'running']);
    // A second run changes nothing.
    const again = await gcKind(fake.runner);
    expect(again.deleted).toEqual([]);
    expect(again.decisions.map((d) => `${d.name} ${d.action}`)).toEqual(['busy keep', 'impostor keep', 'mine keep', 'mute keep', 'running keep']);
  });

  it('down removes its own lab, even half-made, and refuses anyone else\'s cluster', async () => {
    await rm(join(tmp, 'state'), { recursive: true, force: true });
    const mute = record('mute');
    await writeKindRecord(mute);
    await clusters({ mine: '', impostor: 'kube-netlab/owner=kn9999999999999999', mute: null, lost: 'kube-netlab/owner=kn5555555555555555' });
    await writeKindRecord(record('impostor'));
    await expect(destroyKindLab('mine', fake.runner)).rejects.toThrow(/kind cluster mine was not made by kube-netlab \(its nodes carry no kube-netlab\/owner label\), so kube-netlab leaves it alone; `kind delete cluster --name mine` deletes it if you mean to/);
    await expect(destroyKindLab('impostor', fake.runner)).rejects.toThrow(/its nodes carry no kube-netlab\/owner label of this lab/);
    expect((await fake.log()).some((l) => l.startsWith('kind delete'))).toBe(false);
    // Its record and nothing against it: a half-made lab of ours.
    expect(await destroyKindLab('mute', fake.runner)).toEqual(['kind cluster mute']);
    // Made by kube-netlab, record lost (another machine's state, a wiped home).
    expect(await removeLab('lost', 'kind', fake.runner)).toEqual(['kind cluster lost']);
    expect(await destroyKindLab('nosuch', fake.runner)).toEqual([]);
    expect((await fake.log()).filter((l) => l.startsWith('kind delete'))).toEqual(['kind delete cluster --name mute', 'kind delete cluster --name lost']);
    expect(await readKindRecord('mute')).toBeNull();
  });
});
