import * as Plot from '@observablehq/plot';
import type { ProxyMode } from '../proxy/modes.ts';
import { renderFigure, type Figure } from './figure.ts';
import type { LegendItem } from './legend.ts';
import { MODE_COLORS, THEME } from './theme.ts';

export interface ScalingPoint {
  services: number;
  mode: ProxyMode;
  /** Rules, or any cost that grows with the cluster. */
  rules: number;
  source: 'predicted' | 'measured';
}

export interface ScalingOptions {
  title?: string;
  subtitle?: string;
  caption?: string;
  /** What `rules` counts (y-axis label). */
  yLabel?: string;
  /** Log scales on both axes (default true: counts span orders of magnitude). */
  log?: boolean;
  width?: number;
}

/** Counts as the cluster grows: predictions as lines, measurements as dots, one colour per mode. */
export function scalingFigure(points: readonly ScalingPoint[], opts: ScalingOptions = {}): Figure {
  const log = opts.log ?? true;
  const modes = [...new Set(points.map((p) => p.mode))];
  const predicted = points.filter((p) => p.source === 'predicted').sort((a, b) => a.services - b.services);
  const measured = points.filter((p) => p.source === 'measured');
  // Log scales cannot show 0; nudge zeros onto the axis rather than lose them.
  const y = (p: ScalingPoint) => (log ? Math.max(p.rules, 1) : p.rules);
  const legend: LegendItem[] = [
    ...modes.map((m) => ({ label: m, swatch: 'bar' as const, color: MODE_COLORS[m] })),
    { label: 'predicted (model)', swatch: 'line', color: THEME.predicted },
    ...(measured.length > 0 ? [{ label: 'measured (lab)', swatch: 'dot' as const, color: THEME.predicted }] : []),
  ];
  const last = modes.map((m) => predicted.filter((p) => p.mode === m).at(-1)).filter((p): p is ScalingPoint => p !== undefined);
  return renderFigure({
    title: opts.title ?? 'How kube-proxy\'s rules grow with the cluster',
    subtitle: opts.subtitle ?? (measured.length > 0 ? 'predicted · model  vs  measured · lab' : 'predicted · model'),
    caption: opts.caption,
    width: opts.width,
    legend,
    height: 380,
    marginRight: 70,
    x: { type: log ? 'log' : 'linear', label: 'services →', grid: true },
    y: { type: log ? 'log' : 'linear', label: `↑ ${opts.yLabel ?? 'rules'}`, grid: true },
    color: { domain: modes, range: modes.map((m) => MODE_COLORS[m]) },
    marks: [
      Plot.line(predicted, { x: 'services', y, z: 'mode', stroke: 'mode', strokeWidth: 2, className: 'predicted' }),
      Plot.dot(measured, { x: 'services', y, fill: 'mode', stroke: 'white', r: 4.5, symbol: 'circle', className: 'measured' }),
      Plot.text(last, { x: 'services', y, text: 'mode', fill: 'mode', textAnchor: 'start', dx: 6, className: 'predicted-label' }),
    ],
  });
}
