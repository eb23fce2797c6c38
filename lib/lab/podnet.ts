/**
 * The pod network as a node's kernel shows it, read with iproute2's JSON output on a lab node:
 * one veth per pod, a host route per local pod through its veth, and one route per other node's
 * pod CIDR via that node's IP. That is kindnet's wiring (the ptp plugin plus a route per node),
 * which the netns backend copies; the row builders say where a node differs from it.
 */
import { cidrContains, parseIpv4Cidr } from '../k8s/addresses.ts';
import { parseIpAddrJson, parseIpRouteJson, renderIpRoute, type IpLink, type IpRoute } from '../parse/ip.ts';
import type { Lab, LabNode, Pod } from './types.ts';

export interface Veth {
  ifname: string;
  /**
   * `link_netnsid`: the id under which this namespace knows the namespace of the veth's other end,
   * numbered per namespace (so every node counts from its own first peer); null when ip prints none.
   */
  peerNetnsId: number | null;
  operstate: string | null;
}

export interface NodeNet {
  node: LabNode;
  /** Every link with its addresses (`ip -j addr`). */
  links: IpLink[];
  /** Every veth on the node (`ip -j link show type veth`), its uplink included. */
  veths: Veth[];
  /**
   * The link that holds the node's IP. On kind and on netns it is itself a veth (`eth0`), whose
   * other end is on the node network, so it is left out of `podVeths`.
   */
  uplink: string;
  /** The veths whose other end is in a pod: all but the uplink. */
  podVeths: Veth[];
  /** The main routing table (`ip -j route`). */
  routes: IpRoute[];
}

/** `link_netnsid` per interface name, from `ip -j link` text that parseIpAddrJson has accepted. */
function peerNetnsIds(text: string): Map<string, number> {
  const ids = new Map<string, number>();
  for (const item of JSON.parse(text) as unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const { ifname, link_netnsid: id } = item as { ifname?: unknown; link_netnsid?: unknown };
    if (typeof ifname === 'string' && typeof id === 'number' && Number.isInteger(id)) ids.set(ifname, id);
  }
  return ids;
}

/** Read a node's links, veths and routes; throws when no link holds the node's IP. */
export async function readNodeNet(lab: Lab, node: LabNode): Promise<NodeNet> {
  const ip = async (...args: string[]) => (await lab.exec(node.name, ['ip', '-j', ...args])).stdout;
  const vethText = await ip('link', 'show', 'type', 'veth');
  const ids = peerNetnsIds(vethText);
  const veths = parseIpAddrJson(vethText).map((l) => ({ ifname: l.ifname, peerNetnsId: ids.get(l.ifname) ?? null, operstate: l.operstate }));
  const links = parseIpAddrJson(await ip('addr'));
  const uplink = links.find((l) => l.addrInfo.some((a) => a.family === 'inet' && a.local === node.ip));
  if (!uplink) throw new Error(`${node.name}: no link holds the node IP ${node.ip}`);
  const routes = parseIpRouteJson(await ip('route'));
  return { node, links, veths, uplink: uplink.ifname, podVeths: veths.filter((v) => v.ifname !== uplink.ifname), routes };
}

/** `ip -j route get <address>` on a node: the one route the kernel would take to it. */
export async function routeGet(lab: Lab, node: string, address: string): Promise<IpRoute> {
  const got = parseIpRouteJson((await lab.exec(node, ['ip', '-j', 'route', 'get', address])).stdout);
  if (got.length !== 1) throw new Error(`ip route get ${address} on ${node} gave ${got.length} routes`);
  return got[0];
}

/** Is r a host route to the address, `<ip> dev vethX scope host` (ip prints a /32 without its prefix)? */
export function isHostRouteTo(r: IpRoute, ip: string): boolean {
  return r.scope === 'host' && (r.dst === ip || r.dst === `${ip}/32`);
}

/** The host route to the address, when the routes hold exactly one. */
export function hostRouteTo(routes: readonly IpRoute[], ip: string): IpRoute | null {
  const found = routes.filter((r) => isHostRouteTo(r, ip));
  return found.length === 1 ? found[0] : null;
}

/** The node end of a pod's veth: the device of the pod's host route on its node. */
export function podVethOf(net: NodeNet, pod: Pod): string {
  const dev = hostRouteTo(net.routes, pod.ip)?.dev;
  if (!dev) throw new Error(`${net.node.name} has no single host route to ${pod.name} (${pod.ip})`);
  return dev;
}

/** The addresses a link on a node holds (`ip -j addr show dev <link>`), of every family. */
export async function addressesOn(lab: Lab, node: string, link: string): Promise<string[]> {
  const links = parseIpAddrJson((await lab.exec(node, ['ip', '-j', 'addr', 'show', 'dev', link])).stdout);
  return links.flatMap((l) => l.addrInfo.map((a) => a.local));
}

/** The node a pod runs on. */
export function nodeOf(nodes: readonly LabNode[], pod: Pod): LabNode {
  const node = nodes.find((n) => n.name === pod.node);
  if (!node) throw new Error(`${pod.name} runs on ${pod.node}, which is not one of the nodes ${nodes.map((n) => n.name).join(', ')}`);
  return node;
}

/** One route that carries pod traffic on a node, or one that should and is missing. */
export interface PodRoute {
  node: string;
  /** A pod's address as a /32, or another node's pod CIDR. */
  destination: string;
  /** The local pod's name, `pods of <node>` for another node's block, `no pod` for a stray host route. */
  for: string;
  /** The route as `ip route` prints it; null when the node has none. */
  route: string | null;
  /** What differs from the pod network model; null when the route is as it should be. */
  problem: string | null;
}

const shown = (r: IpRoute) => renderIpRoute([r]).trimEnd();

/**
 * The host routes of a node: for each of its pods exactly one, through one of the node's pod
 * veths and no veth twice; and no host route into the node's pod CIDR for a pod it does not run.
 * `pods` may hold every pod of the lab: only those on this node count.
 */
export function hostRouteRows(net: NodeNet, pods: readonly Pod[]): PodRoute[] {
  const node = net.node.name;
  const podVeths = new Set(net.podVeths.map((v) => v.ifname));
  const used = new Set<string>();
  const local = pods.filter((p) => p.node === node);
  const rows = local.map((p): PodRoute => {
    const found = net.routes.filter((r) => isHostRouteTo(r, p.ip));
    const dev = found.length === 1 ? found[0].dev : null;
    const problem = found.length !== 1
      ? `${p.name}: ${found.length} host routes to ${p.ip} on ${node}, not one`
      : dev === null || !podVeths.has(dev) ? `${p.name}: the route to ${p.ip} goes through ${dev ?? 'no device'}, not a pod veth of ${node}`
        : used.has(dev) ? `${dev} on ${node} carries more than one pod` : null;
    if (dev !== null) used.add(dev);
    return { node, destination: `${p.ip}/32`, for: p.name, route: found.length === 1 ? shown(found[0]) : null, problem };
  });
  const block = parseIpv4Cidr(net.node.podCIDR);
  const stray = net.routes.filter((r) => r.scope === 'host' && cidrContains(block, r.dst.replace(/\/32$/, '')) && !local.some((p) => isHostRouteTo(r, p.ip)));
  return [...rows, ...stray.map((r) => ({
    node, destination: r.dst.includes('/') ? r.dst : `${r.dst}/32`, for: 'no pod', route: shown(r),
    problem: `${node}: a host route into ${net.node.podCIDR} for no pod of the node (${shown(r)})`,
  }))];
}

/** The block routes of a node: for every other node exactly one, its pod CIDR via its IP. */
export function blockRouteRows(net: NodeNet, nodes: readonly LabNode[]): PodRoute[] {
  const node = net.node.name;
  return nodes.filter((o) => o.name !== node).map((o) => {
    const found = net.routes.filter((r) => r.dst === o.podCIDR);
    const ok = found.length === 1 && found[0].gateway === o.ip;
    const what = found.map((r) => `via ${r.gateway ?? 'no gateway'} dev ${r.dev ?? 'none'}`).join(', ') || 'no route';
    return {
      node, destination: o.podCIDR, for: `pods of ${o.name}`, route: found.length === 1 ? shown(found[0]) : null,
      problem: ok ? null : `${node}: expected ${o.podCIDR} via ${o.ip}, found ${what}`,
    };
  });
}
