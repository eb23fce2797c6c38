import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchConntrack, eventListenerInodes } from '../../lib/capture/conntrack-watch.ts';
import { chainLines, chainPackets, iptablesTable, ruleCounter } from '../../lib/capture/iptables.ts';
import { loadManifest, withServiceSpec } from '../../lib/lab/manifests.ts';
import { defaultGateway, waitForIngressIP } from '../../lib/lab/network.ts';
import { createNetnsLab, type NetnsLab } from '../../lib/lab/netns/index.ts';
import type { LabNode, Pod } from '../../lib/lab/types.ts';
import { checkTrafficOptions, measureTraffic } from '../../lib/traffic/index.ts';
import { testRunTag } from '../helpers/netns.ts';

// Traffic from outside the pods, measured the way notebook 07 does: a node port on a node's
// address, a load balancer's ingress IP, and a pod's egress seen by conntrack's event stream.
const tag = testRunTag().slice(0, 4);

describe('measureTraffic options: where the requests go', () => {
  it('takes the ClusterIP by default, a node port as { node }, or the load balancer', () => {
    expect(checkTrafficOptions({ requests: 1 }).to).toBe('clusterIP');
    expect(checkTrafficOptions({ requests: 1, to: { node: 'lab-worker' } }).to).toEqual({ node: 'lab-worker' });
    expect(checkTrafficOptions({ requests: 1, to: 'loadBalancer' }).to).toBe('loadBalancer');
    expect(() => checkTrafficOptions({ requests: 1, to: 'nodePort' })).toThrow("measureTraffic: to: expected 'clusterIP', 'loadBalancer' or { node: NAME }, got \"nodePort\" (string)");
    expect(() => checkTrafficOptions({ requests: 1, to: { pod: 'x' } })).toThrow('measureTraffic: to: unknown option "pod"; known: node');
    expect(() => checkTrafficOptions({ requests: 1, to: { node: '' } })).toThrow('measureTraffic: to.node: expected a non-empty string');
  });
});

describe('eventListenerInodes reads /proc/net/netlink', () => {
  it('keeps netfilter sockets (protocol 12) subscribed to groups, by inode', () => {
    const text = [
      'sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode',
      '00000000d3a8a855 0   0          00000000 0        0        0     2        0        4',
      '000000006fe79918 12  0          00000000 0        0        0     2        0        224',
      '000000001234abcd 12  4242       0000000e 0        0        0     2        0        9001',
      '000000001234abce 6   4243       00000001 0        0        0     2        0        9002',
      '',
    ].join('\n');
    expect(eventListenerInodes(text)).toEqual(['9001']);
  });
});

describe('withServiceSpec', () => {
  it('merges into every Service\'s spec and leaves other objects alone', async () => {
    const objs = withServiceSpec([...(await loadManifest('httpbin')), ...(await loadManifest('httpbin-lb'))], { loadBalancerSourceRanges: ['172.18.0.0/16'] });
    const lb = objs.find((o) => o.kind === 'Service' && o.metadata.name === 'httpbin-lb')!;
    expect((lb.spec as { type: string; loadBalancerSourceRanges: string[] })).toMatchObject({ type: 'LoadBalancer', loadBalancerSourceRanges: ['172.18.0.0/16'] });
    const deploy = objs.find((o) => o.kind === 'Deployment')!;
    expect(deploy.spec).not.toHaveProperty('loadBalancerSourceRanges');
  });
});

describe('ingress and egress on a netns lab in iptables mode', () => {
  let lab: NetnsLab;
  let nodes: LabNode[];
  let httpbin: Pod[];
  let curl: Pod;
  /** The worker with the most httpbin pods, and a node with none. */
  let target: LabNode;
  let outside: LabNode;
  beforeAll(async () => {
    lab = await createNetnsLab({ name: `t${tag}-ing`, mode: 'iptables' });
    const lb = withServiceSpec(await loadManifest('httpbin-lb'), { loadBalancerSourceRanges: ['172.18.0.0/16'] });
    await lab.apply([
      ...(await loadManifest('httpbin')), ...(await loadManifest('curl')), ...(await loadManifest('httpbin-nodeport')), ...lb,
    ]);
    nodes = await lab.nodes();
    httpbin = await lab.pods({ app: 'httpbin' });
    curl = (await lab.pods({ app: 'curl' }))[0];
    const count = (n: LabNode) => httpbin.filter((p) => p.node === n.name).length;
    target = [...nodes].sort((a, b) => count(b) - count(a))[0];
    outside = nodes.find((n) => count(n) === 0)!;
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('sends a node port on a node with Cluster policy: every pod, masqueraded, counted on the node called', async () => {
    const m = await measureTraffic(lab, { service: 'httpbin-nodeport', from: { node: outside.name }, to: { node: target.name }, requests: 300 });
    expect(m.to).toMatchObject({ via: 'nodePort', ip: target.ip });
    expect(m.to.port).toBeGreaterThanOrEqual(30000);
    expect([m.client, m.node, m.countedOn]).toEqual([outside.name, target.name, [target.name]]);
    expect(m.ok).toBe(300);
    expect(m.endpointsUsed).toBe('all');
    for (const p of m.byPod) {
      expect(p.answers).toBeGreaterThan(0);
      expect(p.sepPackets).toBe(p.answers);
    }
    expect(m.chiSquare!.pValue).toBeGreaterThan(0.001);
    expect(m.repliesTo).not.toContain(outside.ip);
    expect(m.masqueraded).toBeGreaterThanOrEqual(300);
    expect(m.provenance.command).toBe(`kube-netlab traffic --name ${lab.name} --service default/httpbin-nodeport --requests 300 --from ${outside.name} --to ${target.name}`);
  });

  it('keeps the client address with Local policy and uses only the pods on the node called', async () => {
    const m = await measureTraffic(lab, { service: 'httpbin-local', from: { node: outside.name }, to: { node: target.name }, requests: 200 });
    expect(m.endpointsUsed).toBe('local to the node called');
    for (const [i, p] of m.byPod.entries()) {
      const local = p.node === target.name;
      expect(p.answers > 0).toBe(local);
      expect(m.prediction.split.shares[i].probability > 0).toBe(local);
    }
    expect(m.prediction.split.shares.reduce((a, s) => a + s.expected, 0)).toBeCloseTo(200, 6);
    expect(m.prediction.split.basis).toContain('externalTrafficPolicy Local');
    expect(m.repliesTo).toEqual([outside.ip]);
    expect(m.masqueraded).toBe(0);
  });

  it('uses every pod with Local policy when the node calls its own node port (its own traffic goes cluster-wide)', async () => {
    const m = await measureTraffic(lab, { service: 'httpbin-local', from: { node: target.name }, to: { node: target.name }, requests: 60 });
    expect(m.endpointsUsed).toBe('all');
    expect(m.ok).toBe(60);
  });

  it('calls the load balancer\'s ingress IP from a node, whose own rules pick', async () => {
    const ingress = await waitForIngressIP(lab, 'httpbin-lb', { timeoutMs: 0 });
    expect(ingress).toEqual({ ip: '172.18.255.254', proxied: false });
    const m = await measureTraffic(lab, { service: 'httpbin-lb', from: { node: outside.name }, to: 'loadBalancer', requests: 150 });
    expect(m.to).toEqual({ via: 'loadBalancer', ip: '172.18.255.254', port: 8000 });
    expect(m.node).toBe(outside.name);
    expect(m.ok).toBe(150);
    expect(m.byPod.reduce((a, p) => a + (p.sepPackets ?? 0), 0)).toBe(150);
    expect(m.repliesTo).toEqual([outside.ip]);
    expect(m.masqueraded).toBe(150);
  });

  it('refuses a node port on a ClusterIP Service, and a load balancer that is not one', async () => {
    await expect(measureTraffic(lab, { requests: 1, to: { node: target.name } })).rejects.toThrow('Service default/httpbin is of type ClusterIP: it has no node port to call');
    await expect(measureTraffic(lab, { requests: 1, to: 'loadBalancer' })).rejects.toThrow('it has no load balancer to call');
    await expect(measureTraffic(lab, { requests: 1, to: { node: 'nope' } })).rejects.toThrow('measureTraffic: to.node: lab');
    await expect(waitForIngressIP(lab, 'httpbin', { timeoutMs: 0 })).rejects.toThrow('is of type ClusterIP, not LoadBalancer');
  });

  it('counts the packets a filter rule drops: Local on a node without local pods', async () => {
    const port = (await lab.services()).find((s) => s.name === 'httpbin-local')!.ports[0].nodePort!;
    const drop = await ruleCounter(lab, outside.name, 'filter', 'KUBE-EXTERNAL-SERVICES', (r) => r.target?.name === 'DROP' && r.comment === 'default/httpbin-local:http has no local endpoints');
    expect(drop.rules).toHaveLength(1);
    const r = await lab.load({ url: `http://${outside.ip}:${port}/hostname`, requests: 2, concurrency: 2, timeoutMs: 800, from: { node: target.name } });
    expect(r.ok).toBe(0);
    expect(await drop.delta()).toBeGreaterThanOrEqual(2);
  });

  it('prints a chain as iptables-save does and sums its counters', async () => {
    const nat = await iptablesTable(lab, target.name, 'nat');
    const lines = chainLines(nat, 'KIND-MASQ-AGENT');
    expect(lines[0]).toMatch(/^-A KIND-MASQ-AGENT -d 10\.244\.0\.0\/16 .*-j RETURN$/);
    expect(lines.at(-1)).toMatch(/^-A KIND-MASQ-AGENT .*-j MASQUERADE$/);
    expect(chainLines(nat, 'NO-SUCH-CHAIN')).toEqual([]);
    expect(chainPackets(nat, 'NO-SUCH-CHAIN')).toBe(0);
    const silent = { exec: async (node: string, argv: string[]) => ({ argv, command: argv.join(' '), stdout: '', stderr: '', exitCode: 0, durationMs: 0 }) };
    await expect(iptablesTable(silent, 'n1', 'raw')).rejects.toThrow('n1: iptables-save printed no raw table');
  });

  it('watches a pod\'s egress with conntrack -E: the node\'s address replaces the pod\'s', async () => {
    const gateway = await defaultGateway(lab, curl.node);
    expect(gateway).toBe('172.18.0.1');
    const node = nodes.find((n) => n.name === curl.node)!;
    const masq = await ruleCounter(lab, node.name, 'nat', 'KIND-MASQ-AGENT', (r) => r.target?.name === 'MASQUERADE');
    const watch = await watchConntrack(lab, node.name, ['-p', 'tcp', '--orig-dst', gateway], { seconds: 3 });
    expect(watch.command).toBe('conntrack -E -p tcp --orig-dst 172.18.0.1');
    const r = await lab.load({ url: `http://${gateway}/hostname`, requests: 3, concurrency: 3, timeoutMs: 1000 });
    expect(r.ok).toBe(0);
    const fresh = (await watch.events()).filter((e) => e.event === 'NEW' && e.original.src === curl.ip);
    expect(fresh).toHaveLength(3);
    for (const e of fresh) expect(e.reply.dst).toBe(node.ip);
    expect(await masq.delta()).toBeGreaterThanOrEqual(3);
  });

  it('says why a watch never listened', async () => {
    await expect(watchConntrack(lab, target.name, ['--no-such-flag'], { seconds: 2 })).rejects.toThrow(/conntrack -E on .* ended before it listened \(exit \d+\)/);
  });
});
