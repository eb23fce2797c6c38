/**
 * What a notebook cell shows besides console output: the equivalent shell command, HTML tables
 * and figures (also saved beside the rendered notebooks). Outside a tslab kernel, tables print as
 * text and figures are only saved.
 */
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { display, saveFigure, type Figure } from '../plot/index.ts';
import { PROJECT_ROOT, projectPath } from '../project/index.ts';

/** Where figures go: beside the notebooks' HTML (`npm run notebooks` writes out/notebooks/). */
export const FIGURES_DIR = projectPath('out', 'notebooks', 'figures');

/** Print the shell command that does what the next lines do, for the audience to copy. */
export function shell(command: string): void {
  console.log(`$ ${command}`);
}

/** tslab's display, when this runs in a notebook kernel; null elsewhere. */
function tslabDisplay(): { html(s: string): void } | null {
  try {
    return (createRequire(import.meta.url)('tslab') as { display: { html(s: string): void } }).display;
  } catch {
    return null;
  }
}

const esc = (v: unknown) => String(v).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);

/** An HTML table of rows; `caption` says what they are. */
export function tableHtml(caption: string, header: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const th = header.map((h) => `<th>${esc(h)}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((v) => `<td>${esc(v ?? '')}</td>`).join('')}</tr>`).join('');
  return `<table><caption>${esc(caption)}</caption><thead><tr>${th}</tr></thead><tbody>${tr}</tbody></table>`;
}

/** Show rows as a table: HTML in a notebook, aligned text elsewhere. */
export function showTable(caption: string, header: readonly string[], rows: readonly (readonly unknown[])[]): void {
  try {
    const d = tslabDisplay();
    if (d) return d.html(tableHtml(caption, header, rows));
  } catch (e) {
    // tslab is importable outside a kernel, but its display then throws "Not ready".
    if (!(e instanceof Error && e.message === 'Not ready')) throw e;
  }
  const cells = [header, ...rows].map((r) => r.map((v) => String(v ?? '')));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]?.length ?? 0)));
  console.log([caption, ...cells.map((r) => r.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd())].join('\n'));
}

/** Show a figure and save it as `<name>.svg` and `<name>.png` in FIGURES_DIR, saying where. */
export async function showFigure(fig: Figure, name: string): Promise<void> {
  display(fig);
  const saved = await saveFigure(fig, join(FIGURES_DIR, name));
  console.log(`saved ${relative(PROJECT_ROOT, saved.svgPath)} and .png`);
}
