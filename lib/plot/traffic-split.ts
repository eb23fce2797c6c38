import * as Plot from '@observablehq/plot';
import { provenanceLabel } from '../provenance/index.ts';
import type { TrafficMeasurement } from '../traffic/index.ts';
import { renderFigure, type Figure } from './figure.ts';
import { textWidth } from './svg.ts';
import { THEME } from './theme.ts';

const fmtCount = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

export interface TrafficSplitOptions {
  title?: string;
  width?: number;
}

interface Row {
  pod: string;
  answers: number;
  expected: number;
  low: number;
  high: number;
}

/**
 * Answers per pod (bars) against the prediction: its expected count (tick) and 95% interval
 * (whiskered rule). Pods are in kube-proxy's endpoint order, as the measurement lists them.
 */
export function trafficSplitFigure(m: TrafficMeasurement, opts: TrafficSplitOptions = {}): Figure {
  const shares = m.prediction.split.shares;
  const rows: Row[] = m.byPod.map((p, i) => ({
    pod: p.node ? `${p.pod} (${p.node})` : p.pod,
    answers: p.answers,
    expected: shares[i]?.expected ?? NaN,
    low: shares[i]?.low ?? NaN,
    high: shares[i]?.high ?? NaN,
  }));
  const pods = rows.map((r) => r.pod);
  const max = Math.max(1, ...rows.flatMap((r) => [r.answers, r.high]));
  const fit = m.chiSquare ? ` χ² = ${m.chiSquare.statistic.toFixed(2)}, p = ${m.chiSquare.pValue.toFixed(3)}.` : '';
  const svc = `${m.service.namespace}/${m.service.name}`;
  const picked = m.node === null ? ', picked on whichever node the proxy reached' : m.node !== m.client ? `, picked on ${m.node}` : '';
  return renderFigure({
    title: opts.title ?? `Where ${m.ok} connections to ${svc} landed`,
    subtitle: `${provenanceLabel(m.provenance)}  vs  ${provenanceLabel(m.prediction.provenance)}`,
    caption: `${m.ok} ok, ${m.errors} errors of ${m.total} requests to ${m.to.ip}:${m.to.port} from ${m.client}${picked}.${fit} Model: ${m.prediction.split.basis}.`,
    width: opts.width,
    legend: [
      { label: 'measured answers', swatch: 'bar', color: THEME.measured },
      { label: 'predicted expected', swatch: 'tick', color: THEME.predicted },
      { label: 'predicted 95% interval', swatch: 'interval', color: THEME.predicted },
    ],
    height: 50 + 40 * rows.length,
    marginLeft: Math.max(60, 12 + Math.max(...pods.map((p) => textWidth(p, THEME.fontSize)))),
    marginRight: 12 + Math.max(...rows.map((r) => textWidth(`predicted ${fmtCount(r.expected)} [${r.low}, ${r.high}]`, THEME.fontSize))),
    marginTop: 10,
    x: { label: 'connections →', grid: true, domain: [0, max], nice: true },
    y: { label: null, domain: pods },
    marks: [
      Plot.barX(rows, { y: 'pod', x: 'answers', fill: THEME.measured, fillOpacity: 0.85, className: 'measured', insetTop: 6, insetBottom: 6 }),
      // Counts at the bar's base, clear of the predicted tick near its end.
      Plot.text(rows, { x: 0, y: 'pod', text: (r: Row) => `${r.answers} answers`, textAnchor: 'start', dx: 5, dy: -3,
        // White on a bar long enough to hold it; a short or empty bar gets it in the bar's colour.
        fill: (r: Row) => (r.answers >= 0.3 * max ? 'white' : THEME.measured), fontWeight: 'bold', className: 'measured-label' }),
      // The interval sits on the bar's lower edge, so a bar that ends inside it is easy to see.
      Plot.ruleY(rows, { y: 'pod', x1: 'low', x2: 'high', stroke: THEME.predicted, strokeWidth: 2, dy: 12, className: 'predicted-interval' }),
      Plot.tickX(rows, { y: 'pod', x: 'low', stroke: THEME.predicted, strokeWidth: 1.5, insetTop: 21, insetBottom: 0, className: 'predicted-interval' }),
      Plot.tickX(rows, { y: 'pod', x: 'high', stroke: THEME.predicted, strokeWidth: 1.5, insetTop: 21, insetBottom: 0, className: 'predicted-interval' }),
      Plot.tickX(rows, { y: 'pod', x: 'expected', stroke: THEME.predicted, strokeWidth: 2.5, className: 'predicted' }),
      Plot.text(rows, {
        y: 'pod', x: 'high', dx: 6, dy: 12, textAnchor: 'start', fill: THEME.predicted, className: 'predicted-label',
        text: (r: Row) => `predicted ${fmtCount(r.expected)} [${r.low}, ${r.high}]`,
      }),
      Plot.ruleX([0]),
    ],
  });
}
