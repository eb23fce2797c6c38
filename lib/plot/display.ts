import { createRequire } from 'node:module';
import type { Figure } from './figure.ts';

interface Tslab {
  display: { html(s: string): void };
}

function findTslab(): Tslab | null {
  const g = (globalThis as { tslab?: Tslab }).tslab;
  if (g?.display) return g;
  try {
    // tslab is optional: only notebooks run inside it.
    return createRequire(import.meta.url)('tslab') as Tslab;
  } catch {
    return null;
  }
}

/** Show a figure in a tslab notebook; elsewhere (no tslab, or no kernel) do nothing. Returns the SVG either way. */
export function display(fig: Figure): string {
  try {
    findTslab()?.display.html(fig.svg);
  } catch (e) {
    // tslab is importable outside a kernel, but then its display throws "Not ready".
    if (!(e instanceof Error && e.message === 'Not ready')) throw e;
  }
  return fig.svg;
}
