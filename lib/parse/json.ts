/**
 * JSON input of the ip -j and nft -j parsers: binary refused, syntax errors placed on
 * their line, and nesting bounded before anything walks the value recursively (JSON.parse
 * itself copes with any depth; JSON.stringify and recursive readers overflow the stack).
 */
import { ParseError, rejectBinary, splitLines } from './errors.ts';

/** Deeper than any tool prints (nft -j reaches about 12), far below the stack's limit. */
export const MAX_JSON_DEPTH = 64;

/**
 * Where JSON.parse failed, as an offset: Node's messages do not always say. A small
 * iterative syntax scan (no recursion, so deep nesting cannot overflow the stack).
 */
export function jsonErrorOffset(s: string): number {
  const n = s.length;
  const stack: number[] = []; // 91 '[' or 123 '{'
  // 0 value, 1 value-or-']', 2 key-or-'}', 3 key, 4 colon, 5 after-value
  let state = 0;
  let i = 0;
  const isWs = (c: number) => c === 32 || c === 9 || c === 10 || c === 13;
  const isDigit = (c: number) => c >= 48 && c <= 57;
  const scanString = (): number => {
    // s[i] is '"'; returns the index after the closing quote, or -(error offset) - 1.
    let j = i + 1;
    while (j < n) {
      const c = s.charCodeAt(j);
      if (c === 34) return j + 1;
      if (c < 32) return -j - 1;
      if (c === 92) {
        const e = s[j + 1];
        if (e === undefined) return -n - 1;
        if (e === 'u') {
          for (let k = 2; k < 6; k++) {
            const h = s.charCodeAt(j + k);
            const hex = isDigit(h) || (h >= 65 && h <= 70) || (h >= 97 && h <= 102);
            if (!hex) return -(Number.isNaN(h) ? n : j + k) - 1;
          }
          j += 6;
          continue;
        }
        if ('"\\/bfnrt'.indexOf(e) < 0) return -(j + 1) - 1;
        j += 2;
        continue;
      }
      j++;
    }
    return -n - 1;
  };
  const scanNumber = (): number => {
    let j = i;
    if (s[j] === '-') j++;
    if (s[j] === '0') j++;
    else if (isDigit(s.charCodeAt(j))) while (isDigit(s.charCodeAt(j))) j++;
    else return -j - 1;
    if (s[j] === '.') {
      j++;
      if (!isDigit(s.charCodeAt(j))) return -j - 1;
      while (isDigit(s.charCodeAt(j))) j++;
    }
    if (s[j] === 'e' || s[j] === 'E') {
      j++;
      if (s[j] === '+' || s[j] === '-') j++;
      if (!isDigit(s.charCodeAt(j))) return -j - 1;
      while (isDigit(s.charCodeAt(j))) j++;
    }
    return j;
  };
  while (true) {
    while (i < n && isWs(s.charCodeAt(i))) i++;
    if (i >= n) return stack.length === 0 && state === 5 ? -1 : n;
    const c = s.charCodeAt(i);
    if (state === 1 && c === 93) {
      stack.pop();
      i++;
      state = 5;
      continue;
    }
    if (state === 2 && c === 125) {
      stack.pop();
      i++;
      state = 5;
      continue;
    }
    if (state === 0 || state === 1) {
      if (c === 123 || c === 91) {
        stack.push(c);
        i++;
        state = c === 123 ? 2 : 1;
        continue;
      }
      let end: number;
      if (c === 34) end = scanString();
      else if (c === 45 || isDigit(c)) end = scanNumber();
      else {
        const lit = s.startsWith('true', i) ? 4 : s.startsWith('false', i) ? 5 : s.startsWith('null', i) ? 4 : 0;
        if (lit === 0) return i;
        end = i + lit;
      }
      if (end < 0) return -end - 1;
      i = end;
      state = 5;
      continue;
    }
    if (state === 2 || state === 3) {
      if (c !== 34) return i;
      const end = scanString();
      if (end < 0) return -end - 1;
      i = end;
      state = 4;
      continue;
    }
    if (state === 4) {
      if (c !== 58) return i;
      i++;
      state = 0;
      continue;
    }
    // state 5: after a value
    const top = stack[stack.length - 1];
    if (top === undefined) return i;
    if (c === 44) state = top === 91 ? 0 : 3;
    else if ((c === 93 && top === 91) || (c === 125 && top === 123)) {
      stack.pop();
      state = 5;
    } else return i;
    i++;
  }
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let k = text.indexOf('\n'); k >= 0 && k < offset; k = text.indexOf('\n', k + 1)) line++;
  return line;
}

/** Arrays and objects nested deeper than `max`, found without recursion. */
function tooDeep(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d > max) return true;
    for (const x of Array.isArray(v) ? v : Object.values(v)) if (typeof x === 'object' && x !== null) stack.push([x, d + 1]);
  }
  return false;
}

/** JSON.parse with the failing line named, binary refused and nesting bounded. */
export function parseJsonText(text: string, format: string, expected: string): unknown {
  rejectBinary(format, text);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    const off = jsonErrorOffset(text);
    const lines = splitLines(text);
    const line = Math.min(lineAt(text, off < 0 ? text.length : off), Math.max(1, lines.length));
    throw new ParseError(format, line, lines[line - 1] ?? '', expected);
  }
  if (tooDeep(doc, MAX_JSON_DEPTH)) throw new ParseError(format, 1, splitLines(text)[0] ?? '', `JSON nested at most ${MAX_JSON_DEPTH} deep`);
  return doc;
}
