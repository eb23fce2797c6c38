import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { installHint } from '../lib/exec/index.ts';
import { JUPYTER, failedCells, runNotebooks } from '../scripts/notebooks.ts';

// Notebooks are tests too (DESIGN §5): this is `npm run notebooks`, asserted on.
describe('notebooks', () => {
  it('executes every notebook headless, without a cell error, and renders HTML', async () => {
    if (!existsSync(JUPYTER)) {
      throw new Error(`${JUPYTER} is missing, so the notebooks cannot run: ${installHint('jupyter')}`);
    }
    const run = await runNotebooks({ log: () => undefined });
    expect(run.message).toBeUndefined();
    expect(run.ok).toBe(true);

    const setup = run.results.find((r) => r.notebook.endsWith('00-setup.ipynb'));
    expect(setup).toBeDefined();
    const executed = readFileSync(setup!.executed, 'utf8');
    const cells = (JSON.parse(executed) as { cells: { cell_type: string; outputs?: { output_type: string }[] }[] }).cells;
    const code = cells.filter((c) => c.cell_type === 'code');
    expect(code.filter((c) => (c.outputs ?? []).length > 0).length).toBeGreaterThan(code.length / 2);
    expect(code.flatMap((c) => c.outputs ?? []).filter((o) => o.output_type === 'error')).toEqual([]);
    expect(failedCells(executed)).toEqual([]);

    const html = readFileSync(setup!.html, 'utf8');
    expect(html).toContain('<caption>Pods</caption>');
    expect(html).toMatch(/httpbin-[a-z0-9]+-[a-z0-9]+/);
    expect(html).toContain('lab nb00 removed');

    const iptables = run.results.find((r) => r.notebook.endsWith('03-pod-to-service-iptables.ipynb'));
    expect(iptables).toBeDefined();
    expect(existsSync(iptables!.html)).toBe(true);
    const executed03 = readFileSync(iptables!.executed, 'utf8');
    const outputs03 = (JSON.parse(executed03) as { cells: { outputs?: { output_type: string }[] }[] }).cells.flatMap((c) => c.outputs ?? []);
    expect(outputs03.filter((o) => o.output_type === 'error')).toEqual([]);
    expect(failedCells(executed03)).toEqual([]);
    const html03 = readFileSync(iptables!.html, 'utf8');
    expect(html03).toContain('KUBE-SVC-FREKB6WNWYJLKTHC');
    expect(html03).toContain('<svg');
  }, 20 * 60_000);
});
