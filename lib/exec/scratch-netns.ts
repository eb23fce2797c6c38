import { randomBytes } from 'node:crypto';
import { addMarkedNamespace, ownerEnv, processesMarked, stopProcesses } from './owned.ts';
import { processStart } from './process.ts';
import { runner as defaultRunner, type ExecResult, type RunOptions, type Runner } from './runner.ts';

export interface ScratchNetns {
  name: string;
  /** The marker on the namespace and in the environment of what runs in it (see owned.ts). */
  marker: string;
  /** Run argv inside the namespace: `ip netns exec NAME …`, tagged with the marker. */
  run(argv: string[], opts?: RunOptions): Promise<ExecResult>;
}

/** `kube-netlab-scratch/<owner pid>/<its start time>`: gc removes it once that process is gone. */
export function scratchMarker(pid = process.pid, start = processStart(pid)): string {
  return `kube-netlab-scratch/${pid}/${start ?? 'unknown'}`;
}

export function parseScratchMarker(marker: string): { pid: number; start: string | null } | null {
  const parts = marker.split('/');
  if (parts.length !== 3 || parts[0] !== 'kube-netlab-scratch') return null;
  const pid = Number(parts[1]);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return { pid, start: parts[2] === 'unknown' ? null : parts[2] };
}

/** End what the kit started under `marker`, then delete the namespace. */
export async function removeScratchNetns(runner: Runner, name: string, marker: string): Promise<void> {
  await stopProcesses(await processesMarked(marker));
  await runner.run(['ip', 'netns', 'del', name], { allowFailure: true });
}

/**
 * A private, empty network namespace for the duration of fn, deleted afterwards even when fn
 * throws. Its name is `<prefix>-<pid>-<random>` and it is marked with its owner process, so `gc`
 * removes it after a crash, and only it.
 */
export async function withScratchNetns<T>(
  prefix: string,
  fn: (ns: ScratchNetns) => Promise<T>,
  runner: Runner = defaultRunner,
): Promise<T> {
  if (!/^[a-z0-9-]{1,40}$/.test(prefix)) throw new Error(`namespace prefix ${JSON.stringify(prefix)} must be lower-case letters, digits and dashes`);
  const name = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const marker = scratchMarker();
  await addMarkedNamespace(runner, name, marker);
  const cleanup = () => removeScratchNetns(runner, name, marker);
  // Ctrl-C must not leave the namespace behind.
  const onSignal = (sig: NodeJS.Signals) => {
    void cleanup().finally(() => process.kill(process.pid, sig));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await fn({
      name,
      marker,
      run: (argv, opts) => runner.run(['ip', 'netns', 'exec', name, ...argv], { ...opts, env: { ...opts?.env, ...ownerEnv(marker) } }),
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}
