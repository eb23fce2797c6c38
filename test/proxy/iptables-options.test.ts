/**
 * kube-proxy's settings in iptables mode (pkg/proxy/iptables/proxier.go NewProxier and
 * syncProxyRules): localhost NodePorts, --nodeport-addresses, the local-traffic detector,
 * --masquerade-all and the IPv6 proxier. Upstream's expected text where it has one
 * (proxier_test.go), and the kernel (iptables-save / ip6tables-save) for every output.
 */
import { describe, expect, it } from 'vitest';
import { readCluster, resolveServicePorts, service, type Cluster, type Endpoint, type IpFamily, type ServicePortInfo } from '../../lib/k8s/index.ts';
import { generateIptables, type IptablesOptions, type IptablesRules } from '../../lib/proxy/iptables.ts';
import { svcChain } from '../../lib/proxy/names.ts';
import { GeneratorInputError } from '../../lib/proxy/tokens.ts';
import { expectKernelHasAll, loadInKernel } from './iptables-kernel.ts';

const dedent = (s: string) => `${s.replace(/^\n/, '').split('\n').map((l) => l.replace(/^\t+/, '')).join('\n').trimEnd()}\n`;

// The fake proxier of upstream's tests: node test-hostname at 192.168.0.2, pod CIDR 10.0.0.0/8,
// mark 0x4000, an iptables without --random-fully, no nfacct; sorted as its tests sort.
const FAKE: IptablesOptions = {
  nodeName: 'test-hostname', nodeIPs: ['192.168.0.2'], clusterCIDR: '10.0.0.0/8',
  masqueradeMark: '0x4000', randomFully: false, normalize: true,
};

const ep = (ip: string, nodeName: string | null = null): Endpoint => ({ addresses: [ip], ready: true, serving: true, terminating: false, nodeName, podName: null });

/** upstream's onlyLocalNodePorts and (Enable|Disable)LocalhostNodePorts services: one NodePort, externalTrafficPolicy Local, one local endpoint. */
function localNodePortCluster(family: IpFamily, clusterIP: string, nodePort: number, eps: [string, string]): Cluster {
  return {
    services: [service({
      namespace: 'ns1', name: 'svc1', type: 'NodePort', clusterIP, externalTrafficPolicy: 'Local',
      ports: [{ name: 'p80', protocol: 'TCP', port: 80, targetPort: 80, nodePort }],
    })],
    endpointSlices: [{
      namespace: 'ns1', name: 'svc1-1', serviceName: 'svc1', addressType: family,
      endpoints: [ep(eps[0]), ep(eps[1], 'test-hostname')], ports: [{ name: 'p80', protocol: 'TCP', port: 80 }],
    }],
  };
}

const ports = (c: Cluster, family: IpFamily = 'IPv4') => resolveServicePorts(c, { nodeName: 'test-hostname', ipFamily: family });

async function expectLoads(r: IptablesRules): Promise<void> {
  expectKernelHasAll(r, (await loadInKernel(r)).saved);
}

// The IPv6 expectation of TestEnableLocalhostNodePortsIPv6 and TestDisableLocalhostNodePortsIPv6:
// the same text either way, as the IPv6 proxier never has localhost NodePorts.
const LOCALHOST_IPV6 = dedent(`
		*filter
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-EXTERNAL-SERVICES - [0:0]
		:KUBE-FORWARD - [0:0]
		:KUBE-PROXY-FIREWALL - [0:0]
		-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		COMMIT
		*nat
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-EXT-XPGD46QRK7WJZT7O - [0:0]
		:KUBE-MARK-MASQ - [0:0]
		:KUBE-POSTROUTING - [0:0]
		:KUBE-SEP-LIGRYQQLSZN4UWQ5 - [0:0]
		:KUBE-SEP-XJJ5QXWGJG344QDZ - [0:0]
		:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
		:KUBE-SVL-XPGD46QRK7WJZT7O - [0:0]
		-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 30001 -j KUBE-EXT-XPGD46QRK7WJZT7O
		-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d fd00:ab34::20 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
		-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS
		-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
		-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O
		-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVL-XPGD46QRK7WJZT7O
		-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
		-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
		-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
		-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
		-A KUBE-SEP-LIGRYQQLSZN4UWQ5 -m comment --comment ns1/svc1:p80 -s ff06::c1 -j KUBE-MARK-MASQ
		-A KUBE-SEP-LIGRYQQLSZN4UWQ5 -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination [ff06::c1]:80
		-A KUBE-SEP-XJJ5QXWGJG344QDZ -m comment --comment ns1/svc1:p80 -s ff06::c2 -j KUBE-MARK-MASQ
		-A KUBE-SEP-XJJ5QXWGJG344QDZ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination [ff06::c2]:80
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> [ff06::c1]:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-LIGRYQQLSZN4UWQ5
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> [ff06::c2]:80" -j KUBE-SEP-XJJ5QXWGJG344QDZ
		-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> [ff06::c2]:80" -j KUBE-SEP-XJJ5QXWGJG344QDZ
		COMMIT
		`);

// TestOnlyLocalNodePorts (with the detector) and TestOnlyLocalNodePortsNoClusterCIDR (without):
// --nodeport-addresses 192.168.0.0/24,2001:db8::/64 on a node holding 192.168.0.2.
const onlyLocalNodePorts = (detector: boolean) => dedent(`
		*filter
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-EXTERNAL-SERVICES - [0:0]
		:KUBE-FORWARD - [0:0]
		:KUBE-PROXY-FIREWALL - [0:0]
		-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		COMMIT
		*nat
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-EXT-XPGD46QRK7WJZT7O - [0:0]
		:KUBE-MARK-MASQ - [0:0]
		:KUBE-POSTROUTING - [0:0]
		:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
		:KUBE-SEP-ZX7GRIZKSNUQ3LAJ - [0:0]
		:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
		:KUBE-SVL-XPGD46QRK7WJZT7O - [0:0]
		-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O
		-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
		-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS
		${detector ? '-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-XPGD46QRK7WJZT7O' : ''}
		-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
		-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O
		-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVL-XPGD46QRK7WJZT7O
		-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
		-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
		-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
		-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
		-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
		-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
		-A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -s 10.180.2.1 -j KUBE-MARK-MASQ
		-A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.2.1:80
		${detector ? '-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ' : ''}
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j KUBE-SEP-ZX7GRIZKSNUQ3LAJ
		-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.2.1:80" -j KUBE-SEP-ZX7GRIZKSNUQ3LAJ
		COMMIT
		`).replace(/\n\n/g, '\n');

describe('upstream expectations (pkg/proxy/iptables/proxier_test.go)', () => {
  it.each([['Enable', true], ['Disable', false]] as const)('Test%sLocalhostNodePortsIPv6: ip6tables input, the same whatever --iptables-localhost-nodeports says', async (_name, localhostNodePorts) => {
    const r = generateIptables(ports(localNodePortCluster('IPv6', 'fd00:ab34::20', 30001, ['ff06::c1', 'ff06::c2']), 'IPv6'), {
      ...FAKE, ipFamily: 'IPv6', clusterCIDR: null, localhostNodePorts,
    });
    expect(r.family).toBe('IPv6');
    expect(r.restore).toBe(LOCALHOST_IPV6);
    await expectLoads(r);
  });

  it.each([true, false])('TestOnlyLocalNodePorts (with a local-traffic detector: %s): one nodeports jump per node port address', async (detector) => {
    const r = generateIptables(ports(localNodePortCluster('IPv4', '172.30.0.41', 3001, ['10.180.0.1', '10.180.2.1'])), {
      ...FAKE, clusterCIDR: detector ? '10.0.0.0/8' : null, nodePortAddresses: ['192.168.0.0/24', '2001:db8::/64'], localhostNodePorts: false,
    });
    expect(r.restore).toBe(onlyLocalNodePorts(detector));
    await expectLoads(r);
  });

  it('TestDisableLocalhostNodePortsIPv4WithNodeAddress: --nodeport-addresses 127.0.0.0/8 without localhost NodePorts leaves no nodeports jump', async () => {
    const r = generateIptables(ports(localNodePortCluster('IPv4', '10.69.0.10', 30001, ['10.244.0.1', '10.244.2.1'])), {
      ...FAKE, clusterCIDR: null, nodePortAddresses: ['127.0.0.0/8'], localhostNodePorts: false,
    });
    const nat = r.restore.slice(r.restore.indexOf('*nat'));
    expect(nat).not.toContain('KUBE-NODEPORTS\n');
    expect(nat.split('\n').filter((l) => l.startsWith('-A KUBE-SERVICES '))).toEqual([
      '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 10.69.0.10 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O',
    ]);
    expect(r.restore).not.toContain('KUBE-FIREWALL');
    await expectLoads(r);
  });
});

describe('localhost NodePorts in IPv4', () => {
  const c = localNodePortCluster('IPv4', '10.69.0.10', 30001, ['10.244.0.1', '10.244.2.1']);
  const lines = (r: IptablesRules, prefix: string) => r.restore.split('\n').filter((l) => l.startsWith(prefix));

  it('on (the default): KUBE-FIREWALL blocks martians to 127.0.0.0/8 and the nodeports jump takes every local address', async () => {
    const r = generateIptables(ports(c), { ...FAKE, normalize: false });
    expect(lines(r, '-A KUBE-FIREWALL')).toHaveLength(1);
    expect(lines(r, '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports')).toEqual([
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    ]);
    await expectLoads(r);
  });

  it('off: no KUBE-FIREWALL rule, and the jump skips 127.0.0.0/8', async () => {
    const r = generateIptables(ports(c), { ...FAKE, normalize: false, localhostNodePorts: false });
    expect(r.restore).not.toContain('KUBE-FIREWALL');
    expect(lines(r, '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports')).toEqual([
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS',
    ]);
    await expectLoads(r);
  });

  it('off by kube-proxy itself when --nodeport-addresses holds no loopback address', () => {
    const r = generateIptables(ports(c), { ...FAKE, localhostNodePorts: true, nodePortAddresses: ['192.168.0.0/16'] });
    expect(r.restore).not.toContain('KUBE-FIREWALL');
    expect(r.restore).toContain('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS\n');
  });

  it('--nodeport-addresses 127.0.0.0/8,192.168.0.0/16 with localhost NodePorts: a jump for 127.0.0.1 too, and nfacct counts it', async () => {
    const r = generateIptables(ports(c), { ...FAKE, normalize: false, nodePortAddresses: ['127.0.0.0/8', '192.168.0.0/16'] });
    expect(lines(r, '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports').map((l) => /-d (\S+)/.exec(l)?.[1])).toEqual(['127.0.0.1', '192.168.0.2']);
    expect(lines(r, '-A KUBE-FIREWALL')).toHaveLength(1);
    expect(generateIptables(ports(c), { ...FAKE, nodePortAddresses: ['127.0.0.0/8'], nfacct: true }).restore)
      .toContain('-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 30001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-XPGD46QRK7WJZT7O\n');
    await expectLoads(r);
  });
});

describe('the local-traffic detector and --masquerade-all', () => {
  const c = (): ServicePortInfo[] => ports({
    services: [service({
      namespace: 'ns1', name: 'svc1', type: 'LoadBalancer', clusterIP: '172.30.0.41', externalTrafficPolicy: 'Local',
      loadBalancerIPs: ['1.2.3.4'], ports: [{ name: 'p80', protocol: 'TCP', port: 80, targetPort: 80, nodePort: 3001 }],
    })],
    endpointSlices: [{ namespace: 'ns1', name: 'svc1-1', serviceName: 'svc1', addressType: 'IPv4', endpoints: [ep('10.180.0.1', 'test-hostname')], ports: [{ name: 'p80', protocol: 'TCP', port: 80 }] }],
  });
  const h = svcChain('ns1/svc1:p80', 'tcp').slice('KUBE-SVC-'.length);
  const masq = (r: IptablesRules) => r.restore.split('\n').filter((l) => l.startsWith(`-A KUBE-SVC-${h} `) && l.endsWith('-j KUBE-MARK-MASQ'));
  const pod = (r: IptablesRules) => r.restore.split('\n').filter((l) => l.includes('"pod traffic for'));

  it('a detector masquerades what comes from outside the cluster CIDR, and lets pods short-circuit Local external traffic', async () => {
    const r = generateIptables(c(), { ...FAKE, normalize: false });
    expect(masq(r)).toEqual([`-A KUBE-SVC-${h} -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`]);
    expect(pod(r)).toEqual([`-A KUBE-EXT-${h} -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-${h}`]);
    await expectLoads(r);
  });

  it('without a detector (--cluster-cidr "" or null): neither rule', async () => {
    for (const clusterCIDR of ['', null]) {
      const r = generateIptables(c(), { ...FAKE, normalize: false, clusterCIDR });
      expect([masq(r), pod(r)]).toEqual([[], []]);
      await expectLoads(r);
    }
  });

  it('--masquerade-all masquerades every packet to the cluster IP, detector or not', async () => {
    for (const clusterCIDR of ['10.0.0.0/8', null]) {
      const r = generateIptables(c(), { ...FAKE, normalize: false, clusterCIDR, masqueradeAll: true });
      expect(masq(r)).toEqual([`-A KUBE-SVC-${h} -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ`]);
      await expectLoads(r);
    }
  });
});

describe('the IPv6 proxier', () => {
  // TestOverallIPTablesRules' services in IPv6 (its IPv6 addresses as upstream's IPv6 tests write them).
  const overall6 = () => readCluster({
    kind: 'List',
    items: [
      { kind: 'Service', metadata: { name: 'svc1', namespace: 'ns1' }, spec: { clusterIP: 'fd00:172:30::41', clusterIPs: ['fd00:172:30::41', '172.30.0.41'], ports: [{ name: 'p80', port: 80 }] } },
      {
        kind: 'Service', metadata: { name: 'svc2', namespace: 'ns2' },
        spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', clusterIP: 'fd00:172:30::42', healthCheckNodePort: 30000, externalIPs: ['2001:db8:99::22'], ports: [{ name: 'p80', port: 80, nodePort: 3001 }] },
        status: { loadBalancer: { ingress: [{ ip: '2001:db8:1:2::34' }] } },
      },
      {
        kind: 'Service', metadata: { name: 'svc5', namespace: 'ns5' },
        spec: {
          type: 'LoadBalancer', clusterIP: 'fd00:172:30::45', loadBalancerSourceRanges: [' 2001:db8:203::/64', '2001:db8::/32'], sessionAffinity: 'ClientIP',
          ports: [{ name: 'p80', port: 80, nodePort: 3002 }],
        },
        status: { loadBalancer: { ingress: [{ ip: '2001:db8:5:6::78' }] } },
      },
      { kind: 'Service', metadata: { name: 'svc6', namespace: 'ns6' }, spec: { clusterIP: 'fd00:172:30::46', ports: [{ name: 'p80', port: 80 }] } },
      ...[['ns1', 'svc1', 'fd00:10:180::1'], ['ns2', 'svc2', 'fd00:10:180::2'], ['ns5', 'svc5', 'fd00:10:180::3']].map(([ns, name, ip]) => ({
        kind: 'EndpointSlice', metadata: { name: `${name}-1`, namespace: ns, labels: { 'kubernetes.io/service-name': name } },
        addressType: 'IPv6', endpoints: [{ addresses: [ip] }], ports: [{ name: 'p80', port: 80 }],
      })),
      {
        kind: 'EndpointSlice', metadata: { name: 'svc1-4', namespace: 'ns1', labels: { 'kubernetes.io/service-name': 'svc1' } },
        addressType: 'IPv4', endpoints: [{ addresses: ['10.180.0.1'] }], ports: [{ name: 'p80', port: 80 }],
      },
    ],
  });
  const opts: IptablesOptions = { ...FAKE, ipFamily: 'IPv6', nodeIPs: ['192.168.0.2', '2001:db8::1'], clusterCIDR: '10.0.0.0/8,fd00:10::/64', normalize: false };

  it('writes ip6tables input the kernel takes: every address, mask, REJECT and recent match of the IPv6 rules comes back', async () => {
    const r = generateIptables(ports(overall6(), 'IPv6'), opts);
    const lines = r.restore.split('\n');
    expect(lines).toContain('-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d fd00:172:30::46 --dport 80 -j REJECT');
    expect(lines).toContain('-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT');
    expect(lines.filter((l) => l.includes('! -s fd00:10::/64 -j KUBE-MARK-MASQ'))).toHaveLength(3);
    expect(lines.filter((l) => l.includes('--to-destination'))).toEqual(expect.arrayContaining([expect.stringMatching(/--to-destination \[fd00:10:180::1\]:80$/)]));
    // The node IP 2001:db8::1 lies in 2001:db8::/32: node → VIP traffic is let through.
    expect(lines.filter((l) => l.startsWith('-A KUBE-FW-')).map((l) => / -s (\S+) /.exec(l)?.[1] ?? null)).toEqual(['2001:db8:203::/64', '2001:db8::/32', '2001:db8:5:6::78', null]);
    expect(r.restore).not.toMatch(/127\.0\.0\.0|KUBE-FIREWALL|\b10\.180\.|172\.30\.0\.41/);
    await expectLoads(r);
  });

  it('and the IPv4 proxier of the same node writes only the IPv4 Service', () => {
    const r = generateIptables(ports(overall6()), { ...opts, ipFamily: 'IPv4' });
    expect(r.restore.split('\n').filter((l) => l.includes('-j DNAT'))).toEqual([expect.stringMatching(/--to-destination 10\.180\.0\.1:80$/)]);
    expect(r.restore).not.toMatch(/fd00|2001:/);
  });

  it('skips service ports of the other family given to it directly', () => {
    const v4 = ports(localNodePortCluster('IPv4', '172.30.0.41', 3001, ['10.180.0.1', '10.180.2.1']));
    const r = generateIptables(v4, { ...FAKE, ipFamily: 'IPv6' });
    expect(r.counts.nat).toEqual(generateIptables([], { ...FAKE, ipFamily: 'IPv6' }).counts.nat);
  });

  it('refuses an IPv6 --cluster-cidr that is no CIDR, naming the option', () => {
    expect(() => generateIptables([], { ipFamily: 'IPv6', clusterCIDR: 'fd00::/129' })).toThrow(GeneratorInputError);
    expect(() => generateIptables([], { ipFamily: 'IPv6', clusterCIDR: 'fd00::/129' })).toThrow('options: clusterCIDR: "fd00::/129" is not a CIDR');
  });
});
