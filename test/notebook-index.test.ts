import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { withParameters, writeIndex, type NotebookResult } from '../scripts/notebooks.ts';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function result(dir: string, name: string, seconds: number, failures = 0): NotebookResult {
  const html = join(dir, `${name}.html`);
  writeFileSync(html, '<html></html>');
  return {
    notebook: `notebooks/${name}.ipynb`, executed: join(dir, `${name}.ipynb`), html, seconds,
    failures: Array.from({ length: failures }, (_, i) => ({ cell: i + 1, source: '', stderr: '' })),
  };
}

describe('out/notebooks/index.html', () => {
  it('a partial run updates its own rows and keeps the others', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kn-index-'));
    dirs.push(dir);
    writeIndex(dir, [result(dir, '00-setup', 9.8), result(dir, '03-pod-to-service-iptables', 11.7)]);
    writeIndex(dir, [result(dir, '03-pod-to-service-iptables', 12.4, 1)]);
    const page = readFileSync(join(dir, 'index.html'), 'utf8');
    const rows = [...page.matchAll(/<tr data-notebook="([^"]+)">.*?<td>([^<]*)<\/td><td>([^<]*)<\/td>/g)].map((m) => [m[1], m[2], m[3]]);
    expect(rows).toEqual([['00-setup', 'ok', '9.8 s'], ['03-pod-to-service-iptables', '1 failed cell(s)', '12.4 s']]);
  });

  it('drops a row whose HTML is gone rather than link to nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kn-index-'));
    dirs.push(dir);
    writeIndex(dir, [result(dir, '00-setup', 9.8), result(dir, '01-container-to-container', 8.5)]);
    rmSync(join(dir, '00-setup.html'));
    writeIndex(dir, [result(dir, '01-container-to-container', 8.1)]);
    const page = readFileSync(join(dir, 'index.html'), 'utf8');
    expect(page).not.toContain('00-setup');
    expect(page).toContain('href="01-container-to-container.html"');
  });
});

describe('the parameters cell', () => {
  const nb = (source: string, tags = ['parameters']) => JSON.stringify({ cells: [
    { cell_type: 'markdown', source: 'const params = { replicas: 1 }', metadata: {} },
    { cell_type: 'code', source, metadata: { tags } },
  ] });
  const cellOf = (json: string) => (JSON.parse(json) as { cells: { source: string }[] }).cells[1].source;

  it('takes new values, keeping the others and the cell\'s form', () => {
    const src = "const params = { mode: 'iptables', replicas: 3, backend: 'auto', requests: 300 } as const;";
    expect(cellOf(withParameters(nb(src), { replicas: 5, mode: 'nftables' })))
      .toBe("const params = { mode: 'nftables', replicas: 5, backend: 'auto', requests: 300 } as const;");
    expect(cellOf(withParameters(nb(src), { workers: 1 }))).toBe("const params = { workers: 1, mode: 'iptables', replicas: 3, backend: 'auto', requests: 300 } as const;");
  });

  it('refuses a notebook without a cell tagged parameters', () => {
    expect(() => withParameters(nb('const x = 1;', []), { replicas: 5 })).toThrow('the notebook has no cell tagged "parameters"');
  });
});
