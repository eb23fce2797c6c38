import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveTraceUnavailable, captureNode, traceLive } from '../../lib/capture/index.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { createNetnsLab, type NetnsLab } from '../../lib/lab/netns/index.ts';
import { measureTraffic } from '../../lib/traffic/index.ts';
import { testRunTag } from '../helpers/netns.ts';

const tag = testRunTag().slice(0, 4);
const KUBE_SERVICES = /^-A KUBE-SERVICES /m;

describe('a netns lab programmed with iptables-legacy', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `t${tag}-leg`, mode: 'iptables', iptablesBackend: 'legacy' });
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('holds kube-proxy\'s and kindnet\'s rules in the legacy tables only, and Service traffic flows through them', async () => {
    const worker = (await lab.nodes())[1].name;
    const legacy = (await lab.exec(worker, ['iptables-legacy-save', '-t', 'nat'])).stdout;
    const nft = (await lab.exec(worker, ['iptables-nft-save', '-t', 'nat'])).stdout;
    expect(legacy).toMatch(KUBE_SERVICES);
    expect(legacy).toContain('-A KIND-MASQ-AGENT -d 10.244.0.0/16');
    expect(nft).not.toMatch(/KUBE-|KIND-/);
    expect(lab.iptablesBackend).toBe('legacy');
    const m = await measureTraffic(lab, { requests: 300, concurrency: 10 });
    expect(m.ok).toBe(300);
  });

  it('is not traced live: its TRACE rules would log to the kernel log, and `iptables` on the node is the nft one', async () => {
    await expect(traceLive(lab, { service: 'httpbin', requests: 1 })).rejects.toThrow(LiveTraceUnavailable);
    await expect(traceLive(lab, { service: 'httpbin', requests: 1 })).rejects.toThrow(/programs its nodes with iptables-legacy/);
  });

  it('resyncs there when pods change, and capture reports the backend', async () => {
    const worker = (await lab.nodes())[1].name;
    const seps = async () => ((await lab.exec(worker, ['iptables-legacy-save', '-t', 'nat'])).stdout.match(/^:KUBE-SEP-/gm) ?? []).length;
    const before = await seps();
    await lab.scale('httpbin', 5);
    expect(await seps()).toBe(before + 2);
    await lab.scale('httpbin', 3);
    expect(await seps()).toBe(before);
    const cap = await captureNode((argv, o) => lab.exec(worker, argv, o), { backend: 'netns', mode: 'iptables', node: worker, lab: lab.name }, ['iptables-save'], { iptablesBackend: 'detect' });
    expect(cap.iptablesBackend).toMatchObject({ backend: 'legacy' });
    expect(cap.items['iptables-save']!.command).toBe('iptables-legacy-save -c');
  });
});

describe('a netns lab in nftables mode resyncs as kube-proxy does', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `t${tag}-nfr`, mode: 'nftables' });
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('keeps table ip kube-proxy (same handle) across syncs, and removes the chains of pods that left', async () => {
    const worker = (await lab.nodes())[1].name;
    // The kernel hands every new table the next handle: a table deleted and added again has another.
    const handle = async () => (JSON.parse((await lab.exec(worker, ['nft', '-j', 'list', 'tables'])).stdout).nftables as { table?: { name: string; handle: number } }[])
      .find((x) => x.table?.name === 'kube-proxy')?.table?.handle;
    const endpointChains = async () => ((await lab.exec(worker, ['nft', 'list', 'chains', 'ip'])).stdout.match(/chain endpoint-\S+default\/httpbin\//g) ?? []).length;
    const h = await handle();
    expect(h).toBeTypeOf('number');
    await lab.scale('httpbin', 5);
    expect(await endpointChains()).toBe(5);
    await lab.scale('httpbin', 2);
    expect(await endpointChains()).toBe(2);
    expect(await handle()).toBe(h);
    const m = await measureTraffic(lab, { requests: 200, concurrency: 10 });
    expect(m.ok).toBe(200);
  });
});

describe('kube-netlab up --iptables legacy, then capture', () => {
  it('says the backend when the lab comes up, and capture reports it per node', async () => {
    const { cli } = await import('../helpers/cli.ts');
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const name = `t${tag}-clg`;
    const dir = await mkdtemp(join(tmpdir(), 'kn-capture-cli-'));
    try {
      const up = await cli('up', '--name', name, '--mode', 'iptables', '--iptables', 'legacy', '--workers', '1');
      expect(up.code).toBe(0);
      expect(up.out).toMatch(/kube-proxy mode iptables on iptables-legacy$/m);
      const cap = await cli('capture', '--name', name, '--out', join(dir, 'run'));
      expect(cap.code).toBe(0);
      expect(cap.out).toMatch(new RegExp(`^ {2}${name}-worker: .*\\n {4}iptables backend: iptables-legacy \\(iptables-legacy holds more rules \\(rules: legacy \\d+, nft 0\\)\\)$`, 'm'));
      const json = JSON.parse((await cli('capture', '--name', name, '--out', join(dir, 'run2'), '--json')).out);
      expect(json.nodes.map((n: { iptablesBackend: { backend: string } }) => n.iptablesBackend.backend)).toEqual(['legacy', 'legacy']);
    } finally {
      await cli('down', '--name', name);
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
