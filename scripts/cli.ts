import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ObjectError } from '../lib/k8s/errors.ts';
import { ParseError } from '../lib/parse/errors.ts';
import { TraceError } from '../lib/trace/iptables.ts';
import { CommandError, MissingToolError } from '../lib/exec/runner.ts';
import { GeneratorInputError } from '../lib/proxy/tokens.ts';
import { COMMANDS } from './commands/index.ts';

/** A mistake in how the command was called: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface CommandSpec {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  allowPositionals?: boolean;
  run(args: ParsedArgs, io: Io): Promise<number | void>;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const defaultIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

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

export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(help());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    io.err(`kube-netlab: unknown command ${JSON.stringify(name)}\n\n${help()}`);
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
    if (e instanceof ParseError || e instanceof ObjectError || e instanceof GeneratorInputError || e instanceof TraceError || e instanceof MissingToolError || e instanceof CommandError) {
      io.err(`kube-netlab ${name}: ${e.message}`);
      return 1;
    }
    io.err(`kube-netlab ${name}: ${(e as Error).message ?? String(e)}`);
    return 1;
  }
}

/** Option helpers shared by the commands. */
export function intOption(args: ParsedArgs, key: string, fallback?: number): number {
  const raw = args.values[key];
  if (raw === undefined) {
    if (fallback === undefined) throw new UsageError(`--${key} is required`);
    return fallback;
  }
  const n = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(n) || n < 0) throw new UsageError(`--${key} must be a whole number ≥ 0, got ${JSON.stringify(raw)}`);
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

export function printJson(io: Io, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
}
