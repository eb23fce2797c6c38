import { describe, expect, it } from 'vitest';
import {
  canonicalIpv4, canonicalIpv4Cidr, parseIpSloppy, readCluster, resolveServicePorts,
} from '../../lib/k8s/index.ts';
import { PORT_NAME_INJECTION, SOURCE_RANGE_INJECTION } from '../helpers/hostile.ts';
import { list, refusal, slice, svc } from '../helpers/k8s-objects.ts';

describe('addresses as Go 1.16 (ParseIPSloppy) reads them', () => {
  it.each([
    ['172.30.0.041', '172.30.0.41'], ['010.096.000.001', '10.96.0.1'], ['00000000000000000001.2.3.4', '1.2.3.4'],
    ['::ffff:172.30.0.41', '172.30.0.41'], ['::ffff:ac1e:29', '172.30.0.41'], ['0:0:0:0:0:ffff:1.2.3.4', '1.2.3.4'],
  ])('%s is the IPv4 address %s', (text, ip) => {
    expect(canonicalIpv4(text)).toBe(ip);
  });

  it.each(['0xac.30.0.41', '2887647273', '172.30.41', '172.30.0.256', ' 172.30.0.41', '172.30.0.41 ', '1.2.3.4"\n', '', '1.2.3.4/32', '1::2::3', 'fe80::1%eth0'])(
    '%j is not an address', (text) => {
      expect(parseIpSloppy(text)).toBeNull();
    },
  );

  it('IPv6 addresses are IPv6, not IPv4', () => {
    for (const text of ['2001:db8::1', '::1.2.3.4', '::']) expect(parseIpSloppy(text)?.family).toBe(6);
  });

  it.each([
    ['10.1.2.3/8', '10.0.0.0/8'], ['010.0.0.0/08', '10.0.0.0/8'], ['::ffff:10.0.0.0/104', '10.0.0.0/8'], ['0.0.0.0/0', '0.0.0.0/0'],
  ])('CIDR %s is %s', (text, cidr) => {
    expect(canonicalIpv4Cidr(text)).toBe(cidr);
  });

  it.each(['10.0.0.0/33', '10.0.0.0', '10.0.0.0/ 8', '0x0a.0.0.0/8', '10.0.0.0/8}'])('%j is not a CIDR', (text) => {
    expect(canonicalIpv4Cidr(text)).toBeNull();
  });
});

describe('readCluster refuses what the API server refuses, naming object and field', () => {
  it('the reported iptables injection: a port name with a quote and a newline', () => {
    const e = refusal(list(svc('x', { ports: [{ name: PORT_NAME_INJECTION, port: 80 }] })));
    expect(e.message.startsWith('Service default/x: spec.ports[0].name: "http\\"\\n-A INPUT')).toBe(true);
    expect(e.message).toContain('is not a valid DNS label');
    expect(e.message).not.toContain('\n');
  });

  it('the reported nftables injection: a source range with a brace and a newline', () => {
    const e = refusal(list(svc('lb', { type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24', SOURCE_RANGE_INJECTION] })));
    expect([e.object, e.field]).toEqual(['Service default/lb', 'spec.loadBalancerSourceRanges[1]']);
    expect(e.message).toContain('is not a CIDR');
  });

  it.each([
    ['a cluster IP in hex', { clusterIP: '0xac.30.0.41', clusterIPs: ['0xac.30.0.41'] }, 'spec.clusterIPs[0]'],
    ['a cluster IP as one number', { clusterIP: '2887647273' }, 'spec.clusterIP'],
    ['a cluster IP of three parts', { clusterIP: '172.30.41' }, 'spec.clusterIP'],
    ['an octet over 255', { clusterIP: '172.30.0.256' }, 'spec.clusterIP'],
    ['clusterIPs[0] not clusterIP', { clusterIP: '172.30.0.41', clusterIPs: ['172.30.0.42'] }, 'spec.clusterIPs'],
    ['clusterIPs without clusterIP', { clusterIP: '', clusterIPs: ['172.30.0.42'] }, 'spec.clusterIPs'],
    ['two IPv4 cluster IPs', { clusterIP: '172.30.0.41', clusterIPs: ['172.30.0.41', '172.30.0.42'] }, 'spec.clusterIPs'],
    ['an external IP with a quote', { externalIPs: ['192.0.2.1"'] }, 'spec.externalIPs[0]'],
    ['a loopback external IP', { externalIPs: ['127.0.0.1'] }, 'spec.externalIPs[0]'],
    ['a link-local external IP, IPv4-mapped', { externalIPs: ['::ffff:169.254.169.254'] }, 'spec.externalIPs[0]'],
    ['a source range without a prefix', { type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0'] }, 'spec.loadBalancerSourceRanges[0]'],
    ['a /33 source range', { type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/33'] }, 'spec.loadBalancerSourceRanges[0]'],
    ['port 0', { ports: [{ port: 0 }] }, 'spec.ports[0].port'],
    ['a negative port', { ports: [{ port: -80 }] }, 'spec.ports[0].port'],
    ['a huge port', { ports: [{ port: 2 ** 40 }] }, 'spec.ports[0].port'],
    ['a port as text', { ports: [{ port: '80' }] }, 'spec.ports[0].port'],
    ['targetPort 70000', { ports: [{ port: 80, targetPort: 70000 }] }, 'spec.ports[0].targetPort'],
    ['a targetPort name too long for IANA', { ports: [{ port: 80, targetPort: 'sixteen-chars-xx' }] }, 'spec.ports[0].targetPort'],
    ['a targetPort name without a letter', { ports: [{ port: 80, targetPort: '8080' }] }, 'spec.ports[0].targetPort'],
    ['an affinity timeout over a day', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 86401 } } }, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds'],
    ['an affinity config without ClientIP', { sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }, 'spec.sessionAffinityConfig'],
    ['a selector key with a quote', { selector: { 'app"': 'web' } }, 'spec.selector["app\\""]'],
    ['a selector value with a newline', { selector: { app: 'web\n' } }, 'spec.selector["app"]'],
    ['a lower-case protocol', { ports: [{ port: 80, protocol: 'tcp' }] }, 'spec.ports[0].protocol'],
    ['no ports', { ports: [] }, 'spec.ports'],
    ['None on a NodePort Service', { type: 'NodePort', clusterIP: 'None' }, 'spec.clusterIP'],
  ])('%s', (_what, spec, field) => {
    const e = refusal(list(svc('web', spec)));
    expect([e.object, e.field]).toEqual(['Service default/web', field]);
  });

  it.each([
    ['a namespace with a brace', { kind: 'Service', metadata: { name: 'web', namespace: 'a}b' }, spec: {} }, 'metadata.namespace'],
    ['a Service name that starts with a digit', { kind: 'Service', metadata: { name: '1web' }, spec: {} }, 'metadata.name'],
    ['a Service name of 64 characters', { kind: 'Service', metadata: { name: 'a'.repeat(64) }, spec: {} }, 'metadata.name'],
  ])('%s', (_what, obj, field) => {
    expect(refusal(list(obj)).field).toBe(field);
  });

  it('quotes a huge value in its message instead of repeating it', () => {
    const e = refusal(list(svc('web', { ports: [{ name: `${'x'.repeat(100_000)}"`, port: 80 }] })));
    expect(e.message.length).toBeLessThan(400);
    expect(e.message).toContain('(100001 characters)');
  });

  it.each([
    ['an EndpointSlice name with a quote', slice('web"', 'web', []), 'metadata.name'],
    ['a service-name label with a newline', slice('web-a', 'web\n', []), 'metadata.labels["kubernetes.io/service-name"]'],
    ['an address in hex', slice('web-a', 'web', [{ addresses: ['0x0a.244.0.5'] }]), 'endpoints[0].addresses[0]'],
    ['an IPv6 address in an IPv4 slice', slice('web-a', 'web', [{ addresses: ['2001:db8::5'] }]), 'endpoints[0].addresses[0]'],
    ['an IPv4 address in an IPv6 slice', slice('web-a', 'web', [{ addresses: ['10.244.0.5'] }], [], 'IPv6'), 'endpoints[0].addresses[0]'],
    ['a loopback endpoint', slice('web-a', 'web', [{ addresses: ['127.0.0.1'] }]), 'endpoints[0].addresses[0]'],
    ['a nodeName with a space', slice('web-a', 'web', [{ addresses: ['10.244.0.5'], nodeName: 'kind worker' }]), 'endpoints[0].nodeName'],
    ['a Pod name with a quote', slice('web-a', 'web', [{ addresses: ['10.244.0.5'], targetRef: { kind: 'Pod', name: 'p"' } }]), 'endpoints[0].targetRef.name'],
    ['ready as text', slice('web-a', 'web', [{ addresses: ['10.244.0.5'], conditions: { ready: 'false' } }]), 'endpoints[0].conditions.ready'],
    ['a port name with a quote', slice('web-a', 'web', [], [{ name: 'http"', port: 8080 }]), 'ports[0].name'],
    ['a port over 65535', slice('web-a', 'web', [], [{ name: 'http', port: 65536 }]), 'ports[0].port'],
    ['two ports with one name', slice('web-a', 'web', [], [{ name: 'http', port: 8080 }, { name: 'http', protocol: 'UDP', port: 53 }]), 'ports[1].name'],
  ])('%s', (_what, obj, field) => {
    const e = refusal(list(obj));
    expect(e.object.startsWith('EndpointSlice ')).toBe(true);
    expect(e.field).toBe(field);
  });
});

describe('duplicates are errors that name both places', () => {
  it('a Service listed twice', () => {
    const e = refusal(list(svc('web', {}), slice('web-a', 'web', []), svc('web', { clusterIP: '10.96.0.11' })));
    expect(e.message).toBe('Service default/web: metadata.name: items[2] duplicates items[0]: a cluster holds one Service default/web');
  });

  it('an EndpointSlice listed twice', () => {
    const e = refusal(list(slice('web-a', 'web', []), slice('web-a', 'web', [])));
    expect(e.message).toContain('items[1] duplicates items[0]');
  });

  it.each([
    ['two ports named http', [{ name: 'http', port: 80 }, { name: 'http', port: 81 }], 'spec.ports[1].name', '"http" duplicates spec.ports[0]'],
    ['two ports on TCP 80', [{ name: 'a', port: 80 }, { name: 'b', port: 80 }], 'spec.ports[1]', 'TCP port 80 duplicates spec.ports[0]'],
    ['two ports on node port 30080', [{ name: 'a', port: 80, nodePort: 30080 }, { name: 'b', port: 81, nodePort: 30080 }], 'spec.ports[1].nodePort', 'TCP node port 30080 duplicates spec.ports[0]'],
    ['an unnamed port beside another', [{ port: 80 }, { name: 'b', port: 81 }], 'spec.ports[0].name', 'required when a Service has several ports'],
  ])('%s', (_what, ports, field, problem) => {
    const e = refusal(list(svc('web', { type: 'NodePort', ports })));
    expect([e.field, e.problem]).toEqual([field, problem]);
  });

  it('the same port number on TCP and UDP is not a duplicate', () => {
    const c = readCluster(list(svc('dns', { ports: [{ name: 'dns', port: 53, protocol: 'UDP' }, { name: 'dns-tcp', port: 53 }] })));
    expect(c.services[0].ports.map((p) => `${p.protocol}/${p.port}`)).toEqual(['UDP/53', 'TCP/53']);
  });
});

describe('odd but valid forms read as kube-proxy reads them', () => {
  it('172.30.0.041 is 172.30.0.41 (kube-proxy reads decimal; iptables and ipaddr.js would read octal .33)', () => {
    const c = readCluster(list(
      svc('web', { clusterIP: '172.30.0.041', clusterIPs: ['172.30.0.041'], externalIPs: ['192.000.002.010'] }),
      slice('web-a', 'web', [{ addresses: ['10.244.001.010'] }, { addresses: ['::ffff:10.244.1.11'] }]),
    ));
    expect(c.services[0].clusterIP).toBe('172.30.0.41');
    expect(c.services[0].externalIPs).toEqual(['192.0.2.10']);
    expect(c.endpointSlices[0].endpoints.map((e) => e.addresses[0])).toEqual(['10.244.1.10', '10.244.1.11']);
    const [port] = resolveServicePorts(c);
    expect(port.clusterIP).toBe('172.30.0.41');
    expect(port.endpoints.map((e) => `${e.ip}:${e.port}`)).toEqual(['10.244.1.10:8080', '10.244.1.11:8080']);
  });

  it('source ranges are trimmed as the API trims them and lose their host bits', () => {
    const c = readCluster(list(svc('lb', { type: 'LoadBalancer', loadBalancerSourceRanges: [' 203.0.113.0/24 ', '172.18.7.9/16', '010.0.0.0/08', '2001:db8::/32'] })));
    expect(c.services[0].loadBalancerSourceRanges).toEqual(['203.0.113.0/24', '172.18.0.0/16', '10.0.0.0/8', '2001:db8::/32']);
  });

  it('a Service port name of 63 characters and a 63-character namespace are valid', () => {
    const long = 'a'.repeat(62) + 'z';
    const c = readCluster(list({ kind: 'Service', metadata: { name: long, namespace: long }, spec: { clusterIP: '10.96.0.1', ports: [{ name: long, port: 1 }] } }));
    expect(resolveServicePorts(c)[0].servicePortName).toBe(`${long}/${long}:${long}`);
  });
});

describe('IPv6 is left to the IPv6 proxier, as kube-proxy does', () => {
  const ipv6 = list(
    svc('v6', { clusterIP: '2001:db8::10', clusterIPs: ['2001:db8::10'] }),
    svc('dual', { clusterIP: '2001:db8::11', clusterIPs: ['2001:db8::11', '10.96.0.11'], externalIPs: ['2001:db8::12', '192.0.2.12'] }),
    svc('lb', { type: 'LoadBalancer', clusterIP: '10.96.0.12', loadBalancerSourceRanges: ['2001:db8::/32'] }, { status: { loadBalancer: { ingress: [{ ip: '2001:db8::13' }, { ip: '198.51.100.13' }] } } }),
    slice('dual-6', 'dual', [{ addresses: ['2001:db8::20'] }], [{ name: 'http', port: 8080 }], 'IPv6'),
    slice('dual-4', 'dual', [{ addresses: ['10.244.0.20'] }]),
  );

  it('reads IPv6 Services, addresses and slices without error', () => {
    const c = readCluster(ipv6);
    expect(c.services.map((s) => s.clusterIP)).toEqual(['2001:db8::10', '10.96.0.11', '10.96.0.12']);
  });

  it('resolve skips the IPv6-only Service and every IPv6 address, range and endpoint', () => {
    const ports = resolveServicePorts(readCluster(ipv6));
    expect(ports.map((p) => [p.servicePortName, p.clusterIP])).toEqual([['default/dual:http', '10.96.0.11'], ['default/lb:http', '10.96.0.12']]);
    expect(ports[0].externalIPs).toEqual(['192.0.2.12']);
    expect(ports[0].endpoints.map((e) => e.ip)).toEqual(['10.244.0.20']);
    expect(ports[1].loadBalancerIPs).toEqual(['198.51.100.13']);
    expect(ports[1].loadBalancerSourceRanges).toEqual([]);
  });
});
