import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { createNetnsLab, type NetnsLab } from '../../lib/lab/netns/index.ts';
import {
  addressesOn, blockRouteRows, hostRouteRows, hostRouteTo, isHostRouteTo, nodeOf, podVethOf, readNodeNet, routeGet,
  type NodeNet,
} from '../../lib/lab/podnet.ts';
import type { LabNode, Pod } from '../../lib/lab/types.ts';
import { onNode } from '../../lib/notebook/run-on.ts';
import { parseIpRoute } from '../../lib/parse/ip.ts';
import { testRunTag } from '../helpers/netns.ts';

const nodes: LabNode[] = [
  { name: 'cp', role: 'control-plane', ip: '172.18.0.2', podCIDR: '10.244.0.0/24' },
  { name: 'w1', role: 'worker', ip: '172.18.0.3', podCIDR: '10.244.1.0/24' },
  { name: 'w2', role: 'worker', ip: '172.18.0.4', podCIDR: '10.244.2.0/24' },
];
const pod = (name: string, ip: string, node: string): Pod => ({ namespace: 'default', name, ip, node, labels: {}, ready: true });
const pods = [pod('a', '10.244.1.2', 'w1'), pod('b', '10.244.1.3', 'w1'), pod('c', '10.244.2.2', 'w2')];

/** w1 as kindnet wires it, with `ip route` text in place of what the kernel would hold. */
function w1(routeText: string, podVeths = ['vethaaaa', 'vethbbbb']): NodeNet {
  const veth = (ifname: string, i: number) => ({ ifname, peerNetnsId: i, operstate: 'UP' });
  return {
    node: nodes[1], links: [], uplink: 'eth0', routes: parseIpRoute(routeText),
    veths: ['eth0', ...podVeths].map(veth), podVeths: podVeths.map((v, i) => veth(v, i + 1)),
  };
}
const kindnet = [
  'default via 172.18.0.1 dev eth0',
  '10.244.0.0/24 via 172.18.0.2 dev eth0',
  '10.244.1.2 dev vethaaaa scope host',
  '10.244.1.3 dev vethbbbb scope host',
  '10.244.2.0/24 via 172.18.0.4 dev eth0',
  '172.18.0.0/16 dev eth0 proto kernel scope link src 172.18.0.3',
].join('\n');
const problems = (net: NodeNet, ps: Pod[] = pods, ns: LabNode[] = nodes) =>
  [...hostRouteRows(net, ps), ...blockRouteRows(net, ns)].flatMap((r) => r.problem ?? []);

describe('pod routes checked against the pod network model', () => {
  it('kindnet\'s routes: a host route per local pod, a block route per other node, nothing wrong', () => {
    const net = w1(kindnet);
    expect(hostRouteRows(net, pods)).toEqual([
      { node: 'w1', destination: '10.244.1.2/32', for: 'a', route: '10.244.1.2 dev vethaaaa scope host', problem: null },
      { node: 'w1', destination: '10.244.1.3/32', for: 'b', route: '10.244.1.3 dev vethbbbb scope host', problem: null },
    ]);
    expect(blockRouteRows(net, nodes)).toEqual([
      { node: 'w1', destination: '10.244.0.0/24', for: 'pods of cp', route: '10.244.0.0/24 via 172.18.0.2 dev eth0', problem: null },
      { node: 'w1', destination: '10.244.2.0/24', for: 'pods of w2', route: '10.244.2.0/24 via 172.18.0.4 dev eth0', problem: null },
    ]);
    expect(podVethOf(net, pods[1])).toBe('vethbbbb');
  });

  it('a missing host route, one through the uplink, a veth carrying two pods, a stray one', () => {
    expect(problems(w1(kindnet.replace('10.244.1.3 dev vethbbbb scope host\n', '')))).toEqual(['b: 0 host routes to 10.244.1.3 on w1, not one']);
    expect(problems(w1(kindnet.replace('10.244.1.3 dev vethbbbb', '10.244.1.3 dev eth0'))))
      .toEqual(['b: the route to 10.244.1.3 goes through eth0, not a pod veth of w1']);
    expect(problems(w1(kindnet.replace('10.244.1.3 dev vethbbbb', '10.244.1.3 dev vethaaaa')))).toEqual(['vethaaaa on w1 carries more than one pod']);
    expect(problems(w1(`${kindnet}\n10.244.1.9 dev vethcccc scope host`, ['vethaaaa', 'vethbbbb', 'vethcccc'])))
      .toEqual(['w1: a host route into 10.244.1.0/24 for no pod of the node (10.244.1.9 dev vethcccc scope host)']);
    expect(() => podVethOf(w1(kindnet.replace('10.244.1.3 dev vethbbbb scope host\n', '')), pods[1])).toThrow('w1 has no single host route to b (10.244.1.3)');
  });

  it('a block route missing or through the wrong node', () => {
    expect(problems(w1(kindnet.replace('10.244.2.0/24 via 172.18.0.4 dev eth0\n', '')))).toEqual(['w1: expected 10.244.2.0/24 via 172.18.0.4, found no route']);
    expect(problems(w1(kindnet.replace('10.244.2.0/24 via 172.18.0.4', '10.244.2.0/24 via 172.18.0.2'))))
      .toEqual(['w1: expected 10.244.2.0/24 via 172.18.0.4, found via 172.18.0.2 dev eth0']);
  });

  it('a host route is the pod\'s address, with or without /32, in scope host', () => {
    const [plain, prefixed, link] = parseIpRoute('10.244.1.2 dev veth1 scope host\n10.244.1.2/32 dev veth1 scope host\n10.244.1.2 dev veth1 scope link\n');
    expect([isHostRouteTo(plain, '10.244.1.2'), isHostRouteTo(prefixed, '10.244.1.2'), isHostRouteTo(link, '10.244.1.2')]).toEqual([true, true, false]);
    expect(isHostRouteTo(plain, '10.244.1.20')).toBe(false);
    expect(hostRouteTo([plain, prefixed], '10.244.1.2')).toBeNull();
  });

  it('nodeOf finds a pod\'s node, and says so when the pod is on none of them', () => {
    expect(nodeOf(nodes, pods[2]).ip).toBe('172.18.0.4');
    expect(() => nodeOf(nodes, pod('x', '10.244.9.2', 'gone'))).toThrow('x runs on gone, which is not one of the nodes cp, w1, w2');
  });
});

describe('a netns lab\'s nodes, read with ip -j', () => {
  let lab: NetnsLab;
  let labNodes: LabNode[];
  let labPods: Pod[];
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `t${testRunTag().slice(0, 4)}-pn`, mode: 'iptables' });
    await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
    labNodes = await lab.nodes();
    labPods = (await lab.pods()).filter((p) => p.ready);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('one pod veth per pod behind the eth0 uplink, each into a namespace of its own, and kindnet\'s routes', async () => {
    for (const n of labNodes) {
      const net = await readNodeNet(lab, n);
      const here = labPods.filter((p) => p.node === n.name);
      expect(net.uplink, n.name).toBe('eth0');
      expect(net.veths.map((v) => v.ifname)).toContain('eth0');
      expect(net.podVeths).toHaveLength(here.length);
      expect(new Set(net.podVeths.map((v) => v.peerNetnsId)).size).toBe(here.length);
      expect(net.podVeths.every((v) => typeof v.peerNetnsId === 'number' && v.operstate === 'UP')).toBe(true);
      expect(hostRouteRows(net, labPods).map((r) => r.for).sort()).toEqual(here.map((p) => p.name).sort());
      expect(problems(net, labPods, labNodes)).toEqual([]);
    }
  });

  it('route get across nodes goes via the other node; the pod gateway sits on the node end of the veth', async () => {
    const [, worker, worker2] = labNodes;
    const remote = labPods.find((p) => p.node === worker2.name && p.labels.app === 'httpbin')!;
    const first = await routeGet(lab, worker.name, remote.ip);
    expect([first.gateway, first.dev]).toEqual([worker2.ip, 'eth0']);
    const last = await routeGet(lab, worker2.name, remote.ip);
    expect([last.gateway, last.dev]).toEqual([null, podVethOf(await readNodeNet(lab, worker2), remote)]);
    const local = labPods.find((p) => p.node === worker.name)!;
    expect(await addressesOn(lab, worker.name, podVethOf(await readNodeNet(lab, worker), local))).toContain('10.244.1.1');
    await expect(routeGet(lab, worker.name, 'not-an-address')).rejects.toThrow();
  });

  it('reports a host route deleted and a block route pointed at the wrong node, as the kernel holds them', async () => {
    const worker = labNodes[1];
    const victim = labPods.find((p) => p.node === worker.name)!;
    const veth = podVethOf(await readNodeNet(lab, worker), victim);
    await lab.exec(worker.name, ['ip', 'route', 'del', victim.ip]);
    await lab.exec(worker.name, ['ip', 'route', 'replace', labNodes[2].podCIDR, 'via', labNodes[0].ip, 'dev', 'eth0']);
    try {
      const net = await readNodeNet(lab, worker);
      expect(hostRouteRows(net, labPods).flatMap((r) => r.problem ?? [])).toEqual([`${victim.name}: 0 host routes to ${victim.ip} on ${worker.name}, not one`]);
      expect(blockRouteRows(net, labNodes).flatMap((r) => r.problem ?? []))
        .toEqual([`${worker.name}: expected ${labNodes[2].podCIDR} via ${labNodes[2].ip}, found via ${labNodes[0].ip} dev eth0`]);
    } finally {
      await lab.exec(worker.name, ['ip', 'route', 'replace', victim.ip, 'dev', veth, 'scope', 'host']);
      await lab.exec(worker.name, ['ip', 'route', 'replace', labNodes[2].podCIDR, 'via', labNodes[2].ip, 'dev', 'eth0']);
    }
    expect(problems(await readNodeNet(lab, worker), labPods, labNodes)).toEqual([]);
  });

  it('a node without the node IP on any link is an error that names both', async () => {
    const wrong = { ...labNodes[1], ip: '172.18.0.99' };
    await expect(readNodeNet(lab, wrong)).rejects.toThrow(`${wrong.name}: no link holds the node IP 172.18.0.99`);
  });

  it('the command onNode prints runs on that node', async () => {
    const n = labNodes[2];
    const printed = await runner.run(['sh', '-c', `${onNode(lab, n.name)} ip -j route`]);
    expect(printed.stdout).toBe((await lab.exec(n.name, ['ip', '-j', 'route'])).stdout);
  });
});
