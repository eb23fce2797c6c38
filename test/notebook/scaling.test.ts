import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { createNetnsLab, type NetnsLab } from '../../lib/lab/netns/index.ts';
import { kindMismatches, linesChanged } from '../../lib/lab/scale-diff.ts';
import { compareRun, ipsetChanges, ipvsDiffBars, nodeCounts, nodeCountsFigure, notCaptured, printDiff, realServerChange, scaleDiffFigure, scaleRun, servicePortOf, setMismatches, showJumps, showKinds, showNodeCounts, showSetChanges, showSplit, type ScalableLab, type ScaleRun } from '../../lib/notebook/scaling.ts';
import { captured } from '../../lib/notebook/node.ts';
import { onNode } from '../../lib/notebook/run-on.ts';
import { svcChain } from '../../lib/proxy/names.ts';
import { serviceJumps } from '../../lib/proxy/read.ts';
import type { ProxyMode } from '../../lib/proxy/modes.ts';
import { provenance } from '../../lib/provenance/index.ts';
import { measureTraffic } from '../../lib/traffic/index.ts';
import { ipvsSkipReason, testRunTag } from '../helpers/netns.ts';

// The helpers notebook 06 scales with, on real netns labs: one in iptables mode, one in IPVS mode.

const tag = testRunTag().slice(0, 4);
const labs: NetnsLab[] = [];

async function workshopLab(mode: ProxyMode): Promise<ScalableLab> {
  const lab = await createNetnsLab({ name: `s${tag}-${mode.slice(0, 3)}`, mode });
  labs.push(lab);
  await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
  const client = (await lab.pods({ app: 'curl' }))[0];
  const clientNode = (await lab.nodes()).find((n) => n.name === client.node)!;
  return { lab, clientNode };
}

/** What fn printed with console.log, as one text. */
async function printed(fn: () => unknown): Promise<string> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  try {
    await fn();
    return log.mock.calls.map((c) => c.join(' ')).join('\n');
  } finally {
    log.mockRestore();
  }
}

afterAll(async () => {
  for (const lab of labs) await lab.destroy();
});

describe('scaling httpbin in an iptables-mode lab', () => {
  let nb: ScalableLab;
  let run: ScaleRun;
  let out: string;
  beforeAll(async () => {
    nb = await workshopLab('iptables');
    out = await printed(async () => { run = await scaleRun(nb, 5, ['iptables-save']); });
  }, 120_000);

  it('captures the client\'s node before and after lab.scale(), and says what it did', () => {
    expect([run.from, run.to, run.mode, run.node.name]).toEqual([3, 5, 'iptables', nb.clientNode.name]);
    expect(run.before.pods).toHaveLength(3);
    expect(run.after.pods).toHaveLength(5);
    expect(run.added.map((p) => p.name).sort()).toEqual(run.after.pods.filter((p) => !run.before.pods.some((q) => q.name === p.name)).map((p) => p.name).sort());
    expect(run.added).toHaveLength(2);
    expect(run.reports.map((r) => r.node)).toHaveLength(3);
    expect(run.report.node).toBe(run.node.name);
    expect(out).toContain('$ kubectl scale deployment httpbin --replicas=5');
    expect(out).toContain("What each node's resync changed (lab.scale(), iptables mode)");
    expect(out).toMatch(new RegExp(`${run.node.name}\\s+9\\s+3\\s+← the client's node`));
  });

  it('finds the captured diff equal to the generator\'s, kind by kind', async () => {
    const rows = compareRun(run);
    expect(kindMismatches(rows)).toEqual([]);
    expect(rows.find((r) => r.kind === 'KUBE-SVC jumps')?.captured).toEqual({ added: 5, removed: 3 });
    const table = await printed(() => showKinds(run, rows));
    expect(table).toMatch(/KUBE-SEP rules\s+\+4\s+−0\s+\+4\s+−0/);
    const lines = await printed(() => printDiff(run.report));
    expect(lines.split('\n').filter((l) => l.startsWith('+ '))).toHaveLength(9);
    expect(lines.split('\n').filter((l) => l.startsWith('- '))).toHaveLength(3);
    expect(scaleDiffFigure(run, [{ label: 'x added', captured: 1, predicted: 1 }]).svg).toContain('httpbin 3 → 5 replicas in iptables mode');
  });

  it('reads the Service chain from the two captures, and shows old, new and stored probabilities', async () => {
    const port = servicePortOf(run.after.cluster, run.node.name);
    const chain = svcChain(port.servicePortName, port.protocol);
    const before = serviceJumps(captured(run.before, 'iptables-save'), chain);
    const after = serviceJumps(captured(run.after, 'iptables-save'), chain);
    expect([before.length, after.length]).toEqual([3, 5]);
    const table = await printed(() => showJumps(chain, run.node.name, before, after));
    expect(table).toContain('new endpoint');
    expect(table).toContain('1/5 = 0.2000000000');
    expect(table).toContain('0.20000000019');
  });

  it('says why a kind was not captured, and refuses to make one up', () => {
    expect(notCaptured(run.after, 'iptables-save')).toBeNull();
    expect(notCaptured(run.after, 'nft')).toBe('nft was not captured');
    expect(() => captured(run.after, 'nft')).toThrow(/no parsed nft from .*: not captured/);
    expect(() => servicePortOf(run.after.cluster, run.node.name, 'nope')).toThrow(/no Service port default\/nope/);
    expect(onNode(nb.lab, run.node.name)).toBe(`ip netns exec kn-${nb.lab.name}.${run.node.name}`);
    expect(onNode({ backend: 'kind', name: 'x' }, 'x-worker')).toBe('docker exec x-worker');
  });

  it('shows the split after the scale with the new pods marked', async () => {
    const m = await measureTraffic(nb.lab, { requests: 200, concurrency: 10 });
    const table = await printed(() => showSplit(m, run.added));
    for (const p of run.added) expect(table).toMatch(new RegExp(`${p.name}.*new`));
    expect(table.split('\n').filter((l) => l.endsWith('new'))).toHaveLength(2);
  });
});

describe('scaling httpbin in an IPVS-mode lab', () => {
  let run: ScaleRun;
  beforeAll(async () => {
    const nb = await workshopLab('ipvs');
    await printed(async () => { run = await scaleRun(nb, 5, ['ipset', 'proc-ip-vs']); });
  }, 120_000);

  it('changes no iptables rule, and the ipsets as the generator says: a KUBE-LOOP-BACK member where a pod landed', async () => {
    expect(linesChanged(compareRun(run))).toBe(0);
    const sets = ipsetChanges(run);
    expect(setMismatches(sets)).toEqual([]);
    const local = run.added.filter((p) => p.node === run.node.name);
    expect(sets.map((s) => s.name)).toEqual(local.length > 0 ? ['KUBE-LOOP-BACK'] : []);
    expect(sets[0]?.captured?.added).toEqual(local.map((p) => `${p.ip},tcp:8080,${p.ip}`));
    const table = await printed(() => showSetChanges(run, sets));
    expect(table).toContain(`${run.node.name}: ipset members that changed`);
  });

  it('names a captured ipset change that differs from the prediction', () => {
    const diff = { added: ['a'], removed: [] };
    expect(setMismatches([{ name: 'S', captured: diff, predicted: { added: [], removed: [] } }])).toEqual(['ipset S: captured +[a] −[], predicted +[] −[]']);
    expect(setMismatches([{ name: 'S', captured: null, predicted: diff }])).toEqual([]);
  });

  it('predicts the real servers 3 → 5, and captures them only where the kernel has IP_VS', () => {
    const servers = realServerChange(run);
    expect(servers.predicted).toEqual({ before: 3, after: 5 });
    if (ipvsSkipReason() === null) expect(servers.captured).toEqual(servers.predicted);
    else expect(servers.captured).toBeNull();
    const bars = ipvsDiffBars(run);
    expect(bars[0]).toEqual({ label: 'iptables rules added or removed', captured: 0, predicted: 0 });
    expect(bars[1].captured).toBe(bars[1].predicted);
    expect(bars[2].label).toBe(ipvsSkipReason() === null ? 'real servers added' : 'real servers added (no IP_VS: predicted only)');
  });
});

describe('one node of the article\'s cluster', () => {
  const big = nodeCounts(2000, 10, 5000);

  it('counts per mode: 64,005 nat rules in iptables mode, 4 local pods for IPVS\'s loop-back set', async () => {
    expect(big.iptables.nat).toEqual({ chains: 22004, rules: 64005 });
    expect(big.ipvs.ipsetMembers['KUBE-LOOP-BACK']).toBe(4);
    expect(big.ipsetMembers).toBe(4004);
    expect([big.nftables.rules, big.nftables.chains, big.nftables.elements]).toEqual([44023, 22016, 4001]);
    const table = await printed(() => showNodeCounts(big));
    expect(table).toContain('64,005 nat + 4 filter');
    expect(table).toContain('2,000 virtual, 20,000 real');
  });

  it('draws the prediction alone, or beside the kernel\'s count, with the claim it answers', () => {
    expect(nodeCountsFigure(big, null).svg).not.toContain('captured (iptables)');
    const loaded = { nat: big.iptables.nat, provenance: provenance({ source: 'captured', backend: 'netns', mode: 'iptables', node: 'ns' }), namespace: 'ns', seconds: 1 };
    const fig = nodeCountsFigure(big, loaded, { rules: 20000, by: 'The article' });
    expect(fig.svg).toContain('captured (iptables) vs');
    expect(fig.svg).toContain('3.2× too low');
  });
});
