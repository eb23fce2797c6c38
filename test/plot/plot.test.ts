import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { Resvg } from '@resvg/resvg-js';
import * as Plot from '@observablehq/plot';
import {
  bundledFontFiles, display, liveTraceFigure, renderFigure, ruleCountsFigure, scalingFigure, toPng, traceChainLabels, traceTreeFigure, trafficSplitFigure,
} from '../../lib/plot/index.ts';
import { parseNftRuleset } from '../../lib/parse/index.ts';
import { traceIptables, traceNftables } from '../../lib/trace/index.ts';
import { provenance } from '../../lib/provenance/index.ts';
import { fullTrace, ruleCountRows, scalingPoints, traceResult, trafficMeasurement } from './data.ts';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Elements carrying a mark class, e.g. `<g class="measured" …>` → its child tags. */
function markTags(svg: string, cls: string): string[] {
  const i = svg.indexOf(`class="${cls}"`);
  if (i < 0) return [];
  const after = svg.slice(svg.indexOf('>', i) + 1, svg.indexOf('</g>', i));
  return [...after.matchAll(/<([a-z]+)[\s>/]/g)].map((m) => m[1]);
}

function pngSize(png: Uint8Array): { width: number; height: number } {
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: v.getUint32(16), height: v.getUint32(20) };
}

function decode(svg: string) {
  const img = new Resvg(svg, { font: { fontFiles: bundledFontFiles(), loadSystemFonts: false, defaultFontFamily: 'DejaVu Sans' } }).render();
  return { pixels: img.pixels, width: img.width, height: img.height };
}

/** Columns right of x (in SVG pixels) holding a dark pixel: text running out of the figure. */
function darkColumnsRightOf(svg: string, x: number): number {
  const { pixels, width, height } = decode(svg);
  let n = 0;
  for (let col = Math.ceil(x); col < width; col++) {
    for (let y = 0; y < height; y++) {
      const i = 4 * (y * width + col);
      if (pixels[i + 3] > 0 && pixels[i] + pixels[i + 1] + pixels[i + 2] < 300) {
        n++;
        break;
      }
    }
  }
  return n;
}

describe('figures render to SVG with provenance, and measured apart from predicted', () => {
  it('rule counts: captured bars against predicted ticks', () => {
    const fig = ruleCountsFigure(ruleCountRows(), { measured: provenance({ source: 'captured', backend: 'netns', mode: 'iptables', node: 'kind-worker' }) });
    expect(fig.svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="640" height="\d+" viewBox="0 0 640 \d+"/);
    for (const s of ['captured · netns/iptables · kind-worker', 'predicted · model/iptables', 'iptables · nat rules', 'captured 115 = predicted 115', 'predicted 103']) {
      expect(fig.svg).toContain(s);
    }
    expect(markTags(fig.svg, 'measured')).toEqual(['rect', 'rect']); // nftables has no capture
    expect(new Set(markTags(fig.svg, 'predicted'))).toEqual(new Set(['line']));
  });

  it('traffic split: answers per pod against the expected count and its 95% interval', () => {
    const m = trafficMeasurement();
    const fig = trafficSplitFigure(m);
    for (const p of m.byPod) expect(fig.svg).toContain(`${p.pod} (${p.node})`);
    for (const p of m.byPod) expect(fig.svg).toContain(`${p.answers} answers`);
    const [s] = m.prediction.split.shares;
    expect(fig.svg).toContain(`[${s.low}, ${s.high}]`);
    expect(fig.svg).toContain('measured · netns/iptables · kind-worker');
    expect(fig.svg).toContain('predicted · model/iptables');
    expect(fig.svg).toContain('predicted 95% interval');
    expect(markTags(fig.svg, 'measured')).toEqual(['rect', 'rect', 'rect']);
    expect(markTags(fig.svg, 'predicted')).toEqual(['line', 'line', 'line']);
    expect(markTags(fig.svg, 'predicted-interval')).toContain('line');
  });

  it('trace tree: every chain from PREROUTING to each KUBE-SEP, with its share', () => {
    const result = traceResult();
    const fig = traceTreeFigure(result);
    for (const chain of ['PREROUTING', 'KUBE-SERVICES', 'KUBE-SVC-', 'KUBE-SEP-', '33.33%', 'DNAT → 10.244.']) expect(fig.svg).toContain(chain);
    expect(fig.svg).toContain('predicted · model/iptables');
    for (const o of result.outcomes) expect(fig.svg).toContain(o.dnat!);
    expect(markTags(fig.svg, 'predicted')).toEqual(['rect', 'rect', 'rect']);
    expect(markTags(fig.svg, 'measured')).toEqual([]);
  });

  it('trace tree: drawn top to bottom, so it keeps its width (legible at 1280×720) whatever the endpoints', () => {
    for (const endpoints of [1, 3, 10]) {
      const fig = traceTreeFigure(fullTrace(endpoints).result);
      expect(fig.width).toBe(720);
      expect(darkColumnsRightOf(fig.svg, fig.width - 8)).toBe(0);
    }
    expect(traceTreeFigure(fullTrace(3).result).height).toBeLessThan(traceTreeFigure(fullTrace(10).result).height);
  });

  it('trace tree: hooks start lines and name their table, as the full tracer walks nat and filter', () => {
    const { result } = fullTrace(3);
    expect(traceChainLabels(result.outcomes[0])).toEqual([
      'nat PREROUTING', 'KUBE-SERVICES', expect.stringMatching(/^KUBE-SVC-/), expect.stringMatching(/^KUBE-SEP-/),
      'filter FORWARD', 'KUBE-PROXY-FIREWALL', 'KUBE-FORWARD', 'KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'nat POSTROUTING', 'KUBE-POSTROUTING',
    ]);
    // From the node: nat OUTPUT, then filter OUTPUT, each named by its own table.
    const out = traceIptables({ ...fullTrace(3).input, hook: 'OUTPUT', packet: { ...result.packet, src: '172.18.0.3' } });
    const labels = traceChainLabels(out.outcomes[0]);
    expect(labels.filter((l) => l.endsWith('OUTPUT'))).toEqual(['nat OUTPUT', 'filter OUTPUT']);
    expect(out.outcomes.every((o) => o.snat === 'MASQUERADE')).toBe(true);
    const svg = traceTreeFigure(result).svg;
    for (const hook of ['nat PREROUTING', 'filter FORWARD', 'nat POSTROUTING']) expect(svg).toContain(hook);
  });

  it('trace tree: an nftables trace, long chain names cut to fit', async () => {
    const ruleset = parseNftRuleset(await readFile(new URL('../fixtures/nft-1.0.9-a-list-ruleset-no-xtables.txt', import.meta.url), 'utf8'));
    const result = traceNftables({
      ruleset, hook: 'PREROUTING', tables: ['ip kube-proxy'], localAddresses: ['172.18.0.3'],
      packet: { protocol: 'tcp', src: '10.244.1.9', dst: '10.96.120.15', dport: 8000 },
    });
    expect(result.outcomes).toHaveLength(2);
    const fig = traceTreeFigure(result, { width: 480 });
    for (const s of ['nat-prerouting', 'services', 'service-ULMVA6XW-default∕httpbin', 'endpoint-5OJB2KTY-default', '50.00%']) {
      expect(fig.svg.replaceAll('/', '∕')).toContain(s);
    }
    expect(darkColumnsRightOf(fig.svg, fig.width - 8)).toBe(0);
  });

  it('trace tree with measured answers: bars apart from the predicted shares, one per outcome', () => {
    const m = trafficMeasurement();
    const result = traceResult();
    const fig = traceTreeFigure(result, { measured: m });
    expect(markTags(fig.svg, 'predicted')).toEqual(['rect', 'rect', 'rect']);
    expect(markTags(fig.svg, 'measured')).toEqual(['rect', 'rect', 'rect']);
    expect(fig.svg).toMatch(/vs {2}measured · netns\/iptables ·\s*(<[^>]+>)*\s*kind-worker/);
    expect(fig.svg).toContain('measured share of answers');
    const total = m.byPod.reduce((a, p) => a + p.answers, 0);
    for (const p of m.byPod) {
      expect(fig.svg).toContain(`${p.answers} (${((100 * p.answers) / total).toFixed(2)}%)`);
      expect(fig.svg).toContain(p.pod);
    }
    // A pod no outcome reaches is named, not silently dropped.
    const extra = { ...m, byPod: [...m.byPod, { pod: 'stray', ip: '10.244.9.9', node: '', answers: 4, conntrack: null, sepPackets: null }] };
    expect(traceTreeFigure(result, { measured: extra }).svg).toMatch(/\(stray\s*(<[^>]+>)*\s*answered but no outcome reaches it\)/);
  });

  it('live trace: predicted outlines and observed bars on separate rows of every outcome, counts on every branch; fits 1280×720', () => {
    const { result } = fullTrace(3);
    const counts = [340, 321, 339];
    const report = {
      prediction: { provenance: provenance({ source: 'predicted', backend: 'netns', mode: 'iptables', node: 'kind-worker' }), result },
      provenance: provenance({ source: 'captured', backend: 'netns', mode: 'iptables', node: 'kind-worker' }),
      packets: 1000, counts, unexplained: 0, node: 'kind-worker', service: { namespace: 'default', name: 'httpbin', ip: result.packet.dst, port: result.packet.dport },
    };
    const fig = liveTraceFigure(report);
    expect(markTags(fig.svg, 'predicted')).toEqual(['rect', 'rect', 'rect']);
    expect(markTags(fig.svg, 'measured')).toEqual(['rect', 'rect', 'rect']);
    for (const [i, n] of counts.entries()) {
      expect(fig.svg).toContain(`${n} (${(n / 10).toFixed(2)}%)`);
      // The branch's own label: its predicted share and what was seen through it.
      expect(fig.svg).toContain(`${(100 * result.outcomes[i].probability).toFixed(2)}% · ${n} seen`);
    }
    // Outlined (predicted) and filled (observed) bars of one outcome do not overlap.
    // Attributes in any order: Plot writes height before y.
    const attr = (tag: string, name: string) => Number(new RegExp(`\\b${name}="([\\d.]+)"`).exec(tag)?.[1]);
    const rects = (cls: string) => {
      const i = fig.svg.indexOf(`class="${cls}"`);
      return [...fig.svg.slice(i, fig.svg.indexOf('</g>', i)).matchAll(/<rect[^>]*>/g)].map(([tag]) => [attr(tag, 'y'), attr(tag, 'y') + attr(tag, 'height')]);
    };
    const predicted = rects('predicted');
    const measured = rects('measured');
    expect(predicted).toHaveLength(3);
    expect(measured).toHaveLength(3);
    for (const [k, [, bottom]] of predicted.entries()) {
      expect(Number.isFinite(bottom)).toBe(true);
      expect(measured[k][0]).toBeGreaterThan(bottom);
    }
    expect(fig.svg.replace(/<[^>]+>/g, ' ')).toMatch(/predicted · netns\/iptables · kind-worker · traced from PREROUTING\s+vs\s+captured ·\s+netns\/iptables · kind-worker/);
    expect(fig.width).toBeLessThanOrEqual(1280);
    expect(fig.height).toBeLessThanOrEqual(720);
    expect(darkColumnsRightOf(fig.svg, fig.width - 8)).toBe(0);
    expect(() => traceTreeFigure(result, { observed: report, measured: trafficMeasurement() })).toThrow(/not both/);
  });

  it('scaling: predicted lines, measured dots', () => {
    const fig = scalingFigure(scalingPoints());
    for (const s of ['iptables', 'ipvs', 'nftables', 'predicted (model)', 'measured (lab)', 'services']) expect(fig.svg).toContain(s);
    expect(markTags(fig.svg, 'predicted')).toEqual(['path', 'path', 'path']);
    expect(markTags(fig.svg, 'measured')).toEqual(['circle', 'circle', 'circle']);
  });

  it('refuses Plot options that would turn the SVG into an HTML figure', () => {
    expect(() => renderFigure({ color: { legend: true }, marks: [Plot.dot([1, 2], { x: (d: number) => d, fill: (d: number) => (d === 1 ? 'a' : 'b') })] })).toThrow(/legend/);
  });

  it('display is a no-op outside tslab and hands back the SVG', () => {
    const fig = renderFigure({ marks: [Plot.ruleY([0])] });
    expect(display(fig)).toBe(fig.svg);
  });
});

describe('PNG output', () => {
  it('renders every figure to a PNG of the SVG size × scale', () => {
    const figs = [
      ruleCountsFigure(ruleCountRows()), trafficSplitFigure(trafficMeasurement()), traceTreeFigure(traceResult()), scalingFigure(scalingPoints()),
    ];
    for (const fig of figs) {
      const png = toPng(fig.svg, { scale: 1.5 });
      expect([...png.slice(0, 8)]).toEqual(PNG_SIGNATURE);
      const { width, height } = pngSize(png);
      expect(width).toBe(Math.round(fig.width * 1.5));
      expect(height).toBe(Math.round(fig.height * 1.5));
    }
  });

  it('draws text with the bundled font: the title puts dark pixels where it stands', () => {
    // A long bar chart whose title is the only thing drawn in the top rows.
    const base = { width: 400, marks: [Plot.barY([3, 5], { x: (_: number, i: number) => i, y: (d: number) => d })] };
    const withTitle = renderFigure({ ...base, title: 'Rules per mode' });
    const untitled = renderFigure({ ...base, title: '   ' }); // same layout, nothing to draw
    expect(withTitle.height).toBe(untitled.height);
    const dark = (svg: string) => {
      const { pixels, width } = decode(svg);
      let n = 0;
      for (let y = 12; y < 36; y++) {
        for (let x = 0; x < width; x++) {
          const i = 4 * (y * width + x);
          if (pixels[i + 3] > 0 && pixels[i] + pixels[i + 1] + pixels[i + 2] < 300) n++;
        }
      }
      return n;
    };
    expect(dark(untitled.svg)).toBe(0);
    expect(dark(withTitle.svg)).toBeGreaterThan(200);
    expect(Buffer.compare(Buffer.from(toPng(withTitle.svg)), Buffer.from(toPng(untitled.svg)))).not.toBe(0);
  });
});
