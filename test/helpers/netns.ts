import { existsSync } from 'node:fs';
import { withScratchNetns, type ScratchNetns } from '../../lib/exec/index.ts';

/** Tag shared by every namespace this test run creates (set by the global setup). */
export function testRunTag(): string {
  return process.env.KUBE_NETLAB_TEST_RUN ?? 'solo';
}

export type TestNetns = ScratchNetns;

/**
 * A private, empty network namespace for the duration of fn: the kernel is the oracle
 * for generated rules, and nothing reaches the host's own tables.
 */
export function withNetns<T>(fn: (ns: TestNetns) => Promise<T>): Promise<T> {
  return withScratchNetns(`kn-test-${testRunTag()}`, fn);
}

/** Where the kernel lacks IPVS, tests that need it skip and say why. */
export function ipvsSkipReason(): string | null {
  return existsSync('/proc/net/ip_vs') ? null : 'kernel has no IP_VS (/proc/net/ip_vs is absent)';
}
