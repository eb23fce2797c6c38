/** A parse failure that says where and what: line number, offending text, expectation. */
export class ParseError extends Error {
  override readonly name = 'ParseError';
  constructor(
    readonly format: string,
    readonly line: number,
    readonly text: string,
    readonly expected: string,
  ) {
    super(`${format}: line ${line}: expected ${expected}, got ${JSON.stringify(truncate(text))}`);
  }
}

function truncate(s: string): string {
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
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
