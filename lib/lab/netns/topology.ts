import { addMarkedNamespace, type Runner } from '../../exec/index.ts';
import type { IptablesTools } from '../../proxy/iptables-backend.ts';
import { addressAt, parseIpv4Cidr } from '../../k8s/addresses.ts';
import type { LabNode } from '../types.ts';
import { networkNs, nodeNs, podNs, podVethName } from './names.ts';

/** kind's docker network: a /16 whose .1 is the gateway; nodes count up from .2. */
export const NODE_NETWORK = '172.18.0.0/16';
export const NODE_GATEWAY = '172.18.0.1';
const BRIDGE = 'kind';

/** `ip -n NS …`: every link, address and route goes into a namespace the lab owns. */
const ipIn = (ns: string, ...args: string[]) => ['ip', '-n', ns, ...args];
const execIn = (ns: string, ...argv: string[]) => ['ip', 'netns', 'exec', ns, ...argv];

/**
 * The bridge that joins the nodes, in its own namespace (the host never sees it). Every namespace
 * of a lab carries the lab's marker (see exec/owned.ts), the proof `down` and `gc` look for.
 */
export async function createNodeNetwork(r: Runner, lab: string, marker: string): Promise<void> {
  const ns = networkNs(lab);
  await addMarkedNamespace(r, ns, marker);
  await r.run(ipIn(ns, 'link', 'add', BRIDGE, 'type', 'bridge'));
  await r.run(ipIn(ns, 'addr', 'add', `${NODE_GATEWAY}/16`, 'dev', BRIDGE));
  await r.run(ipIn(ns, 'link', 'set', BRIDGE, 'up'));
}

/** A node: its namespace, eth0 on the node network, forwarding on, kindnet's masquerade. */
export async function createNode(r: Runner, lab: string, node: LabNode, index: number, podSubnet: string, marker: string, iptables: IptablesTools): Promise<void> {
  const ns = nodeNs(lab, node.name);
  const peer = `eth-n${index}`;
  await addMarkedNamespace(r, ns, marker);
  await r.run(ipIn(networkNs(lab), 'link', 'add', peer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns));
  await r.run(ipIn(networkNs(lab), 'link', 'set', peer, 'master', BRIDGE, 'up'));
  await r.run(['ip', '-n', ns, '-batch', '-'], {
    input: [`addr add ${node.ip}/16 dev eth0`, 'link set eth0 up', `route add default via ${NODE_GATEWAY}`].join('\n'),
  });
  await r.run(execIn(ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'));
  await r.run(execIn(ns, iptables.restore, '--noflush'), { input: kindMasqAgentRules(podSubnet) });
}

/** kindnet's egress masquerade: pod traffic leaving the pod subnet takes the node's address. */
export function kindMasqAgentRules(podSubnet: string): string {
  return [
    '*nat',
    ':KIND-MASQ-AGENT - [0:0]',
    '-A POSTROUTING -m addrtype ! --dst-type LOCAL -m comment --comment "kind-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom KIND-MASQ-AGENT chain" -j KIND-MASQ-AGENT',
    `-A KIND-MASQ-AGENT -d ${podSubnet} -m comment --comment "kind-masq-agent: local traffic is not subject to MASQUERADE" -j RETURN`,
    '-A KIND-MASQ-AGENT -m comment --comment "kind-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)" -j MASQUERADE',
    'COMMIT',
    '',
  ].join('\n');
}

/** Other nodes' pod CIDRs are reached through their node addresses, as kindnet routes them. */
export async function routePodCidrs(r: Runner, lab: string, nodes: LabNode[]): Promise<void> {
  await Promise.all(nodes.map((node) => {
    const routes = nodes.filter((o) => o.name !== node.name).map((o) => `route add ${o.podCIDR} via ${o.ip} dev eth0`);
    return routes.length ? r.run(['ip', '-n', nodeNs(lab, node.name), '-batch', '-'], { input: routes.join('\n') }) : undefined;
  }));
}

/** The gateway address every pod on a node routes through: .1 of the node's pod CIDR. */
export function podGateway(node: LabNode): string {
  return addressAt(parseIpv4Cidr(node.podCIDR), 1);
}

/**
 * A pod wired as the ptp CNI plugin wires it: a veth pair, the pod's /24 address without its
 * connected route, the node side holding the gateway address, and a /32 host route to the pod.
 */
export async function createPod(r: Runner, lab: string, node: LabNode, pod: string, ip: string, marker: string): Promise<string> {
  const ns = podNs(lab, pod);
  const host = nodeNs(lab, node.name);
  const veth = podVethName(`${lab}/${pod}`);
  const gw = podGateway(node);
  await addMarkedNamespace(r, ns, marker);
  // One `ip -batch` per side keeps a pod to three processes; the lines are what you would type.
  await r.run(['ip', '-n', host, '-batch', '-'], {
    input: [
      `link add ${veth} type veth peer name eth0 netns ${ns}`,
      `addr add ${gw}/32 dev ${veth}`,
      `link set ${veth} up`,
      `route add ${ip}/32 dev ${veth} scope host`,
    ].join('\n'),
  });
  await r.run(['ip', '-n', ns, '-batch', '-'], {
    input: [
      `addr add ${ip}/24 dev eth0 noprefixroute`,
      'link set eth0 up',
      `route add ${gw} dev eth0 scope link src ${ip}`,
      `route add default via ${gw} dev eth0 src ${ip}`,
      `route add ${node.podCIDR} via ${gw} dev eth0 src ${ip}`,
    ].join('\n'),
  });
  return veth;
}

/** Delete a namespace (its links go with it); the caller has stopped the processes it started there. */
export async function deleteNamespace(r: Runner, ns: string): Promise<void> {
  await r.run(['ip', 'netns', 'del', ns], { allowFailure: true });
}

/** Processes in a namespace (`ip netns pids`), for reporting the ones the kit did not start. */
export async function namespacePids(r: Runner, ns: string): Promise<number[]> {
  const out = await r.run(['ip', 'netns', 'pids', ns], { allowFailure: true });
  return out.stdout.split('\n').map(Number).filter((p) => Number.isInteger(p) && p > 0);
}

export async function listNamespaces(r: Runner): Promise<string[]> {
  const out = await r.run(['ip', 'netns', 'list']);
  // Lines look like `name (id: 3)` or `name`.
  return out.stdout.split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}
