import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureNode, parsedOf, saveCapture } from '../../lib/capture/index.ts';
import { resolveServicePorts, workshopCluster } from '../../lib/k8s/index.ts';
import { findTable } from '../../lib/parse/index.ts';
import { builtinJumpsRestore, detectIptablesBackend, generateIptables, iptablesTools, type IptablesBackend } from '../../lib/proxy/index.ts';
import { withNetns } from '../helpers/netns.ts';

const NODE = 'kind-worker';
const ctx = { backend: 'netns' as const, mode: 'iptables' as const, node: NODE, lab: 'captest' };

describe('detectIptablesBackend: which backend a node uses, as iptables-wrappers decides', () => {
  const rules = ':KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -d 10.96.0.1/32 -j KUBE-SVC-X\n';
  it('picks the backend with more rules, and says so', () => {
    const r = detectIptablesBackend({ legacy: rules, nft: '*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n' });
    expect(r).toMatchObject({ backend: 'legacy', ruleLines: { legacy: 2, nft: 0 } });
    expect(r.evidence).toBe('iptables-legacy holds more rules (rules: legacy 2, nft 0)');
    expect(detectIptablesBackend({ legacy: rules, nft: rules }).backend).toBe('nft');
  });
  it('believes kubelet\'s marker chain over the rule counts, looking in nft first', () => {
    const r = detectIptablesBackend({ legacy: rules, nft: ':KUBE-KUBELET-CANARY - [0:0]\n' });
    expect(r.backend).toBe('nft');
    expect(r.evidence).toMatch(/^kubelet's marker chain is in iptables-nft/);
    expect(detectIptablesBackend({ legacy: ':KUBE-IPTABLES-HINT - [0:0]\n', nft: rules }).backend).toBe('legacy');
    expect(detectIptablesBackend({ legacy: ':KUBE-IPTABLES-HINT - [0:0]\n', nft: ':KUBE-IPTABLES-HINT - [0:0]\n' }).backend).toBe('nft');
  });
  it('says none when neither holds a rule, or neither could be read', () => {
    expect(detectIptablesBackend({ legacy: '', nft: '' }).backend).toBeNull();
    const unread = detectIptablesBackend({ legacy: null, nft: null }, { legacy: 'not installed', nft: 'not installed' });
    expect(unread).toMatchObject({ backend: null, errors: { legacy: 'not installed', nft: 'not installed' } });
  });
});

describe('capture reads the rules through the backend that holds them (real kernels)', () => {
  let runDir: string;
  beforeAll(async () => { runDir = await mkdtemp(join(tmpdir(), 'kn-capture-backend-')); });
  afterAll(async () => { await rm(runDir, { recursive: true, force: true }); });

  for (const backend of ['legacy', 'nft'] as IptablesBackend[]) {
    it(`iptables-${backend}`, async () => {
      const gen = generateIptables(resolveServicePorts(workshopCluster(), { nodeName: NODE }), { nodeName: NODE });
      const t = iptablesTools(backend);
      await withNetns(async (ns) => {
        await ns.run([t.restore, '--noflush'], { input: builtinJumpsRestore(gen.builtinJumps) });
        await ns.run([t.restore, '--noflush'], { input: gen.restore });
        const cap = await captureNode((argv, o) => ns.run(argv, o), ctx, ['iptables-save', 'iptables-nat-list'], { iptablesBackend: 'detect' });
        expect(cap.iptablesBackend!.backend).toBe(backend);
        expect(cap.iptablesBackend!.ruleLines[backend === 'legacy' ? 'nft' : 'legacy']).toBe(0);
        expect(cap.items['iptables-save']!.command).toBe(`${t.save} -c`);
        expect(cap.items['iptables-nat-list']!.command).toBe(`${t.iptables} -t nat -L -n -v`);
        const nat = findTable(parsedOf(cap, 'iptables-save')!, 'nat')!;
        expect(nat.chains.filter((c) => c.name.startsWith('KUBE-')).reduce((n, c) => n + c.rules.length, 0)).toBe(gen.counts.nat.rules);
        await saveCapture(cap, join(runDir, backend));
        const saved = JSON.parse(await readFile(join(runDir, backend, NODE, 'iptables-backend.json'), 'utf8'));
        expect(saved.backend).toBe(backend);
      });
    });
  }

  it('a backend the caller names is used without looking', async () => {
    await withNetns(async (ns) => {
      const cap = await captureNode((argv, o) => ns.run(argv, o), ctx, ['iptables-save'], { iptablesBackend: 'legacy' });
      expect(cap.items['iptables-save']!.command).toBe('iptables-legacy-save -c');
      expect(cap.iptablesBackend!.evidence).toBe('the lab programs its nodes with iptables-legacy');
    });
  });
});
