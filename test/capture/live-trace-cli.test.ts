import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findTraceRules } from '../../lib/capture/index.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { createNetnsLab, type NetnsLab } from '../../lib/lab/netns/index.ts';
import { parseServiceOption } from '../../scripts/commands/trace-live.ts';
import { cli } from '../helpers/cli.ts';
import { runCli, startCli } from '../helpers/cli-process.ts';
import { ipvsSkipReason, testRunTag } from '../helpers/netns.ts';

describe('kube-netlab trace --live: options', () => {
  it('refuses options of the other kind of trace, and a bad --service or --monitor, before opening any lab', async () => {
    for (const [argv, why] of [
      [['trace', '--live', '--dump', 'x.txt'], /--dump goes with --dump; --live reads the rules from the lab's node/],
      [['trace', '--dump', 'x.txt', '--dst', '10.96.0.1', '--dport', '80', '--requests', '5'], /--requests goes with --live/],
      [['trace', '--live', '--service', 'default/Web'], /--service must be NAMESPACE\/NAME/],
      [['trace', '--live', '--monitor', 'tcpdump'], /--monitor must be netlink, nft or xtables/],
      [['trace', '--live', '--requests', '0'], /--requests must be from 1/],
      [['trace', '--live', '--name', 'Bad_Name'], /--name: lab name/],
    ] as const) {
      const r = await cli(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toMatch(why);
    }
  });

  it('reads NS/NAME:PORT, NAME, and a port by name or number', () => {
    expect(parseServiceOption('default/httpbin:http')).toEqual({ namespace: 'default', name: 'httpbin', port: 'http' });
    expect(parseServiceOption('kube-system/kube-dns:53')).toEqual({ namespace: 'kube-system', name: 'kube-dns', port: '53' });
    expect(parseServiceOption('httpbin')).toEqual({ namespace: 'default', name: 'httpbin', port: null });
  });
});

const tag = testRunTag().slice(0, 6);
const sharedStateDir = process.env.KUBE_NETLAB_STATE_DIR;
let stateDir: string;
beforeAll(async () => {
  // A state folder of this file's own (the CLIs it starts inherit it): another test file's `gc`
  // cannot see its labs, so the gc below is the one that finds the killed trace's rules.
  stateDir = await mkdtemp(join('/run', `kn-test-${tag}-ltc-`));
  process.env.KUBE_NETLAB_STATE_DIR = stateDir;
});
afterAll(async () => {
  await rm(stateDir, { recursive: true, force: true });
  if (sharedStateDir === undefined) delete process.env.KUBE_NETLAB_STATE_DIR;
  else process.env.KUBE_NETLAB_STATE_DIR = sharedStateDir;
});

describe('kube-netlab trace --live on a netns lab', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `t${tag}-ltc`, mode: 'iptables' });
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('--json: the issue\'s shape, with zero unexplained paths and a chi-square', async () => {
    const r = await runCli(['trace', '--live', '--name', lab.name, '--service', 'default/httpbin:http', '--requests', '200', '--json']);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out) as Record<string, unknown> & { paths: Record<string, unknown>[]; chiSquare: Record<string, number> };
    expect(Object.keys(j)).toEqual(['packets', 'paths', 'unexplained', 'chiSquare', 'provenance']);
    expect(j.packets).toBe(200);
    expect(j.unexplained).toBe(0);
    expect(j.paths).toHaveLength(3);
    for (const p of j.paths) {
      expect(Object.keys(p)).toEqual(['path', 'rules', 'verdict', 'dnat', 'count', 'predicted']);
      expect(p.predicted).toBeCloseTo(1 / 3, 6);
    }
    expect(j.paths.reduce((a, p) => a + (p.count as number), 0)).toBe(200);
    expect(Object.keys(j.chiSquare)).toEqual(['statistic', 'degreesOfFreedom', 'pValue']);
    expect(j.chiSquare.degreesOfFreedom).toBe(2);
    expect(j.provenance).toMatchObject({ observed: { source: 'captured', backend: 'netns', mode: 'iptables' }, predicted: { source: 'predicted' } });
  });

  it('text: the tree, each branch\'s predicted percentage with the observed count beside it', async () => {
    const r = await runCli(['trace', '--live', '--name', lab.name, '--requests', '90']);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.split('\n');
    expect(lines.find((l) => l.includes('KUBE-SERVICES'))).toMatch(/^predicted 100\.00% · observed\s+90 \(100\.00%\)\s+PREROUTING › KUBE-SERVICES › KUBE-SVC-/);
    const branches = lines.filter((l) => /[├└]─ KUBE-SEP-/.test(l));
    expect(branches).toHaveLength(3);
    for (const b of branches) expect(b).toMatch(/^predicted\s+33\.33% · observed\s+\d+ \(\d+\.\d\d%\)\s+[│ ]*[├└]─ KUBE-SEP-\S+ › .* ⇒ ACCEPT, DNAT → 10\.244\.\d+\.\d+:8080$/);
    const observed = branches.map((b) => Number(/observed\s+(\d+)/.exec(b)![1]));
    expect(observed.reduce((a, n) => a + n, 0)).toBe(90);
    expect(r.out).toMatch(/unexplained: 0 of 90 paths .* χ² \d+\.\d\d on 2 df, p = \d\.\d{3}/);
  });

  it('SIGKILL mid-trace leaves the marked rules; gc proves them the kit\'s (owner gone) and removes them', async () => {
    const run = startCli(['trace', '--live', '--name', lab.name, '--requests', '3000']);
    const line = await run.waitForLine((l) => /tracing on \S+:/.test(l));
    const node = /tracing on (\S+):/.exec(line)![1];
    process.kill(run.pid, 'SIGKILL');
    expect((await run.done).signal).toBe('SIGKILL');
    const exec = (argv: string[], o?: Parameters<NetnsLab['exec']>[2]) => lab.exec(node, argv, o);
    const left = await findTraceRules(exec);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatchObject({ kind: 'iptables', hook: 'PREROUTING', owner: { pid: run.pid } });

    const gc = await runCli(['gc', '--backend', 'netns', '--json']);
    expect(gc.code, gc.err).toBe(0);
    const report = JSON.parse(gc.out) as { traces: { rules: { action: string; what: string; lab: string }[] } };
    const chain = left[0].kind === 'iptables' ? left[0].chain : '';
    const mine = report.traces.rules.filter((d) => d.lab === lab.name);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ action: 'removed', what: expect.stringContaining(chain) });
    expect(await findTraceRules(exec)).toEqual([]);
    expect((await exec(['iptables-save', '-t', 'raw'])).stdout).not.toMatch(/TRACE|kube-netlab-trace/);
    // The lab itself is the user's: still there, still up.
    expect((await lab.nodes()).length).toBe(3);
  });
});

describe('kube-netlab trace --live on a netns lab in IPVS mode', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `t${tag}-ltp`, mode: 'ipvs', workers: 1 });
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('--json: the iptables part\'s paths, and the split with where it comes from (or why it was not read)', async () => {
    const r = await runCli(['trace', '--live', '--name', lab.name, '--requests', '20', '--json']);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out) as { packets: number; unexplained: number; chiSquare: unknown; paths: { path: string[] }[]; ipvs: { virtualServer: string; servers: { server: string; predicted: number; observed: number | null }[]; unavailable: string | null; provenance: unknown } };
    expect(Object.keys(j)).toEqual(['packets', 'paths', 'unexplained', 'chiSquare', 'provenance', 'ipvs']);
    expect([j.packets, j.unexplained]).toEqual([20, 0]);
    expect(j.paths.every((p) => !p.path.some((c) => c.startsWith('IPVS ')))).toBe(true);
    expect(j.ipvs.servers).toHaveLength(3);
    if (ipvsSkipReason() !== null) {
      expect(j.chiSquare).toBeNull();
      expect(j.ipvs.unavailable).toMatch(/no IP_VS/);
      expect(j.ipvs.provenance).toBeNull();
      expect(j.ipvs.servers.every((s) => s.observed === null)).toBe(true);
    } else {
      expect(j.ipvs.unavailable).toBeNull();
      expect(j.ipvs.provenance).toMatchObject({ source: 'measured' });
    }
  });

  it('text: the iptables part with its count, then each real server\'s predicted share and what IPVS counted', async () => {
    const r = await runCli(['trace', '--live', '--name', lab.name, '--requests', '10']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^predicted 100\.00% · observed\s+10 \(100\.00%\)\s+PREROUTING › KUBE-SERVICES .*INPUT.* ⇒ ACCEPT$/m);
    expect(r.out).toMatch(/^TCP 10\.96\.\d+\.\d+:8000: the split over its real servers, /m);
    const servers = r.out.split('\n').filter((l) => /^ {2}10\.244\.\d+\.\d+:8080 +predicted +33\.33% · observed /.test(l));
    expect(servers).toHaveLength(3);
    if (ipvsSkipReason() !== null) {
      expect(servers.every((l) => l.endsWith('—'))).toBe(true);
      expect(r.out).toMatch(/not read: this kernel has no IP_VS/);
      expect(r.out).toMatch(/χ²: not computed \(the IPVS split was not read\)/);
    }
  });
});

describe('kube-netlab trace --live where the node cannot be traced', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `t${tag}-ltx`, mode: 'nftables', workers: 1 });
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('exits 3 with the reason, and adds nothing', async () => {
    const r = await runCli(['trace', '--live', '--name', lab.name, '--requests', '5', '--monitor', 'xtables']);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/kube-netlab trace: cannot trace live here: xtables-monitor prints iptables rules/);
    expect(r.out).toBe('');
    for (const n of await lab.nodes()) expect(await findTraceRules((argv, o) => lab.exec(n.name, argv, o))).toEqual([]);
  });
});
