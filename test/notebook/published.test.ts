import { describe, expect, it } from 'vitest';
import {
  claimRows, formatDuration, oursAt, publishedFigureRows, publishedSourceRows, sideBySideRows, uncheckedClaimLines,
} from '../../lib/notebook/published.ts';
import { readRecordedScale } from '../../lib/scale/recorded.ts';
import type { ScaleResult } from '../../lib/scale/types.ts';
import { PUBLISHED_CLAIMS, PUBLISHED_FIGURES, PUBLISHED_SOURCES } from '../../lib/sim/published.ts';

async function recorded(): Promise<ScaleResult> {
  const r = await readRecordedScale();
  if (!r) throw new Error('labs/results/results.json holds no scale sweep: these tests read the recorded one');
  return r.result;
}

describe('published figures and claims beside our sweeps', () => {
  it('writes durations as people say them', () => {
    expect([formatDuration(2), formatDuration(11 * 60_000), formatDuration(5 * 3_600_000)]).toEqual(['2 ms', '11 min', '5.0 h']);
  });

  it('lists each source with where it is and how we know what it says', () => {
    const rows = publishedSourceRows();
    expect(rows).toHaveLength(PUBLISHED_SOURCES.length);
    expect(rows[0]).toEqual([PUBLISHED_SOURCES[0].title, `${PUBLISHED_SOURCES[0].where} — ${PUBLISHED_SOURCES[0].url}`, 'source-text', PUBLISHED_SOURCES[0].testbed]);
  });

  it('says what our sweep has at a published size: measured, not run and why, or nothing', async () => {
    const sweep = await recorded();
    expect(oursAt(null, 'iptables', 5000)).toBe('no recorded sweep (npm run bench)');
    expect(oursAt(sweep, 'ipvs', 5000)).toBe('ipvs is not in the recorded sweep');
    expect(oursAt(sweep, 'iptables', 123)).toBe('not a size of the recorded sweep');
    // The recorded sweep ran iptables on both backends: one answer per backend.
    expect(oursAt(sweep, 'iptables', 5000)).toMatch(/^iptables-legacy: [\d.]+ ms measured \(one-endpoint change\); iptables-nft: not run: a full sync would take about \d+ s/);
    const at = { ...sweep, points: [{ ...sweep.points[0], mode: 'iptables' as const, variant: 'iptables-nft', services: 5000, measured: { ...sweep.points[0].measured, changeMs: 86.12 } }], skippedSteps: [] };
    expect(oursAt(at, 'iptables', 5000)).toBe('86.1 ms measured (one-endpoint change)');
    const skipped = { ...sweep, points: [], skippedSteps: [{ mode: 'iptables' as const, variant: 'iptables-nft', services: 5000, reason: 'a full sync would take about 73 s', estimatedSyncMs: 73_000 }] };
    expect(oursAt(skipped, 'iptables', 5000)).toBe('not run: a full sync would take about 73 s');
    const rows = publishedFigureRows(null);
    expect(rows).toHaveLength(PUBLISHED_FIGURES.length);
    expect(rows[0]).toEqual(['huawei-kubecon-2017', 'iptables', 5000, '11 min', 'time to add one rule, 2017 kube-proxy', 'no recorded sweep (npm run bench)']);
  });

  it('checks each claim against each sweep given, with a verdict in words', async () => {
    const sweep = await recorded();
    const rows = claimRows([{ label: 'live', sweep: null }, { label: 'recorded', sweep }]);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => /^recorded, iptables-(legacy|nft) vs nftables$/.test(r[0]) && ['holds', 'does not hold', 'cannot tell'].includes(r[2]))).toBe(true);
    expect(new Set(rows.map((r) => r[0]))).toEqual(new Set(['recorded, iptables-legacy vs nftables', 'recorded, iptables-nft vs nftables']));
    expect(rows.map((r) => r[1])).toContain(PUBLISHED_CLAIMS[0].statement);
    expect(claimRows([{ label: 'recorded', sweep: { points: [] } }]).map((r) => r[2])).toEqual(['cannot tell', 'cannot tell', 'cannot tell', 'cannot tell']);
  });

  it('puts measured, modelled and published side by side where the model was not fitted', async () => {
    const sweep = await recorded();
    const rows = sideBySideRows(sweep);
    expect(rows.map((r) => `${r[0]} ${r[1]}`)).toEqual(sweep.points.filter((p) => !p.predicted.inFit).map((p) => `${p.variant} ${p.services}`));
    for (const r of rows) expect(r[2]).toMatch(/^[\d.]+ \[[\d.]+\]$/);
    const legacy5k = rows.find((r) => r[0] === 'iptables-legacy' && r[1] === '5000')!;
    expect(legacy5k[5]).toMatch(/^Scale Kubernetes to Support 50,000 Services: 11 min, time to add one rule, 2017 kube-proxy \(secondary\); blog \(source text\): nftables p50 ≈ iptables p01 — (holds|does not hold|cannot tell) here \(iptables-legacy vs nftables\)$/);
    expect(sideBySideRows(null)).toEqual([]);
  });

  it('names the claims no sweep checks, and why', () => {
    const [tigera] = uncheckedClaimLines(false);
    expect(tigera).toMatch(/^Not checked here: "The difference between iptables and IPVS modes is small .*" \(Comparing kube-proxy modes: iptables or IPVS\?, secondary\) needs IPVS's data path, which this kernel lacks\.$/);
    expect(uncheckedClaimLines(true)[0]).toMatch(/needs IPVS's data path: this kernel has it, but the checks compare iptables and nftables only\.$/);
  });
});
