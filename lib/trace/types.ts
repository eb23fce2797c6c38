/**
 * What every tracer returns, whatever it read (iptables-save, ipset and ipvsadm for iptables and
 * IPVS modes, `nft list ruleset` for nftables mode): one packet, and every way it can end, each
 * with its exact probability.
 */

export type TraceMode = 'iptables' | 'ipvs' | 'nftables';

/** Where a packet enters: PREROUTING from a pod or the network, OUTPUT when the node sends it. */
export type Hook = 'PREROUTING' | 'OUTPUT';

export interface Packet {
  protocol: 'tcp' | 'udp' | 'sctp';
  src: string;
  dst: string;
  dport: number;
  sport?: number;
  inInterface?: string;
  outInterface?: string;
  /** The packet's fwmark on entry (0 for a fresh packet). */
  mark?: number;
}

export interface Step {
  chain: string;
  /** The iptables table the chain belongs to (nat, filter); absent where there is one. */
  table?: string;
  /** 0-based position of the rule in its chain; -1 for the chain's policy. */
  index: number;
  line: number;
  text: string;
  /** nftables: the verdict a map element gave (`goto service-…`), when the rule looked one up. */
  verdict?: string;
}

export interface Outcome {
  /** Product of the statistic branches taken, as the kernel stores them (multiples of 2^-31). */
  probability: number;
  verdict: 'ACCEPT' | 'DROP' | 'REJECT';
  /** Destination after DNAT or IPVS, `ip:port`, or null when unchanged. */
  dnat: string | null;
  /** `MASQUERADE`, or `SNAT to …`, decided in nat POSTROUTING; null when the source is kept. */
  snat: string | null;
  mark: number;
  /** Chains entered, in order. */
  path: string[];
  /** Rules that matched, in order. */
  steps: Step[];
  /**
   * nftables: the hooks crossed, in order (`prerouting`, `forward`, `postrouting`). A packet the
   * node sends to one of its own addresses crosses `output` and `postrouting`, then comes back
   * in through `prerouting` and `input`.
   */
  hooks?: string[];
  /** Set when IPVS picked the destination. */
  ipvs?: { service: string; scheduler: string; destinations: number };
}

export interface TraceResult {
  packet: Packet;
  hook: Hook;
  outcomes: Outcome[];
  /** Which rules were traced; absent from the nat-only tracer's results. */
  mode?: TraceMode;
  /** What the trace could not see or had to assume (a hook that never reaches kube-proxy's chains …). */
  warnings?: string[];
}

