import { describe, expect, it } from 'vitest';
import {
  ObjectError, readCluster, readClusterJson, resolveServicePorts, syntheticCluster, toKubernetesList,
} from '../../lib/k8s/index.ts';
import { withNetns, testRunTag } from '../helpers/netns.ts';

describe('synthetic clusters', () => {
  it('address like kind: a /24 per node, services after the reserved ones', () => {
    const c = syntheticCluster({ services: 2, endpoints: 3, kindDefaults: true });
    const ports = resolveServicePorts(c, { nodeName: 'kind-worker' });
    expect(ports.map((p) => p.servicePortName)).toEqual([
      'default/kubernetes:https', 'default/svc-1:http', 'default/svc-2:http',
      'kube-system/kube-dns:dns', 'kube-system/kube-dns:dns-tcp', 'kube-system/kube-dns:metrics',
    ]);
    const svc1 = ports[1];
    expect(svc1.clusterIP).toBe('10.96.1.0');
    expect(svc1.endpoints.map((e) => `${e.ip}:${e.port}`)).toEqual(['10.244.0.4:8080', '10.244.1.2:8080', '10.244.2.2:8080']);
    expect(svc1.endpoints.filter((e) => e.isLocal).map((e) => e.nodeName)).toEqual(['kind-worker']);
    expect(ports.find((p) => p.servicePortName === 'kube-system/kube-dns:dns')?.protocol).toBe('UDP');
  });

  it('sort endpoints as ip:port strings, as kube-proxy does', () => {
    const c = syntheticCluster({ services: 1, endpoints: 12, nodes: 1 });
    const ips = resolveServicePorts(c)[0].endpoints.map((e) => `${e.ip}:${e.port}`);
    expect(ips.slice(0, 3)).toEqual(['10.244.0.10:8080', '10.244.0.11:8080', '10.244.0.12:8080']);
    expect([...ips].sort()).toEqual(ips);
  });

  it('round-trip through the List kubectl prints', () => {
    const c = syntheticCluster({ services: 3, endpoints: 2, nodePorts: 1, kindDefaults: true });
    expect(readCluster(JSON.parse(JSON.stringify(toKubernetesList(c))))).toEqual(c);
  });

  it('refuse pods that do not fit the pod subnet, naming the fix', () => {
    expect(() => syntheticCluster({ services: 10_000, endpoints: 10 })).toThrow(/396 nodes of \/24, but 10\.244\.0\.0\/16 holds 256; pass a larger pod subnet \(a \/15 or wider/);
    expect(syntheticCluster({ services: 10_000, endpoints: 10, podSubnet: '10.0.0.0/8' }).services).toHaveLength(10_000);
  });
});

describe('reading kubectl output', () => {
  const list = (items: unknown[]) => ({ apiVersion: 'v1', kind: 'List', items });

  it('name the object and field of an invalid object', () => {
    const bad = [
      [{ kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.300', ports: [] } }, 'Service shop/web: spec.clusterIP'],
      [{ kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.3', ports: [{ port: 70000 }] } }, 'Service shop/web: spec.ports[0].port'],
      [{ kind: 'Service', metadata: { name: 'Web_1' }, spec: {} }, 'metadata.name'],
      [{ kind: 'EndpointSlice', metadata: { name: 'web-abc', namespace: 'shop' }, addressType: 'IPv4' }, 'EndpointSlice shop/web-abc: metadata.labels["kubernetes.io/service-name"]'],
      [{ kind: 'EndpointSlice', metadata: { name: 'web-abc', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['x'] }] }, 'EndpointSlice default/web-abc: endpoints[0].addresses[0]'],
    ] as const;
    for (const [obj, where] of bad) {
      expect(() => readCluster(list([obj]))).toThrow(ObjectError);
      expect(() => readCluster(list([obj]))).toThrow(where);
    }
    expect(() => readClusterJson('{"kind": "List", ')).toThrow(/not valid JSON/);
  });

  it('read a kind cluster as kubectl prints it', async () => {
    const { readFile } = await import('node:fs/promises');
    const c = readClusterJson(await readFile(new URL('../fixtures/kind-httpbin.kubectl.json', import.meta.url), 'utf8'));
    const ports = resolveServicePorts(c, { nodeName: 'kind-worker' });
    const httpbin = ports.find((p) => p.servicePortName === 'default/httpbin:http');
    expect(httpbin?.port).toBe(8000);
    expect(httpbin?.endpoints.map((e) => e.port)).toEqual([8080, 8080, 8080]);
    expect(ports.map((p) => p.servicePortName)).toContain('kube-system/kube-dns:dns');
  });
});

describe('test namespaces', () => {
  it('are private and tagged with the run', async () => {
    await withNetns(async (ns) => {
      expect(ns.name.startsWith(`kn-test-${testRunTag()}-`)).toBe(true);
      const links = await ns.run(['ip', '-o', 'link']);
      expect(links.stdout.trim().split('\n')).toHaveLength(1); // only lo
    });
  });
});
