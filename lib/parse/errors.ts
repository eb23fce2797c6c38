/** A parse failure that says where and what: line number, offending text, expectation. */
export class ParseError extends Error {
  override readonly name = 'ParseError';
  constructor(
    readonly format: string,
    readonly line: number,
    readonly text: string,
    readonly expected: string,
  ) {
    super(`${format}: line ${line}: expected ${expected}, got ${quoteForTerminal(truncate(text))}`);
  }
}

function truncate(s: string): string {
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

/**
 * JSON-style quoting that also escapes what JSON.stringify leaves raw (DEL, C1 controls, line
 * separators): a hostile dump must not drive the terminal an error goes to.
 */
export function quoteForTerminal(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Split text into lines without regexes; keeps 1-based numbering stable across CRLF input. */
export function splitLines(text: string): string[] {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    if (l.endsWith('\r')) lines[i] = l.slice(0, -1);
  }
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

const CONTROL_NAMES: Record<number, string> = { 0: 'NUL', 0x1b: 'ESC', 0x7f: 'DEL', 0xfffd: 'U+FFFD, what invalid UTF-8 decodes to' };

/**
 * Whether a UTF-16 code unit at `i` is something no tool here prints as text: C0 controls
 * other than tab and a CR before a newline, DEL, C1 controls, U+FFFD and unpaired surrogates.
 */
function isBinary(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  if (c < 0x20) {
    if (c === 9 || c === 10) return false;
    if (c === 13) return i + 1 < text.length && text.charCodeAt(i + 1) !== 10;
    return true;
  }
  if (c < 0x7f) return false;
  if (c <= 0x9f || c === 0xfffd) return true;
  if (c >= 0xd800 && c <= 0xdbff) {
    const d = text.charCodeAt(i + 1);
    return !(d >= 0xdc00 && d <= 0xdfff);
  }
  if (c >= 0xdc00 && c <= 0xdfff) {
    const p = text.charCodeAt(i - 1);
    return !(p >= 0xd800 && p <= 0xdbff);
  }
  return false;
}

/**
 * Refuse binary input before parsing: NULs, control characters and invalid UTF-8 never occur in
 * what iptables, ipset, ipvsadm, nft, ip or conntrack print, so they mean a wrong or damaged file.
 * One pass; the error names the line and column.
 */
export function rejectBinary(format: string, text: string): void {
  for (let i = 0; i < text.length; i++) {
    if (!isBinary(text, i)) continue;
    let line = 1;
    let start = 0;
    for (let k = text.indexOf('\n'); k >= 0 && k < i; k = text.indexOf('\n', k + 1)) {
      line++;
      start = k + 1;
    }
    const end = text.indexOf('\n', start);
    const lineText = text.slice(start, end < 0 ? text.length : end);
    const c = text.charCodeAt(i);
    const name = CONTROL_NAMES[c] ?? `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
    const hint = c === 0x1b ? '; colour codes? capture without --color' : '';
    throw new ParseError(format, line, lineText, `text, not binary data (${name} at column ${i - start + 1}${hint})`);
  }
}

/** The same test for one value (a name or address read from JSON, where escapes hide controls). */
export function hasBinary(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (isBinary(s, i) || s.charCodeAt(i) === 10 || s.charCodeAt(i) === 13) return true;
  return false;
}
