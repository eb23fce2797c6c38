/**
 * A packet's way from one pod to another, hop by hop, as a table for notebook 02: what each place
 * on the way decides, from the routes the kernels returned (`ip route get` on each node).
 */
import type { Pod } from '../lab/types.ts';
import type { IpRoute } from '../parse/ip.ts';

export interface PodPath {
  from: Pod;
  to: Pod;
  /** The pod gateway: the `.1` of from's node block, which the node end of from's veth holds. */
  gateway: string;
  /** The node end of from's veth. */
  fromVeth: string;
  /** `ip route get <to's IP>` on from's node. */
  first: IpRoute;
  /** `ip route get <to's IP>` on to's node; when both pods share a node, the same as first. */
  last: IpRoute;
  /** to's node's pod CIDR, which the block route on from's node matched. */
  toBlock: string;
  /** The link the packet arrives on at to's node: that node's uplink. */
  arrivesOn: string;
  /** The port to's server listens on. */
  port: number;
}

/** Rows of hop, where, decision: five hops across nodes, four when both pods share a node. */
export function podPathHops(p: PodPath): [number, string, string][] {
  const leave = `eth0, default route to the gateway ${p.gateway}`;
  const enter = `arrives on ${p.fromVeth}, which holds ${p.gateway}/32`;
  const answer = `arrives on its eth0, answered by the pod listening on ${p.port}`;
  const hops: [string, string][] = p.from.node === p.to.node
    ? [
      [`pod ${p.from.name}`, leave],
      [`node ${p.from.node}`, enter],
      [`node ${p.from.node}`, `${p.to.ip} dev ${p.first.dev ?? '?'} (host route): the pod is on this node, so the packet never leaves it`],
      [`pod ${p.to.name}`, answer],
    ]
    : [
      [`pod ${p.from.name}`, leave],
      [`node ${p.from.node}`, enter],
      [`node ${p.from.node}`, `${p.to.ip} is in ${p.toBlock}: via ${p.first.gateway ?? '?'} dev ${p.first.dev ?? '?'}`],
      [`node ${p.to.node}`, `arrives on ${p.arrivesOn}; ${p.to.ip} dev ${p.last.dev ?? '?'} (host route)`],
      [`pod ${p.to.name}`, answer],
    ];
  return hops.map(([where, decision], i) => [i + 1, where, decision]);
}
