import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { cli } from '../helpers/cli.ts';


async function namespacesOf(pid: number): Promise<string[]> {
  const out = await runner.run(['ip', 'netns', 'list']);
  return out.stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(`kn-scale-${pid}-`));
}

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'kube-netlab-scale-cli-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('kube-netlab scale: usage errors exit 2 and say what is wrong', () => {
  const cases: [string[], RegExp][] = [
    [['--modes', 'iptables,bpf'], /--modes: unknown mode "bpf"/],
    [['--modes', ''], /--modes must be a comma-separated list/],
    [['--services', '10,ten'], /--services must be a comma-separated list of whole numbers ≥ 1, got "10,ten"/],
    [['--services', '10,10'], /--services lists 10 twice/],
    [['--services', '10000', '--endpoints', '10', '--pod-subnet', '10.244.0.0/16'], /10000×10 pods need \d+ nodes of \/24, but 10\.244\.0\.0\/16 holds 256; pass a larger --pod-subnet/],
    [['--endpoints', '0'], /--endpoints must be at least 1/],
    [['--iptables-backends', 'legacy,xtables'], /--iptables-backends: unknown backend "xtables" \(expected legacy, nft, as in iptables-legacy and iptables-nft\)/],
    [['--iptables-backends', 'nft,nft'], /--iptables-backends lists nft twice/],
    [['--samples', 'many'], /--samples must be a whole number/],
    [['--pod-subnet', 'nowhere'], /--pod-subnet: "nowhere" is not a CIDR/],
    [['--bogus'], /Unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    it(args.join(' '), async () => {
      const r = await cli('scale', ...args);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
      expect(r.err).toContain('Usage: kube-netlab scale');
      expect(r.out).toBe('');
    });
  }

  it('says it needs root, before making anything', async () => {
    const spy = vi.spyOn(process as { getuid(): number }, 'getuid').mockReturnValue(1000);
    try {
      const r = await cli('scale', '--services', '10');
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/needs root: run it with sudo/);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('kube-netlab scale, run', () => {
  it('prints one progress line per step on stderr and the sweep as JSON on stdout', async () => {
    const r = await cli('scale', '--modes', 'nftables', '--services', '5,10', '--endpoints', '2', '--samples', '10', '--repeats', '1', '--json');
    expect(r.code).toBe(0);
    const steps = r.err.split('\n').filter((l) => l.startsWith('['));
    expect(steps).toHaveLength(2);
    expect(steps[0]).toMatch(/^\[1\/2\] nftables, 5 services × 2 endpoints: .* \(netns kn-scale-\d+-[0-9a-f]{6}\)$/);
    const json = JSON.parse(r.out);
    expect(json.points.map((p: { services: number }) => p.services)).toEqual([5, 10]);
    expect(Object.keys(json.points[0])).toEqual(['mode', 'iptablesBackend', 'variant', 'services', 'endpoints', 'measured', 'predicted']);
    expect(json.points[1].measured.countsMatch).toBe(true);
    expect(await namespacesOf(process.pid)).toEqual([]);
  }, 60_000);

  it('prints a table by default', async () => {
    const r = await cli('scale', '--modes', 'iptables', '--iptables-backends', 'legacy', '--services', '5,10', '--endpoints', '2', '--samples', '10', '--repeats', '1');
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^\[1\/2\] iptables-legacy, 5 services × 2 endpoints: /m);
    expect(r.out).toMatch(/^mode\s+services\s+fit\s+sync ms\s+change ms\s+first svc p50\/p99 µs\s+last svc p50\/p99 µs\s+kernel = lib\/sim$/m);
    expect(r.out).toMatch(/^iptables-legacy\s+5\s+in\s+[\d.]+ \[[\d.]+\]/m);
    expect(r.out).toContain('all counts equal');
    expect(r.out).toContain('sync ms    = ');
  }, 60_000);

  it('Ctrl-C (SIGINT) stops the sweep and deletes its namespace', async () => {
    const log = join(dir, 'sigint.log');
    const pid = await runner.spawnDetached(
      [process.execPath, 'scripts/kube-netlab.mjs', 'scale', '--modes', 'iptables', '--services', '10,20,30,40', '--endpoints', '3', '--samples', '2000'],
      log,
    );
    const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
    const deadline = Date.now() + 30_000;
    // Wait for the second step, so a namespace exists and a sweep is under way.
    while (!(existsSync(log) && (await readFile(log, 'utf8')).includes('[2/4]'))) {
      if (Date.now() > deadline || !alive()) throw new Error(`the sweep did not reach step 2: ${existsSync(log) ? await readFile(log, 'utf8') : 'no log'}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await namespacesOf(pid)).length).toBe(1);
    process.kill(pid, 'SIGINT');
    while (alive()) {
      if (Date.now() > deadline + 15_000) throw new Error('the sweep did not stop after SIGINT');
      await new Promise((r) => setTimeout(r, 50));
    }
    const text = await readFile(log, 'utf8');
    expect(text).toContain('interrupted by SIGINT');
    expect(text).not.toContain('[3/4]');
    expect(await namespacesOf(pid)).toEqual([]);
  }, 60_000);
});
