/**
 * kube-proxy's settings in IPVS mode (pkg/proxy/ipvs/proxier.go syncProxyRules and
 * writeIptablesRules, ipset.go): --nodeport-addresses, the local-traffic detector,
 * --masquerade-all, spec.healthCheckNodePort and the IPv6 proxier. Upstream's TestNodePortIPv6
 * and TestIPv6Proxier expectations, and the kernel for the ipsets and ip(6)tables rules.
 */
import { describe, expect, it } from 'vitest';
import { readCluster, resolveServicePorts, service, type Cluster, type Endpoint, type IpFamily } from '../../lib/k8s/index.ts';
import { IPVS_IPSETS, generateIpvs, ipvsSetName, type IpvsOptions, type IpvsRules } from '../../lib/proxy/ipvs.ts';
import { withNetns } from '../helpers/netns.ts';

const ep = (ip: string, nodeName: string | null = null): Endpoint => ({ addresses: [ip], ready: true, serving: true, terminating: false, nodeName, podName: null });

function nodePortCluster(clusterIP: string, protocol: 'TCP' | 'UDP' | 'SCTP', slices: [IpFamily, string[]][]): Cluster {
  return {
    services: [service({ namespace: 'ns1', name: 'svc1', type: 'NodePort', clusterIP, ports: [{ name: 'p80', protocol, port: 80, targetPort: 80, nodePort: 3001 }] })],
    endpointSlices: slices.map(([family, ips], i) => ({
      namespace: 'ns1', name: `svc1-${i}`, serviceName: 'svc1', addressType: family, endpoints: ips.map((ip) => ep(ip)), ports: [{ name: 'p80', protocol, port: 80 }],
    })),
  };
}

const gen = (c: Cluster, o: IpvsOptions) => generateIpvs(resolveServicePorts(c, { nodeName: o.nodeName ?? null, ipFamily: o.ipFamily }), o);

/** The IPVS table as upstream's tests compare it: virtual server → real servers. */
const table = (r: IpvsRules) => Object.fromEntries(r.ipvs.services.map((s) => [`${s.protocol} ${s.address}:${s.port}`, s.destinations.map((d) => `${d.address}:${d.port}`)]));

/** ipset restore and ip(6)tables-restore into a private namespace; what `ipset save` and the save tool print back. */
async function load(r: IpvsRules): Promise<{ ipsets: string; rules: string }> {
  const tool = r.family === 'IPv4' ? 'iptables' : 'ip6tables';
  return withNetns(async (ns) => {
    await ns.run(['ipset', 'restore'], { input: r.ipsetRestore });
    // `-m ipvs` needs IP_VS in the kernel, which test kernels may lack: leave those rules out here.
    const restore = r.iptablesRestore.split('\n').filter((l) => !l.includes('-m ipvs')).join('\n');
    await ns.run([`${tool}-restore`, '--noflush'], { input: restore });
    return { ipsets: (await ns.run(['ipset', 'save'])).stdout, rules: (await ns.run([`${tool}-save`])).stdout };
  });
}

describe('upstream TestNodePortIPv6 and TestIPv6Proxier (pkg/proxy/ipvs/proxier_test.go)', () => {
  const v6 = (nodeIPs: string[], nodePortAddresses: string[] = []): IpvsOptions => ({ ipFamily: 'IPv6', nodeIPs, nodePortAddresses });

  it('1 service with node port, has 2 endpoints: the IPv6 endpoint behind the cluster IP and the IPv6 node IP', () => {
    const c = nodePortCluster('2020::1', 'TCP', [['IPv4', ['10.180.0.1']], ['IPv6', ['1002:ab8::2:10']]]);
    expect(table(gen(c, v6(['100.101.102.103', '2001:db8::1:1'])))).toEqual({
      'TCP 2001:db8::1:1:3001': ['1002:ab8::2:10:80'],
      'TCP 2020::1:80': ['1002:ab8::2:10:80'],
    });
  });

  it('1 UDP service with node port, has endpoints (no action on IPv6 Proxier)', () => {
    const c = nodePortCluster('10.20.30.41', 'UDP', [['IPv6', ['10.180.0.1']]]);
    expect(table(gen(c, v6(['100.101.102.103'], ['0.0.0.0/0'])))).toEqual({});
  });

  it('service has node port but no endpoints', () => {
    expect(table(gen(nodePortCluster('2020::1', 'TCP', []), v6(['100.101.102.103', '2001:db8::1:1'])))).toEqual({ 'TCP 2001:db8::1:1:3001': [], 'TCP 2020::1:80': [] });
  });

  it('node port service with protocol sctp on a node with multiple nodeIPs: KUBE-6-NODE-PORT-SCTP-HASH holds both', async () => {
    const r = gen(nodePortCluster('2020::1', 'SCTP', [['IPv6', ['2001::1']]]), v6(['2001:db8::1:1', '2001:db8::1:2']));
    expect(table(r)).toEqual({
      'SCTP 2001:db8::1:1:3001': ['2001::1:80'], 'SCTP 2001:db8::1:2:3001': ['2001::1:80'], 'SCTP 2020::1:80': ['2001::1:80'],
    });
    expect(r.ipsets['KUBE-6-NODE-PORT-SCTP-HASH']).toEqual(['2001:db8::1:1,sctp:3001', '2001:db8::1:2,sctp:3001']);
    const kernel = await load(r);
    expect(kernel.ipsets).toContain('add KUBE-6-NODE-PORT-SCTP-HASH 2001:db8::1:1,sctp:3001\n');
    expect(kernel.ipsets).toContain('add KUBE-6-NODE-PORT-SCTP-HASH 2001:db8::1:2,sctp:3001\n');
  });

  it('TestIPv6Proxier "2 services with Cluster IP, each with endpoints": the IPv4 one is skipped', () => {
    const c: Cluster = {
      services: [
        service({ namespace: 'ns1', name: 'svc1', clusterIP: '10.20.30.41', ports: [{ name: 'p80', protocol: 'TCP', port: 80, targetPort: 80, nodePort: null }] }),
        service({ namespace: 'ns2', name: 'svc2', clusterIP: '1002:ab8::2:1', ports: [{ name: 'p8080', protocol: 'TCP', port: 8080, targetPort: 8080, nodePort: null }] }),
      ],
      endpointSlices: [
        { namespace: 'ns1', name: 'svc1-1', serviceName: 'svc1', addressType: 'IPv4', endpoints: [ep('10.180.0.1')], ports: [{ name: 'p80', protocol: 'TCP', port: 80 }] },
        { namespace: 'ns2', name: 'svc2-1', serviceName: 'svc2', addressType: 'IPv6', endpoints: [ep('1009:ab8::5:6')], ports: [{ name: 'p8080', protocol: 'TCP', port: 8080 }] },
      ],
    };
    expect(table(gen(c, { ipFamily: 'IPv6' }))).toEqual({ 'TCP 1002:ab8::2:1:8080': ['1009:ab8::5:6:8080'] });
    expect(table(gen(c, {}))).toEqual({ 'TCP 10.20.30.41:80': ['10.180.0.1:80'] });
  });
});

describe('the IPv6 proxier\'s sets and rules in the kernel', () => {
  it('sets are KUBE-6-… family inet6, cut to 31 characters; kube-ipvs0 takes /128; ipvsadm brackets addresses', async () => {
    // ipset names hold 31 characters: two of the IPv6 names lose their last letter.
    expect(IPVS_IPSETS.map((s) => ipvsSetName(s.name, 'IPv6')).filter((n) => n.length >= 31)).toEqual(['KUBE-6-LOAD-BALANCER-SOURCE-CID', 'KUBE-6-NODE-PORT-LOCAL-SCTP-HAS']);
    expect(ipvsSetName('KUBE-NODE-PORT-LOCAL-SCTP-HASH', 'IPv4')).toBe('KUBE-NODE-PORT-LOCAL-SCTP-HASH');
    const c = readCluster({
      kind: 'List',
      items: [
        {
          kind: 'Service', metadata: { name: 'lb', namespace: 'ns1' },
          spec: {
            type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000, clusterIP: 'fd00:10:96::a', externalIPs: ['2001:db8:99::22'],
            loadBalancerSourceRanges: ['2001:db8::/32'], sessionAffinity: 'ClientIP', ports: [{ name: 'p80', port: 80, nodePort: 30080, protocol: 'SCTP' }],
          },
          status: { loadBalancer: { ingress: [{ ip: '2001:db8:1:2::34' }] } },
        },
        {
          kind: 'EndpointSlice', metadata: { name: 'lb-1', namespace: 'ns1', labels: { 'kubernetes.io/service-name': 'lb' } },
          addressType: 'IPv6', endpoints: [{ addresses: ['fd00:10:244::5'], nodeName: 'node-a' }], ports: [{ name: 'p80', port: 8080, protocol: 'SCTP' }],
        },
      ],
    });
    const r = generateIpvs(resolveServicePorts(c, { nodeName: 'node-a', ipFamily: 'IPv6' }), {
      ipFamily: 'IPv6', nodeName: 'node-a', nodeIPs: ['172.18.0.3', '2001:db8::3'], clusterCIDR: '10.244.0.0/16,fd00:10:244::/56',
    });
    expect(r.family).toBe('IPv6');
    expect(r.dummyAddresses).toEqual(['2001:db8:1:2::34/128', '2001:db8:99::22/128', 'fd00:10:96::a/128']);
    expect(r.ipvsadmRestore.split('\n')).toContain('-A --sctp-service [fd00:10:96::a]:80 -s rr -p 10800');
    expect(r.ipvsadmRestore.split('\n')).toContain('-a --sctp-service [2001:db8::3]:30080 -r [fd00:10:244::5]:8080 -m -w 1');
    expect(r.ipsets).toMatchObject({
      'KUBE-6-LOOP-BACK': ['fd00:10:244::5,sctp:8080,fd00:10:244::5'],
      'KUBE-6-LOAD-BALANCER-SOURCE-CID': ['2001:db8:1:2::34,sctp:80,2001:db8::/32'],
      // The node IP 2001:db8::3 is inside 2001:db8::/32: the node may reach the VIP.
      'KUBE-6-LOAD-BALANCER-SOURCE-IP': ['2001:db8:1:2::34,sctp:80,2001:db8:1:2::34'],
      'KUBE-6-NODE-PORT-LOCAL-SCTP-HAS': ['2001:db8::3,sctp:30080'],
      'KUBE-6-HEALTH-CHECK-NODE-PORT': ['32000'],
    });
    const lines = r.iptablesRestore.split('\n');
    expect(lines.find((l) => l.startsWith('-A '))).toBe('-A KUBE-SERVICES -s ::1/128 -j RETURN');
    expect(lines).toContain('-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-6-CLUSTER-IP dst,dst ! -s fd00:10:244::/56 -j KUBE-MARK-MASQ');
    expect(r.iptablesRestore).not.toMatch(/--match-set KUBE-(?!6-)/);

    const kernel = await load(r);
    for (const s of IPVS_IPSETS) {
      const name = ipvsSetName(s.name, 'IPv6');
      expect(kernel.ipsets).toMatch(new RegExp(`^create ${name} ${s.type}${s.type === 'bitmap:port' ? '' : ' family inet6'} `, 'm'));
      const members = kernel.ipsets.split('\n').filter((l) => l.startsWith(`add ${name} `)).map((l) => l.slice(`add ${name} `.length)).sort();
      expect([name, members]).toEqual([name, [...r.ipsets[name]].sort()]);
    }
    expect(kernel.rules).toContain('-A KUBE-SERVICES -s ::1/128 -j RETURN');
    expect(kernel.rules).toContain('--match-set KUBE-6-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ');
  });
});

describe('IPv4 settings', () => {
  const c = nodePortCluster('10.20.30.41', 'SCTP', [['IPv4', ['10.180.0.1']]]);

  it('--nodeport-addresses picks the node addresses that get node-port virtual servers', () => {
    const nodeIPs = ['100.101.102.103', '10.0.0.5'];
    expect(Object.keys(table(gen(c, { nodeIPs })))).toEqual(['SCTP 10.0.0.5:3001', 'SCTP 10.20.30.41:80', 'SCTP 100.101.102.103:3001']);
    const r = gen(c, { nodeIPs, nodePortAddresses: ['100.101.102.0/24', '2001:db8::/64'] });
    expect(Object.keys(table(r))).toEqual(['SCTP 10.20.30.41:80', 'SCTP 100.101.102.103:3001']);
    expect(r.ipsets['KUBE-NODE-PORT-SCTP-HASH']).toEqual(['100.101.102.103,sctp:3001']);
    // Loopback never serves node ports in IPVS mode; none left means no node ports at all.
    expect(gen(c, { nodeIPs, nodePortAddresses: ['127.0.0.0/8'] }).ipsets['KUBE-NODE-PORT-SCTP-HASH']).toEqual([]);
  });

  it('masquerades cluster IP traffic from outside the cluster CIDR, all of it with --masquerade-all, and VIP-sourced node traffic without a detector', async () => {
    const clusterRule = (o: IpvsOptions) => gen(c, { nodeIPs: ['100.101.102.103'], ...o }).iptablesRestore.split('\n').filter((l) => l.includes('--match-set KUBE-CLUSTER-IP') && l.endsWith('KUBE-MARK-MASQ'));
    const head = '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP';
    expect(clusterRule({ clusterCIDR: '10.244.0.0/16' })).toEqual([`${head} dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`]);
    expect(clusterRule({ masqueradeAll: true })).toEqual([`${head} dst,dst -j KUBE-MARK-MASQ`]);
    expect(clusterRule({ clusterCIDR: '' })).toEqual([`${head} src,dst -j KUBE-MARK-MASQ`]);
    expect(clusterRule({ clusterCIDR: null, masqueradeAll: true })).toEqual([`${head} dst,dst -j KUBE-MARK-MASQ`]);
    const kernel = await load(gen(c, { nodeIPs: ['100.101.102.103'], clusterCIDR: null }));
    expect(kernel.rules).toContain('--match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ');
  });

  it('spec.healthCheckNodePort goes into KUBE-HEALTH-CHECK-NODE-PORT, which KUBE-NODE-PORT accepts', async () => {
    const lb = readCluster({
      kind: 'List',
      items: [{
        kind: 'Service', metadata: { name: 'lb', namespace: 'default' },
        spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 31999, clusterIP: '10.96.0.50', ports: [{ name: 'http', port: 80, nodePort: 30080 }] },
      }],
    });
    const r = generateIpvs(resolveServicePorts(lb), { nodeIPs: ['172.18.0.3'] });
    expect(r.ipsets['KUBE-HEALTH-CHECK-NODE-PORT']).toEqual(['31999']);
    expect((await load(r)).ipsets).toContain('add KUBE-HEALTH-CHECK-NODE-PORT 31999\n');
  });
});
