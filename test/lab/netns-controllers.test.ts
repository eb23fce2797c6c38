import { describe, expect, it } from 'vitest';
import {
  NODE_PORT_RANGE, allocateClusterIP, allocateLoadBalancerIP, allocateNodePort, allocatePodIP, assignExternalAccess, endpointSlicesFor,
  pickNode, readDeployment, readServiceManifest, workloadOf,
} from '../../lib/lab/netns/controllers.ts';
import { diffLines } from '../../lib/lab/diff.ts';
import { deleteStaleChains, replaceSetMembers } from '../../lib/lab/netns/kube-proxy.ts';
import { labOfNamespace, networkNs, nodeNs, podNs } from '../../lib/lab/netns/names.ts';
import { parseScratchMarker, scratchMarker } from '../../lib/exec/index.ts';
import type { LabState, PodState } from '../../lib/lab/netns/state.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { checkLabName, type LabNode } from '../../lib/lab/types.ts';
import { service } from '../../lib/k8s/synthetic.ts';

const nodes: LabNode[] = [
  { name: 'lab-control-plane', role: 'control-plane', ip: '172.18.0.2', podCIDR: '10.244.0.0/24' },
  { name: 'lab-worker', role: 'worker', ip: '172.18.0.3', podCIDR: '10.244.1.0/24' },
  { name: 'lab-worker2', role: 'worker', ip: '172.18.0.4', podCIDR: '10.244.2.0/24' },
];
const pod = (name: string, node: string, ip: string, labels: Record<string, string> = { app: 'httpbin' }): PodState =>
  ({ namespace: 'default', name, ip, node, labels, ready: true, deployment: labels.app ?? 'x', veth: '', process: null });

describe('netns lab controllers', () => {
  it('name namespaces so one lab never matches another', () => {
    expect(nodeNs('a', 'a-worker')).toBe('kn-a.a-worker');
    expect(podNs('a', 'httpbin-1')).toBe('kn-a.pod.httpbin-1');
    expect(labOfNamespace(networkNs('a-b'))).toBe('a-b');
    expect(labOfNamespace('kn-a.net')).toBe('a');
    expect(labOfNamespace('kn-tour-123-abcdef')).toBeNull();
    expect(parseScratchMarker(scratchMarker(4242, '777'))).toEqual({ pid: 4242, start: '777' });
    expect(parseScratchMarker('kube-netlab/abc/lab/0123456789abcdef')).toBeNull();
    for (const bad of ['', 'A', '1lab', 'lab.x', 'lab-', 'a'.repeat(16), 'la b']) expect(() => checkLabName(bad)).toThrow(/lab name/);
  });

  it('spread pods over workers and hand out addresses from .2', () => {
    const pods: PodState[] = [];
    for (let i = 0; i < 5; i++) {
      const n = pickNode(nodes, pods, 'httpbin');
      pods.push(pod(`p${i}`, n.name, allocatePodIP(n, pods)));
    }
    expect(pods.map((p) => `${p.node} ${p.ip}`)).toEqual([
      'lab-worker 10.244.1.2', 'lab-worker2 10.244.2.2', 'lab-worker 10.244.1.3', 'lab-worker2 10.244.2.3', 'lab-worker 10.244.1.4',
    ]);
    // A freed address is reused, as host-local IPAM does.
    expect(allocatePodIP(nodes[1], pods.filter((p) => p.ip !== '10.244.1.3'))).toBe('10.244.1.3');
  });

  it('give each Service a stable ClusterIP outside the reserved ones', () => {
    const a = allocateClusterIP('default', 'httpbin', new Set());
    expect(a).toBe(allocateClusterIP('default', 'httpbin', new Set()));
    expect(a.startsWith('10.96.')).toBe(true);
    expect(allocateClusterIP('default', 'httpbin', new Set([a]))).not.toBe(a);
  });

  it('allocate nodePorts in 30000-32767, the same ones every run, never twice', () => {
    const a = allocateNodePort('default/x:http/TCP', new Set());
    expect(a).toBe(allocateNodePort('default/x:http/TCP', new Set()));
    expect(a).toBeGreaterThanOrEqual(NODE_PORT_RANGE.first);
    expect(a).toBeLessThanOrEqual(NODE_PORT_RANGE.last);
    const b = allocateNodePort('default/x:http/TCP', new Set([a]));
    expect(b).not.toBe(a);
    expect(b).toBe(a === NODE_PORT_RANGE.last ? NODE_PORT_RANGE.first : a + 1);
    const all = new Set(Array.from({ length: NODE_PORT_RANGE.last - NODE_PORT_RANGE.first + 1 }, (_, i) => NODE_PORT_RANGE.first + i));
    expect(() => allocateNodePort('k', all)).toThrow(/no free nodePort left in 30000-32767/);
  });

  it('hand out LoadBalancer IPs from the top of the node network down', () => {
    expect(allocateLoadBalancerIP(new Set())).toBe('172.18.255.254');
    expect(allocateLoadBalancerIP(new Set(['172.18.255.254']))).toBe('172.18.255.253');
  });

  it('give NodePort and LoadBalancer Services node ports and ingress IPs as the API server and an LB controller would', async () => {
    const manifests = [...(await loadManifest('httpbin')), ...(await loadManifest('httpbin-nodeport')), ...(await loadManifest('httpbin-lb'))];
    const read = (name: string) => readServiceManifest(manifests.find((o) => o.kind === 'Service' && o.metadata.name === name)!, new Set());
    const others: ReturnType<typeof read>[] = [];
    const add = (name: string, prev?: ReturnType<typeof read>) => {
      const s = assignExternalAccess(read(name), prev, others.filter((o) => o !== prev));
      others.splice(0, others.length, ...others.filter((o) => o !== prev), s);
      return s;
    };
    const clusterIP = add('httpbin');
    expect(clusterIP.ports[0].nodePort).toBeNull();
    expect(clusterIP.loadBalancerIPs).toEqual([]);
    const np = add('httpbin-nodeport');
    const local = add('httpbin-local');
    const lb = add('httpbin-lb');
    expect([np.type, local.type, lb.type]).toEqual(['NodePort', 'NodePort', 'LoadBalancer']);
    expect(local.externalTrafficPolicy).toBe('Local');
    const ports = [np, local, lb].map((s) => s.ports[0].nodePort!);
    expect(new Set(ports).size).toBe(3);
    for (const p of ports) expect(p >= 30000 && p <= 32767).toBe(true);
    expect(np.loadBalancerIPs).toEqual([]);
    expect(lb.loadBalancerIPs).toEqual(['172.18.255.254']);
    expect(lb.loadBalancerSourceRanges).toEqual(['172.18.0.0/16']);
    // Applied again: the same node port and ingress IP, as the API server keeps them.
    const again = add('httpbin-lb', lb);
    expect(again.ports[0].nodePort).toBe(lb.ports[0].nodePort);
    expect(again.loadBalancerIPs).toEqual(lb.loadBalancerIPs);
    // A nodePort the manifest asks for is checked the way the API server checks it.
    const asking = (nodePort: number) => ({ ...read('httpbin-nodeport'), ports: [{ ...np.ports[0], nodePort }] });
    expect(() => assignExternalAccess(asking(8080), undefined, others)).toThrow(/nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767/);
    expect(() => assignExternalAccess(asking(local.ports[0].nodePort!), undefined, others)).toThrow(/provided port is already allocated/);
    const free = [30000, 30001, 30002, 30003].find((p) => !ports.includes(p))!;
    expect(assignExternalAccess(asking(free), undefined, others).ports[0].nodePort).toBe(free);
    // Back to ClusterIP: the node port and the ingress IP go.
    const downgraded = assignExternalAccess({ ...lb, type: 'ClusterIP', ports: lb.ports.map((p) => ({ ...p, nodePort: null })) }, lb, others.filter((o) => o !== lb));
    expect(downgraded.ports[0].nodePort).toBeNull();
    expect(downgraded.loadBalancerIPs).toEqual([]);
  });

  it('build EndpointSlices from the ready pods a selector matches', () => {
    const state = {
      nodes, pods: [pod('h1', 'lab-worker', '10.244.1.2'), { ...pod('h2', 'lab-worker2', '10.244.2.2'), ready: false }, pod('c', 'lab-worker', '10.244.1.3', { app: 'curl' })],
      services: [
        service({ namespace: 'default', name: 'httpbin', clusterIP: '10.96.5.5', ports: [{ name: 'http', protocol: 'TCP', port: 8000, targetPort: 8080, nodePort: null }], selector: { app: 'httpbin' } }),
        service({ namespace: 'default', name: 'kubernetes', clusterIP: '10.96.0.1', ports: [{ name: 'https', protocol: 'TCP', port: 443, targetPort: 6443, nodePort: null }] }),
      ],
    } as unknown as LabState;
    const slices = endpointSlicesFor(state);
    const httpbin = slices.find((s) => s.serviceName === 'httpbin')!;
    expect(httpbin.endpoints.map((e) => [e.addresses[0], e.ready, e.podName])).toEqual([['10.244.1.2', true, 'h1'], ['10.244.2.2', false, 'h2']]);
    expect(httpbin.ports).toEqual([{ name: 'http', protocol: 'TCP', port: 8080 }]);
    expect(slices.find((s) => s.serviceName === 'kubernetes')!.endpoints[0].addresses).toEqual(['172.18.0.2']);
  });

  it('read the vendored manifests, and refuse images the backend cannot run', async () => {
    const httpbin = (await loadManifest('httpbin')).find((o) => o.kind === 'Deployment')!;
    expect(readDeployment(httpbin)).toMatchObject({ name: 'httpbin', replicas: 3, runs: 'httpbin', containerPort: 8080, labels: { app: 'httpbin', version: 'v1' } });
    const curl = (await loadManifest('curl')).find((o) => o.kind === 'Deployment')!;
    expect(readDeployment(curl)).toMatchObject({ runs: 'sleep', containerPort: null });
    expect(() => workloadOf('nginx:1.27')).toThrow(/httpbin and curl pods only/);
  });
});

describe('kube-proxy resync helpers', () => {
  it('delete the per-service chains a sync no longer writes, never the fixed ones', () => {
    const restore = '*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-A\nCOMMIT\n';
    const existing = new Map([['nat', new Set(['KUBE-SERVICES', 'KUBE-SVC-A', 'KUBE-SEP-OLD', 'KUBE-MARK-MASQ'])]]);
    expect(deleteStaleChains(restore, existing)).toBe('*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-A\n:KUBE-SEP-OLD - [0:0]\n-X KUBE-SEP-OLD\nCOMMIT\n');
  });

  it('flush sets before adding, so removed members go away', () => {
    expect(replaceSetMembers('create S hash:ip,port\nadd S 1.2.3.4,tcp:80\n')).toBe('create S hash:ip,port\nflush S\nadd S 1.2.3.4,tcp:80\n');
  });

  it('diff rules as multisets', () => {
    expect(diffLines(['a', 'b', 'b'], ['b', 'c'])).toEqual({ added: ['c'], removed: ['a', 'b'] });
  });
});
