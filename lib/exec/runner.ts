import { StringDecoder } from 'node:string_decoder';
import { execa, type Options } from 'execa';
import { openNewLog } from '../files/private.ts';
import { installHint, packageFor } from './packages.ts';

export interface RunOptions {
  /** Milliseconds before the command is killed. */
  timeoutMs?: number;
  /** Text fed to the command's standard input. */
  input?: string;
  /** Don't throw on a non-zero exit or a kill by signal; the caller inspects `exitCode` (-1 for a signal). */
  allowFailure?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  /** Aborting it terminates the command (SIGTERM); the call then throws a CommandError ('signal'). */
  signal?: AbortSignal;
  /** Also stream the command's stderr to ours as it runs (progress of a long child); still captured. */
  teeStderr?: boolean;
  /** An open descriptor of ours the command gets as its fd 3 (`flock 3` locks our open file). */
  lendFd?: number;
  /** The command talks to our terminal directly (a server the user stops with Ctrl-C); nothing is captured. */
  inherit?: boolean;
  /**
   * Called with each piece of standard output as it arrives (a monitor read while it runs). That
   * output is not kept as well (ExecResult.stdout is empty): megabytes of it would only cost memory.
   */
  onStdout?: (chunk: string) => void;
}

export interface ExecResult {
  argv: string[];
  command: string;
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
}

/** A command that ran and failed; carries what an audience needs to reproduce it. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly argv: string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly reason: 'exit' | 'timeout' | 'signal',
  ) {
    const why = reason === 'timeout' ? 'timed out' : reason === 'signal' ? 'was killed' : `exited ${exitCode}`;
    super(`\`${shellQuote(argv)}\` ${why}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-5).join('\n')}` : ''}`);
  }
}

/** The binary is not installed; says which package provides it. */
export class MissingToolError extends Error {
  override readonly name = 'MissingToolError';
  readonly package: string | undefined;
  /** `inside`: missing in the place a wrapper (`ip netns exec`) ran it, not on the host's PATH. */
  constructor(readonly binary: string, readonly where: 'host' | 'inside' = 'host', readonly stderr = '') {
    const hint = installHint(binary);
    super(hint ? `${binary} is not installed: ${hint}` : `${binary} is not installed or not on PATH`);
    this.package = packageFor(binary);
  }
}

/** Quote an argv for display the way a POSIX shell would read it back. */
export function shellQuote(argv: readonly string[]): string {
  return argv
    .map((a) => (a !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`))
    .join(' ');
}

export type EchoSink = (command: string) => void;

/**
 * The one way the project runs external commands: argv arrays, a timeout, typed errors,
 * and an optional echo of the equivalent shell command for the audience.
 */
export class Runner {
  constructor(
    readonly defaults: { timeoutMs: number; echo?: EchoSink; env?: Record<string, string>; signal?: AbortSignal } = { timeoutMs: 30_000 },
  ) {}

  withEcho(echo: EchoSink | undefined): Runner {
    return new Runner({ ...this.defaults, echo });
  }

  /** The same runner, whose commands are terminated once `signal` aborts (Ctrl-C during `up`). */
  withSignal(signal: AbortSignal): Runner {
    return new Runner({ ...this.defaults, signal });
  }

  private commandEnv(extra?: Record<string, string>): Record<string, string> | undefined {
    return this.defaults.env || extra ? { ...this.defaults.env, ...extra } : undefined;
  }

  async run(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
    if (argv.length === 0) throw new Error('Runner.run: empty argv');
    const [file, ...args] = argv;
    const command = shellQuote(argv) + (opts.input !== undefined ? ' < (input)' : '');
    this.defaults.echo?.(command);
    const started = performance.now();
    const child = execa(file, args, {
      input: opts.input,
      timeout: opts.timeoutMs ?? this.defaults.timeoutMs,
      reject: false,
      stripFinalNewline: false,
      env: this.commandEnv(opts.env),
      cwd: opts.cwd,
      cancelSignal: opts.signal ?? this.defaults.signal,
      ...(opts.teeStderr ? { stderr: ['pipe', 'inherit'] as const } : {}),
      ...(opts.lendFd !== undefined ? { stdio: ['pipe', 'pipe', 'pipe', opts.lendFd] as Options['stdio'] } : {}),
      ...(opts.inherit ? { stdio: 'inherit' as const } : {}),
      maxBuffer: 1024 * 1024 * 1024,
      ...(opts.onStdout ? { buffer: { stdout: false } } : {}),
    });
    if (opts.onStdout) {
      const onStdout = opts.onStdout;
      const decoder = new StringDecoder('utf8');
      child.stdout?.on('data', (chunk: Buffer | string) => onStdout(typeof chunk === 'string' ? chunk : decoder.write(chunk)));
    }
    const result = await child;
    const durationMs = performance.now() - started;
    if ((result as { code?: string }).code === 'ENOENT' || isEnoent(result.cause)) {
      throw new MissingToolError(file);
    }
    const exitCode = result.exitCode ?? -1;
    // `ip netns exec NS tool` reports a missing tool only on stderr; name its package all the same.
    const nsMissing = argv[0] === 'ip' && argv[1] === 'netns' && argv[2] === 'exec' && exitCode !== 0
      ? /exec of "([^"]+)" failed: No such file or directory/.exec(String(result.stderr ?? '')) : null;
    if (nsMissing) throw new MissingToolError(nsMissing[1], 'inside', String(result.stderr ?? ''));
    const stdout = String(result.stdout ?? '');
    const stderr = String(result.stderr ?? '');
    if (result.timedOut) throw new CommandError([...argv], null, stderr, 'timeout');
    if (result.isTerminated && !opts.allowFailure) throw new CommandError([...argv], null, stderr, 'signal');
    if (exitCode !== 0 && !opts.allowFailure) throw new CommandError([...argv], exitCode, stderr, 'exit');
    return { argv: [...argv], command: shellQuote(argv), stdout, stderr, exitCode, durationMs };
  }

  /**
   * Start a long-running process (a pod's server, a watcher) detached from this one, its output in
   * `logFile`, which must not exist yet (0600, never through a symlink), or discarded when null.
   * Returns its pid; the caller owns stopping it.
   */
  async spawnDetached(argv: readonly string[], logFile: string | null, opts: { env?: Record<string, string> } = {}): Promise<number> {
    if (argv.length === 0) throw new Error('Runner.spawnDetached: empty argv');
    this.defaults.signal?.throwIfAborted();
    const [file, ...args] = argv;
    this.defaults.echo?.(`${shellQuote(argv)} ${logFile === null ? '> /dev/null' : `> ${shellQuote([logFile])}`} 2>&1 &`);
    // node:child_process rather than execa here: execa keeps a handle on the child, which would
    // hold this process open for as long as the pod runs.
    const { spawn } = await import('node:child_process');
    const { closeSync } = await import('node:fs');
    const fd = logFile === null ? null : openNewLog(logFile);
    try {
      const out = fd ?? 'ignore';
      const child = spawn(file, args, { detached: true, stdio: ['ignore', out, out], env: { ...process.env, ...this.commandEnv(opts.env) } });
      const pid = await new Promise<number>((resolve, reject) => {
        child.once('spawn', () => resolve(child.pid as number));
        child.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new MissingToolError(file) : e));
      });
      child.unref();
      return pid;
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }

  /** True when `binary` can be executed (found on PATH). */
  async has(binary: string): Promise<boolean> {
    try {
      await this.run([binary, '--version'], { allowFailure: true, timeoutMs: 5_000 });
      return true;
    } catch (e) {
      if (e instanceof MissingToolError) return false;
      return true;
    }
  }
}

function isEnoent(cause: unknown): boolean {
  return typeof cause === 'object' && cause !== null && (cause as { code?: string }).code === 'ENOENT';
}

/** The shared default runner. */
export const runner = new Runner();
