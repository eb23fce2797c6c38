import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { installHint } from '../lib/exec/index.ts';
import { projectPath } from '../lib/project/index.ts';
import { JUPYTER, failedCells, runNotebooks, type NotebookRun } from '../scripts/notebooks.ts';

type Cell = { cell_type: string; outputs?: { output_type: string }[] };

// Notebooks are tests too: this is `npm run notebooks`, run once, asserted on per notebook.
describe('notebooks', () => {
  let run: NotebookRun;
  beforeAll(async () => {
    if (!existsSync(JUPYTER)) {
      throw new Error(`${JUPYTER} is missing, so the notebooks cannot run: ${installHint('jupyter')}`);
    }
    run = await runNotebooks({ log: () => undefined });
  }, 20 * 60_000);

  /** The executed notebook and its HTML, after checking it ran without an error or failed cell. */
  function result(file: string): { cells: Cell[]; html: string } {
    const r = run.results.find((x) => x.notebook.endsWith(file));
    expect(r, `${file} was not executed: ${run.message ?? ''}`).toBeDefined();
    const executed = readFileSync(r!.executed, 'utf8');
    const cells = (JSON.parse(executed) as { cells: Cell[] }).cells;
    expect(cells.flatMap((c) => c.outputs ?? []).filter((o) => o.output_type === 'error')).toEqual([]);
    expect(failedCells(executed)).toEqual([]);
    return { cells, html: readFileSync(r!.html, 'utf8') };
  }

  it('executes the whole series headless without a cell error', () => {
    expect(run.message).toBeUndefined();
    expect(run.ok).toBe(true);
    expect(run.results.length).toBeGreaterThanOrEqual(9);
  });

  it('runs a notebook with other parameters: 03 with 5 replicas', async () => {
    const outDir = mkdtempSync(join(projectPath('out'), 'notebooks-5-'));
    try {
      const five = await runNotebooks({ only: ['03'], params: { replicas: 5 }, outDir, log: () => undefined });
      expect(five.message).toBeUndefined();
      const executed = readFileSync(five.results[0].executed, 'utf8');
      expect(failedCells(executed)).toEqual([]);
      expect(executed).toContain("replicas: 5");
      expect(executed).toContain('httpbin × 5');
    } finally {
      rmSync(outDir, { recursive: true, force: true });
    }
  }, 5 * 60_000);

  it('keeps execution counts, and its HTML wraps long lines', () => {
    for (const r of run.results) {
      const cells = (JSON.parse(readFileSync(r.executed, 'utf8')) as { cells: (Cell & { execution_count?: number | null })[] }).cells;
      const counts = cells.filter((c) => c.cell_type === 'code').map((c) => c.execution_count);
      expect(counts.every((n) => typeof n === 'number' && n > 0), r.notebook).toBe(true);
      expect(readFileSync(r.html, 'utf8')).toContain('<style id="kube-netlab">');
    }
  });

  it('00 setup: doctor, a lab with pods, traffic, and the lab removed', () => {
    const { cells, html } = result('00-setup.ipynb');
    const code = cells.filter((c) => c.cell_type === 'code');
    expect(code.filter((c) => (c.outputs ?? []).length > 0).length).toBeGreaterThan(code.length / 2);
    expect(html).toContain('<caption>Pods</caption>');
    expect(html).toMatch(/httpbin-[a-z0-9]+-[a-z0-9]+/);
    expect(html).toContain('lab nb00 removed');
    expect(html).toContain('<svg');
  });

  it('01 container-to-container and 02 pod-to-pod: veths, host and block routes, the path, the labs removed', () => {
    const one = result('01-container-to-container.ipynb').html;
    expect(one).toContain('<caption>Veths per node</caption>');
    expect(one).toContain('✓ one pod veth per pod on every node');
    expect(one).toMatch(/✓ every answer from httpbin-[a-z0-9]+-[a-z0-9]+/);
    expect(one).toContain('lab nb01 removed');
    const two = result('02-pod-to-pod.ipynb').html;
    expect(two).toContain('<caption>Nodes and their blocks</caption>');
    expect(two).toContain('✓ the kit agrees');
    expect(two).toMatch(/<caption>curl \(10\.244\.\d+\.\d+\) → httpbin-[a-z0-9]+-[a-z0-9]+ \(10\.244\.\d+\.\d+\)<\/caption>/);
    expect(two).toContain('lab nb02 removed');
  });

  it('03 pod-to-service in iptables mode: the chains off the client\'s node, a packet traced through nat and filter, figures', () => {
    const { html } = result('03-pod-to-service-iptables.ipynb');
    expect(html).toContain('KUBE-SVC-FREKB6WNWYJLKTHC');
    expect(html).toContain('✓ each KUBE-SEP name hashes its endpoint');
    expect(html).toContain('✓ captured nat rules = predicted');
    // The trace tree names the table of each hook the packet crosses.
    for (const hook of ['nat PREROUTING', 'filter FORWARD', 'nat POSTROUTING']) expect(html).toContain(hook);
    expect(html).toContain('✓ from outside the pod network every outcome is masqueraded');
    expect(html).toContain('✓ KUBE-SEP packets match the answers');
    expect(html).toContain('<svg');
    expect(html).toContain('lab nb03 removed');
  });

  it('04 IPVS: the ipset and the nat rules read off the node, and each IPVS table and figure says whether it was predicted', () => {
    const { html } = result('04-ipvs.ipynb');
    expect(html).toContain('✓ one member per Service port');
    expect(html).toContain('✓ KUBE-SERVICES names no ClusterIP');
    expect(html).toContain('✓ nat rules: as predicted');
    // Without IP_VS everything about virtual servers is labelled a prediction; with it, captured and measured.
    expect(html).toMatch(/every IPVS table and figure below is PREDICTED|the virtual servers below are CAPTURED/);
    expect(html).toMatch(/IPVS table, (PREDICTED by lib\/proxy|CAPTURED from)/);
    expect(html).toMatch(/NOT MEASURED: no IP_VS|MEASURED: \d+ answers/);
    expect(html).toContain('lab nb04 removed');
  });

  it('04 IPVS and 05 nftables, with figures', () => {
    for (const [file, lab] of [['04-ipvs.ipynb', 'nb04'], ['05-nftables.ipynb', 'nb05']]) {
      const { html } = result(file);
      expect(html).toContain(`lab ${lab} removed`);
      expect(html).toContain('<svg');
    }
    expect(result('05-nftables.ipynb').html).toContain('numgen');
  });

  it('05 nftables: the verdict map and numgen off the client\'s node, a packet traced through the ruleset, figures', () => {
    const { html } = result('05-nftables.ipynb');
    expect(html).toMatch(/numgen random mod \d+ vmap/);
    expect(html).toContain('✓ one entry per endpoint, to its chain');
    expect(html).toContain('✓ captured = predicted: chains, rules, sets, maps, elements');
    // The trace crosses kube-proxy's base chains in prerouting, forward and postrouting.
    for (const chain of ['nat-prerouting', 'filter-forward', 'nat-postrouting']) expect(html).toContain(chain);
    expect(html).toMatch(/✓ each pod gets 1\/\d+, to within 2⁻³²/);
    expect(html).toContain('<svg');
    expect(html).toContain('lab nb05 removed');
  });

  it('06 scaling: the diff per mode beside the prediction, the split after scaling, the article\'s cluster counted', () => {
    const { html } = result('06-scaling.ipynb');
    expect(html).toContain('lab nb06 removed');
    expect(html).toContain('<svg');
    // The rewritten iptables jump for 1/5 as the kernel stores it, and nftables' new dispatch.
    expect(html).toContain('0.20000000019');
    expect(html).toContain('numgen random mod 5');
    expect(html).toMatch(/CAPTURED from a private namespace[^<]*: 64,005 nat rules/);
    // Each mode's diff matched the generator's, kind by kind, and IPVS mode touched no iptables rule.
    expect(html.split('✓ captured = predicted, kind by kind').length - 1).toBe(2);
    expect(html).toContain('✓ the scale changed no iptables rule');
    expect(html).toContain('✓ the kernel holds what lib/sim predicts');
  });

  it('07 ingress and egress: masquerade, NodePort Cluster vs Local, LoadBalancer', () => {
    const { html } = result('07-ingress-egress.ipynb');
    expect(html).toContain('lab nb07 removed');
    expect(html).toContain('<svg');
    expect(html).toMatch(/-A KIND-MASQ-AGENT [^<]*-j MASQUERADE/);
    expect(html).toMatch(/-A KUBE-NODEPORTS [^<]*-j KUBE-EXT-[A-Z0-9]{16}/);
    // Egress: conntrack's reply tuples are addressed to the node; the 0x4000 mark; the hairpin.
    expect(html).toMatch(/✓ every reply is addressed to nb07-worker/);
    expect(html).toContain('-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000');
    expect(html).toMatch(/✓ only the branch that lands on httpbin-[a-z0-9-]+ itself is masqueraded/);
    // Cluster hides the client; Local keeps the client's address: the pods answered the client node itself.
    expect(html).toContain('✓ no pod saw the client&#39;s address');
    expect(html).toMatch(/the pods answered to 172\.18\.0\.\d+ \(the client&#39;s own address\)/);
    // Local on a node without local pods drops; the LoadBalancer's source ranges drop a pod.
    expect(html).toContain('✓ no request to the Local node port was answered');
    expect(html).toContain('✓ KUBE-PROXY-FIREWALL dropped every attempt');
  });

  it('08 scale lab: a live sweep beside its model, the recorded benchmark, and the published claims checked', () => {
    const { html } = result('08-scale-lab.ipynb');
    expect(html).toContain('✓ kernel counts equal lib/sim&#39;s at every size');
    expect(html).toContain('✓ every connection was DNATed; p50 ≤ p99');
    expect(html).toContain('✓ no namespace left behind');
    expect(html).toContain('<caption>kube-proxy at scale: 10 endpoints per service');
    expect(html).toContain('<svg');
    expect(html).toContain('NFTables mode for kube-proxy');
    expect(html).toMatch(/<td>(holds|does not hold|cannot tell)<\/td>/);
    expect(html).toContain('✓ nb08: no namespace left behind');
  });
});

// The cell rhythm of a teaching notebook, read off the notebooks themselves (no kernel needed).
describe('every notebook', () => {
  const files = readdirSync(projectPath('notebooks')).filter((f) => f.endsWith('.ipynb')).sort();
  const code = (f: string) => (JSON.parse(readFileSync(projectPath('notebooks', f), 'utf8')) as { cells: (Cell & { source: string[] | string; metadata: { tags?: string[] } })[] }).cells
    .filter((c) => c.cell_type === 'code');
  const text = (c: { source: string[] | string }) => (Array.isArray(c.source) ? c.source.join('') : c.source);

  it.each(files)('%s: a parameters cell, one import of the kit, short typed cells', (f) => {
    const cells = code(f);
    expect(cells[0].metadata.tags).toContain('parameters');
    expect(text(cells[0])).toMatch(/^const params = \{ .* \} as const;$/);
    expect(cells.filter((c) => /from '\.\/kit';/.test(text(c))), 'cells importing the kit').toHaveLength(1);
    const lines = cells.map((c) => text(c).split('\n').length).sort((a, b) => a - b);
    expect(lines[Math.floor((lines.length - 1) / 2)], 'median lines per code cell').toBeLessThanOrEqual(6);
    expect(lines.at(-1), 'longest code cell').toBeLessThanOrEqual(15);
    const all = cells.map(text).join('\n');
    expect(all.match(/\bany\b/g) ?? [], 'uses of any').toEqual([]);
    expect(all).not.toContain('load.mjs');
  });
});
