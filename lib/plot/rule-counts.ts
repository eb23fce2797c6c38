import * as Plot from '@observablehq/plot';
import { provenanceLabel, type Provenance } from '../provenance/index.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import { renderFigure, type Figure } from './figure.ts';
import { textWidth } from './svg.ts';
import { THEME } from './theme.ts';

export interface RuleCountRow {
  mode: ProxyMode;
  /** What the node holds (captured) or showed (measured); absent when no lab ran. */
  measured?: number;
  predicted: number;
  /** What is counted, e.g. "nat rules"; the row reads "iptables · nat rules". */
  label?: string;
}

export interface RuleCountsOptions {
  /** Provenance of the measured/captured numbers; its source names them in the legend. */
  measured?: Provenance;
  predicted?: Provenance;
  title?: string;
  caption?: string;
  width?: number;
}

const rowName = (r: RuleCountRow) => (r.label ? `${r.mode} · ${r.label}` : r.mode);

/** Counts per mode: the node's numbers as bars, the model's as black ticks with their value. */
export function ruleCountsFigure(rows: readonly RuleCountRow[], opts: RuleCountsOptions = {}): Figure {
  const measuredName = opts.measured?.source ?? 'captured';
  const names = rows.map(rowName);
  const max = Math.max(1, ...rows.flatMap((r) => [r.predicted, r.measured ?? 0]));
  const hasMeasured = rows.some((r) => r.measured !== undefined);
  const subtitle = [
    hasMeasured && opts.measured ? `${provenanceLabel(opts.measured)}` : null,
    opts.predicted ? provenanceLabel(opts.predicted) : `predicted · model/${[...new Set(rows.map((r) => r.mode))].join(', ')}`,
  ].filter(Boolean).join('  vs  ');
  const measured = rows.filter((r) => r.measured !== undefined);
  return renderFigure({
    title: opts.title ?? 'What kube-proxy programs, per mode',
    subtitle,
    caption: opts.caption,
    width: opts.width,
    legend: [
      ...(hasMeasured ? [{ label: measuredName, swatch: 'bar' as const, color: THEME.measured }] : []),
      { label: 'predicted', swatch: 'tick' as const, color: THEME.predicted },
    ],
    height: 40 + 34 * rows.length,
    marginLeft: Math.max(60, 12 + Math.max(...names.map((n) => textWidth(n, THEME.fontSize)))),
    marginRight: 12 + Math.max(...rows.map((r) => textWidth(`${measuredName} ${r.measured ?? ''} ≠ predicted ${r.predicted}`, THEME.fontSize))),
    marginTop: 10,
    x: { label: 'count →', grid: true, domain: [0, max], nice: true },
    y: { label: null, domain: names },
    marks: [
      Plot.barX(measured, { y: rowName, x: 'measured', fill: THEME.measured, className: 'measured', insetTop: 5, insetBottom: 5 }),
      Plot.tickX(rows, { y: rowName, x: 'predicted', stroke: THEME.predicted, strokeWidth: 2.5, className: 'predicted' }),
      // One label per row, right of both marks, saying whether the node matched the model.
      Plot.text(rows, {
        y: rowName,
        x: (r: RuleCountRow) => Math.max(r.predicted, r.measured ?? 0),
        text: (r: RuleCountRow) => r.measured === undefined
          ? `predicted ${r.predicted}`
          : `${measuredName} ${r.measured} ${r.measured === r.predicted ? '=' : '≠'} predicted ${r.predicted}`,
        textAnchor: 'start',
        dx: 6,
        fill: THEME.predicted,
        className: 'row-label',
      }),
      Plot.ruleX([0]),
    ],
  });
}
