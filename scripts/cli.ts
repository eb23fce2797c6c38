import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ObjectError } from '../lib/k8s/errors.ts';
import { ParseError, quoteForTerminal } from '../lib/parse/errors.ts';
import { TraceError } from '../lib/trace/iptables.ts';
import { CommandError, MissingToolError } from '../lib/exec/runner.ts';
import { GeneratorInputError } from '../lib/proxy/tokens.ts';
import { COMMANDS } from './commands/index.ts';
import { InputError, guardStream, jsonChunks } from './io.ts';

/** A mistake in how the command was called: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface CommandSpec {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  allowPositionals?: boolean;
  /**
   * Only reads and prints (no namespaces, labs or files to clean up): when its reader goes away
   * (`| head`) the process ends at once, quietly. Other commands carry on with output dropped.
   */
  readOnly?: boolean | ((argv: readonly string[]) => boolean);
  run(args: ParsedArgs, io: Io): Promise<number | void>;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Output as is (no newline added), for output written in pieces; may wait for the reader. */
  write?(chunk: string): void | Promise<void>;
  /** True once the reader of the output has gone: stop producing it. */
  closed?(): boolean;
}

const line = (t: string) => (t.endsWith('\n') ? t : `${t}\n`);

/**
 * Standard output and error for a real process. A reader that goes away (`| head`, `2>&1 | head`)
 * never raises into command code: writes are dropped, and `onOutputClosed` runs once.
 */
function processIo(onOutputClosed: () => void): Io {
  const stdout = guardStream(process.stdout, onOutputClosed);
  const stderr = guardStream(process.stderr, () => {});
  return {
    out: (t) => void stdout.write(line(t)),
    err: (t) => void stderr.write(line(t)),
    write: (chunk) => stdout.write(chunk),
    closed: () => stdout.closed,
  };
}

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  return [
    'kube-netlab: learn how Kubernetes Service networking works, on real kernels',
    '',
    'Usage: kube-netlab <command> [options]   (every command takes --json and --help)',
    '',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

function isReadOnly(cmd: CommandSpec, argv: readonly string[]): boolean {
  return typeof cmd.readOnly === 'function' ? cmd.readOnly(argv) : cmd.readOnly === true;
}

export async function main(argv: string[], given?: Io): Promise<number> {
  const [name, ...rest] = argv;
  // Help and read-only commands have nothing to finish once nobody reads them: exit 0, quietly.
  const stops = name === undefined || !Object.hasOwn(COMMANDS, name) || isReadOnly(COMMANDS[name], rest);
  const io = given ?? processIo(() => {
    if (stops) process.exit(0);
  });
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(help());
    return name ? 0 : 2;
  }
  const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!cmd) {
    io.err(`kube-netlab: unknown command ${quoteForTerminal(name)}\n\n${help()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(`${cmd.summary}\n\nUsage: kube-netlab ${cmd.usage}`);
    return 0;
  }
  try {
    let parsed: ParsedArgs;
    try {
      const r = parseArgs({ args: rest, options: { json: { type: 'boolean' }, ...cmd.options }, allowPositionals: cmd.allowPositionals ?? false, strict: true });
      parsed = { values: r.values as ParsedArgs['values'], positionals: r.positionals };
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    return (await cmd.run(parsed, io)) ?? 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`kube-netlab ${name}: ${e.message}\nUsage: kube-netlab ${cmd.usage}`);
      return 2;
    }
    if (e instanceof ParseError || e instanceof ObjectError || e instanceof GeneratorInputError || e instanceof TraceError || e instanceof MissingToolError || e instanceof CommandError || e instanceof InputError) {
      io.err(`kube-netlab ${name}: ${e.message}`);
      return 1;
    }
    io.err(`kube-netlab ${name}: ${(e as Error).message ?? String(e)}`);
    return 1;
  }
}

/** Option helpers shared by the commands. */

export interface IntBounds {
  min?: number;
  max?: number;
  /** Why the maximum, for the message (e.g. "to keep the output under a gigabyte"). */
  why?: string;
}

/**
 * A whole number in decimal digits only: `1e3`, `0x10`, `-1`, ` 5`, `1.0` and the empty string
 * are usage errors naming the option, as are values outside [min, max].
 */
export function intOption(args: ParsedArgs, key: string, fallback?: number, bounds: IntBounds = {}): number {
  const raw = args.values[key];
  if (raw === undefined) {
    if (fallback === undefined) throw new UsageError(`--${key} is required`);
    return fallback;
  }
  const min = bounds.min ?? 0;
  const max = bounds.max ?? Number.MAX_SAFE_INTEGER;
  const range = bounds.max === undefined ? `≥ ${min}` : `from ${min} to ${max.toLocaleString('en-US')}`;
  if (typeof raw !== 'string' || !/^[0-9]{1,16}$/.test(raw)) {
    throw new UsageError(`--${key} must be a whole number ${range} in decimal digits, got ${quoteForTerminal(String(raw))}`);
  }
  const n = Number(raw);
  if (n < min || n > max) {
    throw new UsageError(`--${key} must be ${range}${n > max && bounds.why ? ` (${bounds.why})` : ''}, got ${raw}`);
  }
  return n;
}

export function stringOption(args: ParsedArgs, key: string): string | undefined {
  const v = args.values[key];
  return typeof v === 'string' ? v : undefined;
}

export function requiredOption(args: ParsedArgs, key: string): string {
  const v = stringOption(args, key);
  if (v === undefined) throw new UsageError(`--${key} is required`);
  return v;
}

/**
 * `value` as indented JSON. Written in pieces where the Io can (a parsed large dump is over a
 * gigabyte of JSON text), and abandoned once the reader has gone.
 */
export async function printJson(io: Io, value: unknown): Promise<void> {
  if (!io.write) {
    io.out(JSON.stringify(value, null, 2));
    return;
  }
  for (const chunk of jsonChunks(value)) {
    if (io.closed?.()) return;
    await io.write(chunk);
  }
  await io.write('\n');
}
