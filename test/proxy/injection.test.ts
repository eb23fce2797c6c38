/**
 * The reported injections and silent misreadings, one by one, against the generators directly
 * (bypassing readCluster) and with the kernel as judge where rules are produced.
 */
import { describe, expect, it } from 'vitest';
import { readCluster, resolveServicePorts, type ServicePortInfo } from '../../lib/k8s/index.ts';
import { generateIptables } from '../../lib/proxy/iptables.ts';
import { generateIpvs } from '../../lib/proxy/ipvs.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import { GeneratorInputError } from '../../lib/proxy/tokens.ts';
import { PORT_NAME_INJECTION, SOURCE_RANGE_INJECTION } from '../helpers/hostile.ts';
import { iptablesModeProblems, ipvsModeProblems, nftablesModeProblems, resetNetns } from '../helpers/kernel-oracle.ts';
import { withNetns } from '../helpers/netns.ts';

const OPTS = { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'], clusterCIDR: '10.244.0.0/16' };
const GENERATORS = {
  iptables: (p: ServicePortInfo[], o = {}) => generateIptables(p, { ...OPTS, ...o }),
  ipvs: (p: ServicePortInfo[], o = {}) => generateIpvs(p, { ...OPTS, ...o }),
  nftables: (p: ServicePortInfo[], o = {}) => generateNftables(p, { ...OPTS, ...o }),
};
const MODES = Object.keys(GENERATORS) as (keyof typeof GENERATORS)[];

function port(over: Partial<ServicePortInfo> = {}): ServicePortInfo {
  const base: ServicePortInfo = {
    namespace: 'default', name: 'web', portName: 'http', servicePortName: 'default/web:http', protocol: 'TCP', type: 'LoadBalancer',
    clusterIP: '10.96.0.10', port: 80, nodePort: 30080, externalIPs: ['192.0.2.10'], loadBalancerIPs: ['198.51.100.10'],
    loadBalancerSourceRanges: ['203.0.113.0/24'], sessionAffinity: 'None', sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster', internalTrafficPolicy: 'Cluster',
    endpoints: [{ ip: '10.244.1.5', port: 8080, ready: true, serving: true, terminating: false, nodeName: 'kind-worker', podName: 'web-1', isLocal: true }],
  };
  return { ...base, ...over };
}

/** The GeneratorInputError a generator throws, or a failure when it returns. */
function refusal(generate: () => unknown): GeneratorInputError {
  try {
    generate();
  } catch (e) {
    if (e instanceof GeneratorInputError) return e;
    throw e;
  }
  throw new Error('the generator accepted the input');
}

describe.each(MODES)('%s generator refuses what could leave its token', (mode) => {
  const gen = GENERATORS[mode];

  it('the reported port name with a quote and a newline', () => {
    const e = refusal(() => gen([port({ portName: PORT_NAME_INJECTION, servicePortName: `default/web:${PORT_NAME_INJECTION}` })]));
    expect([e.where, e.field]).toEqual(['ports[0]', 'portName']);
    expect(e.message).not.toContain('\n');
  });

  it('the reported source range with a brace and a newline', () => {
    const e = refusal(() => gen([port({ loadBalancerSourceRanges: ['198.51.100.0/24', SOURCE_RANGE_INJECTION] })]));
    expect([e.where, e.field]).toEqual(['ports[0] (default/web:http TCP)', 'loadBalancerSourceRanges[1]']);
  });

  it.each([
    ['namespace', { namespace: 'a"b' }],
    ['name', { name: 'web}', servicePortName: 'default/web}:http' }],
    ['servicePortName', { servicePortName: 'default/web:http"\n-A INPUT -j DROP' }],
    ['protocol', { protocol: 'TCP -j ACCEPT' as ServicePortInfo['protocol'] }],
    ['clusterIP', { clusterIP: '10.96.0.10"\n' }],
    ['clusterIP', { clusterIP: '0xa.96.0.10' }],
    ['clusterIP', { clusterIP: '167772170' }],
    ['externalIPs[0]', { externalIPs: ['192.0.2.10 } ; add table ip pwned'] }],
    ['loadBalancerIPs[0]', { loadBalancerIPs: ['198.51.100.10\n*mangle'] }],
    ['port', { port: 0 }],
    ['port', { port: 65536 }],
    ['nodePort', { nodePort: -1 }],
    ['sessionAffinityTimeoutSeconds', { sessionAffinityTimeoutSeconds: 0 }],
    ['endpoints[0].ip', { endpoints: [{ ...port().endpoints[0], ip: '10.244.1.5;drop' }] }],
    ['endpoints[0].port', { endpoints: [{ ...port().endpoints[0], port: 1.5 }] }],
    ['endpoints[1]', { endpoints: [port().endpoints[0], { ...port().endpoints[0], ip: '10.244.001.005' }] }],
  ])('a bad %s', (field, over) => {
    expect(refusal(() => gen([port(over as Partial<ServicePortInfo>)])).field).toBe(field);
  });

  it('one service port listed twice', () => {
    const e = refusal(() => gen([port(), port()]));
    expect([e.where, e.problem]).toEqual(['ports[1] (default/web:http TCP)', 'duplicates ports[0]: kube-proxy holds one entry per service port and protocol']);
  });

  it.each([
    ['clusterCIDR', { clusterCIDR: '10.244.0.0/16 } ; add table ip pwned ; #' }],
    ['nodeIPs[0]', { nodeIPs: ['172.18.0.3"\n-A INPUT -j DROP'] }],
    ['masqueradeBit', { masqueradeBit: 32 }],
  ])('an option %s from the command line', (field, o) => {
    const e = refusal(() => gen([port()], o));
    expect([e.where, e.field]).toEqual(['options', field]);
  });
});

describe('options only one mode writes', () => {
  it('iptables: --iptables-masquerade-bit text, IPVS: the scheduler, nftables: service CIDRs', () => {
    expect(refusal(() => generateIptables([port()], { masqueradeMark: '0x4000"\n-A INPUT -j DROP' })).field).toBe('masqueradeMark');
    expect(refusal(() => generateIpvs([port()], { scheduler: 'rr\n-A' })).field).toBe('scheduler');
    expect(refusal(() => generateNftables([port()], { serviceCIDRs: ['10.96.0.0/16 } accept'] })).field).toBe('serviceCIDRs[0]');
  });
});

describe('odd forms are written as kube-proxy reads them, and the kernel agrees', () => {
  // A ClusterIP of 172.30.0.041 is .41 to kube-proxy; iptables' own parser would have read octal .33.
  const odd = [port({
    clusterIP: '172.30.0.041', externalIPs: ['::ffff:192.0.2.10', '2001:db8::10'], loadBalancerIPs: ['198.051.100.010'],
    loadBalancerSourceRanges: [' 203.0.113.7/24 ', '2001:db8::/32'],
    endpoints: [{ ...port().endpoints[0], ip: '10.244.001.005' }, { ...port().endpoints[0], ip: '2001:db8::5' }],
  })];
  const meaning = { clusterIPs: new Set(['172.30.0.41']), endpoints: new Set(['10.244.1.5:8080']) };

  it.each(MODES)('%s', async (mode) => {
    const r = GENERATORS[mode](odd);
    const text = JSON.stringify(r);
    for (const canonical of ['172.30.0.41', '192.0.2.10', '198.51.100.10', '203.0.113.0/24', '10.244.1.5']) expect(text).toContain(canonical);
    for (const raw of ['172.30.0.041', '::ffff:', '2001:db8', '198.051', '203.0.113.7', '10.244.001']) expect(text).not.toContain(raw);
    const problems = await withNetns(async (ns) => {
      await resetNetns(ns);
      if (mode === 'iptables') return iptablesModeProblems(ns, r as ReturnType<typeof generateIptables>, meaning);
      if (mode === 'ipvs') return ipvsModeProblems(ns, r as ReturnType<typeof generateIpvs>, meaning);
      return nftablesModeProblems(ns, r as ReturnType<typeof generateNftables>, meaning);
    });
    expect(problems).toEqual([]);
  });
});

describe('valid Services the kernel used to refuse', () => {
  const long = 'a'.repeat(62) + 'z';
  const cases: [string, ServicePortInfo[], Set<string>][] = [
    // 191-character service port names: nft comments are cut to the kernel's 128 bytes.
    ['63-character namespace, name and port name', [port({ namespace: long, name: long, portName: long, servicePortName: `${long}/${long}:${long}`, endpoints: [] })], new Set(['10.96.0.10'])],
    // Both policies Local on an externally reachable port: nft mode needs the cluster chain for its short-circuit rules.
    ['internal and external traffic policy Local', [port({ internalTrafficPolicy: 'Local', externalTrafficPolicy: 'Local', endpoints: [{ ...port().endpoints[0], ready: false, terminating: true, isLocal: false }] })], new Set(['10.96.0.10'])],
    // ipset has no /0 members: a source range that allows everything is no firewall.
    ['a source range of 0.0.0.0/0', [port({ loadBalancerSourceRanges: ['0.0.0.0/0', '203.0.113.0/24'] })], new Set(['10.96.0.10'])],
  ];
  for (const mode of MODES) {
    it.each(cases)(`${mode}: %s`, async (_what, ports, clusterIPs) => {
      const r = GENERATORS[mode](ports);
      const problems = await withNetns(async (ns) => {
        if (mode === 'iptables') return iptablesModeProblems(ns, r as ReturnType<typeof generateIptables>, { clusterIPs });
        if (mode === 'ipvs') return ipvsModeProblems(ns, r as ReturnType<typeof generateIpvs>, { clusterIPs });
        return nftablesModeProblems(ns, r as ReturnType<typeof generateNftables>, { clusterIPs });
      });
      expect(problems).toEqual([]);
    });
  }

  it('an EndpointSlice port without a number is ignored, as kube-proxy ignores it', () => {
    const c = readCluster({ items: [
      { kind: 'Service', metadata: { name: 'web' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }] } },
      { kind: 'EndpointSlice', metadata: { name: 'web-a', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.244.1.5'] }], ports: [{ name: 'http' }] },
    ] });
    expect(resolveServicePorts(c)[0].endpoints).toEqual([]);
  });
});
