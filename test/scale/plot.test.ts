import { describe, expect, it } from 'vitest';
import { scalingFigure, toPng } from '../../lib/plot/index.ts';
import { scaleSweepRows, seriesColor, type ScaleSweepLike } from '../../lib/plot/scaling.ts';
import { MODE_COLORS } from '../../lib/plot/theme.ts';
import { provenance } from '../../lib/provenance/index.ts';
import type { ScaleResult } from '../../lib/scale/index.ts';
import { predictCounts } from '../../lib/sim/index.ts';

// What runScaleSweep returns is what the figure takes (checked by tsc).
const acceptsSweepResults = (r: ScaleResult): ScaleSweepLike => r;
void acceptsSweepResults;

/** A sweep as `kube-netlab scale --json` gives it, with made-up timings. */
function sweep(): ScaleSweepLike {
  const points: ScaleSweepLike['points'][number][] = [];
  for (const mode of ['iptables', 'nftables'] as const) {
    for (const S of [10, 100, 1000, 10_000]) {
      const grow = mode === 'iptables' ? S / 10 : 0;
      const counts = predictCounts(mode, { services: S, endpoints: 10 });
      points.push({
        mode, services: S, endpoints: 10,
        measured: {
          provenance: provenance({ source: 'measured', backend: 'netns', mode, node: 'kind-worker' }),
          syncMs: 5 + S * 0.05, changeMs: 3 + S * 0.01,
          firstServiceLatencyUs: { p50: 60, p99: 120 }, lastServiceLatencyUs: S === 10_000 ? null : { p50: 60 + grow, p99: 120 + grow },
          kernel: counts,
        },
        predicted: {
          syncMs: 5 + S * 0.05, changeMs: S > 1000 ? null : 3 + S * 0.01,
          firstServiceLatencyUs: { p50: 61, p99: 119 }, lastServiceLatencyUs: { p50: 61 + grow, p99: 119 + grow },
          inFit: S <= 1000, counts,
        },
      });
    }
  }
  return { points, model: { fitMaxServices: 1000 } };
}

/** Child tags of the first element with a mark class (per facet for faceted figures). */
function markTags(svg: string, cls: string): string[] {
  const i = svg.indexOf(`class="${cls}"`);
  if (i < 0) return [];
  const after = svg.slice(svg.indexOf('>', i) + 1, svg.indexOf('</g>', i));
  return [...after.matchAll(/<([a-z]+)[\s>/]/g)].map((m) => m[1]);
}

describe('scalingFigure draws a scale sweep: measured dots, predicted lines', () => {
  it('rows leave out what was not measured or not predicted', () => {
    const rows = scaleSweepRows(sweep(), 'changeMs');
    expect(rows.filter((r) => r.source === 'measured')).toHaveLength(8);
    expect(rows.filter((r) => r.source === 'predicted')).toHaveLength(6);
    const lat = scaleSweepRows(sweep(), 'latencyP50');
    expect(lat.filter((r) => r.source === 'measured' && r.panel.startsWith('last'))).toHaveLength(6);
    expect(lat.find((r) => r.mode === 'iptables' && r.services === 1000 && r.source === 'predicted' && r.panel.startsWith('last'))!.value).toBe(161);
    const rules = scaleSweepRows(sweep(), 'rules');
    expect(rules.find((r) => r.mode === 'iptables' && r.services === 10 && r.source === 'measured')!.value).toBe(325 + 4);
  });

  it('one series per iptables backend: each variant its own line, dots and colour', () => {
    const base = sweep();
    const both = { ...base, points: [
      ...base.points.filter((p) => p.mode === 'iptables').map((p) => ({ ...p, variant: 'iptables-legacy' })),
      ...base.points.filter((p) => p.mode === 'iptables').map((p) => ({ ...p, variant: 'iptables-nft' })),
    ] };
    const rows = scaleSweepRows(both, 'syncMs');
    expect([...new Set(rows.map((r) => r.series))]).toEqual(['iptables-legacy', 'iptables-nft']);
    const fig = scalingFigure(both, { metric: 'syncMs' });
    expect(markTags(fig.svg, 'predicted')).toEqual(['path', 'path']);
    expect(seriesColor('iptables-nft')).toBe(MODE_COLORS.iptables);
    expect(seriesColor('iptables-legacy')).not.toBe(MODE_COLORS.iptables);
    for (const c of [seriesColor('iptables-legacy'), seriesColor('iptables-nft')]) expect(fig.svg).toContain(c);
  });

  it('sync time: one line and one set of dots per mode, the fit boundary labelled', () => {
    const fig = scalingFigure(sweep(), { metric: 'syncMs' });
    for (const s of ['Full sync time as services grow', 'predicted (cost model)', 'measured (lab)', 'model fitted on ≤ 1000 services',
      'fitted ← | → predicted', 'ms to apply a full sync']) {
      expect(fig.svg).toContain(s);
    }
    // The subtitle wraps; read it back as one line.
    const subtitle = [...fig.svg.matchAll(/class="figure-subtitle"[^>]*>([^<]*)</g)].map((m) => m[1]).join(' ');
    expect(subtitle).toBe('measured · netns/iptables, nftables · kind-worker  vs  predicted · model (least squares on ≤ 1000 services); 10 endpoints per service');
    expect(markTags(fig.svg, 'predicted')).toEqual(['path', 'path']);
    expect(markTags(fig.svg, 'measured').filter((t) => t === 'circle')).toHaveLength(8);
  });

  it('latency: the first and the last service side by side', () => {
    const fig = scalingFigure(sweep(), { metric: 'latencyP50' });
    for (const s of ['First-packet latency (median)', 'first service in kube-proxy', 'last service in kube-proxy', 'µs, connect() p50', 'verdict map']) {
      expect(fig.svg).toContain(s);
    }
    expect(fig.svg.match(/class="measured"/g)!.length).toBe(2); // one dot group per panel
    expect(fig.svg.match(/class="predicted"/g)!.length).toBe(2);
    expect(toPng(fig.svg).length).toBeGreaterThan(1000);
  });

  it('fits a 1280×720 screen whole, its smallest text 13 px', () => {
    for (const metric of ['syncMs', 'changeMs', 'latencyP50', 'rules'] as const) {
      const fig = scalingFigure(sweep(), { metric, subtitle: 'recorded 2026-11-25 on Linux 6.18 (npx kube-netlab scale --modes iptables,nftables --services 10,100,1000)' });
      expect(fig.width).toBeLessThanOrEqual(1000);
      expect(fig.height).toBeLessThanOrEqual(500);
      // An element's style outranks its font-size attribute (and Plot's stylesheet), as in a browser.
      const sizes = [...fig.svg.matchAll(/<[a-z]+ [^>]*font-size[^>]*>/g)].map(([tag]) => Number(
        (/style="[^"]*font-size:\s*([\d.]+)px/.exec(tag) ?? /font-size="([\d.]+)"/.exec(tag))![1],
      ));
      expect(sizes.length).toBeGreaterThan(3);
      expect(Math.min(...sizes)).toBeGreaterThanOrEqual(13);
    }
    // Other figures keep their size unless asked.
    expect(scalingFigure(sweep(), { metric: 'syncMs', width: 640, height: 380, textScale: 1 }).svg).toContain('font-size="16"');
  });

  it('counts: the kernel against lib/sim, no fit boundary', () => {
    const fig = scalingFigure(sweep(), { metric: 'rules' });
    expect(fig.svg).toContain('captured (kernel)');
    expect(fig.svg).toContain('predicted (lib/sim counts)');
    expect(fig.svg).not.toContain('fitted ←');
  });

  it('still takes the old list of ScalingPoint', () => {
    const fig = scalingFigure([
      { services: 10, mode: 'iptables', rules: 325, source: 'predicted' },
      { services: 100, mode: 'iptables', rules: 3205, source: 'predicted' },
      { services: 10, mode: 'iptables', rules: 325, source: 'measured' },
    ]);
    expect(fig.svg).toContain('How kube-proxy');
    expect(markTags(fig.svg, 'predicted')).toEqual(['path']);
  });
});
