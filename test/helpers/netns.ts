import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { runner, type ExecResult, type RunOptions } from '../../lib/exec/index.ts';

/** Tag shared by every namespace this test run creates (set by the global setup). */
export function testRunTag(): string {
  return process.env.KUBE_NETLAB_TEST_RUN ?? 'solo';
}

export interface TestNetns {
  name: string;
  /** Run argv inside the namespace: `ip netns exec NAME …`. */
  run(argv: string[], opts?: RunOptions): Promise<ExecResult>;
}

/**
 * A private, empty network namespace for the duration of fn: the kernel is the oracle
 * for generated rules, and nothing reaches the host's own tables.
 */
export async function withNetns<T>(fn: (ns: TestNetns) => Promise<T>): Promise<T> {
  const name = `kn-test-${testRunTag()}-${randomBytes(3).toString('hex')}`;
  await runner.run(['ip', 'netns', 'add', name]);
  try {
    return await fn({
      name,
      run: (argv, opts) => runner.run(['ip', 'netns', 'exec', name, ...argv], opts),
    });
  } finally {
    await runner.run(['ip', 'netns', 'del', name], { allowFailure: true });
  }
}

/** Where the kernel lacks IPVS, tests that need it skip and say why. */
export function ipvsSkipReason(): string | null {
  return existsSync('/proc/net/ip_vs') ? null : 'kernel has no IP_VS (/proc/net/ip_vs is absent)';
}
