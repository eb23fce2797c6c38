import { randomBytes } from 'node:crypto';
import { runner as defaultRunner, type ExecResult, type RunOptions, type Runner } from './runner.ts';

export interface ScratchNetns {
  name: string;
  /** Run argv inside the namespace: `ip netns exec NAME …`. */
  run(argv: string[], opts?: RunOptions): Promise<ExecResult>;
}

/**
 * A private, empty network namespace for the duration of fn, deleted afterwards even when fn
 * throws. Its name is `<prefix>-<pid>-<random>`, so leftovers after a crash can be found by name.
 */
export async function withScratchNetns<T>(
  prefix: string,
  fn: (ns: ScratchNetns) => Promise<T>,
  runner: Runner = defaultRunner,
): Promise<T> {
  if (!/^[a-z0-9-]{1,40}$/.test(prefix)) throw new Error(`namespace prefix ${JSON.stringify(prefix)} must be lower-case letters, digits and dashes`);
  // The owner's pid in the name lets `gc` tell a leftover from a namespace still in use.
  const name = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  await runner.run(['ip', 'netns', 'add', name]);
  const cleanup = () => runner.run(['ip', 'netns', 'del', name], { allowFailure: true });
  // Ctrl-C must not leave the namespace behind.
  const onSignal = (sig: NodeJS.Signals) => {
    void cleanup().finally(() => process.kill(process.pid, sig));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await fn({ name, run: (argv, opts) => runner.run(['ip', 'netns', 'exec', name, ...argv], opts) });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}
