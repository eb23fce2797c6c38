import { THEME } from './theme.ts';
import { escapeXml, textWidth } from './svg.ts';

/** How a legend entry's swatch is drawn; it should match the mark it explains. */
export type SwatchKind = 'bar' | 'outline' | 'dot' | 'tick' | 'interval' | 'line' | 'dashed';

export interface LegendItem {
  label: string;
  swatch: SwatchKind;
  color?: string;
}

const SIZE = 12;
const GAP = 18;
/** The legend's text size at textScale 1. */
export const LEGEND_FONT_SIZE = 11;

function swatch(kind: SwatchKind, color: string): string {
  const c = escapeXml(color);
  switch (kind) {
    case 'bar':
      return `<rect x="0" y="0" width="${SIZE}" height="${SIZE}" fill="${c}"/>`;
    case 'outline':
      return `<rect x="0.75" y="2" width="${SIZE - 1.5}" height="${SIZE - 4}" fill="white" stroke="${c}" stroke-width="1.5"/>`;
    case 'dot':
      return `<circle cx="${SIZE / 2}" cy="${SIZE / 2}" r="4" fill="${c}" stroke="white"/>`;
    case 'tick':
      return `<line x1="${SIZE / 2}" x2="${SIZE / 2}" y1="-1" y2="${SIZE + 1}" stroke="${c}" stroke-width="2.5"/>`;
    case 'interval':
      return `<line x1="0" x2="${SIZE}" y1="${SIZE / 2}" y2="${SIZE / 2}" stroke="${c}" stroke-width="2"/>`
        + `<line x1="0" x2="0" y1="${SIZE / 2 - 4}" y2="${SIZE / 2 + 4}" stroke="${c}" stroke-width="1.5"/>`
        + `<line x1="${SIZE}" x2="${SIZE}" y1="${SIZE / 2 - 4}" y2="${SIZE / 2 + 4}" stroke="${c}" stroke-width="1.5"/>`;
    case 'line':
      return `<line x1="-3" x2="${SIZE + 3}" y1="${SIZE / 2}" y2="${SIZE / 2}" stroke="${c}" stroke-width="2"/>`;
    case 'dashed':
      return `<line x1="-3" x2="${SIZE + 3}" y1="${SIZE / 2}" y2="${SIZE / 2}" stroke="${c}" stroke-width="2" stroke-dasharray="4,2"/>`;
  }
}

/**
 * Swatches as plain SVG. Plot's own legends are HTML (and continuous ones need canvas), which
 * resvg cannot draw; this keeps the legend inside the picture. Returns the group and its height.
 */
export function legendSvg(items: readonly LegendItem[], width: number, fontSize = LEGEND_FONT_SIZE): { svg: string; height: number } {
  if (items.length === 0) return { svg: '', height: 0 };
  const rowHeight = SIZE + 8;
  let x = 0;
  let y = 0;
  const parts: string[] = [];
  for (const item of items) {
    const w = SIZE + 9 + textWidth(item.label, fontSize);
    if (x > 0 && x + w > width) {
      x = 0;
      y += rowHeight;
    }
    const cls = `legend-item legend-${item.swatch}`;
    parts.push(
      `<g class="${cls}" transform="translate(${x.toFixed(1)},${y})">${swatch(item.swatch, item.color ?? THEME.predicted)}`
        + `<text x="${SIZE + 9}" y="${SIZE / 2}" dy="0.35em" font-size="${fontSize}" fill="currentColor">${escapeXml(item.label)}</text></g>`,
    );
    x += w + GAP;
  }
  return { svg: `<g class="legend" aria-label="legend">${parts.join('')}</g>`, height: y + rowHeight };
}
