import { describe, expect, it } from 'vitest';
import {
  evalLine, fitCostModels, fitLine, median, percentiles, predictCost, predictCounts, quantile, rulesTraversed, syncObjects,
  type CostObservation,
} from '../../lib/sim/index.ts';

describe('fitLine: ordinary least squares', () => {
  it('recovers an exact line', () => {
    expect(fitLine([1, 2, 3], [3, 5, 7])).toEqual({ intercept: 1, slope: 2, n: 3, r2: 1 });
  });

  it('fits noisy points to the textbook answer', () => {
    // x̄ = 2.5, ȳ = 3, Sxx = 5, Sxy = 4: slope 0.8, intercept 1; SSR = 1.8 of SST = 5.
    const f = fitLine([1, 2, 3, 4], [2, 2, 4, 4]);
    expect(f.slope).toBeCloseTo(0.8, 12);
    expect(f.intercept).toBeCloseTo(1, 12);
    expect(f.r2).toBeCloseTo(1 - 0.8 / 4, 12);
    expect(evalLine(f, 10)).toBeCloseTo(9, 12);
  });

  it('is flat through the mean when x does not vary', () => {
    expect(fitLine([6, 6, 6], [1, 2, 6])).toEqual({ intercept: 3, slope: 0, n: 3, r2: null });
  });

  it('refuses what it cannot fit', () => {
    expect(() => fitLine([], [])).toThrow(/no points/);
    expect(() => fitLine([1, 2], [1])).toThrow(/2 x values but 1 y values/);
    expect(() => fitLine([1, Number.NaN], [1, 2])).toThrow(/not a finite number/);
  });
});

describe('median and nearest-rank quantiles', () => {
  it('median of odd and even counts', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('p50 and p99 by nearest rank', () => {
    const xs = Array.from({ length: 200 }, (_, i) => 200 - i); // 1..200, shuffled order
    expect(percentiles(xs)).toEqual({ p50: 100, p99: 198 });
    expect(quantile([7], 0.99)).toBe(7);
    expect(percentiles([3, 1, 2])).toEqual({ p50: 2, p99: 3 });
    expect(() => quantile([], 0.5)).toThrow();
    expect(() => quantile([1], 0)).toThrow(/\(0, 1\]/);
  });
});

describe('the model\'s inputs', () => {
  it('syncObjects counts what lib/sim says a full sync writes', () => {
    expect(syncObjects('iptables', 2000, 10)).toBe(64_005 + 4);
    const n = predictCounts('nftables', { services: 100, endpoints: 10 }).nftables!;
    expect(syncObjects('nftables', 100, 10)).toBe(n.rules);
    const v = predictCounts('ipvs', { services: 100, endpoints: 10 }).ipvs!;
    expect(syncObjects('ipvs', 100, 10)).toBe(Object.values(v.ipsetMembers).reduce((a, b) => a + b, 0) + v.iptables.nat.rules + v.iptables.filter.rules);
  });

  it('rulesTraversed grows with position in iptables mode only', () => {
    // OUTPUT jump, position in KUBE-SERVICES, masquerade rule, (E+1)/2 jumps, 2 SEP rules.
    expect(rulesTraversed('iptables', 1000, 10, 'first')).toBe(1 + 1 + 1 + 5.5 + 2);
    expect(rulesTraversed('iptables', 1000, 10, 'last')).toBe(1 + 1000 + 1 + 5.5 + 2);
    expect(rulesTraversed('nftables', 1000, 10, 'last')).toBe(rulesTraversed('nftables', 10, 10, 'first'));
    expect(rulesTraversed('ipvs', 10_000, 10, 'last')).toBe(4);
    expect(() => rulesTraversed('iptables', 0, 10, 'first')).toThrow();
  });
});

/** Observations made from known lines, so the fit must give those lines back. */
function synthetic(mode: 'iptables' | 'nftables', sizes: number[], E = 10): CostObservation[] {
  return sizes.map((S) => {
    const objects = syncObjects(mode, S, E);
    const lat = (pos: 'first' | 'last') => {
      const x = rulesTraversed(mode, S, E, pos);
      return { p50: 50 + 0.03 * x, p99: 90 + 0.05 * x };
    };
    return {
      mode, services: S, endpoints: E,
      syncMs: 0.002 * objects ** 1.5, changeMs: 0.5 * objects ** 0.25,
      firstServiceLatencyUs: mode === 'iptables' ? lat('first') : { p50: 70, p99: 120 },
      lastServiceLatencyUs: mode === 'iptables' ? lat('last') : { p50: 72, p99: 118 },
    };
  });
}

describe('fitCostModels and predictCost', () => {
  const obs = [...synthetic('iptables', [10, 100, 1000, 5000, 10_000]), ...synthetic('nftables', [10, 100, 1000, 5000, 10_000])];
  // The large sizes are wrong on purpose: a fit that used them would not give the lines back.
  for (const o of obs) if (o.services > 1000) o.syncMs = 1e9;
  const models = fitCostModels(obs);

  it('fits only the sizes up to maxServices', () => {
    expect(models.iptables!.fittedOn).toEqual([10, 100, 1000]);
    expect(models.iptables!.notes).toEqual([]);
  });

  it('gives the generating lines back', () => {
    const m = models.iptables!;
    // Times are power laws: fitted in log-log space, the exponent is the slope.
    expect(m.syncMs!.space).toBe('log-log');
    expect(Math.exp(m.syncMs!.intercept)).toBeCloseTo(0.002, 9);
    expect(m.syncMs!.slope).toBeCloseTo(1.5, 9);
    expect(m.changeMs!.slope).toBeCloseTo(0.25, 9);
    expect(m.latencyP50Us!.intercept).toBeCloseTo(50, 9);
    expect(m.latencyP50Us!.slope).toBeCloseTo(0.03, 12);
    expect(m.latencyP99Us!.slope).toBeCloseTo(0.05, 12);
    expect(m.latencyP50Us!.n).toBe(6); // first and last service at 3 sizes
  });

  it('predicts the large sizes from the small ones', () => {
    const p = predictCost(models.iptables!, 10_000, 10);
    expect(p.syncMs! / (0.002 * (5 + 10_000 * 32 + 4) ** 1.5)).toBeCloseTo(1, 9);
    expect(p.lastServiceLatencyUs!.p50).toBeCloseTo(50 + 0.03 * (1 + 10_000 + 1 + 5.5 + 2), 6);
    expect(p.firstServiceLatencyUs!.p50).toBeCloseTo(50 + 0.03 * 10.5, 6);
    expect(p.x).toEqual({ syncObjects: 320_009, firstRulesTraversed: 10.5, lastRulesTraversed: 10_009.5 });
  });

  it('a hash lookup\'s latency is the mean, whatever the size', () => {
    const m = models.nftables!;
    expect(m.latencyP50Us).toEqual({ intercept: 71, slope: 0, n: 6, r2: null });
    const p = predictCost(m, 10_000, 10);
    expect(p.firstServiceLatencyUs).toEqual({ p50: 71, p99: 119 });
    expect(p.lastServiceLatencyUs).toEqual({ p50: 71, p99: 119 });
  });

  it('says why there is no line when one size was measured', () => {
    const one = fitCostModels(synthetic('iptables', [10, 5000]), { maxServices: 1000 }).iptables!;
    expect(one.syncMs).toBeNull();
    expect(one.latencyP50Us).toBeNull();
    expect(one.notes[0]).toMatch(/two or more sizes ≤ 1000 services, has 1/);
    const p = predictCost(one, 5000, 10);
    expect(p).toMatchObject({ syncMs: null, changeMs: null, firstServiceLatencyUs: null, lastServiceLatencyUs: null });
  });

  it('leaves out what was not measured', () => {
    const o = synthetic('iptables', [10, 100]).map((x) => ({ ...x, changeMs: null, lastServiceLatencyUs: null }));
    const m = fitCostModels(o).iptables!;
    expect(m.changeMs).toBeNull();
    expect(m.syncMs).not.toBeNull();
    expect(m.latencyP50Us!.n).toBe(2);
  });
});

describe('times as power laws', () => {
  it('a cost that grows faster than linear is fitted without predicting negative times', async () => {
    const { fitPower, evalLine } = await import('../../lib/sim/cost-model.ts');
    // What this kernel showed for iptables-restore: 10, 100, 1000 services → 49, 223, 13,525 ms.
    const fit = fitPower([329, 3209, 32009], [48.6, 223.1, 13525.1]);
    for (const x of [10, 329, 3209, 32009, 160009]) expect(evalLine(fit, x)).toBeGreaterThan(0);
    expect(fit.slope).toBeGreaterThan(1);
    expect(() => fitPower([1, 2], [0, 3])).toThrow(/not positive/);
  });
});
