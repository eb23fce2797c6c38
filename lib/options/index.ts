/**
 * Checks for options objects handed to the kit from code (a notebook cell, a script): unknown keys
 * are refused, and a wrong value is reported with what was received, `got "2000" (string)`,
 * instead of failing deep inside a command with a NaN timeout.
 */

export class OptionError extends Error {
  override readonly name = 'OptionError';
}

/** `"2000" (string)`, `2.5 (number)`, `null`: a value as a message should show it. */
export function received(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    // A cycle or a BigInt.
  }
  const shown = text === undefined ? String(v) : text.length > 60 ? `${text.slice(0, 60)}…` : text;
  return `${shown} (${Array.isArray(v) ? 'array' : typeof v})`;
}

/** Refuse keys the caller does not know, naming the ones it does. */
export function knownKeys(where: string, o: unknown, keys: readonly string[]): Record<string, unknown> {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new OptionError(`${where}: expected an options object, got ${received(o)}`);
  const unknown = Object.keys(o).filter((k) => !keys.includes(k));
  if (unknown.length > 0) throw new OptionError(`${where}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; known: ${keys.join(', ')}`);
  return o as Record<string, unknown>;
}

/** A whole number in [min, max], or the fallback when absent. */
export function wholeNumber(where: string, key: string, v: unknown, min: number, max: number, fallback?: number): number {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new OptionError(`${where}: ${key}: expected a whole number from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}, got ${received(v)}`);
  }
  return v;
}

/** A non-empty string, or the fallback when absent. */
export function text(where: string, key: string, v: unknown, fallback?: string): string {
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'string' || v === '') throw new OptionError(`${where}: ${key}: expected a non-empty string, got ${received(v)}`);
  return v;
}

/** One of a few words, or the fallback when absent. */
export function oneOf<T extends string>(where: string, key: string, v: unknown, allowed: readonly T[], fallback?: T): T {
  if (v === undefined && fallback !== undefined) return fallback;
  if (!(allowed as readonly unknown[]).includes(v)) throw new OptionError(`${where}: ${key}: expected ${allowed.join(', ')}, got ${received(v)}`);
  return v as T;
}
