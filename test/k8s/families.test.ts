import { describe, expect, it } from 'vitest';
import {
  canonicalCidr, canonicalIp, endpointString, formatIpv6, parseIpSloppy, readCluster, resolveServicePorts, serviceObject,
} from '../../lib/k8s/index.ts';
import { HTTP_PORTS, list, refusal, slice, svc } from '../helpers/k8s-objects.ts';

describe('IPv6 text as Go prints it (net.IP.String)', () => {
  it.each([
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of two equal runs
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // the longest run, not the first
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group is not shortened
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::', '::'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'],
    ['fd00:10:180:0:0:0:2:1', 'fd00:10:180::2:1'],
    ['::1.2.3.4', '::102:304'], // IPv4-compatible, not IPv4-mapped: stays IPv6
    ['::ffff:1.2.3.4', '1.2.3.4'], // IPv4-mapped is IPv4
  ])('%s → %s', (text, want) => {
    expect(canonicalIp(text)).toBe(want);
    const ip = parseIpSloppy(text);
    if (ip?.family === 6) expect(formatIpv6(ip.bytes)).toBe(want);
  });

  it('CIDRs lose their host bits and print canonically', () => {
    expect(canonicalCidr('2001:DB8:0:0:0:0:0:1/32')).toBe('2001:db8::/32');
    expect(canonicalCidr('fd00:10:244:0:0:0:0:0/56')).toBe('fd00:10:244::/56');
    expect(canonicalCidr('fd00::1/128')).toBe('fd00::1/128');
    expect(canonicalCidr('::ffff:10.1.2.3/104')).toBe('10.0.0.0/8');
  });

  it('endpoint strings bracket IPv6 (net.JoinHostPort)', () => {
    expect(endpointString('10.0.0.1', 80)).toBe('10.0.0.1:80');
    expect(endpointString('fd00::1', 80)).toBe('[fd00::1]:80');
  });
});

describe('a dual-stack cluster, read once and resolved per IP family', () => {
  const objects = list(
    svc('dual', {
      type: 'LoadBalancer', clusterIP: 'FD00:10:96:0:0:0:0:11', clusterIPs: ['FD00:10:96:0:0:0:0:11', '10.96.0.11'],
      externalIPs: ['2001:DB8:0:0:0:0:0:12', '192.0.2.12'], loadBalancerSourceRanges: ['2001:db8::1/64', '203.0.113.0/24'],
      ports: [{ name: 'http', port: 80, nodePort: 30080 }],
    }, { status: { loadBalancer: { ingress: [{ ip: '2001:db8:0:0:0:0:0:13' }, { ip: '198.51.100.13' }] } } }),
    svc('v6only', { clusterIP: 'fd00:10:96::20', clusterIPs: ['fd00:10:96::20'] }),
    svc('v4only', { clusterIP: '10.96.0.30' }),
    slice('dual-6', 'dual', [{ addresses: ['fd00:10:244:0:0:0:0:1'], nodeName: 'kind-worker' }, { addresses: ['fd00:10:244::10'] }], HTTP_PORTS, 'IPv6'),
    slice('dual-4', 'dual', [{ addresses: ['10.244.0.20'] }]),
    slice('v6only-6', 'v6only', [{ addresses: ['fd00:10:244::21'] }], HTTP_PORTS, 'IPv6'),
  );

  it('stores every address as kube-proxy prints it, and both cluster IPs of the dual-stack Service', () => {
    const c = readCluster(objects);
    const dual = c.services[0];
    expect(dual.clusterIP).toBe('10.96.0.11'); // the IPv4 one, as before
    expect(dual.clusterIPs).toEqual(['fd00:10:96::11', '10.96.0.11']);
    expect(dual.externalIPs).toEqual(['2001:db8::12', '192.0.2.12']);
    expect(dual.loadBalancerIPs).toEqual(['2001:db8::13', '198.51.100.13']);
    expect(dual.loadBalancerSourceRanges).toEqual(['2001:db8::/64', '203.0.113.0/24']);
    expect(c.services[1].clusterIPs).toBeUndefined(); // one address: clusterIP says it all
    expect(c.endpointSlices[0].endpoints.map((e) => e.addresses[0])).toEqual(['fd00:10:244::1', 'fd00:10:244::10']);
  });

  it('the IPv6 proxier sees the IPv6 Services, addresses and slices, endpoints sorted as [ip]:port', () => {
    const ports = resolveServicePorts(readCluster(objects), { nodeName: 'kind-worker', ipFamily: 'IPv6' });
    expect(ports.map((p) => [p.servicePortName, p.clusterIP])).toEqual([['default/dual:http', 'fd00:10:96::11'], ['default/v6only:http', 'fd00:10:96::20']]);
    const [dual] = ports;
    expect(dual.externalIPs).toEqual(['2001:db8::12']);
    expect(dual.loadBalancerIPs).toEqual(['2001:db8::13']);
    expect(dual.loadBalancerSourceRanges).toEqual(['2001:db8::/64']);
    // "[fd00:10:244::10]:8080" sorts before "[fd00:10:244::1]:8080" ('0' < ']').
    expect(dual.endpoints.map((e) => [e.ip, e.isLocal])).toEqual([['fd00:10:244::10', false], ['fd00:10:244::1', true]]);
  });

  it('the IPv4 proxier sees what it saw before', () => {
    const ports = resolveServicePorts(readCluster(objects), { nodeName: 'kind-worker' });
    expect(ports.map((p) => [p.servicePortName, p.clusterIP])).toEqual([['default/dual:http', '10.96.0.11'], ['default/v4only:http', '10.96.0.30']]);
    expect(ports[0]).toMatchObject({ externalIPs: ['192.0.2.12'], loadBalancerIPs: ['198.51.100.13'], loadBalancerSourceRanges: ['203.0.113.0/24'] });
    expect(ports[0].endpoints.map((e) => e.ip)).toEqual(['10.244.0.20']);
  });

  it('writes back the List it read', () => {
    const c = readCluster(objects);
    expect(readCluster(list(...c.services.map(serviceObject)))).toEqual({ services: c.services, endpointSlices: [] });
  });
});

describe('status.loadBalancer.ingress[].ipMode', () => {
  const lb = (ingress: unknown[]) => svc('lb', { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, { status: { loadBalancer: { ingress } } });

  it('Proxy ingress IPs are kept apart, and kube-proxy gets none of them', () => {
    const c = readCluster(list(lb([{ ip: '198.51.100.1', ipMode: 'VIP' }, { ip: '198.51.100.2', ipMode: 'Proxy' }, { ip: '198.51.100.3' }, { hostname: 'lb.example.com' }])));
    expect(c.services[0].loadBalancerIPs).toEqual(['198.51.100.1', '198.51.100.3']);
    expect(c.services[0].loadBalancerProxyIPs).toEqual(['198.51.100.2']);
    expect(resolveServicePorts(c)[0].loadBalancerIPs).toEqual(['198.51.100.1', '198.51.100.3']);
    expect(readCluster(list(serviceObject(c.services[0])))).toEqual(c);
  });

  it.each([
    ['an unknown mode', [{ ip: '198.51.100.1', ipMode: 'Router' }], 'expected VIP or Proxy, got "Router"'],
    ['a mode without an ip', [{ hostname: 'lb.example.com', ipMode: 'Proxy' }], 'may not be specified when `ip` is not set'],
  ])('refuses %s', (_what, ingress, problem) => {
    const e = refusal(list(lb(ingress)));
    expect([e.object, e.field, e.problem]).toEqual(['Service default/lb', 'status.loadBalancer.ingress[0].ipMode', problem]);
  });
});

describe('spec.healthCheckNodePort', () => {
  const local = (spec: Record<string, unknown>) => svc('lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }], ...spec });

  it('is read for a LoadBalancer with externalTrafficPolicy Local and reaches its service ports', () => {
    const c = readCluster(list(local({ healthCheckNodePort: 31000 })));
    expect(c.services[0].healthCheckNodePort).toBe(31000);
    expect(resolveServicePorts(c)[0].healthCheckNodePort).toBe(31000);
    expect(readCluster(list(serviceObject(c.services[0])))).toEqual(c);
  });

  it('is absent when unset (or 0, the API\'s unset)', () => {
    for (const spec of [{}, { healthCheckNodePort: 0 }]) {
      const c = readCluster(list(local(spec)));
      expect(c.services[0].healthCheckNodePort).toBeUndefined();
      expect(resolveServicePorts(c)[0].healthCheckNodePort).toBeUndefined();
    }
  });

  it.each([
    ['on a NodePort Service', svc('lb', { type: 'NodePort', externalTrafficPolicy: 'Local', healthCheckNodePort: 31000 }), "31000: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"],
    ['with externalTrafficPolicy Cluster', local({ externalTrafficPolicy: 'Cluster', healthCheckNodePort: 31000 }), "31000: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"],
    ['out of range', local({ healthCheckNodePort: 70000 }), 'expected a port number 1..65535, got 70000'],
    ['not a number', local({ healthCheckNodePort: '31000' }), 'expected a port number 1..65535, got "31000"'],
  ])('is refused %s', (_what, obj, problem) => {
    const e = refusal(list(obj));
    expect([e.field, e.problem]).toEqual(['spec.healthCheckNodePort', problem]);
  });
});
