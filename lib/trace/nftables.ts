/**
 * One packet through what `nft list ruleset` (or `nft -j list ruleset`) shows: the base chains of
 * every hook it crosses, by priority, with the exact probability of every outcome.
 */
import type { NftRuleset } from '../parse/nft-types.ts';
import { TraceError } from './iptables.ts';
import type { Hook, Packet, TraceResult } from './types.ts';

export interface NftTraceInput {
  ruleset: NftRuleset;
  packet: Packet;
  /** PREROUTING from a pod or the network (default), OUTPUT when the node sends it. */
  hook: Hook;
  /** The node's own addresses: what `fib daddr type local` matches (127.0.0.0/8 and ::1 always do). */
  localAddresses?: string[];
}

export function traceNftables(input: NftTraceInput): TraceResult {
  void input;
  throw new TraceError(0, 'tracing an nftables ruleset is not written yet');
}
