/**
 * The kernel's own tallies against the answers of a traffic run: what disagrees, in words. Each
 * connection's first packet passes the endpoint's DNAT rule once (KUBE-SEP packets, iptables
 * mode); conntrack keeps an entry per connection, but a new connection that reuses the ports of
 * one still in TIME_WAIT takes over its entry, so conntrack may fall a little short.
 */
import type { TrafficMeasurement } from './index.ts';

/** How far a kernel count may stray from the answers before it counts as a disagreement. */
const COUNTER_TOLERANCE = {
  /** KUBE-SEP packets: within max(3, 1%) of the answers. */
  sep: (answers: number) => Math.max(3, 0.01 * answers),
  /** conntrack: at most 3 more, at most 10% fewer. */
  conntrackAbove: 3,
  conntrackBelow: 0.1,
} as const;

/**
 * One line per pod whose kernel counts disagree with its answers; empty when all agree. In
 * iptables mode a missing KUBE-SEP count is a disagreement; a missing conntrack count is not (the
 * measurement says why in `skipped`).
 */
export function counterMismatches(m: TrafficMeasurement): string[] {
  const out: string[] = [];
  for (const p of m.byPod) {
    if (m.provenance.mode === 'iptables') {
      if (p.sepPackets === null) out.push(`${p.pod}: no KUBE-SEP packet count`);
      else if (Math.abs(p.sepPackets - p.answers) > COUNTER_TOLERANCE.sep(p.answers)) {
        out.push(`${p.pod}: KUBE-SEP counted ${p.sepPackets} connections, the pod answered ${p.answers}`);
      }
    }
    const ct = p.conntrack;
    if (ct !== null && (ct > p.answers + COUNTER_TOLERANCE.conntrackAbove || ct < (1 - COUNTER_TOLERANCE.conntrackBelow) * p.answers)) {
      out.push(`${p.pod}: conntrack holds ${ct} entries for ${p.answers} answers`);
    }
  }
  return out;
}
