import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import {
  readClusterJson, resolveServicePorts, service, slice, syntheticCluster,
  type Cluster, type Endpoint, type Service, type ServicePortInfo,
} from '../../lib/k8s/index.ts';
import {
  formatProbability, generateIptables, ruleComment, savedProbability, sortRestoreLikeUpstream,
  type IptablesOptions, type IptablesRules, type IptablesServicePort,
} from '../../lib/proxy/iptables.ts';
import { svcChain } from '../../lib/proxy/names.ts';
import { expectKernelHasAll, loadInKernel } from './iptables-kernel.ts';

// ---------------------------------------------------------------------------------------------
// Building clusters the way kube-proxy's tests do (makeTestService / makeTestEndpointSlice).

type Ep = string | { ip: string; node?: string; ready?: boolean; serving?: boolean; terminating?: boolean };

function endpoints(list: Ep[]): Endpoint[] {
  return list.map((e) => {
    const o = typeof e === 'string' ? { ip: e } : e;
    const ready = o.ready ?? true;
    return { addresses: [o.ip], ready, serving: o.serving ?? ready, terminating: o.terminating ?? false, nodeName: o.node ?? null, podName: null };
  });
}

function svcWith(ns: string, name: string, init: Partial<Service> & Pick<Service, 'clusterIP'>, port: { name: string; port: number; nodePort?: number; protocol?: 'TCP' | 'UDP' | 'SCTP' }): Service {
  return service({
    namespace: ns, name, ...init,
    ports: [{ name: port.name, protocol: port.protocol ?? 'TCP', port: port.port, targetPort: port.port, nodePort: port.nodePort ?? null }],
  });
}

function epSlice(ns: string, name: string, portName: string, port: number, list: Ep[], protocol: 'TCP' | 'UDP' | 'SCTP' = 'TCP') {
  return slice(ns, name, endpoints(list), [{ name: portName, protocol, port }]);
}

// NewFakeProxier's fixed facts: pod CIDR 10.0.0.0/8, node test-node at 192.168.0.2, mark 0x4000,
// an iptables without --random-fully.
const FAKE_PROXIER: IptablesOptions = {
  nodeName: 'test-node', nodeIPs: ['192.168.0.2'], clusterCIDR: '10.0.0.0/8',
  masqueradeMark: '0x4000', randomFully: false, normalize: true,
};

const dedent = (s: string) => `${s.replace(/^\n/, '').split('\n').map((l) => l.replace(/^\t+/, '')).join('\n').trimEnd()}\n`;

// The kernel as oracle: load, read back with iptables-save, compare with what iptables renders
// (test/proxy/iptables-kernel.ts).

function cluster(services: Service[], slices: Cluster['endpointSlices']): Cluster {
  return { services, endpointSlices: slices };
}

// ---------------------------------------------------------------------------------------------

function overallPorts(): IptablesServicePort[] {
  const c = cluster([
    svcWith('ns1', 'svc1', { clusterIP: '172.30.0.41' }, { name: 'p80', port: 80 }),
    svcWith('ns2', 'svc2', {
      type: 'LoadBalancer', externalTrafficPolicy: 'Local', clusterIP: '172.30.0.42',
      loadBalancerIPs: ['1.2.3.4'], externalIPs: ['192.168.99.22'],
    }, { name: 'p80', port: 80, nodePort: 3001 }),
    svcWith('ns3', 'svc3', { type: 'NodePort', clusterIP: '172.30.0.43' }, { name: 'p80', port: 80, nodePort: 3003 }),
    svcWith('ns4', 'svc4', { type: 'NodePort', clusterIP: '172.30.0.44', externalIPs: ['192.168.99.33'] }, { name: 'p80', port: 80 }),
    svcWith('ns5', 'svc5', {
      type: 'LoadBalancer', clusterIP: '172.30.0.45', loadBalancerIPs: ['5.6.7.8'],
      loadBalancerSourceRanges: [' 203.0.113.0/25'], sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 10800,
    }, { name: 'p80', port: 80, nodePort: 3002 }),
    svcWith('ns6', 'svc6', { clusterIP: '172.30.0.46' }, { name: 'p80', port: 80 }),
  ], [
    epSlice('ns1', 'svc1', 'p80', 80, ['10.180.0.1']),
    epSlice('ns2', 'svc2', 'p80', 80, ['10.180.0.2']),
    epSlice('ns3', 'svc3', 'p80', 80, ['10.180.0.3']),
    epSlice('ns4', 'svc4', 'p80', 80, ['10.180.0.4', { ip: '10.180.0.5', node: 'test-node' }]),
    epSlice('ns5', 'svc5', 'p80', 80, ['10.180.0.3']),
  ]);
  // lib/k8s does not carry spec.healthCheckNodePort yet; both LoadBalancers set 30000,
  // and only the Local one (svc2) gets a rule.
  return resolveServicePorts(c, { nodeName: 'test-node' })
    .map((p) => (p.type === 'LoadBalancer' ? { ...p, healthCheckNodePort: 30000 } : p));
}

describe('upstream kube-proxy expectations (pkg/proxy/iptables/proxier_test.go)', () => {
  it('TestOverallIPTablesRules: ClusterIP, LoadBalancer Local, NodePort, ExternalIP, LB with source ranges and affinity, no endpoints', () => {
    const ports = overallPorts();
    const got = generateIptables(ports, { ...FAKE_PROXIER, nfacct: true });

    const expected = dedent(`
		*filter
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-EXTERNAL-SERVICES - [0:0]
		:KUBE-FIREWALL - [0:0]
		:KUBE-FORWARD - [0:0]
		:KUBE-PROXY-FIREWALL - [0:0]
		-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
		-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
		-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
		-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
		-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
		-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
		-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
		COMMIT
		*nat
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
		:KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
		:KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
		:KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
		:KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
		:KUBE-MARK-MASQ - [0:0]
		:KUBE-POSTROUTING - [0:0]
		:KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
		:KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
		:KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
		:KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
		:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
		:KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
		:KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
		:KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
		:KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
		:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
		:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
		-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3001 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
		-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
		-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3003 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-X27LE4BHSL4DOUIK
		-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
		-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3002 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-NUKIZ6OKUXPJNT4C
		-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
		-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
		-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
		-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
		-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
		-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
		-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
		-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
		-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
		-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
		-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
		-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
		-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
		-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
		-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
		-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
		-A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
		-A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
		-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
		-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
		-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
		-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
		-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
		-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
		-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
		-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
		-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
		-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
		-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
		-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
		-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
		-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
		-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
		-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
		-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
		-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
		-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
		-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
		-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
		-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
		-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
		-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
		-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
		-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
		COMMIT
		`);
    expect(got.restore).toBe(expected);
  });

  it('TestOverallIPTablesRules services load into the kernel (without nfacct, whose counters a netns lacks)', async () => {
    const r = generateIptables(overallPorts(), { ...FAKE_PROXIER, normalize: false });
    expectKernelHasAll(r, (await loadInKernel(r)).saved);
  });

  it('TestSyncProxyRulesRepeated: the initial state of two ClusterIP services (before nfacct existed)', () => {
    const c = cluster([
      svcWith('ns1', 'svc1', { clusterIP: '172.30.0.41' }, { name: 'p80', port: 80 }),
      svcWith('ns2', 'svc2', { clusterIP: '172.30.0.42' }, { name: 'p8080', port: 8080 }),
    ], [
      epSlice('ns1', 'svc1', 'p80', 80, ['10.0.1.1']),
      epSlice('ns2', 'svc2', 'p8080', 8080, ['10.0.2.1']),
    ]);
    const got = generateIptables(resolveServicePorts(c, { nodeName: 'test-node' }), FAKE_PROXIER);
    expect(got.restore).toBe(dedent(`
		*filter
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-EXTERNAL-SERVICES - [0:0]
		:KUBE-FIREWALL - [0:0]
		:KUBE-FORWARD - [0:0]
		:KUBE-PROXY-FIREWALL - [0:0]
		-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
		-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
		-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
		COMMIT
		*nat
		:KUBE-NODEPORTS - [0:0]
		:KUBE-SERVICES - [0:0]
		:KUBE-MARK-MASQ - [0:0]
		:KUBE-POSTROUTING - [0:0]
		:KUBE-SEP-SNQ3ZNILQDEJNDQO - [0:0]
		:KUBE-SEP-UHEGFW77JX3KXTOV - [0:0]
		:KUBE-SVC-2VJB64SDSIJUP5T6 - [0:0]
		:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
		-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
		-A KUBE-SERVICES -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 8080 -j KUBE-SVC-2VJB64SDSIJUP5T6
		-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
		-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
		-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
		-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
		-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
		-A KUBE-SEP-SNQ3ZNILQDEJNDQO -m comment --comment ns1/svc1:p80 -s 10.0.1.1 -j KUBE-MARK-MASQ
		-A KUBE-SEP-SNQ3ZNILQDEJNDQO -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.1.1:80
		-A KUBE-SEP-UHEGFW77JX3KXTOV -m comment --comment ns2/svc2:p8080 -s 10.0.2.1 -j KUBE-MARK-MASQ
		-A KUBE-SEP-UHEGFW77JX3KXTOV -m comment --comment ns2/svc2:p8080 -m tcp -p tcp -j DNAT --to-destination 10.0.2.1:8080
		-A KUBE-SVC-2VJB64SDSIJUP5T6 -m comment --comment "ns2/svc2:p8080 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 8080 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-2VJB64SDSIJUP5T6 -m comment --comment "ns2/svc2:p8080 -> 10.0.2.1:8080" -j KUBE-SEP-UHEGFW77JX3KXTOV
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
		-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.0.1.1:80" -j KUBE-SEP-SNQ3ZNILQDEJNDQO
		COMMIT
		`));
  });

  it('TestSyncProxyRulesLargeClusterMode: comments go above 1000 endpoints', () => {
    const half = 1000 / 2 - 1;
    const addrs = (a: number) => Array.from({ length: half }, (_, i) => `10.${a}.${i % 256}.${Math.floor(i / 256)}`);
    const services = [
      svcWith('ns1', 'svc1', { clusterIP: '172.30.0.41' }, { name: 'p80', port: 80 }),
      svcWith('ns2', 'svc2', { clusterIP: '172.30.0.42' }, { name: 'p8080', port: 8080 }),
      svcWith('ns3', 'svc3', { clusterIP: '172.30.0.43' }, { name: 'p8081', port: 8081 }),
    ];
    const slices = [epSlice('ns1', 'svc1', 'p80', 80, addrs(0)), epSlice('ns2', 'svc2', 'p8080', 8080, addrs(1))];
    const dnat = (r: IptablesRules, ip: string) => r.restore.split('\n').filter((l) => l.startsWith('-A KUBE-SEP-') && l.includes('-j DNAT') && l.endsWith(` ${ip}`));
    const opts = { ...FAKE_PROXIER, masqueradeAll: true };

    const small = generateIptables(resolveServicePorts(cluster(services, slices)), opts);
    expect(small.largeClusterMode).toBe(false);
    expect(dnat(small, '10.0.0.0:80')).toEqual(['-A KUBE-SEP-DKGQUZGBKLTPAR56 -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.0.0.0:80']);

    const large = generateIptables(resolveServicePorts(cluster(services, [
      ...slices, epSlice('ns3', 'svc3', 'p8081', 8081, ['203.0.113.4', '203.0.113.8', '203.0.113.12']),
    ])), opts);
    expect(large.largeClusterMode).toBe(true);
    expect(dnat(large, '203.0.113.4:8081')).toEqual(['-A KUBE-SEP-RUVVH7YV3PHQBDOS -m tcp -p tcp -j DNAT --to-destination 203.0.113.4:8081']);
    expect(dnat(large, '10.0.0.0:80')).toEqual(['-A KUBE-SEP-DKGQUZGBKLTPAR56 -m tcp -p tcp -j DNAT --to-destination 10.0.0.0:80']);
    const seps = large.restore.split('\n').filter((l) => l.startsWith('-A KUBE-SEP-'));
    expect(seps).toHaveLength(2 * (2 * half + 3));
    expect(seps.filter((l) => l.includes('--comment'))).toEqual([]);
  });
});

describe('the workshop httpbin service', () => {
  const httpbin = (n: number) => cluster(
    [service({ namespace: 'default', name: 'httpbin', clusterIP: '10.96.120.15', ports: [{ name: 'http', protocol: 'TCP', port: 8000, targetPort: 8080, nodePort: null }] })],
    [slice('default', 'httpbin', endpoints(Array.from({ length: n }, (_, i) => ({ ip: `10.244.${i % 3}.${10 + i}`, node: `kind-worker${i % 3 === 0 ? '' : i % 3 + 1}` }))), [{ name: 'http', protocol: 'TCP', port: 8080 }])],
  );
  const chain = svcChain('default/httpbin:http', 'TCP');

  it('splits 3 and 4 endpoints with 1/(n-i) probabilities, and the kernel stores them to 2^-31', async () => {
    for (const [n, written, saved] of [
      [3, ['0.3333333333', '0.5000000000'], ['0.33333333349', '0.50000000000']],
      [4, ['0.2500000000', '0.3333333333', '0.5000000000'], ['0.25000000000', '0.33333333349', '0.50000000000']],
    ] as const) {
      const rules = generateIptables(resolveServicePorts(httpbin(n), { nodeName: 'kind-worker' }));
      expect(chain).toBe('KUBE-SVC-FREKB6WNWYJLKTHC');
      const jumps = rules.restore.split('\n').filter((l) => l.startsWith(`-A ${chain} `) && l.includes('-j KUBE-SEP-'));
      expect(jumps).toHaveLength(n);
      expect(jumps.map((l) => /--probability (\S+)/.exec(l)?.[1] ?? null)).toEqual([...written, null]);
      expect(jumps[0]).toMatch(new RegExp(`^-A ${chain} -m comment --comment "default/httpbin:http -> 10\\.244\\.0\\.10:8080" -m statistic --mode random --probability ${written[0]} -j KUBE-SEP-[A-Z2-7]{16}$`));

      const { saved: kernel } = await loadInKernel(rules);
      const back = kernel.nat[chain].filter((l) => l.includes('-j KUBE-SEP-'));
      expect(back.map((l) => /--probability (\S+)/.exec(l)?.[1] ?? null)).toEqual([...saved, null]);
      expectKernelHasAll(rules, kernel);
    }
  });

  it('reads the kind fixture: one ClusterIP rule, masquerade from outside 10.244.0.0/16, three endpoints', async () => {
    const c = readClusterJson(await readFile(new URL('../fixtures/kind-httpbin.kubectl.json', import.meta.url), 'utf8'));
    const rules = generateIptables(resolveServicePorts(c, { nodeName: 'kind-worker' }), { nodeName: 'kind-worker' });
    const lines = rules.restore.split('\n');
    expect(lines.filter((l) => l.startsWith(`-A KUBE-SERVICES `) && l.endsWith(`-j ${chain}`))).toHaveLength(1);
    expect(lines).toContain(`-A ${chain} -m comment --comment "default/httpbin:http cluster IP" -m tcp -p tcp -d ${c.services.find((s) => s.name === 'httpbin')?.clusterIP} --dport 8000 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`);
    expect(lines.filter((l) => l.startsWith(`-A ${chain} `) && l.includes('-j KUBE-SEP-'))).toHaveLength(3);
    expectKernelHasAll(rules, (await loadInKernel(rules)).saved);
  });
});

describe('counts for plain ClusterIP services', () => {
  // 5 fixed nat rules (3 KUBE-POSTROUTING, KUBE-MARK-MASQ, the nodeports jump), then per service
  // 1 KUBE-SERVICES rule + 1 masquerade rule + E jumps + 2 rules in each of E SEP chains.
  it.each([[1, 1], [3, 2], [10, 5], [101, 10]])('S=%i E=%i: nat rules 5+S(2+3E), nat chains 4+S(1+E)', (S, E) => {
    const r = generateIptables(resolveServicePorts(syntheticCluster({ services: S, endpoints: E })));
    expect(r.counts.nat).toEqual({ rules: 5 + S * (2 + 3 * E), chains: 4 + S * (1 + E) });
    expect(r.counts.filter).toEqual({ rules: 4, chains: 6 });
  });

  it('S=2000 E=10 gives 64,005 nat rules, well above the article\'s "at least 20k"', () => {
    const r = generateIptables(resolveServicePorts(syntheticCluster({ services: 2000, endpoints: 10, podSubnet: '10.0.0.0/8' })));
    expect(r.counts.nat.rules).toBe(64_005);
    expect(r.largeClusterMode).toBe(true);
  });

  it('services without endpoints add one filter REJECT each and nothing to nat', () => {
    const r = generateIptables(resolveServicePorts(syntheticCluster({ services: 4, endpoints: 0 })));
    expect(r.counts.nat).toEqual({ rules: 5, chains: 4 });
    expect(r.counts.filter.rules).toBe(4 + 4);
    expect(r.restore).toContain('-A KUBE-SERVICES -m comment --comment "default/svc-1:http has no endpoints" -m tcp -p tcp -d 10.96.1.0 --dport 80 -j REJECT');
  });

  it('the kernel holds exactly what the counts say (S=50, E=4)', async () => {
    const r = generateIptables(resolveServicePorts(syntheticCluster({ services: 50, endpoints: 4 })));
    const { saved } = await loadInKernel(r);
    const kube = (t: string) => Object.entries(saved[t]).filter(([c]) => c.startsWith('KUBE-'));
    expect(kube('nat')).toHaveLength(r.counts.nat.chains);
    expect(kube('nat').reduce((n, [, l]) => n + l.length, 0)).toBe(r.counts.nat.rules);
    expect(kube('filter')).toHaveLength(r.counts.filter.chains);
    expect(kube('filter').reduce((n, [, l]) => n + l.length, 0)).toBe(r.counts.filter.rules);
    expectKernelHasAll(r, saved);
  });
});

describe('features', () => {
  it('large cluster mode drops comments on SEP rules and SVC→SEP jumps only, from 1001 endpoints', () => {
    const at = (S: number) => generateIptables(resolveServicePorts(syntheticCluster({ services: S, endpoints: 10 })));
    const commented = (r: IptablesRules, prefix: string) => r.restore.split('\n').filter((l) => l.startsWith(prefix) && ruleComment(l) !== null).length;
    const edge = at(100); // exactly 1000: not large
    expect(edge.largeClusterMode).toBe(false);
    expect(commented(edge, '-A KUBE-SEP-')).toBe(2000);
    const large = at(101);
    expect(large.largeClusterMode).toBe(true);
    expect(commented(large, '-A KUBE-SEP-')).toBe(0);
    const svcLines = large.restore.split('\n').filter((l) => l.startsWith('-A KUBE-SVC-'));
    expect(svcLines.filter((l) => l.includes('-j KUBE-SEP-') && l.includes('--comment'))).toEqual([]);
    expect(svcLines.filter((l) => l.includes('-j KUBE-MARK-MASQ')).every((l) => l.includes('cluster IP"'))).toBe(true);
    expect(large.counts).toEqual(at(101).counts);
  });

  it('ClientIP affinity: --rcheck jumps before the random ones, --set in the SEP chain; the kernel keeps both', async () => {
    const c = cluster(
      [svcWith('shop', 'cart', { clusterIP: '10.96.5.5', sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 600 }, { name: '', port: 80 })],
      [epSlice('shop', 'cart', '', 8080, ['10.244.1.5', '10.244.2.5'])],
    );
    const r = generateIptables(resolveServicePorts(c));
    const chain = svcChain('shop/cart', 'TCP');
    const lines = r.restore.split('\n').filter((l) => l.startsWith(`-A ${chain} `));
    expect(lines.map((l) => l.replace(/KUBE-SEP-[A-Z2-7]{16}/g, 'SEP'))).toEqual([
      `-A ${chain} -m comment --comment "shop/cart cluster IP" -m tcp -p tcp -d 10.96.5.5 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`,
      `-A ${chain} -m comment --comment "shop/cart -> 10.244.1.5:8080" -m recent --name SEP --rcheck --seconds 600 --reap -j SEP`,
      `-A ${chain} -m comment --comment "shop/cart -> 10.244.2.5:8080" -m recent --name SEP --rcheck --seconds 600 --reap -j SEP`,
      `-A ${chain} -m comment --comment "shop/cart -> 10.244.1.5:8080" -m statistic --mode random --probability 0.5000000000 -j SEP`,
      `-A ${chain} -m comment --comment "shop/cart -> 10.244.2.5:8080" -j SEP`,
    ]);
    expect(r.restore).toMatch(/-A (KUBE-SEP-\S+) -m comment --comment shop\/cart -m recent --name \1 --set -m tcp -p tcp -j DNAT --to-destination 10\.244\.1\.5:8080\n/);
    expectKernelHasAll(r, (await loadInKernel(r)).saved);
  });

  it('NodePort: KUBE-NODEPORTS → KUBE-EXT → KUBE-SVC; without endpoints REJECT in filter for ClusterIP and node port', async () => {
    const c = cluster([
      svcWith('web', 'front', { type: 'NodePort', clusterIP: '10.96.7.7' }, { name: 'http', port: 80, nodePort: 30080 }),
      svcWith('web', 'empty', { type: 'NodePort', clusterIP: '10.96.7.8', externalIPs: ['192.0.2.10'] }, { name: 'http', port: 80, nodePort: 30081, protocol: 'UDP' }),
    ], [epSlice('web', 'front', 'http', 8080, ['10.244.1.7'])]);
    const r = generateIptables(resolveServicePorts(c, { nodeName: 'kind-worker' }));
    const ext = 'KUBE-EXT-' + svcChain('web/front:http', 'tcp').slice('KUBE-SVC-'.length);
    const lines = r.restore.split('\n');
    expect(lines).toContain(`-A KUBE-NODEPORTS -m comment --comment web/front:http -m tcp -p tcp --dport 30080 -j ${ext}`);
    expect(lines).toContain(`-A ${ext} -m comment --comment "masquerade traffic for web/front:http external destinations" -j KUBE-MARK-MASQ`);
    expect(lines).toContain(`-A ${ext} -j ${svcChain('web/front:http', 'tcp')}`);
    expect(lines).toContain('-A KUBE-SERVICES -m comment --comment "web/empty:http has no endpoints" -m udp -p udp -d 10.96.7.8 --dport 80 -j REJECT');
    expect(lines).toContain('-A KUBE-EXTERNAL-SERVICES -m comment --comment "web/empty:http has no endpoints" -m udp -p udp -d 192.0.2.10 --dport 80 -j REJECT');
    expect(lines).toContain('-A KUBE-EXTERNAL-SERVICES -m comment --comment "web/empty:http has no endpoints" -m addrtype --dst-type LOCAL -m udp -p udp --dport 30081 -j REJECT');
    expect(lines.filter((l) => l.includes('web/empty') && l.startsWith('-A KUBE-NODEPORTS'))).toEqual([]);
    expectKernelHasAll(r, (await loadInKernel(r)).saved);
  });

  it('externalTrafficPolicy Local with a local endpoint: KUBE-EXT short-circuits to KUBE-SVC, others go to KUBE-SVL', async () => {
    const c = cluster([
      svcWith('lb', 'edge', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', clusterIP: '10.96.9.9', loadBalancerIPs: ['203.0.113.9'], loadBalancerSourceRanges: ['198.51.100.7/24'] }, { name: 'https', port: 443, nodePort: 31443 }),
    ], [epSlice('lb', 'edge', 'https', 8443, [{ ip: '10.244.1.9', node: 'kind-worker' }, { ip: '10.244.2.9', node: 'kind-worker2' }])]);
    const r = generateIptables(resolveServicePorts(c, { nodeName: 'kind-worker' }), { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] });
    const h = svcChain('lb/edge:https', 'tcp').slice('KUBE-SVC-'.length);
    const body = (chain: string) => r.restore.split('\n').filter((l) => l.startsWith(`-A ${chain} `));
    expect(body(`KUBE-EXT-${h}`)).toEqual([
      `-A KUBE-EXT-${h} -m comment --comment "pod traffic for lb/edge:https external destinations" -s 10.244.0.0/16 -j KUBE-SVC-${h}`,
      `-A KUBE-EXT-${h} -m comment --comment "masquerade LOCAL traffic for lb/edge:https external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
      `-A KUBE-EXT-${h} -m comment --comment "route LOCAL traffic for lb/edge:https external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-${h}`,
      `-A KUBE-EXT-${h} -j KUBE-SVL-${h}`,
    ]);
    expect(body(`KUBE-SVL-${h}`)).toHaveLength(1); // one local endpoint, no masquerade rule
    expect(body(`KUBE-SVC-${h}`)).toHaveLength(3);
    expect(body(`KUBE-FW-${h}`)).toEqual([
      `-A KUBE-FW-${h} -m comment --comment "lb/edge:https loadbalancer IP" -s 198.51.100.0/24 -j KUBE-EXT-${h}`,
      `-A KUBE-FW-${h} -m comment --comment "other traffic to lb/edge:https will be dropped by KUBE-PROXY-FIREWALL"`,
    ]);
    expect(r.restore).toContain(`-A KUBE-SERVICES -m comment --comment "lb/edge:https loadbalancer IP" -m tcp -p tcp -d 203.0.113.9 --dport 443 -j KUBE-FW-${h}`);
    expectKernelHasAll(r, (await loadInKernel(r)).saved);
  });

  it('internalTrafficPolicy Local: the ClusterIP goes to KUBE-SVL, or is dropped when the node has no endpoint', () => {
    const mk = (node: string) => generateIptables(resolveServicePorts(cluster(
      [svcWith('ns', 'local', { clusterIP: '10.96.3.3', internalTrafficPolicy: 'Local' }, { name: 'p', port: 80 })],
      [epSlice('ns', 'local', 'p', 80, [{ ip: '10.244.1.3', node: 'kind-worker' }])],
    ), { nodeName: node }), { nodeName: node });
    const h = svcChain('ns/local:p', 'tcp').slice('KUBE-SVC-'.length);
    expect(mk('kind-worker').restore).toContain(`-A KUBE-SERVICES -m comment --comment "ns/local:p cluster IP" -m tcp -p tcp -d 10.96.3.3 --dport 80 -j KUBE-SVL-${h}`);
    expect(mk('kind-worker').restore).not.toContain(`KUBE-SVC-${h}`);
    const other = mk('kind-worker2');
    expect(other.restore).toContain('-A KUBE-SERVICES -m comment --comment "ns/local:p has no local endpoints" -m tcp -p tcp -d 10.96.3.3 --dport 80 -j DROP');
    expect(other.counts.nat).toEqual({ rules: 5, chains: 4 });
  });

  it('falls back to serving-and-terminating endpoints only when none is ready', () => {
    const mk = (eps: Ep[]) => generateIptables(resolveServicePorts(cluster(
      [svcWith('ns', 's', { clusterIP: '10.96.4.4' }, { name: 'p', port: 80 })], [epSlice('ns', 's', 'p', 80, eps)],
    ))).restore.match(/--to-destination \S+/g);
    expect(mk(['10.244.1.1', { ip: '10.244.1.2', ready: false, serving: true, terminating: true }])).toEqual(['--to-destination 10.244.1.1:80']);
    expect(mk([{ ip: '10.244.1.2', ready: false, serving: true, terminating: true }, { ip: '10.244.1.3', ready: false, serving: false, terminating: true }])).toEqual(['--to-destination 10.244.1.2:80']);
  });

  it('kube-proxy prints the mark with %#08x, and iptables reads it back as 0x4000', async () => {
    const r = generateIptables(resolveServicePorts(syntheticCluster({ services: 1, endpoints: 1 })));
    expect(r.restore).toContain('-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000\n');
    expect(r.restore).toContain('-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully\n');
    const { saved } = await loadInKernel(r);
    expect(saved.nat['KUBE-MARK-MASQ']).toEqual(['-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000']);
    expect(saved.nat['KUBE-POSTROUTING'][1]).toBe('-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0');
    expect(generateIptables([], { masqueradeBit: 15 }).restore).toContain('--or-mark 0x00008000');
  });

  it('formats probabilities like Go (%0.10f rounds exact ties to even)', () => {
    expect([2, 3, 4, 7, 1000].map(formatProbability)).toEqual(['0.5000000000', '0.3333333333', '0.2500000000', '0.1428571429', '0.0010000000']);
    expect(formatProbability(2048)).toBe('0.0004882812'); // 0.00048828125 exactly; JS toFixed gives …813
    expect([3, 4, 2].map(savedProbability)).toEqual(['0.33333333349', '0.25000000000', '0.50000000000']);
  });
});

describe('determinism and order', () => {
  const c = syntheticCluster({ services: 20, endpoints: 3, nodePorts: 5, kindDefaults: true });

  it('same input, same bytes', () => {
    const a = generateIptables(resolveServicePorts(c, { nodeName: 'kind-worker' }), { nodeName: 'kind-worker' });
    const b = generateIptables(resolveServicePorts(structuredClone(c), { nodeName: 'kind-worker' }), { nodeName: 'kind-worker' });
    expect(b.restore).toBe(a.restore);
    expect(b).toEqual(a);
  });

  it('any service order kube-proxy might take normalizes to the same text, as upstream tests assume', () => {
    const ports: ServicePortInfo[] = resolveServicePorts(c, { nodeName: 'kind-worker' });
    const shuffled = ports.map((p, i) => [(i * 7919) % ports.length, p] as const).sort((x, y) => x[0] - y[0]).map(([, p]) => p);
    const a = generateIptables(ports);
    const b = generateIptables(shuffled);
    expect(b.restore).not.toBe(a.restore);
    expect(sortRestoreLikeUpstream(b.restore)).toBe(sortRestoreLikeUpstream(a.restore));
    expect(generateIptables(shuffled, { normalize: true }).restore).toBe(sortRestoreLikeUpstream(a.restore));
  });

  it('writes fixed chains first, each service as a group, and the nodeports jump and KUBE-FORWARD last', () => {
    const r = generateIptables(resolveServicePorts(c)).restore;
    const nat = r.slice(r.indexOf('*nat\n'));
    const rules = nat.split('\n').filter((l) => l.startsWith('-A '));
    expect(rules.slice(0, 4).map((l) => l.split(' ')[1])).toEqual(['KUBE-POSTROUTING', 'KUBE-POSTROUTING', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ']);
    expect(rules.at(-1)).toContain('this must be the last rule in this chain');
    expect(nat.split('\n').slice(1, 5)).toEqual([':KUBE-SERVICES - [0:0]', ':KUBE-NODEPORTS - [0:0]', ':KUBE-POSTROUTING - [0:0]', ':KUBE-MARK-MASQ - [0:0]']);
    const filter = r.slice(0, r.indexOf('*nat\n')).split('\n').filter((l) => l.startsWith('-A '));
    expect(filter.slice(-3).every((l) => l.startsWith('-A KUBE-FORWARD '))).toBe(true);
  });
});

describe('built-in jumps', () => {
  it('are the ones kube-proxy ensures, and -I leaves the last one on top', async () => {
    const r = generateIptables([]);
    expect(r.builtinJumps.filter((j) => j.table === 'nat')).toEqual([
      { table: 'nat', chain: 'OUTPUT', args: ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'] },
      { table: 'nat', chain: 'PREROUTING', args: ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'] },
      { table: 'nat', chain: 'POSTROUTING', args: ['-m', 'comment', '--comment', 'kubernetes postrouting rules', '-j', 'KUBE-POSTROUTING'] },
    ]);
    const { saved } = await loadInKernel(r);
    expect(saved.filter.INPUT).toEqual([
      '-A INPUT -j KUBE-FIREWALL',
      '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
      '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
      '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
    ]);
    expect(saved.nat.PREROUTING).toEqual(['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES']);
    expectKernelHasAll(r, saved);
  });
});
