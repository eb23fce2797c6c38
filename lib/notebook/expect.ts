/**
 * One-line self-checks for notebook cells: `expect(m.ok, 'every request answered').toBe(m.total)`.
 * A failed check throws, so Run All stops at the cell whose claim the lab did not bear out; a
 * passed one with a description prints it, so the audience sees what was checked.
 */
import { isDeepStrictEqual } from 'node:util';
import { received } from '../options/index.ts';

/** A claim a notebook made about the lab that the lab did not bear out. */
export class CheckFailed extends Error {
  override readonly name = 'CheckFailed';
}

export interface Expectation<T> {
  toBe(expected: T): void;
  toEqual(expected: unknown): void;
  toBeGreaterThan(n: number): void;
  toBeGreaterThanOrEqual(n: number): void;
  toBeLessThan(n: number): void;
  toBeLessThanOrEqual(n: number): void;
  /** |actual − expected| < 10^−digits / 2, as vitest's toBeCloseTo. */
  toBeCloseTo(expected: number, digits?: number): void;
  toMatch(pattern: RegExp | string): void;
  toContain(item: unknown): void;
  toHaveLength(n: number): void;
  toBeTruthy(): void;
}

export function expect<T>(actual: T, what?: string): Expectation<T> {
  const claim = (ok: boolean, wanted: string) => {
    if (!ok) throw new CheckFailed(`${what ? `${what}: ` : ''}expected ${wanted}, got ${received(actual)}`);
    if (what) console.log(`✓ ${what}`);
  };
  const num = (): number => {
    if (typeof actual !== 'number') throw new CheckFailed(`${what ? `${what}: ` : ''}expected a number, got ${received(actual)}`);
    return actual;
  };
  return {
    toBe: (e) => claim(Object.is(actual, e), received(e)),
    toEqual: (e) => claim(isDeepStrictEqual(actual, e), received(e)),
    toBeGreaterThan: (n) => claim(num() > n, `more than ${n}`),
    toBeGreaterThanOrEqual: (n) => claim(num() >= n, `at least ${n}`),
    toBeLessThan: (n) => claim(num() < n, `less than ${n}`),
    toBeLessThanOrEqual: (n) => claim(num() <= n, `at most ${n}`),
    toBeCloseTo: (e, digits = 2) => claim(Math.abs(num() - e) < 10 ** -digits / 2, `${e} (to ${digits} decimals)`),
    toMatch: (p) => claim(typeof actual === 'string' && (typeof p === 'string' ? actual.includes(p) : p.test(actual)), `text matching ${String(p)}`),
    toContain: (item) => claim(
      (typeof actual === 'string' && typeof item === 'string' && actual.includes(item))
        || (Array.isArray(actual) && actual.some((x) => isDeepStrictEqual(x, item))),
      `something containing ${received(item)}`,
    ),
    toHaveLength: (n) => claim((typeof actual === 'string' || Array.isArray(actual)) && actual.length === n, `length ${n}`),
    toBeTruthy: () => claim(Boolean(actual), 'a true value'),
  };
}
