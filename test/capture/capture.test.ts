import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CAPTURE_KINDS, CAPTURE_SPECS, NodeUnreachableError, captureNode, loadCapture, loadRun, parsedOf, saveCapture, whySkipped,
  type CaptureContext, type NodeCapture, type NodeExec,
} from '../../lib/capture/index.ts';
import { MissingToolError } from '../../lib/exec/index.ts';
import { resolveServicePorts, workshopCluster } from '../../lib/k8s/index.ts';
import { findChain, findListChain, findNftTable, findTable } from '../../lib/parse/index.ts';
import { builtinJumpsRestore, generateIptables, generateIpvs, generateNftables, type ProxyMode } from '../../lib/proxy/index.ts';
import { IPVS_JUMPS } from '../../lib/proxy/ipvs.ts';
import { ipvsSkipReason, withNetns, type TestNetns } from '../helpers/netns.ts';

const NODE = 'kind-worker';
const HTTPBIN_SVC = 'KUBE-SVC-FREKB6WNWYJLKTHC';
const ctx = (mode: ProxyMode): CaptureContext => ({ backend: 'netns', mode, node: NODE, lab: 'captest' });
const ports = () => resolveServicePorts(workshopCluster(), { nodeName: NODE });

let runDir: string;
beforeAll(async () => {
  runDir = await mkdtemp(join(tmpdir(), 'kn-capture-'));
});
afterAll(async () => {
  await rm(runDir, { recursive: true, force: true });
});

/** Load kube-proxy's rules for `mode` into the namespace the way kube-proxy would, with lo up. */
async function program(ns: TestNetns, mode: ProxyMode): Promise<void> {
  await ns.run(['ip', 'link', 'set', 'lo', 'up']);
  if (mode === 'iptables') {
    const gen = generateIptables(ports(), { nodeName: NODE });
    await ns.run(['iptables-restore', '--noflush'], { input: builtinJumpsRestore(gen.builtinJumps) });
    await ns.run(['iptables-restore', '--noflush'], { input: gen.restore });
  } else if (mode === 'nftables') {
    await ns.run(['nft', '-f', '-'], { input: generateNftables(ports(), { nodeName: NODE }).nft });
  } else {
    const gen = generateIpvs(ports(), { nodeName: NODE });
    await ns.run(['ipset', 'restore'], { input: gen.ipsetRestore });
    await ns.run(['iptables-restore', '--noflush'], { input: builtinJumpsRestore(IPVS_JUMPS.map((j) => ({ ...j, args: [...j.args] }))) });
    await ns.run(['iptables-restore', '--noflush'], { input: gen.iptablesRestore });
  }
}

/** On a kernel without IP_VS both IPVS kinds skip and say so; with it, both parse. */
function expectIpvsKinds(cap: NodeCapture): void {
  for (const kind of ['ipvsadm', 'proc-ip-vs'] as const) {
    const item = cap.items[kind]!;
    if (ipvsSkipReason() === null) {
      expect(item.skipped, kind).toBeUndefined();
      expect(item.parsed, kind).not.toBeNull();
    } else {
      expect(item.skipped, kind).toMatch(/IP_VS|\/proc\/net\/ip_vs/);
      expect(item.parsed, kind).toBeNull();
      expect(item.error, kind).toBeNull();
    }
  }
}

/** Save into a run directory of its own, load back, and expect the same capture. */
async function roundTrip(cap: NodeCapture, run = join(runDir, Math.random().toString(36).slice(2))): Promise<string[]> {
  const written = await saveCapture(cap, run);
  expect(await loadCapture(join(run, NODE))).toEqual(cap);
  return written;
}

describe('captureNode on a namespace programmed like a kube-proxy node', () => {
  it('iptables mode: every kind captured, parsed or skipped with a reason', async () => {
    const cap = await withNetns(async (ns) => {
      await program(ns, 'iptables');
      const c = await captureNode(ns.run, ctx('iptables'));
      // Raw text is what the tool prints (bar the timestamped comment lines).
      const again = (await ns.run(['iptables-save', '-c'])).stdout;
      const noComments = (s: string) => s.split('\n').filter((l) => !l.startsWith('#')).join('\n');
      expect(noComments(c.items['iptables-save']!.stdout)).toBe(noComments(again));
      return c;
    });

    expect(cap.provenance).toMatchObject({ source: 'captured', backend: 'netns', mode: 'iptables', node: NODE, lab: 'captest' });
    expect(Number.isNaN(Date.parse(cap.provenance.at))).toBe(false);
    expect(Object.keys(cap.items)).toEqual([...CAPTURE_KINDS]);
    expect(cap.items['iptables-save']!.command).toBe('iptables-save -c');
    expect(cap.items['iptables-nat-list']!.command).toBe('iptables -t nat -L -n -v');
    expect(cap.items['ipvsadm']!.command).toBe('ipvsadm -Ln --stats');

    const nat = findTable(parsedOf(cap, 'iptables-save')!, 'nat')!;
    expect(findChain(nat, HTTPBIN_SVC)!.rules).toHaveLength(4);
    expect(nat.chains.find((c) => c.name === 'PREROUTING')!.rules[0].target?.name).toBe('KUBE-SERVICES');
    const listed = findListChain(parsedOf(cap, 'iptables-nat-list')!, HTTPBIN_SVC)!;
    expect(listed.rules).toHaveLength(4);

    expectIpvsKinds(cap);
    expect(parsedOf(cap, 'ipset')).toEqual({ sets: [] });
    expect(parsedOf(cap, 'nft')).not.toBeNull();
    const lo = parsedOf(cap, 'ip-addr')!.find((l) => l.ifname === 'lo')!;
    expect(lo.flags).toContain('UP');
    expect(lo.addrInfo.map((a) => a.local)).toContain('127.0.0.1');
    expect(parsedOf(cap, 'ip-route')).toEqual([]);
    // conntrack's summary comes on stderr; the parser sees it.
    const ct = parsedOf(cap, 'conntrack')!;
    expect(ct.shown).toBe(ct.entries.length);
    for (const item of Object.values(cap.items)) if (!item.skipped) expect(item.error, item.kind).toBeNull();

    const run = join(runDir, 'iptables-run');
    const written = await roundTrip(cap, run);
    const dir = join(run, NODE);
    expect(written).toContain(join(dir, 'provenance.json'));
    expect(written).toContain(join(dir, 'iptables-save.txt'));
    expect(written).toContain(join(dir, 'iptables-save.json'));
    expect(await readFile(join(dir, 'iptables-save.txt'), 'utf8')).toBe(cap.items['iptables-save']!.stdout);
    expect(JSON.parse(await readFile(join(dir, 'provenance.json'), 'utf8'))).toEqual(cap.provenance);
    // A skipped kind leaves no parsed file behind to be mistaken for data.
    if (ipvsSkipReason() !== null) expect(await readdir(dir)).not.toContain('proc-ip-vs.json');
    expect(await loadRun(run)).toEqual([cap]);
  });

  it('nftables mode: table ip kube-proxy in the parsed ruleset', async () => {
    const cap = await withNetns(async (ns) => {
      await program(ns, 'nftables');
      return captureNode(ns.run, ctx('nftables'));
    });
    expect(cap.provenance.mode).toBe('nftables');
    const table = findNftTable(parsedOf(cap, 'nft')!, 'ip', 'kube-proxy')!;
    expect(table).toBeDefined();
    expect(table.chains.some((c) => c.name.startsWith('service-') && c.name.endsWith('-default/httpbin/tcp/http'))).toBe(true);
    expect(cap.items.nft!.stdout).toContain('table ip kube-proxy {');
    // No iptables rules in this mode.
    expect(parsedOf(cap, 'iptables-save')!.tables.flatMap((t) => t.chains).filter((c) => c.name.startsWith('KUBE-'))).toEqual([]);
    expectIpvsKinds(cap);
    await roundTrip(cap);
  });

  it('ipvs mode: KUBE-CLUSTER-IP members in the parsed ipsets', async () => {
    const cap = await withNetns(async (ns) => {
      await program(ns, 'ipvs');
      return captureNode(ns.run, ctx('ipvs'));
    });
    const clusterIp = parsedOf(cap, 'ipset')!.sets.find((s) => s.name === 'KUBE-CLUSTER-IP')!;
    expect(clusterIp.type).toBe('hash:ip,port');
    expect(clusterIp.members).toContain('10.96.120.15,tcp:8000');
    expect(clusterIp.members).toContain('10.96.0.10,udp:53');
    const services = findChain(findTable(parsedOf(cap, 'iptables-save')!, 'nat')!, 'KUBE-SERVICES')!;
    expect(services.rules.some((r) => r.text.includes('--match-set KUBE-CLUSTER-IP dst,dst'))).toBe(true);
    expectIpvsKinds(cap);
    await roundTrip(cap);
  });
});

describe('failure semantics', () => {
  it('a tool missing on the node is skipped with its Debian package, the rest still captured', async () => {
    const cap = await withNetns(async (ns) => {
      // `ip netns exec` reports the missing binary on stderr, as a node would.
      const exec: NodeExec = (argv, opts) => ns.run(argv[0] === 'ipset' ? ['ipset-not-installed', ...argv.slice(1)] : argv, opts);
      return captureNode(exec, ctx('ipvs'), ['ipset', 'iptables-save']);
    });
    const ipset = cap.items.ipset!;
    expect(ipset.skipped).toMatch(/^ipset is not installed on this node \(Debian package: ipset\)/);
    expect(ipset.parsed).toBeNull();
    expect(ipset.error).toBeNull();
    expect(ipset.stderr).toContain('ipset-not-installed');
    expect(cap.items['iptables-save']!.parsed).not.toBeNull();
    expect(Object.keys(cap.items)).toEqual(['ipset', 'iptables-save']);
    await roundTrip(cap);
  });

  it('a MissingToolError from the runner is skipped too', async () => {
    const cap = await withNetns(async (ns) => {
      const exec: NodeExec = async (argv, opts) => {
        if (argv[0] === 'ipvsadm') throw new MissingToolError('ipvsadm');
        return ns.run(argv, opts);
      };
      return captureNode(exec, ctx('ipvs'), ['ipvsadm', 'ip-addr']);
    });
    expect(cap.items.ipvsadm).toMatchObject({ exitCode: null, parsed: null, error: null });
    expect(cap.items.ipvsadm!.skipped).toMatch(/^ipvsadm is not installed on this node \(Debian package: ipvsadm\); \/proc\/net\/ip_vs/);
    expect(parsedOf(cap, 'ip-addr')!.map((l) => l.ifname)).toEqual(['lo']);
  });

  it('keeps the raw text and the ParseError message when a parser fails', async () => {
    const garbage = 'this is not\r\n iptables-save output \u00e9\u2603\t \n';
    const cap = await withNetns(async (ns) => {
      const exec: NodeExec = async (argv, opts) => {
        const r = await ns.run(argv, opts);
        return argv[0] === 'iptables-save' || (argv[0] === 'ip' && argv[2] === 'route') ? { ...r, stdout: argv[0] === 'ip' ? '[{"dst":' : garbage } : r;
      };
      return captureNode(exec, ctx('iptables'), ['iptables-save', 'ip-route', 'nft']);
    });
    const save = cap.items['iptables-save']!;
    expect(save.stdout).toBe(garbage);
    expect(save.parsed).toBeNull();
    expect(save.exitCode).toBe(0);
    expect(save.error).toMatch(/^iptables-save: line 1: expected /);
    expect(cap.items['ip-route']!).toMatchObject({ stdout: '[{"dst":', parsed: null });
    expect(cap.items['ip-route']!.error).toMatch(/ip -j route/);
    expect(cap.items.nft!.error).toBeNull();
    const run = join(runDir, 'garbage-run');
    await roundTrip(cap, run);
    expect(await readFile(join(run, NODE, 'iptables-save.txt'), 'utf8')).toBe(garbage);
  });

  it('fails as a whole only when the node cannot be reached', async () => {
    // The way onto the node is missing (no docker, no ip): nothing else would fare better.
    const noLauncher: NodeExec = async () => {
      throw new MissingToolError('docker');
    };
    await expect(captureNode(noLauncher, ctx('iptables'))).rejects.toThrow(NodeUnreachableError);
    await expect(captureNode(noLauncher, ctx('iptables'))).rejects.toThrow(/docker is not installed/);
    // Every command fails the same way: a namespace (or container) that is gone.
    const gone: NodeExec = async (argv) => ({
      argv, command: argv.join(' '), stdout: '', exitCode: 1, durationMs: 1,
      stderr: 'Cannot open network namespace "kn-gone": No such file or directory\n',
    });
    const err = await captureNode(gone, ctx('iptables'), ['iptables-save', 'nft']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NodeUnreachableError);
    expect((err as NodeUnreachableError).reasons.nft).toMatch(/^`nft list ruleset` exited 1: Cannot open network namespace/);
    // One command failing is that item's error, not the capture's.
    const cap = await withNetns(async (ns) => {
      const exec: NodeExec = (argv, opts) => (argv[0] === 'nft' ? gone(argv, opts) : ns.run(argv, opts));
      return captureNode(exec, ctx('iptables'), ['iptables-save', 'nft']);
    });
    expect(cap.items.nft!.error).toMatch(/exited 1/);
    expect(cap.items.nft!.skipped).toBeUndefined();
    expect(cap.items['iptables-save']!.parsed).not.toBeNull();
  });
});

describe('saved captures replay exactly', () => {
  it('IPVS tables (NaN weights from --stats included) round-trip through save and load', async () => {
    // This kernel has no IP_VS: the node's output comes from the fixtures of what the tools print.
    const fixture = (name: string) => readFile(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');
    const outputs: Record<string, string> = { ipvsadm: await fixture('ipvsadm-Ln-stats.txt'), cat: await fixture('proc-net-ip_vs.txt') };
    const exec: NodeExec = async (argv) => ({ argv, command: argv.join(' '), stdout: outputs[argv[0]], stderr: '', exitCode: 0, durationMs: 1 });
    const cap = await captureNode(exec, { ...ctx('ipvs'), node: 'kind-worker2' }, ['ipvsadm', 'proc-ip-vs']);
    const stats = parsedOf(cap, 'ipvsadm')!;
    expect(stats.services.find((s) => s.address === '10.96.120.15')!.destinations).toHaveLength(3);
    expect(Number.isNaN(stats.services[0].destinations[0].weight)).toBe(true);
    expect(parsedOf(cap, 'proc-ip-vs')!.services.find((s) => s.address === '10.96.120.15')!.destinations.map((d) => d.weight)).toEqual([1, 1, 1]);
    await saveCapture(cap, runDir);
    const back = await loadCapture(join(runDir, 'kind-worker2'));
    expect(back).toEqual(cap);
    expect(Number.isNaN(parsedOf(back, 'ipvsadm')!.services[0].destinations[0].weight)).toBe(true);
  });

  it('refuses node names that would write outside the run directory', async () => {
    const cap: NodeCapture = { provenance: { source: 'captured', backend: 'netns', mode: 'iptables', node: '../x', at: new Date().toISOString() }, items: {} };
    await expect(saveCapture(cap, runDir)).rejects.toThrow(/node names must be/);
  });
});

describe('whySkipped reads how launchers and kernels say something is missing', () => {
  const ipset = CAPTURE_SPECS.ipset;
  it.each([
    ['docker exec', 'OCI runtime exec failed: exec failed: unable to start container process: exec: "ipset": executable file not found in $PATH: unknown\n', 127],
    ['kubectl exec', 'error: Internal error occurred: exec: "ipset": executable file not found in $PATH\n', 1],
    ['ip netns exec', 'exec of "ipset" failed: No such file or directory\n', 1],
    ['nsenter', 'nsenter: failed to execute ipset: No such file or directory\n', 127],
    ['sh -c', 'sh: 1: ipset: not found\n', 127],
  ])('%s', (_launcher, stderr, code) => {
    expect(whySkipped(ipset, stderr, code)).toMatch(/^ipset is not installed on this node \(Debian package: ipset\)/);
  });
  it('kernel features', () => {
    expect(whySkipped(CAPTURE_SPECS.ipvsadm, "Can't initialize ipvs: Protocol not available\nAre you sure that IP Virtual Server is built in the kernel or as module?\n", 2))
      .toBe("kernel has no IP_VS: Can't initialize ipvs: Protocol not available");
    expect(whySkipped(CAPTURE_SPECS['proc-ip-vs'], 'cat: /proc/net/ip_vs: No such file or directory\n', 1)).toBe('kernel has no IP_VS: /proc/net/ip_vs is absent');
    expect(whySkipped(ipset, 'ipset v7.17: Kernel error received: Protocol not supported\n', 1)).toMatch(/^kernel has no IP_SET/);
    expect(whySkipped(CAPTURE_SPECS.nft, 'Error: syntax error\n', 1)).toBeUndefined();
  });
});
