import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';

export interface PngOptions {
  /** Device pixels per SVG pixel (default 2, crisp on slides). */
  scale?: number;
}

let fonts: string[] | undefined;

/**
 * DejaVu Sans from the dejavu-fonts-ttf package, resolved in node_modules at run time: PNGs then
 * look the same on every machine, and text never vanishes where the host has no fonts.
 */
export function bundledFontFiles(): string[] {
  if (!fonts) {
    const dir = join(dirname(createRequire(import.meta.url).resolve('dejavu-fonts-ttf/package.json')), 'ttf');
    fonts = ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf', 'DejaVuSansMono.ttf'].map((f) => join(dir, f));
  }
  return fonts;
}

/** Rasterize an SVG with resvg and the bundled font only (system fonts are ignored). */
export function toPng(svg: string, opts: PngOptions = {}): Uint8Array {
  const scale = opts.scale ?? 2;
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: {
      fontFiles: bundledFontFiles(),
      loadSystemFonts: false,
      defaultFontFamily: 'DejaVu Sans',
      sansSerifFamily: 'DejaVu Sans',
      monospaceFamily: 'DejaVu Sans Mono',
    },
  });
  return new Uint8Array(resvg.render().asPng());
}
