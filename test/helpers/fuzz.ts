/**
 * Totality checks for text parsers, built on fast-check.
 *
 * A parser of tool output must either return a value or throw its typed error (ParseError by
 * default) for ANY input: never a TypeError from a missing field, a RangeError from a runaway
 * loop, or a hang. `expectTotal` feeds a parser three kinds of input:
 *
 *  1. arbitrary strings (full Unicode, plus a dense alphabet of the characters tool output is
 *     made of: digits, dashes, quotes, brackets, `=`, `:`, `/`, newlines …);
 *  2. mutations of real seed dumps at the line level: delete, duplicate, swap, truncate a line,
 *     inject junk characters, replace a line with a very long one, cut the whole text short;
 *  3. each seed unchanged (it must parse without throwing at all).
 *
 * Hangs are guarded by budgets, not timing asserts: a fixed number of runs per property and
 * fast-check's `interruptAfterTimeLimit`, which stops generating new cases once the time budget
 * is spent (an interrupted run is not a failure). A parser that is quadratic on long lines shows
 * up as a test timeout, not a flaky assertion.
 *
 * Usage (in a vitest `it`):
 *
 *   expectTotal(parseConntrack, [realDump]);
 *   expectTotal(parseIpRouteJson, [json], { isExpectedError: (e) => e instanceof ParseError });
 *   expectTotal(parse, seeds, { check: (out, input) => expect(out.rules.length).toBeLessThan(...) });
 */
import fc from 'fast-check';
import { ParseError, splitLines } from '../../lib/parse/errors.ts';

export interface TotalityOptions<T> {
  /** Which thrown values are acceptable rejections. Default: `instanceof ParseError`. */
  isExpectedError?: (e: unknown) => boolean;
  /**
   * When the expected error is a ParseError, also require its line number to point into the
   * input: 1 … lines + 1 (the extra one for "end of input"). Default true.
   */
  checkLineNumbers?: boolean;
  /** Extra invariant on successful results; throw (e.g. with `expect`) to fail. */
  check?: (result: T, input: string) => void;
  /** Runs per property (arbitrary strings, and mutated seeds). Default 300 each. */
  numRuns?: number;
  /** Budget in ms per property after which fast-check stops starting new runs. Default 10 s. */
  timeLimitMs?: number;
  /** Length of the "very long line" mutation. Default 100_000 characters. */
  longLine?: number;
  /** Fixed seed for reproducible runs (fast-check prints the seed of a failure either way). */
  seed?: number;
}

/** Characters tool dumps are made of, so random strings hit the parser's grammar often. */
const DENSE = [
  ...'-!"\\\'[]{}():=,./*# \t\r\n0123456789abcdefxyzACDEKMNPRSTU_+%',
  'src=', 'dst=', '-A ', '-m ', '-j ', '--', '*nat', 'COMMIT', ':KUBE-SVC - [0:0]', '[0:0] ',
  'Chain ', '(policy ACCEPT)', 'tcp', '/* ', ' */', '[ASSURED]', '{', '}', '"dst":', 'null', '1e999',
];

const denseString = fc.array(fc.constantFrom(...DENSE), { maxLength: 200 }).map((parts) => parts.join(''));

/** One line-level edit of a seed dump; indices wrap around the line count. */
export type Mutation =
  | { kind: 'delete'; at: number }
  | { kind: 'duplicate'; at: number }
  | { kind: 'swap'; at: number; with: number }
  | { kind: 'truncateLine'; at: number; keep: number }
  | { kind: 'inject'; at: number; pos: number; junk: string }
  | { kind: 'longLine'; at: number }
  | { kind: 'cut'; keep: number };

const junk = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.string({ unit: 'binary', maxLength: 4 }),
  fc.constantFrom(...DENSE),
);

/** Arbitrary line-level edits, for harnesses of their own. */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ kind: fc.constant('truncateLine' as const), at: fc.nat(), keep: fc.nat() }),
  fc.record({ kind: fc.constant('inject' as const), at: fc.nat(), pos: fc.nat(), junk }),
  fc.record({ kind: fc.constant('longLine' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('cut' as const), keep: fc.nat() }),
);

/** Apply line-level mutations to a dump. Exported so other harnesses can reuse it. */
export function mutateLines(text: string, mutations: readonly Mutation[], longLine = 100_000): string {
  let lines = text.split('\n');
  for (const m of mutations) {
    const n = lines.length;
    if (m.kind === 'cut') {
      const joined = lines.join('\n');
      lines = joined.slice(0, m.keep % (joined.length + 1)).split('\n');
      continue;
    }
    const i = m.at % n;
    const line = lines[i];
    switch (m.kind) {
      case 'delete':
        lines.splice(i, 1);
        if (lines.length === 0) lines = [''];
        break;
      case 'duplicate':
        lines.splice(i, 0, line);
        break;
      case 'swap': {
        const j = m.with % n;
        [lines[i], lines[j]] = [lines[j], line];
        break;
      }
      case 'truncateLine':
        lines[i] = line.slice(0, m.keep % (line.length + 1));
        break;
      case 'inject': {
        const p = m.pos % (line.length + 1);
        lines[i] = line.slice(0, p) + m.junk + line.slice(p);
        break;
      }
      case 'longLine': {
        // Repeat the line's own tokens: long but still grammatical, which is what exposes
        // quadratic loops; fall back to junk for empty lines.
        const unit = line.length > 0 ? `${line} ` : 'x ';
        lines[i] = unit.repeat(Math.ceil(longLine / unit.length)).slice(0, longLine);
        break;
      }
    }
  }
  return lines.join('\n');
}

function lineCount(input: string): number {
  return Math.max(1, splitLines(input).length);
}

/** Run `parse` on `input`; return a failure description, or null when the outcome is acceptable. */
function judge<T>(parse: (s: string) => T, input: string, opts: TotalityOptions<T>): string | null {
  const isExpected = opts.isExpectedError ?? ((e: unknown) => e instanceof ParseError);
  let result: T;
  try {
    result = parse(input);
  } catch (e) {
    if (!isExpected(e)) {
      return `threw an unexpected ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e)}`;
    }
    if ((opts.checkLineNumbers ?? true) && e instanceof ParseError) {
      const max = lineCount(input);
      // Whole-text formats (JSON) may not split lines like the parser does; only bound it.
      if (!Number.isInteger(e.line) || e.line < 1 || e.line > max + 1) {
        return `ParseError names line ${e.line}, outside 1..${max}: ${e.message}`;
      }
    }
    return null;
  }
  opts.check?.(result, input);
  return null;
}

function preview(s: string): string {
  return JSON.stringify(s.length > 400 ? `${s.slice(0, 400)}… (${s.length} chars)` : s);
}

/**
 * Assert that `parse` is total on arbitrary and mutated input: it returns, or throws the
 * expected typed error. Seeds must parse cleanly. Throws (failing the enclosing test) with the
 * shrunk counterexample otherwise.
 */
export function expectTotal<T>(parse: (s: string) => T, seeds: readonly string[], opts: TotalityOptions<T> = {}): void {
  for (const [i, seed] of seeds.entries()) {
    try {
      const r = parse(seed);
      opts.check?.(r, seed);
    } catch (e) {
      throw new Error(`seed ${i} does not parse: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const params: fc.Parameters<[string]> = {
    numRuns: opts.numRuns ?? 300,
    interruptAfterTimeLimit: opts.timeLimitMs ?? 10_000,
    markInterruptAsFailure: false,
    // Put the parser's own failure (input preview, unexpected error) in the report.
    includeErrorInReport: true,
    seed: opts.seed,
  };
  const property = (input: string) => {
    const failure = judge(parse, input, opts);
    if (failure) throw new Error(`parser on ${preview(input)} ${failure}`);
  };

  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 100 }), denseString), property), params);

  if (seeds.length > 0) {
    const mutated = fc
      .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 6 }))
      .map(([s, ms]) => mutateLines(seeds[s], ms, opts.longLine ?? 100_000));
    fc.assert(fc.property(mutated, property), params);
  }
}
