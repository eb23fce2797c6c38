/** Small, exact-enough statistics for predictions and their checks. No dependencies. */

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Binomial(n, p) probability mass at k. */
export function binomialPmf(k: number, n: number, p: number): number {
  if (k < 0 || k > n) return 0;
  if (p === 0) return k === 0 ? 1 : 0;
  if (p === 1) return k === n ? 1 : 0;
  return Math.exp(logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1) + k * Math.log(p) + (n - k) * Math.log1p(-p));
}

/**
 * Central interval holding `level` of Binomial(n, p): the smallest k with CDF ≥ (1−level)/2
 * and the smallest k with CDF ≥ (1+level)/2. Walks outward from the mean, so it costs
 * O(√n) terms rather than O(n).
 */
export function binomialInterval(n: number, p: number, level = 0.95): [number, number] {
  if (n === 0) return [0, 0];
  const lowTail = (1 - level) / 2;
  const highTail = (1 + level) / 2;
  const mean = n * p;
  const sd = Math.sqrt(n * p * (1 - p));
  const from = Math.max(0, Math.floor(mean - 12 * sd - 2));
  const to = Math.min(n, Math.ceil(mean + 12 * sd + 2));
  let cdf = 0;
  let lo = -1;
  let hi = to;
  for (let k = from; k <= to; k++) {
    cdf += binomialPmf(k, n, p);
    if (lo < 0 && cdf >= lowTail) lo = k;
    if (cdf >= highTail) {
      hi = k;
      break;
    }
  }
  return [Math.max(lo, 0), hi];
}

/** Regularized lower incomplete gamma P(a, x) (series below a+1, continued fraction above). */
export function regularizedGammaP(a: number, x: number): number {
  if (x <= 0) return 0;
  const lnPre = -x + a * Math.log(x) - logGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 10_000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return Math.exp(lnPre) * sum;
  }
  // Lentz's continued fraction for Q(a, x).
  let b = x + 1 - a;
  let c = 1 / 1e-300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return 1 - Math.exp(lnPre) * h;
}

export interface ChiSquareResult {
  statistic: number;
  degreesOfFreedom: number;
  /** Probability of a statistic at least this large if the prediction is right. */
  pValue: number;
}

/** Pearson's goodness-of-fit test of observed counts against predicted probabilities. */
export function chiSquareTest(observed: readonly number[], probabilities: readonly number[]): ChiSquareResult {
  if (observed.length !== probabilities.length || observed.length < 2) {
    throw new Error('chiSquareTest: need at least two categories, with one probability per count');
  }
  const n = observed.reduce((a, b) => a + b, 0);
  let statistic = 0;
  observed.forEach((o, i) => {
    const e = n * probabilities[i];
    if (e <= 0) throw new Error(`chiSquareTest: category ${i} has expected count 0`);
    statistic += (o - e) ** 2 / e;
  });
  const df = observed.length - 1;
  return { statistic, degreesOfFreedom: df, pValue: 1 - regularizedGammaP(df / 2, statistic / 2) };
}

/** A small seeded PRNG (xoshiro128**), so Monte Carlo checks repeat exactly. */
export function seededUint32(seed: number): () => number {
  let a = seed >>> 0 || 1;
  let b = 0x9e3779b9;
  let c = 0x243f6a88;
  let d = 0xb7e15162;
  const next = () => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
