/**
 * The CLI's side of standard streams: output that survives a reader going away, JSON written
 * in pieces, and input read with a size limit.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { hasBinary, quoteForTerminal } from '../lib/parse/errors.ts';

/** A path as typed, or quoted and escaped when it holds control characters. */
export function showPath(path: string): string {
  return hasBinary(path) ? quoteForTerminal(path) : path;
}

/**
 * Most `parse`, `trace` and `rules --objects` read of one input, chosen so that parsing stays
 * near 1 GB of memory. The largest realistic node, 10,000 Services × 10 endpoints, dumps 32 MB
 * of iptables-save, 27 MB of `nft list ruleset` and 92 MB of `nft -j list ruleset`; a parsed
 * text dump takes about 15 times its size in memory, a parsed JSON dump about 8 times.
 */
export const MAX_TEXT_BYTES = 64 * 1024 * 1024;
export const MAX_JSON_BYTES = 128 * 1024 * 1024;

export type InputKind = 'text' | 'json';

/** Input that is refused before parsing: too large, or not readable. */
export class InputError extends Error {
  override readonly name = 'InputError';
}

function tooLarge(what: string, kind: InputKind): InputError {
  return new InputError(kind === 'json'
    ? `${what} is larger than 128 MiB, the most kube-netlab reads as JSON: nft -j of a node with 10,000 Services × 10 endpoints is about 92 MB, and parsing needs about 8 times the size in memory`
    : `${what} is larger than 64 MiB, the most kube-netlab reads as text: a node with 10,000 Services × 10 endpoints dumps about 32 MB, and parsing needs about 15 times the size in memory`);
}

/** Read a whole stream as UTF-8, refusing it as soon as it passes the limit for its kind. */
export async function readBounded(stream: Readable, what: string, kind: InputKind): Promise<string> {
  const limit = kind === 'json' ? MAX_JSON_BYTES : MAX_TEXT_BYTES;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
    size += b.length;
    if (size > limit) {
      stream.destroy();
      throw tooLarge(what, kind);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** A file (or `-` for standard input) read with the size limit; FIFOs and /proc files included. */
export async function readInput(path: string, kind: InputKind): Promise<string> {
  if (path === '-') return readBounded(process.stdin, 'standard input', kind);
  return readBounded(createReadStream(path), showPath(path), kind);
}

// ---------------------------------------------------------------------------------------------
// Output

/** Error codes of a stream whose reader has gone (`| head`), or that was closed under us. */
const CLOSED = new Set(['EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END', 'ECONNRESET']);

export function isClosedStreamError(e: unknown): boolean {
  return CLOSED.has((e as NodeJS.ErrnoException | null)?.code ?? '');
}

export interface GuardedStream {
  /**
   * Write, or drop the text once the reader has gone. The promise (when there is one) resolves
   * once the stream can take more; callers that write a little may ignore it.
   */
  write(text: string): Promise<void> | void;
  readonly closed: boolean;
}

/**
 * Wrap process.stdout or process.stderr so that a reader going away never throws into command
 * code or crashes the process with a stack trace: later writes are dropped, and `onClosed` runs
 * once. Any other write error (a full disk) is reported once on stderr and fails the command.
 */
export function guardStream(stream: NodeJS.WriteStream, onClosed: () => void): GuardedStream {
  let closed = false;
  let waiting: Promise<void> | null = null;
  const close = (e: unknown) => {
    if (closed) return;
    closed = true;
    if (isClosedStreamError(e)) {
      onClosed();
    } else {
      process.exitCode = 1;
      if (stream !== process.stderr) process.stderr.write(`kube-netlab: cannot write output: ${(e as Error).message}\n`);
    }
  };
  stream.on('error', close);
  // One listener set for every writer waiting on the same drain.
  const drained = () =>
    (waiting ??= new Promise<void>((resolve) => {
      const done = () => {
        stream.off('drain', done);
        stream.off('close', done);
        stream.off('error', done);
        waiting = null;
        resolve();
      };
      stream.on('drain', done);
      stream.on('close', done);
      stream.on('error', done);
    }));
  return {
    get closed() {
      return closed;
    },
    write(text) {
      if (closed || text.length === 0) return;
      let ok: boolean;
      try {
        ok = stream.write(text);
      } catch (e) {
        close(e);
        return;
      }
      return ok || closed ? undefined : drained();
    },
  };
}

/**
 * JSON.stringify(value, null, indent) in pieces of about `chunk` characters, without ever holding
 * the whole text: a parsed 32 MB dump is over a gigabyte of indented JSON. Iterative, so deep
 * values cannot overflow the stack. Same output as JSON.stringify for the data commands print
 * (objects, arrays, strings, numbers, booleans, null, undefined, toJSON).
 */
export function* jsonChunks(value: unknown, indent = 2, chunk = 1 << 16): Generator<string> {
  // A container being written, and how far along it is.
  interface Frame {
    value: object;
    keys: string[] | null; // null for arrays
    at: number;
    wrote: boolean;
  }
  const prepare = (v: unknown, key: string): unknown =>
    v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function'
      ? (v as { toJSON(k: string): unknown }).toJSON(key)
      : v;
  const scalar = (v: unknown): string | undefined => {
    if (v === null) return 'null';
    if (typeof v === 'string' || typeof v === 'boolean') return JSON.stringify(v);
    if (typeof v === 'number') return Number.isFinite(v) ? JSON.stringify(v) : 'null';
    if (typeof v === 'bigint') throw new TypeError('Do not know how to serialize a BigInt');
    return undefined; // objects; undefined, functions and symbols are left out (null in arrays)
  };
  const pad = (depth: number) => (indent > 0 ? `\n${' '.repeat(indent * depth)}` : '');
  const colon = indent > 0 ? ': ' : ':';
  const stack: Frame[] = [];
  const onStack = new Set<object>();
  let buf = '';
  const enter = (v: object) => {
    if (onStack.has(v)) throw new TypeError('Converting circular structure to JSON');
    onStack.add(v);
    stack.push({ value: v, keys: Array.isArray(v) ? null : Object.keys(v), at: 0, wrote: false });
    buf += Array.isArray(v) ? '[' : '{';
  };

  const root = prepare(value, '');
  const s = scalar(root);
  if (s !== undefined) {
    yield s;
    return;
  }
  if (typeof root !== 'object' || root === null) return; // JSON.stringify gives undefined
  enter(root);
  while (stack.length > 0) {
    const f = stack[stack.length - 1];
    const size = f.keys ? f.keys.length : (f.value as unknown[]).length;
    if (f.at >= size) {
      stack.pop();
      onStack.delete(f.value);
      buf += `${f.wrote ? pad(stack.length) : ''}${f.keys ? '}' : ']'}`;
    } else {
      const key = f.keys ? f.keys[f.at] : String(f.at);
      f.at++;
      const v = prepare((f.value as Record<string, unknown>)[key], key);
      const text = scalar(v);
      const isObject = text === undefined && typeof v === 'object' && v !== null;
      if (f.keys && text === undefined && !isObject) continue; // left out of objects
      buf += `${f.wrote ? ',' : ''}${pad(stack.length)}${f.keys ? `${JSON.stringify(key)}${colon}` : ''}`;
      f.wrote = true;
      if (isObject) enter(v as object);
      else buf += text ?? 'null';
    }
    if (buf.length >= chunk) {
      yield buf;
      buf = '';
    }
  }
  if (buf.length > 0) yield buf;
}
