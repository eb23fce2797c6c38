/**
 * Totality and rejection checks for text parsers, built on fast-check.
 *
 * A parser of tool output must either return a value or throw its typed error (ParseError by
 * default) for ANY input: never a TypeError from a missing field, a RangeError from a runaway
 * loop, or a hang. And it must not return a value for garbage. `expectTotal` feeds it:
 *
 *  1. binary data: random bytes with at least one byte no tool prints (NUL, a control
 *     character, invalid UTF-8), and each seed with one such character injected. These must be
 *     REJECTED, with a ParseError naming the line the character is on;
 *  2. random text (full Unicode, printable ASCII, and a dense alphabet of the characters and
 *     words tool output is made of). Accepting one is allowed only when it really is a dump:
 *     it must survive the format's round trip (`roundTrip`, e.g. parse ∘ render), or, for a
 *     format without one, hold nothing (`blank`) and parse to what empty input parses to;
 *  3. mutations of real seed dumps at the line level (delete, duplicate, swap, truncate, inject
 *     junk, a very long line, cut short): parse or ParseError, and an accepted mutation must
 *     survive the round trip too;
 *  4. each seed unchanged (it must parse, and round-trip).
 *
 * Hangs are guarded by budgets, not timing asserts: a fixed number of runs per property and
 * fast-check's `interruptAfterTimeLimit`, which stops generating new cases once the time budget
 * is spent (an interrupted run is not a failure). A parser that is quadratic on long lines shows
 * up as a test timeout, not a flaky assertion.
 *
 * Usage (in a vitest `it`):
 *
 *   expectTotal(parseConntrack, [realDump], { roundTrip: (t) => parseConntrack(renderConntrack(t)) });
 *   expectTotal(parseIptablesList, seeds, { blank: (s) => s.trim() === '' });
 */
import fc from 'fast-check';
import { expect } from 'vitest';
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
  /**
   * Write a result out and read it back (parse(render(r))). Random text the parser accepts, and
   * accepted mutations, must come back the same (compared through `comparable`).
   */
  roundTrip?: (result: T) => T;
  /** What a round trip must keep. Default: the whole result without `line` fields. */
  comparable?: (result: T) => unknown;
  /**
   * Input that holds nothing the format could describe (default: only blanks). Without a
   * roundTrip, random text may be accepted only when blank, and must then parse like ''.
   */
  blank?: (input: string) => boolean;
  /** What a blank input parses to (default: whatever '' parses to; none when '' is refused). */
  empty?: T;
  /** Words of the format added to the dense alphabet, so random text hits its grammar. */
  tokens?: readonly string[];
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

function denseString(extra: readonly string[]): fc.Arbitrary<string> {
  return fc.array(fc.constantFrom(...DENSE, ...extra), { maxLength: 200 }).map((parts) => parts.join(''));
}

/** Characters no tool prints as text, as UTF-16 (what a dump holds after decoding). */
export const BINARY_CHARS = ['\u0000', '\u0001', '\u0008', '\u000b', '\u000c', '\u001b', '\u007f', '\u0085', '\u009b', '\ufffd', '\ud800'];
/** Byte sequences that decode to one of them (0xff is invalid UTF-8, so U+FFFD). */
const BINARY_BYTES = [[0x00], [0x01], [0x07], [0x1b], [0x7f], [0xff], [0xc2, 0x85], [0xed, 0xa0, 0x80]];

/** Random bytes with at least one binary sequence, decoded as the CLI decodes files (UTF-8). */
export const binaryData: fc.Arbitrary<string> = fc
  .tuple(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.constantFrom(...BINARY_BYTES))
  .map(([bytes, at, bad]) => {
    const p = at % (bytes.length + 1);
    return Buffer.concat([bytes.subarray(0, p), Buffer.from(bad), bytes.subarray(p)]).toString('utf8');
  });

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

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
}

function withoutLines(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (k, x) => (k === 'line' ? undefined : x)) ?? 'null');
}

/** Run `parse` on `input`: the result, or a failure description when it threw wrongly. */
function attempt<T>(parse: (s: string) => T, input: string, opts: TotalityOptions<T>): { ok: true; value: T } | { ok: false; failure: string | null } {
  const isExpected = opts.isExpectedError ?? ((e: unknown) => e instanceof ParseError);
  try {
    return { ok: true, value: parse(input) };
  } catch (e) {
    if (!isExpected(e)) return { ok: false, failure: `threw an unexpected ${describe(e)}` };
    if ((opts.checkLineNumbers ?? true) && e instanceof ParseError) {
      const max = lineCount(input);
      // Whole-text formats (JSON) may not split lines like the parser does; only bound it.
      if (!Number.isInteger(e.line) || e.line < 1 || e.line > max + 1) {
        return { ok: false, failure: `ParseError names line ${e.line}, outside 1..${max}: ${e.message}` };
      }
    }
    return { ok: false, failure: null };
  }
}

/** An accepted result must survive the round trip; null when it does. */
function roundTripFailure<T>(result: T, opts: TotalityOptions<T>): string | null {
  if (!opts.roundTrip) return null;
  const view = opts.comparable ?? withoutLines;
  let again: T;
  try {
    again = opts.roundTrip(result);
  } catch (e) {
    return `was accepted, but its rendering does not parse: ${describe(e)}`;
  }
  try {
    expect(view(again)).toEqual(view(result));
  } catch (e) {
    return `was accepted, but does not survive the round trip: ${(e as Error).message}`;
  }
  return null;
}

interface Judge {
  mutated(input: string): string | null;
  text(input: string): string | null;
  binary(input: string, line?: number): string | null;
}

function judges<T>(parse: (s: string) => T, opts: TotalityOptions<T>): Judge {
  const blank = opts.blank ?? ((s: string) => s.trim() === '');
  const view = opts.comparable ?? withoutLines;
  let empty: { value: unknown } | null = opts.empty !== undefined ? { value: view(opts.empty) } : null;
  if (!empty) {
    try {
      empty = { value: view(parse('')) };
    } catch {
      // the format has no empty dump: then nothing blank may parse either
    }
  }
  return {
    mutated(input) {
      const r = attempt(parse, input, opts);
      if (!r.ok) return r.failure;
      opts.check?.(r.value, input);
      return roundTripFailure(r.value, opts);
    },
    text(input) {
      const r = attempt(parse, input, opts);
      if (!r.ok) return r.failure;
      opts.check?.(r.value, input);
      if (opts.roundTrip) return roundTripFailure(r.value, opts);
      if (!blank(input) || empty === null) return `was accepted, but it is not a dump: ${JSON.stringify(r.value)?.slice(0, 300)}`;
      try {
        expect(view(r.value)).toEqual(empty.value);
      } catch (e) {
        return `holds nothing, yet parsed to more than empty input does: ${(e as Error).message}`;
      }
      return null;
    },
    binary(input, line) {
      const r = attempt(parse, input, opts);
      if (r.ok) return `was accepted although it is binary: ${JSON.stringify(r.value)?.slice(0, 300)}`;
      if (r.failure) return r.failure;
      if (line === undefined) return null;
      try {
        parse(input);
      } catch (e) {
        if (e instanceof ParseError && e.line !== line) return `was rejected, but on line ${e.line}, not line ${line} where the binary character is: ${e.message}`;
      }
      return null;
    },
  };
}

function preview(s: string): string {
  return JSON.stringify(s.length > 400 ? `${s.slice(0, 400)}… (${s.length} chars)` : s);
}

/** Insert one binary character into a seed; returns the text and the 1-based line it is on. */
function injectBinary(seed: string, at: number, ch: string): { text: string; line: number } {
  const p = at % (seed.length + 1);
  let line = 1;
  for (let k = seed.indexOf('\n'); k >= 0 && k < p; k = seed.indexOf('\n', k + 1)) line++;
  return { text: seed.slice(0, p) + ch + seed.slice(p), line };
}

/**
 * Assert that `parse` is total and rejects garbage: binary input is refused naming its line,
 * random text is refused unless it is a real (round-tripping or empty) dump, mutated seeds parse
 * or are refused. Seeds must parse cleanly. Throws (failing the enclosing test) with the shrunk
 * counterexample otherwise.
 */
export function expectTotal<T>(parse: (s: string) => T, seeds: readonly string[], opts: TotalityOptions<T> = {}): void {
  const judge = judges(parse, opts);
  for (const [i, seed] of seeds.entries()) {
    let r: T;
    try {
      r = parse(seed);
    } catch (e) {
      throw new Error(`seed ${i} does not parse: ${e instanceof Error ? e.message : String(e)}`);
    }
    opts.check?.(r, seed);
    const rt = roundTripFailure(r, opts);
    if (rt) throw new Error(`seed ${i} ${rt}`);
  }
  const params = {
    numRuns: opts.numRuns ?? 300,
    interruptAfterTimeLimit: opts.timeLimitMs ?? 10_000,
    markInterruptAsFailure: false,
    // Put the parser's own failure (input preview, unexpected error) in the report.
    includeErrorInReport: true,
    seed: opts.seed,
  };
  const property = (kind: keyof Judge) => (input: string) => {
    const failure = judge[kind](input);
    if (failure) throw new Error(`parser on ${preview(input)} ${failure}`);
  };

  fc.assert(fc.property(binaryData, property('binary')), params);
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 100 }), fc.string({ unit: 'binary', maxLength: 100 }), denseString(opts.tokens ?? [])), property('text')),
    params,
  );

  if (seeds.length > 0) {
    const injected = fc.tuple(fc.nat({ max: seeds.length - 1 }), fc.nat(), fc.constantFrom(...BINARY_CHARS)).map(([s, at, ch]) => injectBinary(seeds[s], at, ch));
    fc.assert(fc.property(injected, ({ text, line }) => {
      const failure = judge.binary(text, line);
      if (failure) throw new Error(`parser on ${preview(text)} ${failure}`);
    }), params);
    const mutated = fc
      .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 6 }))
      .map(([s, ms]) => mutateLines(seeds[s], ms, opts.longLine ?? 100_000));
    fc.assert(fc.property(mutated, property('mutated')), params);
  }
}
