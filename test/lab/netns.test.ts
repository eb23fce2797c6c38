import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureNode, parsedOf } from '../../lib/capture/index.ts';
import { Runner, runner } from '../../lib/exec/index.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { createNetnsLab, destroyNetnsLab, gcNetns, netnsUnavailable, openNetnsLab, type NetnsLab } from '../../lib/lab/netns/index.ts';
import { labPrefix } from '../../lib/lab/netns/names.ts';
import { labDir } from '../../lib/lab/netns/state.ts';
import { listNamespaces } from '../../lib/lab/netns/topology.ts';
import { findChain, findTable, type IptablesSave } from '../../lib/parse/index.ts';
import { projectPath } from '../../lib/project/index.ts';
import type { ProxyMode } from '../../lib/proxy/modes.ts';
import { measureTraffic } from '../../lib/traffic/index.ts';
import { ipvsSkipReason, testRunTag } from '../helpers/netns.ts';
import { withScratchNetns } from '../../lib/exec/index.ts';

// Lab names are short (they end up in namespace names) and unique to this test run.
const tag = testRunTag().slice(0, 4);
const labName = (m: string) => `t${tag}-${m}`;

async function workshop(lab: NetnsLab) {
  return lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
}

async function labNamespaces(name: string): Promise<string[]> {
  return (await listNamespaces(runner)).filter((ns) => ns.startsWith(labPrefix(name)));
}

describe.each(['iptables', 'nftables'] as ProxyMode[])('a netns lab in %s mode', (mode) => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: labName(mode.slice(0, 3)), mode });
    await workshop(lab);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('is shaped like kind: nodes, pod CIDRs, ptp veths, kindnet routes and masquerade', async () => {
    const nodes = await lab.nodes();
    expect(nodes.map((n) => [n.role, n.ip, n.podCIDR])).toEqual([
      ['control-plane', '172.18.0.2', '10.244.0.0/24'], ['worker', '172.18.0.3', '10.244.1.0/24'], ['worker', '172.18.0.4', '10.244.2.0/24'],
    ]);
    const httpbin = await lab.pods({ app: 'httpbin' });
    expect(httpbin).toHaveLength(3);
    expect(new Set(httpbin.map((p) => p.node))).toEqual(new Set([nodes[1].name, nodes[2].name]));
    const routes = (await lab.exec(nodes[1].name, ['ip', 'route'])).stdout;
    expect(routes).toContain('10.244.2.0/24 via 172.18.0.4 dev eth0');
    const local = httpbin.find((p) => p.node === nodes[1].name)!;
    expect(routes).toMatch(new RegExp(`${local.ip.replaceAll('.', '\\.')} dev veth[0-9a-f]{8} scope host`));
    const nat = (await lab.exec(nodes[1].name, ['iptables-save', '-t', 'nat'])).stdout;
    expect(nat).toContain('-A KIND-MASQ-AGENT -d 10.244.0.0/16');
    const svc = (await lab.services()).map((s) => `${s.namespace}/${s.name}`).sort();
    expect(svc).toEqual(['default/curl', 'default/httpbin', 'default/kubernetes', 'kube-system/kube-dns']);
    const slices = await lab.endpointSlices();
    expect(slices.find((s) => s.serviceName === 'httpbin')?.ports).toEqual([{ name: 'http', protocol: 'TCP', port: 8080 }]);
  });

  it('holds kube-proxy\'s rules in each node\'s kernel, captured with provenance', async () => {
    const node = (await lab.nodes())[1].name;
    const cap = await captureNode((argv, o) => lab.exec(node, argv, o), { backend: 'netns', mode, node, lab: lab.name });
    expect(cap.provenance).toMatchObject({ source: 'captured', backend: 'netns', mode, node, lab: lab.name });
    if (mode === 'iptables') {
      const nat = findTable(parsedOf(cap, 'iptables-save') as IptablesSave, 'nat')!;
      expect(findChain(nat, 'KUBE-SVC-FREKB6WNWYJLKTHC')?.rules).toHaveLength(4); // masquerade + 3 endpoints
    } else {
      expect(cap.items.nft?.stdout).toContain('service-5WI3VASQ-default/httpbin/tcp/http');
    }
    // Without IP_VS the IPVS tables are skipped with the reason, never faked.
    if (ipvsSkipReason() !== null) expect(cap.items.ipvsadm?.skipped).toMatch(/IP_VS/);
    else expect(cap.items.ipvsadm?.parsed).not.toBeNull();
  });

  it('splits 3000 requests over 3 pods as predicted (chi-square), and the kernel counted the same', async () => {
    const m = await measureTraffic(lab, { requests: 3000, concurrency: 20 });
    expect(m.provenance).toMatchObject({ source: 'measured', backend: 'netns', mode });
    expect(m.prediction.provenance).toMatchObject({ source: 'predicted', backend: null, mode });
    expect(m.ok).toBe(3000);
    expect(m.byPod).toHaveLength(3);
    expect(m.byPod.every((p) => p.answers > 0)).toBe(true);
    // A correct prediction fails this 1 time in 1000.
    expect(m.chiSquare!.pValue).toBeGreaterThan(0.001);
    for (const p of m.byPod) {
      // conntrack holds one entry per flow, but a new connection that reuses the ports of a flow
      // still in TIME_WAIT takes over its entry, so the table can hold a few fewer.
      expect(p.conntrack).toBeLessThanOrEqual(p.answers);
      expect(p.conntrack).toBeGreaterThan(p.answers * 0.9);
      // The DNAT rule of each KUBE-SEP chain sees exactly one packet per new connection.
      if (mode === 'iptables') expect(p.sepPackets).toBe(p.answers);
    }
  });

  it('re-syncs on scale, reports what changed, and the new pods take traffic', async () => {
    const reports = await lab.scale('httpbin', 5);
    expect(reports).toHaveLength(3);
    for (const r of reports) {
      expect(r.added.length).toBeGreaterThan(0);
      expect(r.mode).toBe(mode);
    }
    if (mode === 'iptables') {
      expect(reports[1].added.some((l) => l.includes('--probability 0.20000000019'))).toBe(true);
    }
    const m = await measureTraffic(lab, { requests: 500, concurrency: 20 });
    expect(m.byPod).toHaveLength(5);
    expect(m.byPod.every((p) => p.answers > 0)).toBe(true);
    const back = await lab.scale('httpbin', 3);
    expect(back[1].removed.length).toBeGreaterThan(0);
    expect((await lab.pods({ app: 'httpbin' })).length).toBe(3);
  });

  it('answers httpbin\'s endpoints from the client pod through the ClusterIP', async () => {
    const svc = (await lab.services()).find((s) => s.name === 'httpbin')!;
    const r = await lab.load({ url: `http://${svc.clusterIP}:8000/hostname`, requests: 20, concurrency: 4 });
    expect(r.errors).toBe(0);
    const names = new Set((await lab.pods({ app: 'httpbin' })).map((p) => p.name));
    expect(Object.keys(r.byPod).every((n) => names.has(n))).toBe(true);
  });
});

describe('a netns lab in ipvs mode', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: labName('ipv'), mode: 'ipvs' });
    await workshop(lab);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('loads the ipsets and the constant iptables rules', async () => {
    const node = (await lab.nodes())[1].name;
    const sets = (await lab.exec(node, ['ipset', 'list', 'KUBE-CLUSTER-IP'])).stdout;
    const httpbin = (await lab.services()).find((s) => s.name === 'httpbin')!;
    expect(sets).toContain(`${httpbin.clusterIP},tcp:8000`);
    expect((await lab.exec(node, ['iptables-save', '-t', 'nat'])).stdout).toContain('--match-set KUBE-CLUSTER-IP dst,dst');
  });

  it('binds every ClusterIP to kube-ipvs0, left down, and the node takes them as local', async (ctx) => {
    const node = (await lab.nodes())[1].name;
    const probe = await withScratchNetns('kn-test', (ns) => ns.run(['ip', 'link', 'add', 'kn-probe', 'type', 'dummy'], { allowFailure: true }));
    if (probe.exitCode !== 0) {
      console.log(`skipped kube-ipvs0: this kernel has no dummy interfaces (${probe.stderr.trim()}); the ClusterIPs go on lo`);
      expect((await lab.exec(node, ['ip', 'link', 'show', 'kube-ipvs0'], { allowFailure: true })).exitCode).not.toBe(0);
      // Still the node's own, so a packet to one walks the iptables part an IPVS node runs.
      const onLo = (await lab.exec(node, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'lo'])).stdout;
      for (const s of await lab.services()) expect(onLo).toContain(` ${s.clusterIP}/32 `);
      const httpbin = (await lab.services()).find((s) => s.name === 'httpbin')!;
      expect((await lab.exec(node, ['ip', 'route', 'get', httpbin.clusterIP])).stdout).toMatch(/^local /);
      ctx.skip();
    }
    const links = JSON.parse((await lab.exec(node, ['ip', '-j', 'addr', 'show', 'dev', 'kube-ipvs0'])).stdout) as
      { link_type: string; flags: string[]; addr_info: { local: string; prefixlen: number }[] }[];
    expect(links[0].flags).not.toContain('UP');
    const bound = links[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`).sort();
    const clusterIPs = (await lab.services()).map((s) => `${s.clusterIP}/32`).sort();
    expect(bound).toEqual(clusterIPs);
    const httpbin = (await lab.services()).find((s) => s.name === 'httpbin')!;
    expect((await lab.exec(node, ['ip', 'route', 'get', httpbin.clusterIP])).stdout).toMatch(/^local /);
    // A resync keeps exactly one copy of each address.
    await lab.scale('httpbin', 3);
    const again = JSON.parse((await lab.exec(node, ['ip', '-j', 'addr', 'show', 'dev', 'kube-ipvs0'])).stdout) as typeof links;
    expect(again[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`).sort()).toEqual(clusterIPs);
  });

  it('says plainly when the kernel cannot run IPVS, and refuses to measure', async () => {
    const reason = ipvsSkipReason();
    expect((await lab.capabilities()).ipvs).toBe(reason === null);
    if (reason === null) return;
    await expect(measureTraffic(lab, { requests: 10 })).rejects.toThrow(/no IP_VS.*predictions/);
  });

  it.skipIf(ipvsSkipReason() !== null)('balances round-robin through the kernel\'s virtual servers', async () => {
    const m = await measureTraffic(lab, { requests: 300, concurrency: 1 });
    expect(m.byPod.map((p) => p.answers)).toEqual([100, 100, 100]);
  });
  if (ipvsSkipReason() !== null) console.log(`skipped the IPVS data path: ${ipvsSkipReason()}`);
});

describe('lab lifecycle', () => {
  it('runs two labs side by side, and each down removes only its own', async () => {
    const [a, b] = await Promise.all([
      createNetnsLab({ name: labName('a'), mode: 'iptables', workers: 1 }),
      createNetnsLab({ name: labName('b'), mode: 'nftables', workers: 1 }),
    ]);
    try {
      await Promise.all([workshop(a), workshop(b)]);
      const [ra, rb] = await Promise.all([measureTraffic(a, { requests: 60 }), measureTraffic(b, { requests: 60 })]);
      expect([ra.ok, rb.ok]).toEqual([60, 60]);
      await a.destroy();
      expect(await labNamespaces(a.name)).toEqual([]);
      expect((await labNamespaces(b.name)).length).toBeGreaterThan(0);
      expect((await (await openNetnsLab(b.name)).pods()).length).toBeGreaterThan(0);
    } finally {
      await Promise.all([a.destroy(), b.destroy()]);
    }
    expect(await labNamespaces(b.name)).toEqual([]);
  });

  it('cleans up after a process killed halfway through up', async () => {
    const name = labName('crash');
    // The build, as the bin runs labs (npm test builds first).
    const built = projectPath('out', 'build', 'lib', 'lab', 'netns', 'index.js');
    expect(existsSync(built), `${built} is missing: run \`npm run build\``).toBe(true);
    const child = runner.run([process.execPath, '-e',
      `import(${JSON.stringify(pathToFileURL(built).href)}).then((m) => m.createNetnsLab({ name: ${JSON.stringify(name)}, mode: 'iptables', onProgress: (s) => { if (s.startsWith('default services')) process.kill(process.pid, 'SIGKILL'); } }))`,
    ], { allowFailure: true, timeoutMs: 30_000 });
    const r = await child;
    expect(r.exitCode, r.stderr).toBe(-1); // killed by its own SIGKILL, not failed to load
    expect((await labNamespaces(name)).length).toBeGreaterThan(0); // the crash left its namespaces behind
    const report = await gcNetns();
    expect(report.labs).toContain(name);
    expect(await labNamespaces(name)).toEqual([]);
    expect(existsSync(join(labDir(name), 'state.json'))).toBe(false);
  });

  it('down removes a lab found by name alone, even without its state file', async () => {
    const lab = await createNetnsLab({ name: labName('orph'), mode: 'iptables', workers: 1 });
    await workshop(lab);
    const { rm } = await import('node:fs/promises');
    await rm(labDir(lab.name), { recursive: true, force: true });
    const removed = await destroyNetnsLab(lab.name);
    expect(removed.length).toBeGreaterThan(3);
    expect(await labNamespaces(lab.name)).toEqual([]);
    const stray = (await runner.run(['pgrep', '-f', '--', `labs/${lab.name}/pods/`], { allowFailure: true })).stdout.trim();
    expect(stray).toBe('');
  });

  it('refuses bad names, duplicate labs and missing tools with clear errors', async () => {
    await expect(createNetnsLab({ name: 'Bad_Name', mode: 'iptables' })).rejects.toThrow(/lab name "Bad_Name"/);
    await expect(createNetnsLab({ name: 'x.y', mode: 'iptables' })).rejects.toThrow(/lab name/);
    const lab = await createNetnsLab({ name: labName('dup'), mode: 'iptables', workers: 1 });
    try {
      await expect(createNetnsLab({ name: lab.name, mode: 'iptables' })).rejects.toThrow(/already exists.*kube-netlab down --name/);
    } finally {
      await lab.destroy();
    }
    const noTools = new Runner({ timeoutMs: 5_000, env: { PATH: '/nonexistent' } });
    expect(await netnsUnavailable(noTools)).toMatch(/ip is not installed: install it with `apt-get install -y iproute2`/);
    await expect(openNetnsLab(labName('none'))).rejects.toThrow(/no netns lab named/);
  });

  it('names the default iptables backend when its tools are missing', async () => {
    class NoIptablesNft extends Runner {
      override async has(binary: string): Promise<boolean> {
        return binary !== 'iptables-nft-restore' && super.has(binary);
      }
    }
    await expect(createNetnsLab({ name: labName('noipt'), mode: 'iptables', runner: new NoIptablesNft() }))
      .rejects.toThrow('the netns backend cannot program nodes with iptables-nft: iptables-nft-restore is not installed');
  });
});
