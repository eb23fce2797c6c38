import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import {
  childrenOf, namespacesOfLab, processesOfLab, runCli, startCli, until, type CliProcess,
} from '../helpers/cli-process.ts';
import { testRunTag } from '../helpers/netns.ts';

// Faults injected into the real CLI, as a user meets them: `up` and `down` SIGKILLed at many
// points (each command they run is echoed, so the kill lands between or during named steps),
// stopped by signals, or racing each other; then `gc` (or `down`) must leave nothing: no
// namespace, no process, no state. The suite-wide check proves the host itself unchanged.

const tag = testRunTag().slice(0, 4);
let stateDir: string;
let env: Record<string, string>;

beforeAll(async () => {
  // A state folder of this file's own: its labs are invisible to other test files' gc.
  stateDir = await mkdtemp(join('/run', `kn-test-${tag}-faults-`));
  env = { KUBE_NETLAB_STATE_DIR: stateDir };
});
afterAll(async () => {
  await runCli(['gc'], env);
  await rm(stateDir, { recursive: true, force: true });
});

const up = (name: string, extra: string[] = []) => ['up', '--name', name, '--workers', '1', '--replicas', '2', '--echo', ...extra];
const isCommand = (l: string) => l.startsWith('  $ ');

/** Kill a CLI with SIGKILL, then wait for the commands it had started (not its pods) to finish. */
async function killHard(p: CliProcess): Promise<void> {
  const children = await childrenOf(p.pid);
  process.kill(p.pid, 'SIGKILL');
  await p.done;
  const shortLived: number[] = [];
  for (const c of children) {
    const cmd = await runner.run(['cat', `/proc/${c}/cmdline`], { allowFailure: true });
    if (!cmd.stdout.includes('httpbin.mjs')) shortLived.push(c);
  }
  await until('the killed CLI\'s commands to end', () => shortLived.every((c) => !existsSync(`/proc/${c}`)), 30_000);
}

/** Nothing of lab `name` is left: namespaces, processes, state. */
async function expectGone(name: string): Promise<void> {
  expect(await namespacesOfLab(name)).toEqual([]);
  expect(await processesOfLab(name)).toEqual([]);
  expect(existsSync(join(stateDir, 'labs', name))).toBe(false);
}

describe('SIGKILL during up, at every phase, then gc', () => {
  let total = 0;
  let lockedAt = 0;
  let deployAt = 0;
  beforeAll(async () => {
    // One full run, to number the commands `up` runs and find where the deploy starts.
    const name = `f${tag}-all`;
    const p = startCli(up(name), env);
    const r = await p.done;
    expect(r.code, r.err).toBe(0);
    const commands = p.lines.filter(isCommand);
    total = commands.length;
    lockedAt = commands.findIndex((l) => l.includes('flock -x -n 3')) + 1;
    deployAt = p.lines.filter((l, i) => isCommand(l) && i < p.lines.findIndex((x) => / deploy /.test(x))).length;
    expect((await runCli(['down', '--name', name], env)).code).toBe(0);
    await expectGone(name);
  }, 120_000);

  it('leaves nothing behind once gc has run, wherever the kill lands (12 points, 5 of them mid-deploy)', async () => {
    expect(total).toBeGreaterThan(40);
    expect(deployAt - lockedAt).toBeGreaterThan(10);
    // The tool checks before the lock, then spread over creation, and dense in the deploy, where
    // pods start their servers.
    const creation = [1, lockedAt, ...[0.1, 0.3, 0.5, 0.7, 0.95].map((f) => lockedAt + 1 + Math.round(f * (deployAt - lockedAt - 1)))];
    const deploy = [0.02, 0.2, 0.4, 0.6, 0.85].map((f) => deployAt + 1 + Math.round(f * (total - deployAt - 2)));
    const points = [...new Set([...creation, ...deploy])];
    expect(points.length).toBeGreaterThanOrEqual(10);
    const outcomes: string[] = [];
    for (const [i, k] of points.entries()) {
      const name = `f${tag}-k${i}`;
      const p = startCli(up(name), env);
      const line = await p.waitForLine((l) => isCommand(l) && p.lines.filter(isCommand).length >= k, 60_000).catch(() => 'finished first');
      await killHard(p);
      const status = await runCli(['status'], env);
      const row = status.out.split('\n').find((l) => l.startsWith(name)) ?? '(not listed)';
      const gc = await runCli(['gc', '--backend', 'netns'], env);
      expect(gc.code, gc.err).toBe(0);
      outcomes.push(`#${k}/${total} ${line.trim().slice(0, 60)} → status: ${row.split(/\s+/).slice(2, 3).join('')} → gc: ${gc.out.split('\n').find((l) => l.includes(name))?.slice(0, 60) ?? 'nothing'}`);
      await expectGone(name);
    }
    console.log(`SIGKILL points during up:\n${outcomes.join('\n')}`);
  }, 600_000);
});

describe('SIGKILL during down, then gc or down again', () => {
  it('leaves nothing behind', async () => {
    for (const [i, k] of [2, 5, 11, 15].entries()) {
      const name = `f${tag}-d${i}`;
      expect((await runCli(up(name), env)).code).toBe(0);
      const p = startCli(['down', '--name', name, '--echo'], env);
      await p.waitForLine((l) => isCommand(l) && p.lines.filter(isCommand).length >= k, 60_000).catch(() => undefined);
      await killHard(p);
      // Once past its lock, down has marked the lab `deleting`: gc finishes it, as down does.
      const again = await runCli(i % 2 === 0 ? ['gc', '--backend', 'netns'] : ['down', '--name', name], env);
      expect(again.code, again.err).toBe(0);
      await expectGone(name);
    }
  }, 300_000);

  it('before its lock, the lab is still up: gc keeps it, down removes it', async () => {
    const name = `f${tag}-d9`;
    expect((await runCli(up(name), env)).code).toBe(0);
    const p = startCli(['down', '--name', name, '--echo'], env);
    await p.waitForLine(isCommand);
    await killHard(p);
    const gc = await runCli(['gc', '--backend', 'netns'], env);
    expect(gc.out).toContain(`kept ${name}: up`);
    expect((await namespacesOfLab(name)).length).toBeGreaterThan(0);
    expect((await runCli(['down', '--name', name], env)).code).toBe(0);
    await expectGone(name);
  }, 60_000);
});

describe('signals during up remove what was made', () => {
  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)('%s mid-deploy: exit 130, nothing left, no gc needed', async (sig) => {
    const name = `f${tag}-${sig.slice(3, 6).toLowerCase()}`;
    const p = startCli(up(name), env);
    await p.waitForLine((l) => / deploy /.test(l));
    await p.waitForLine((l, i) => isCommand(l) && i > p.lines.findIndex((x) => / deploy /.test(x)) + 2);
    process.kill(p.pid, sig);
    const r = await p.done;
    expect(r.code).toBe(130);
    expect(r.err).toContain(`${sig}: stopping, and removing what was made`);
    expect(r.err).toMatch(/kube-netlab up: interrupted; lab .* removed\n$/);
    await expectGone(name);
  }, 60_000);

  it('a closed output (`up 2>&1 | head -1`) does not stop up: the lab comes up whole, quietly', async () => {
    const name = `f${tag}-pipe`;
    const p = startCli(up(name), env);
    // The reader goes away after the first line, as `head -1` does.
    await p.waitForLine(() => true);
    p.closeOutput();
    const r = await p.done;
    expect([r.code, r.signal]).toEqual([0, null]);
    const status = await runCli(['status', '--json'], env);
    const lab = (JSON.parse(status.out) as { labs: { name: string; problems: string[]; phase: string }[] }).labs.find((l) => l.name === name);
    expect(lab).toMatchObject({ phase: 'up', problems: [] });
    expect((await runCli(['down', '--name', name], env)).code).toBe(0);
    await expectGone(name);
  }, 60_000);
});

describe('concurrency', () => {
  it('two up of one name: one wins, the other fails clearly, and the winner\'s lab is whole', async () => {
    for (let round = 0; round < 3; round++) {
      const name = `f${tag}-two${round}`;
      const [a, b] = await Promise.all([runCli(up(name), env), runCli(up(name), env)]);
      const codes = [a.code, b.code].sort();
      expect(codes, `${a.err}\n---\n${b.err}`).toEqual([0, 1]);
      const loser = a.code === 1 ? a : b;
      expect(loser.err.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`^kube-netlab up: lab ${name} (is busy: pid \\d+ is running \`up\` on it|already exists)`));
      const t = await runCli(['traffic', '--name', name, '--requests', '60', '--json'], env);
      expect(t.code, t.err).toBe(0);
      expect(JSON.parse(t.out).ok).toBe(60);
      const status = JSON.parse((await runCli(['status', '--json'], env)).out) as { labs: { name: string; problems: string[] }[] };
      expect(status.labs.find((l) => l.name === name)?.problems).toEqual([]);
      expect((await runCli(['down', '--name', name], env)).code).toBe(0);
      await expectGone(name);
    }
  }, 180_000);

  it('two down of one name: both succeed, nothing is left', async () => {
    const name = `f${tag}-2down`;
    expect((await runCli(up(name), env)).code).toBe(0);
    const [a, b] = await Promise.all([runCli(['down', '--name', name], env), runCli(['down', '--name', name], env)]);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect([a.out, b.out].filter((o) => o.startsWith(`removed lab ${name}`))).toHaveLength(1);
    expect([a.out, b.out].filter((o) => o.startsWith(`no lab named ${name}`))).toHaveLength(1);
    await expectGone(name);
  }, 120_000);

  it('gc during up keeps the lab being made; up finishes and the lab works', async () => {
    const name = `f${tag}-gcup`;
    const p = startCli(up(name), env);
    await p.waitForLine((l) => l.includes('ip -batch -'));
    const gc = await runCli(['gc', '--backend', 'netns'], env);
    expect(gc.code).toBe(0);
    expect(gc.out).toMatch(new RegExp(`kept ${name}: lab ${name} is busy: pid ${p.pid} is running \`up\``));
    const r = await p.done;
    expect(r.code, r.err).toBe(0);
    const t = await runCli(['traffic', '--name', name, '--requests', '30', '--json'], env);
    expect(JSON.parse(t.out).ok).toBe(30);
    expect((await runCli(['down', '--name', name], env)).code).toBe(0);
    await expectGone(name);
  }, 120_000);

  it('a SIGKILLed traffic does not leave its load generator running out its requests', async () => {
    const name = `f${tag}-load`;
    expect((await runCli(up(name), env)).code).toBe(0);
    const loaders = async () => {
      const out: number[] = [];
      for (const pid of await processesOfLab(name)) {
        const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (cmd.includes('load.mjs')) out.push(pid);
      }
      return out;
    };
    try {
      const p = startCli(['traffic', '--name', name, '--requests', '200000'], env);
      await until('the load generator to start', async () => (await loaders()).length > 0);
      process.kill(p.pid, 'SIGKILL');
      await p.done;
      // 200,000 requests would take minutes; the generator sees its parent gone within a second.
      await until('the load generator to stop', async () => (await loaders()).length === 0, 5_000);
    } finally {
      expect((await runCli(['down', '--name', name], env)).code).toBe(0);
    }
    await expectGone(name);
  }, 120_000);
});
