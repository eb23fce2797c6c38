import { describe, expect, it } from 'vitest';
import { allocateClusterIP, allocatePodIP, endpointSlicesFor, pickNode, readDeployment, workloadOf } from '../../lib/lab/netns/controllers.ts';
import { diffLines } from '../../lib/lab/diff.ts';
import { deleteStaleChains, replaceSetMembers } from '../../lib/lab/netns/kube-proxy.ts';
import { labOfNamespace, networkNs, nodeNs, podNs, scratchOwnerPid } from '../../lib/lab/netns/names.ts';
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
  ({ namespace: 'default', name, ip, node, labels, ready: true, deployment: labels.app ?? 'x', veth: '', pid: null });

describe('netns lab controllers', () => {
  it('name namespaces so one lab never matches another', () => {
    expect(nodeNs('a', 'a-worker')).toBe('kn-a.a-worker');
    expect(podNs('a', 'httpbin-1')).toBe('kn-a.pod.httpbin-1');
    expect(labOfNamespace(networkNs('a-b'))).toBe('a-b');
    expect(labOfNamespace('kn-a.net')).toBe('a');
    expect(labOfNamespace('kn-tour-123-abcdef')).toBeNull();
    expect(scratchOwnerPid('kn-tour-4242-abcdef')).toBe(4242);
    expect(scratchOwnerPid('kn-a.pod.x-1-2')).toBeNull();
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
