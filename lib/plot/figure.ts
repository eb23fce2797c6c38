import * as Plot from '@observablehq/plot';
import { parseHTML } from 'linkedom';
import { LEGEND_FONT_SIZE, legendSvg, type LegendItem } from './legend.ts';
import { escapeXml, wrap } from './svg.ts';
import { THEME } from './theme.ts';

export interface Figure {
  /** A standalone SVG document: xmlns, width, height and viewBox set, white background. */
  svg: string;
  width: number;
  height: number;
}

/**
 * Plot's options plus a frame drawn in SVG. Plot turns title/subtitle/caption/legends into an
 * HTML <figure>, which neither resvg nor a saved .svg can show, so the frame draws them itself.
 */
export type FigureOptions = Omit<Plot.PlotOptions, 'document' | 'title' | 'subtitle' | 'caption' | 'figure'> & {
  title?: string;
  subtitle?: string;
  caption?: string;
  /** Swatches explaining the marks, e.g. measured bars vs predicted ticks. */
  legend?: LegendItem[];
  /**
   * Every text of the figure this many times its usual size (default 1): title, subtitle, legend,
   * caption, and Plot's axes and marks (unless `style` is given: then it sets their font), for
   * figures that must stay legible on a shared screen.
   */
  textScale?: number;
};

const PAD = 12;
const TITLE_SIZE = 16;
const SUBTITLE_SIZE = 12;
const CAPTION_SIZE = 10.5;

/** Render Plot options to an SVG string, with no browser: linkedom supplies the document. */
export function renderFigure(options: FigureOptions): Figure {
  const { title, subtitle, caption, legend = [], textScale = 1, ...plotOptions } = options;
  const width = plotOptions.width ?? THEME.width;
  const { document } = parseHTML('<!DOCTYPE html><html><head></head><body></body></html>');
  const style = plotOptions.style ?? (textScale !== 1 ? { fontSize: `${THEME.fontSize * textScale}px` } : undefined);
  // Plot's DOM typings are the browser's; linkedom's document is close enough at run time.
  const el = Plot.plot({ ...plotOptions, ...(style !== undefined ? { style } : {}), width, document: document as unknown as Document }) as unknown as Element;
  if (el.tagName.toLowerCase() !== 'svg') {
    throw new Error('Plot returned an HTML <figure> (a Plot legend, title or caption?); draw legends with the `legend` option of renderFigure instead');
  }
  const plotHeight = Number(el.getAttribute('height'));
  // Move Plot's marks into a <g>: a nested <svg> would pick up Plot's CSS (height: auto), which
  // browsers apply to inner SVGs too.
  const g = document.createElementNS('http://www.w3.org/2000/svg', 'g');
  for (const { name, value } of [...el.attributes]) {
    if (!['width', 'height', 'viewBox', 'xmlns'].includes(name)) g.setAttribute(name, value);
  }
  while (el.firstChild) g.appendChild(el.firstChild);

  const inner = width - 2 * PAD;
  const [TITLE, SUBTITLE, CAPTION, LEGEND] = [TITLE_SIZE, SUBTITLE_SIZE, CAPTION_SIZE, LEGEND_FONT_SIZE].map((f) => f * textScale);
  const head: string[] = [];
  let y = PAD;
  if (title) {
    for (const line of wrap(title, inner, TITLE)) {
      y += TITLE * 1.25;
      head.push(`<text class="figure-title" x="${PAD}" y="${y}" font-size="${TITLE}" font-weight="bold">${escapeXml(line)}</text>`);
    }
  }
  if (subtitle) {
    y += 4;
    for (const line of wrap(subtitle, inner, SUBTITLE)) {
      y += SUBTITLE * 1.3;
      head.push(`<text class="figure-subtitle" xml:space="preserve" x="${PAD}" y="${y}" font-size="${SUBTITLE}" fill="${THEME.muted}">${escapeXml(line)}</text>`);
    }
  }
  const leg = legendSvg(legend, inner, LEGEND);
  if (leg.height > 0) {
    y += 10;
    head.push(`<g transform="translate(${PAD},${y})">${leg.svg}</g>`);
    y += leg.height;
  }
  if (head.length > 0) y += 6;
  g.setAttribute('transform', `translate(0,${y})`);
  y += plotHeight;
  const foot: string[] = [];
  if (caption) {
    y += 4;
    for (const line of wrap(caption, inner, CAPTION)) {
      y += CAPTION * 1.35;
      foot.push(`<text class="figure-caption" x="${PAD}" y="${y}" font-size="${CAPTION}" fill="${THEME.muted}">${escapeXml(line)}</text>`);
    }
  }
  const height = Math.ceil(y + PAD);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" `
    + `font-family="${THEME.fontFamily}" fill="black" color="black">`
    + `<rect class="figure-background" width="100%" height="100%" fill="${THEME.background}"/>`
    + head.join('') + g.outerHTML + foot.join('') + '</svg>';
  return { svg, width, height };
}
