import { describe, expect, it } from 'vitest';
import { binomialInterval, binomialPmf, chiSquareTest, regularizedGammaP } from '../../lib/sim/stats.ts';
import { iptablesShares, monteCarloSplit, predictSplit } from '../../lib/sim/split.ts';

describe('statistics', () => {
  it('binomial interval agrees with summing the mass directly', () => {
    for (const [n, p] of [[30, 0.2], [3000, 1 / 3], [1000, 0.5], [50, 0.01]] as const) {
      const [lo, hi] = binomialInterval(n, p);
      let below = 0;
      for (let k = 0; k < lo; k++) below += binomialPmf(k, n, p);
      let upTo = below;
      for (let k = lo; k <= hi; k++) upTo += binomialPmf(k, n, p);
      expect(below).toBeLessThan(0.025);
      expect(below + binomialPmf(lo, n, p)).toBeGreaterThanOrEqual(0.025);
      expect(upTo).toBeGreaterThanOrEqual(0.975);
      expect(upTo - binomialPmf(hi, n, p)).toBeLessThan(0.975);
    }
  });

  it('chi-square p-values match the textbook critical values', () => {
    expect(chiSquareTest([60, 40], [0.5, 0.5]).statistic).toBeCloseTo(4, 10);
    expect(1 - regularizedGammaP(0.5, 3.841459 / 2)).toBeCloseTo(0.05, 5);
    expect(1 - regularizedGammaP(1, 5.991465 / 2)).toBeCloseTo(0.05, 5);
    expect(1 - regularizedGammaP(5, 18.307038 / 2)).toBeCloseTo(0.05, 5); // df 10
    expect(1 - regularizedGammaP(50, 124.342 / 2)).toBeCloseTo(0.05, 4); // df 100
    expect(1 - regularizedGammaP(50, 149.449 / 2)).toBeCloseTo(0.001, 5); // df 100, far tail
  });
});

describe('traffic split predictions', () => {
  it('iptables shares use the probabilities the kernel stores', () => {
    const three = iptablesShares(3);
    expect(three[0]).toBe(715827883 / 2 ** 31); // printed by iptables-save as 0.33333333349
    expect(three.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 15);
    // 0.25 and 0.5 are exact in 2^-31 steps, but 1/3 is not, so the second of four endpoints
    // gets slightly more than a quarter and the third slightly less.
    const four = iptablesShares(4);
    expect(four[0]).toBe(0.25);
    expect(four[1]).toBe(0.75 * (715827883 / 2 ** 31));
    expect(four[1]).toBeGreaterThan(0.25);
    expect(four[2]).toBeLessThan(0.25);
    expect(three[0]).not.toBe(1 / 3);
  });

  it('rr is deterministic; random modes get binomial intervals', () => {
    const rr = predictSplit('ipvs', 3, 3000);
    expect(rr.shares.map((s) => [s.low, s.high])).toEqual([[1000, 1000], [1000, 1000], [1000, 1000]]);
    expect(predictSplit('ipvs', 3, 10).shares[0]).toMatchObject({ low: 3, high: 4 });
    const nft = predictSplit('nftables', 3, 3000);
    for (const s of nft.shares) {
      expect(s.low).toBeLessThan(1000);
      expect(s.high).toBeGreaterThan(1000);
      expect(s.high - s.low).toBeLessThan(110); // ±1.96·√(3000·⅓·⅔) ≈ ±50
    }
  });

  it('Monte Carlo draws as the kernel does and agrees with the prediction', () => {
    for (const mode of ['iptables', 'nftables'] as const) {
      const n = 5;
      const counts = monteCarloSplit(mode, n, 200_000, 7);
      const probs = predictSplit(mode, n, 1).shares.map((s) => s.probability);
      expect(chiSquareTest(counts, probs).pValue).toBeGreaterThan(0.001);
      // The same test must reject a wrong prediction.
      expect(chiSquareTest(counts, [0.4, 0.15, 0.15, 0.15, 0.15]).pValue).toBeLessThan(1e-9);
    }
    expect(monteCarloSplit('ipvs', 3, 3001, 3).sort()).toEqual([1000, 1000, 1001]);
    expect(monteCarloSplit('iptables', 3, 1000, 42)).toEqual(monteCarloSplit('iptables', 3, 1000, 42));
  });
});
