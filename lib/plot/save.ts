import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Figure } from './figure.ts';
import { toPng, type PngOptions } from './png.ts';

/** The one place lib/plot writes files: `<path>.svg` and `<path>.png`. */
export async function saveFigure(fig: Figure, pathWithoutExt: string, opts: PngOptions = {}): Promise<{ svgPath: string; pngPath: string }> {
  const svgPath = `${pathWithoutExt}.svg`;
  const pngPath = `${pathWithoutExt}.png`;
  await mkdir(dirname(svgPath), { recursive: true });
  await writeFile(svgPath, fig.svg);
  await writeFile(pngPath, toPng(fig.svg, opts));
  return { svgPath, pngPath };
}
