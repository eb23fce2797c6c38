import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { createNetnsLab, type NetnsLab } from '../../lib/lab/netns/index.ts';
import type { LabNode, Pod } from '../../lib/lab/types.ts';
import type { Service } from '../../lib/k8s/types.ts';
import { parseConntrack } from '../../lib/parse/index.ts';
import type { ProxyMode } from '../../lib/proxy/modes.ts';
import { testRunTag } from '../helpers/netns.ts';

// Traffic from outside the pods: NodePort and LoadBalancer Services on a netns lab, through the
// rules lib/proxy generates and the kernel runs.
const tag = testRunTag().slice(0, 4);

async function ingressLab(mode: ProxyMode): Promise<NetnsLab> {
  const lab = await createNetnsLab({ name: `t${tag}-in${mode.slice(0, 2)}`, mode });
  await lab.apply([
    ...(await loadManifest('httpbin')), ...(await loadManifest('curl')),
    ...(await loadManifest('httpbin-nodeport')), ...(await loadManifest('httpbin-lb')),
  ]);
  return lab;
}

const nodePortOf = (svcs: Service[], name: string) => svcs.find((s) => s.name === name)!.ports[0].nodePort!;

describe('ingress on a netns lab in iptables mode', () => {
  let lab: NetnsLab;
  let svcs: Service[];
  let nodes: LabNode[];
  let httpbin: Pod[];
  beforeAll(async () => {
    lab = await ingressLab('iptables');
    svcs = await lab.services();
    nodes = await lab.nodes();
    httpbin = await lab.pods({ app: 'httpbin' });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('allocates node ports and an ingress IP, and keeps them when the Services are applied again', async () => {
    const ports = ['httpbin-nodeport', 'httpbin-local', 'httpbin-lb'].map((n) => nodePortOf(svcs, n));
    expect(new Set(ports).size).toBe(3);
    for (const p of ports) expect(p >= 30000 && p <= 32767).toBe(true);
    expect(svcs.find((s) => s.name === 'httpbin-lb')!.loadBalancerIPs).toEqual(['172.18.255.254']);
    expect(svcs.find((s) => s.name === 'httpbin')!.ports[0].nodePort).toBeNull();
    const reports = await lab.apply([...(await loadManifest('httpbin-nodeport')), ...(await loadManifest('httpbin-lb'))]);
    expect(reports.every((r) => r.added.length === 0 && r.removed.length === 0)).toBe(true);
    expect(await lab.services()).toEqual(expect.arrayContaining(svcs));
    const nat = (await lab.exec(nodes[1].name, ['iptables-save', '-t', 'nat'])).stdout;
    expect(nat).toContain(`--dport ${ports[0]} -j KUBE-EXT-`);
    expect(nat).toMatch(/-A KUBE-SERVICES -d 172\.18\.255\.254\/32 .*loadbalancer IP.* -j KUBE-FW-/);
  });

  it('serves a NodePort from another node: Cluster reaches every pod with SNAT, Local only local pods and keeps the client address', async () => {
    const [client, target] = [nodes[0], nodes[1]];
    const local = httpbin.filter((p) => p.node === target.name).map((p) => p.name).sort();
    const run = async (service: string) => {
      const port = nodePortOf(svcs, service);
      const r = await lab.load({ url: `http://${target.ip}:${port}/hostname`, requests: 300, concurrency: 10, from: { node: client.name } });
      const ct = await lab.exec(target.name, ['conntrack', '-L', '-p', 'tcp', '--orig-dst', target.ip, '--orig-port-dst', String(port)]);
      return { r, entries: parseConntrack(ct.stdout).entries };
    };
    const cluster = await run('httpbin-nodeport');
    expect(cluster.r.ok).toBe(300);
    expect(Object.keys(cluster.r.byPod).sort()).toEqual(httpbin.map((p) => p.name).sort());
    expect(cluster.entries.length).toBeGreaterThan(250);
    for (const e of cluster.entries) {
      expect(e.original.src).toBe(client.ip);
      expect(e.reply.dst).not.toBe(client.ip); // masqueraded to an address of the target node
    }
    const kept = await run('httpbin-local');
    expect(kept.r.ok).toBe(300);
    expect(Object.keys(kept.r.byPod).sort()).toEqual(local);
    for (const e of kept.entries) expect(e.reply.dst).toBe(client.ip);
  });

  it('drops Local NodePort traffic on a node without local endpoints, and LoadBalancer traffic from outside its source ranges', async () => {
    const [controlPlane, worker] = [nodes[0], nodes[1]];
    expect(httpbin.some((p) => p.node === controlPlane.name)).toBe(false);
    const dropped = await lab.load({
      url: `http://${controlPlane.ip}:${nodePortOf(svcs, 'httpbin-local')}/hostname`, requests: 2, concurrency: 2, timeoutMs: 800, from: { node: worker.name },
    });
    expect([dropped.ok, dropped.errors]).toEqual([0, 2]);
    const lbIP = svcs.find((s) => s.name === 'httpbin-lb')!.loadBalancerIPs[0];
    const fromNode = await lab.load({ url: `http://${lbIP}:8000/hostname`, requests: 30, concurrency: 5, from: { node: controlPlane.name } });
    expect(fromNode.ok).toBe(30);
    const fromPod = await lab.load({ url: `http://${lbIP}:8000/hostname`, requests: 2, concurrency: 2, timeoutMs: 800 });
    expect(fromPod.ok).toBe(0);
    const filter = (await lab.exec((await lab.pods({ app: 'curl' }))[0].node, ['iptables-save', '-c', '-t', 'filter'])).stdout;
    expect(filter).toMatch(/\[[1-9]\d*:\d+\] -A KUBE-PROXY-FIREWALL -d 172\.18\.255\.254\/32 .*-j DROP/);
  });
});

describe('ingress on a netns lab in nftables mode', () => {
  let lab: NetnsLab;
  beforeAll(async () => {
    lab = await ingressLab('nftables');
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('serves NodePort and LoadBalancer Services through the service-nodeports and service-ips maps', async () => {
    const svcs = await lab.services();
    const nodes = await lab.nodes();
    const port = nodePortOf(svcs, 'httpbin-nodeport');
    const table = (await lab.exec(nodes[1].name, ['nft', 'list', 'map', 'ip', 'kube-proxy', 'service-nodeports'])).stdout;
    expect(table).toContain(`tcp . ${port} : goto external-`);
    const r = await lab.load({ url: `http://${nodes[1].ip}:${port}/hostname`, requests: 60, concurrency: 6, from: { node: nodes[0].name } });
    expect(r.ok).toBe(60);
    const lbIP = svcs.find((s) => s.name === 'httpbin-lb')!.loadBalancerIPs[0];
    const lb = await lab.load({ url: `http://${lbIP}:8000/hostname`, requests: 20, concurrency: 5, from: { node: nodes[0].name } });
    expect(lb.ok).toBe(20);
  });
});
