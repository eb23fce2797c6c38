import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runner } from '../lib/exec/index.ts';
import { cli } from './helpers/cli.ts';
import { testRunTag, withNetns } from './helpers/netns.ts';


let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'kube-netlab-cli-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('kube-netlab CLI', () => {
  it('runs as the package bin, the way `npx kube-netlab` does', async () => {
    const r = await runner.run(['node', 'scripts/kube-netlab.mjs', 'predict', '--mode', 'iptables', '--services', '2000', '--endpoints', '10', '--json'], { timeoutMs: 60_000 });
    const json = JSON.parse(r.stdout);
    expect(json.iptables.nat.rules).toBe(64_005);
    expect(json.source).toBe('predicted');
  });

  it('prints iptables-restore input the kernel accepts', async () => {
    const r = await cli('rules', '--mode', 'iptables', '--objects', 'test/fixtures/kind-httpbin.kubectl.json');
    expect(r.code).toBe(0);
    expect(r.out).toContain('-A KUBE-SERVICES -m comment --comment "default/httpbin:http cluster IP" -m tcp -p tcp -d 10.96.120.15 --dport 8000 -j KUBE-SVC-FREKB6WNWYJLKTHC');
    await withNetns(async (ns) => {
      await ns.run(['iptables-restore', '--test'], { input: r.out });
    });
  });

  it('lists the kube-ipvs0 addresses in IPVS mode as `ip addr add` takes them', async () => {
    const r = await cli('rules', '--mode', 'ipvs', '--services', '2', '--endpoints', '1');
    expect(r.code).toBe(0);
    const addrs = r.out.split('\n').filter((l) => /^#   \d/.test(l)).map((l) => l.slice(4));
    expect(addrs.length).toBeGreaterThan(0);
    for (const a of addrs) expect(a).toMatch(/^\d+\.\d+\.\d+\.\d+\/32$/);
  });

  it('traces a captured dump end to end and names the outcomes', async () => {
    const rules = await cli('rules', '--mode', 'iptables', '--services', '2', '--endpoints', '3', '--with-jumps');
    const dump = await withNetns(async (ns) => {
      await ns.run(['iptables-restore', '--noflush'], { input: rules.out });
      return (await ns.run(['iptables-save'])).stdout;
    });
    const file = join(dir, 'dump.txt');
    await writeFile(file, dump);
    const r = await cli('trace', '--dump', file, '--proto', 'tcp', '--dst', '10.96.1.1', '--dport', '80', '--json');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out);
    expect(json.outcomes).toHaveLength(3);
    expect(json.outcomes.reduce((a: number, o: { probability: number }) => a + o.probability, 0)).toBe(1);
    for (const o of json.outcomes) {
      expect(o).toMatchObject({ verdict: 'ACCEPT', dnat: expect.stringMatching(/^10\.244\.\d+\.\d+:8080$/) });
      expect(o.path.slice(0, 2)).toEqual(['PREROUTING', 'KUBE-SERVICES']);
    }
    const text = await cli('trace', '--dump', file, '--dst', '10.96.1.1', '--dport', '80');
    expect(text.out).toMatch(/33\.3333%\s+ACCEPT DNAT → 10\.244/);
  });

  it('parses a dump to JSON and names the line of a parse error', async () => {
    const good = join(dir, 'good.txt');
    await writeFile(good, '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ACCEPT\nCOMMIT\n');
    const ok = await cli('parse', '--format', 'iptables-save', good, '--json');
    expect(JSON.parse(ok.out).tables[0].chains[0].rules[0].target.name).toBe('ACCEPT');
    const bad = join(dir, 'bad.txt');
    await writeFile(bad, '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ACCEPT\nthis is not a rule\nCOMMIT\n');
    const r = await cli('parse', '--format', 'iptables-save', bad, '--json');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/line 4/);
    expect(r.out).toBe('');
  });

  it('brings a lab up, measures traffic, captures and takes it down again', async () => {
    const name = `cli${testRunTag().slice(0, 4)}`;
    try {
      const up = await cli('up', '--name', name, '--mode', 'nftables', '--workers', '1', '--json');
      expect(up.code).toBe(0);
      expect(JSON.parse(up.out)).toMatchObject({ name, backend: 'netns', mode: 'nftables' });
      const traffic = await cli('traffic', '--name', name, '--requests', '90', '--json');
      const json = JSON.parse(traffic.out);
      expect(json.total).toBe(90);
      expect(Object.values(json.byPod as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(90);
      expect(Object.keys(json.byPod).every((pod) => pod.startsWith('httpbin-'))).toBe(true);
      expect(json.provenance).toMatchObject({ source: 'measured', backend: 'netns', mode: 'nftables' });
      expect(json.to).toMatchObject({ via: 'clusterIP', port: 8000 });
      // --to NODE calls the Service's node port there: httpbin has none.
      const toNode = await cli('traffic', '--name', name, '--requests', '5', '--to', `${name}-worker`);
      expect(toNode.err).toMatch(/Service default\/httpbin is of type ClusterIP: it has no node port to call/);
      const out = join(dir, 'capture');
      const cap = await cli('capture', '--name', name, '--out', out);
      expect(cap.out).toContain(`captured 2 nodes of lab ${name}`);
      expect(JSON.parse(await readFile(join(out, `${name}-worker`, 'provenance.json'), 'utf8'))).toMatchObject({ source: 'captured', node: `${name}-worker` });
      expect((await cli('status', '--json')).out).toContain(`"name": "${name}"`);
    } finally {
      const down = await cli('down', '--name', name);
      expect(down.out).toContain(`removed lab ${name}`);
    }
    expect((await cli('traffic', '--name', name)).err).toMatch(/no lab named/);
  });

  it('tours each mode in private namespaces and says which figures are predictions', async () => {
    const r = await cli('tour', '--quiet');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/predicted: nat (\d+) rules in (\d+) chains \(lib\/proxy\)\n {2}captured: {2}nat \1 rules in \2 KUBE- chains/);
    expect(r.out).toMatch(/33\.333333\d+%\s+DNAT → 10\.244\./);
    if (!existsSync('/proc/net/ip_vs')) expect(r.out).toContain('are PREDICTED, not captured');
    expect(r.out).toMatch(/captured: {2}table ip kube-proxy with \d+ chains/);
  });

  it('explains usage mistakes with exit code 2', async () => {
    expect((await cli('rules', '--mode', 'bpf', '--services', '1')).err).toMatch(/--mode must be iptables, ipvs or nftables/);
    expect((await cli('predict', '--services', 'many', '--endpoints', '1')).code).toBe(2);
    expect((await cli('parse', '--format', 'pcap', 'x')).err).toMatch(/unknown --format "pcap"/);
    expect((await cli('parse', '--format', 'nft', join(dir, 'missing.txt'))).err).toMatch(/missing\.txt: no such file/);
    expect((await cli('frobnicate')).code).toBe(2);
    expect((await cli('rules', '--mode', 'iptables', '--services', '10000', '--endpoints', '10')).err).toMatch(/need 396 nodes of \/24, but the pod subnet 10\.244\.0\.0\/16 holds 256: pass --pod-subnet with a \/15 or wider, e\.g\. --pod-subnet 10\.0\.0\.0\/8 \(--cluster-cidr only sets/);
    expect((await cli('rules', '--mode', 'iptables', '--services', '10000', '--endpoints', '10', '--cluster-cidr', '10.0.0.0/8')).err).toMatch(/pass --pod-subnet/);
    expect((await cli('rules', '--help')).out).toMatch(/10,000 × 10 needs a \/15 or wider, e\.g\. --pod-subnet 10\.0\.0\.0\/8\)/);
  });

  it('prints no rules for hostile objects or flags, only the object and field at fault', async () => {
    const file = join(dir, 'injected.json');
    const injected = { kind: 'Service', metadata: { name: 'x', namespace: 'default' }, spec: { clusterIP: '10.96.0.5', ports: [{ name: 'a"\n-A INPUT -j DROP\n#', port: 80 }] } };
    await writeFile(file, JSON.stringify({ kind: 'List', items: [injected] }));
    for (const mode of ['iptables', 'ipvs', 'nftables']) {
      const r = await cli('rules', '--mode', mode, '--objects', file);
      expect([r.code, r.out]).toEqual([1, '']);
      expect(r.err).toContain('Service default/x: spec.ports[0].name: "a\\"\\n-A INPUT -j DROP\\n#" is not a valid DNS label');
      const flag = await cli('rules', '--mode', mode, '--services', '1', '--endpoints', '1', '--cluster-cidr', '10.244.0.0/16 } ; add table ip pwned');
      // Refused as a usage error before anything is generated (the generators refuse it too).
      expect([flag.code, flag.out]).toEqual([2, '']);
      expect(flag.err).toContain('--cluster-cidr must be an IPv4 CIDR such as 10.244.0.0/16 or an IPv6 one such as fd00:10:244::/56 (one of each as CIDR,CIDR; \'\' for no local-traffic detector), got "10.244.0.0/16 } ; add table ip pwned"');
    }
  });
});
