import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readClusterJson, resolveServicePorts, syntheticCluster } from '../../lib/k8s/index.ts';
import type { Cluster, Endpoint, EndpointSlice, Service, ServicePort } from '../../lib/k8s/types.ts';
import { parseIpsetList, parseIpsetSave } from '../../lib/parse/ipset.ts';
import { parseIpvsadm, parseProcIpVs, sortIpvsState } from '../../lib/parse/ipvsadm.ts';
import { IPVS_IPSETS, IPVS_JUMPS, generateIpvs, ipvsSetTypes, type IpvsOptions } from '../../lib/proxy/ipvs.ts';
import { ipvsSkipReason, withNetns } from '../helpers/netns.ts';

// ---- building clusters the way kube-proxy's own tests do ----------------------------------

function service(ns: string, name: string, s: Partial<Service> & { ports: ServicePort[] }): Service {
  return {
    namespace: ns, name, type: 'ClusterIP', clusterIP: '', selector: {}, sessionAffinity: 'None', sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster', internalTrafficPolicy: 'Cluster', externalIPs: [], loadBalancerIPs: [], loadBalancerSourceRanges: [], ...s,
  };
}
const port = (name: string, protocol: ServicePort['protocol'], p: number, nodePort: number | null = null): ServicePort => ({ name, protocol, port: p, targetPort: p, nodePort });
const ep = (ip: string, nodeName: string | null = null): Endpoint => ({ addresses: [ip], ready: true, serving: true, terminating: false, nodeName, podName: null });
function slice(ns: string, svc: string, endpoints: Endpoint[], ports: { name: string; protocol: ServicePort['protocol']; port: number }[]): EndpointSlice {
  return { namespace: ns, name: `${svc}-abc`, serviceName: svc, addressType: 'IPv4', endpoints, ports };
}
const gen = (c: Cluster, o: IpvsOptions = {}) => generateIpvs(resolveServicePorts(c, { nodeName: o.nodeName ?? null }), o);
const httpbin = () => readClusterJson(readFileSync(new URL('../fixtures/kind-httpbin.kubectl.json', import.meta.url), 'utf8'));

describe('IPVS rules from kube-proxy’s own test cases (pkg/proxy/ipvs/proxier_test.go)', () => {
  it('TestLoadBalanceSourceRanges: LB ip+port in KUBE-LOAD-BALANCER and -FW, source CIDR in -SOURCE-CIDR', () => {
    const c: Cluster = {
      services: [service('ns1', 'svc1', {
        type: 'LoadBalancer', clusterIP: '10.20.30.41', ports: [port('p80', 'TCP', 80)],
        loadBalancerIPs: ['1.2.3.4'], loadBalancerSourceRanges: ['10.0.0.0/8'],
      })],
      endpointSlices: [slice('ns1', 'svc1', [ep('10.180.0.1')], [{ name: 'p80', protocol: 'TCP', port: 80 }])],
    };
    const r = gen(c);
    expect(r.ipsets['KUBE-LOAD-BALANCER']).toEqual(['1.2.3.4,tcp:80']);
    expect(r.ipsets['KUBE-LOAD-BALANCER-FW']).toEqual(['1.2.3.4,tcp:80']);
    expect(r.ipsets['KUBE-LOAD-BALANCER-SOURCE-CIDR']).toEqual(['1.2.3.4,tcp:80,10.0.0.0/8']);
    // "Expect 2 services and 1 destination": the cluster IP and the LB IP, both to 10.180.0.1:80.
    expect(r.counts.virtualServers).toBe(2);
    expect(r.ipvs.services.find((s) => s.address === '1.2.3.4')?.destinations.map((d) => `${d.address}:${d.port}`)).toEqual(['10.180.0.1:80']);
    // KUBE-SERVICES → KUBE-LOAD-BALANCER on the LB set; the firewall returns on the CIDR set, else drops.
    const rules = r.iptablesRestore.split('\n');
    expect(rules).toContain('-A KUBE-SERVICES -m comment --comment "Kubernetes service lb portal" -m set --match-set KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER');
    expect(rules).toContain('-A KUBE-PROXY-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port for load balancer with sourceRange" -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL');
    expect(rules.filter((l) => l.startsWith('-A KUBE-SOURCE-RANGES-FIREWALL'))).toEqual([
      '-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source cidr for packet filter purpose" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN',
      '-A KUBE-SOURCE-RANGES-FIREWALL -j DROP',
    ]);
    // No node IP inside the ranges: the node itself may not reach the LB (kubernetes#119656).
    expect(rules).toContain('-A KUBE-IPVS-OUT-FILTER -s 1.2.3.4 -m ipvs --vaddr 1.2.3.4 --vproto tcp --vport 80 -j DROP');
    expect(gen(c, { nodeIPs: ['10.1.2.3'] }).ipsets['KUBE-LOAD-BALANCER-SOURCE-IP']).toEqual(['1.2.3.4,tcp:80,1.2.3.4']);
  });

  it('TestOnlyLocalNodePorts: node port in KUBE-NODE-PORT-TCP and -LOCAL-TCP, only the local endpoint behind it', () => {
    const c: Cluster = {
      services: [service('ns1', 'svc1', { type: 'NodePort', clusterIP: '10.20.30.41', ports: [port('p80', 'TCP', 80, 3001)], externalTrafficPolicy: 'Local' })],
      endpointSlices: [slice('ns1', 'svc1', [ep('10.180.0.1', 'test-hostname'), ep('10.180.1.1', 'other-hostname')], [{ name: 'p80', protocol: 'TCP', port: 80 }])],
    };
    const r = gen(c, { nodeName: 'test-hostname', nodeIPs: ['100.101.102.103'] });
    expect(r.ipsets['KUBE-NODE-PORT-TCP']).toEqual(['3001']);
    expect(r.ipsets['KUBE-NODE-PORT-LOCAL-TCP']).toEqual(['3001']);
    const np = r.ipvs.services.find((s) => s.address === '100.101.102.103' && s.port === 3001);
    expect(np?.destinations.map((d) => `${d.address}:${d.port}`)).toEqual(['10.180.0.1:80']);
    expect(r.iptablesRestore.split('\n').filter((l) => l.startsWith('-A KUBE-NODE-PORT -p '))).toEqual([
      '-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port with externalTrafficPolicy=local" -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN',
      '-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ',
    ]);
    expect(r.iptablesRestore).toContain('-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT\n');
  });

  it('TestNodePort "1 UDP service with node port, has endpoints": KUBE-NODE-PORT-UDP holds 3001', () => {
    const c: Cluster = {
      services: [service('ns1', 'svc1', { type: 'NodePort', clusterIP: '10.20.30.41', ports: [port('p80', 'UDP', 80, 3001)] })],
      endpointSlices: [slice('ns1', 'svc1', [ep('10.180.0.1')], [{ name: 'p80', protocol: 'UDP', port: 80 }])],
    };
    const r = gen(c, { nodeIPs: ['100.101.102.103'] });
    expect(r.ipsets['KUBE-NODE-PORT-UDP']).toEqual(['3001']);
    expect(r.ipvsadmRestore).toBe([
      '-A -u 10.20.30.41:80 -s rr', '-a -u 10.20.30.41:80 -r 10.180.0.1:80 -m -w 1',
      '-A -u 100.101.102.103:3001 -s rr', '-a -u 100.101.102.103:3001 -r 10.180.0.1:80 -m -w 1', '',
    ].join('\n'));
    expect(r.iptablesRestore).toContain('-A KUBE-NODE-PORT -p udp -m comment --comment "Kubernetes nodeport UDP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-UDP dst -j KUBE-MARK-MASQ\n');
  });
});

describe('generateIpvs', () => {
  it('binds cluster IPs to kube-ipvs0, fills KUBE-CLUSTER-IP and hairpin entries for local endpoints', () => {
    const r = gen(httpbin(), { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] });
    expect(r.dummyInterface).toBe('kube-ipvs0');
    expect(r.dummyAddresses).toEqual(['10.96.0.1/32', '10.96.0.10/32', '10.96.120.15/32']);
    expect(r.ipsets['KUBE-CLUSTER-IP']).toContain('10.96.0.10,udp:53');
    expect(r.ipsets['KUBE-LOOP-BACK']).toEqual(['10.244.1.2,tcp:8080,10.244.1.2']);
    expect(r.ipsets['KUBE-IPVS-IPS']).toEqual(['10.96.0.1', '10.96.0.10', '10.96.120.15']);
    expect(r.ipvsadmRestore.split('\n').slice(0, 2)).toEqual(['-A -t 10.96.0.1:443 -s rr', '-a -t 10.96.0.1:443 -r 172.18.0.2:6443 -m -w 1']);
    expect(r.counts).toMatchObject({ virtualServers: 5, realServers: 10, iptables: { nat: { chains: 5 }, filter: { chains: 6 } } });
    expect(r.iptablesRestore).toContain(
      '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ\n',
    );
    // acceptIPVSTraffic: the ACCEPT is the last rule of KUBE-SERVICES.
    expect(r.iptablesRestore.split('\n').filter((l) => l.startsWith('-A KUBE-SERVICES ')).at(-1)).toBe('-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT');
    expect(r.iptablesRestore).toContain('-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000\n');
    expect(r.ipsetRestore).toContain('create KUBE-NODE-PORT-TCP bitmap:port range 0-65535\n');
    expect(r.ipsetRestore).toContain('create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\n');
  });

  it('is byte-for-byte deterministic', () => {
    const c = syntheticCluster({ services: 20, endpoints: 3, nodePorts: 5, kindDefaults: true });
    expect(gen(c, { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] })).toEqual(gen(c, { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] }));
  });

  it('ClientIP affinity becomes a persistent virtual server', () => {
    const c: Cluster = {
      services: [service('default', 'sticky', { clusterIP: '10.96.5.5', ports: [port('', 'TCP', 80)], sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 600 })],
      endpointSlices: [slice('default', 'sticky', [ep('10.244.1.9')], [{ name: '', protocol: 'TCP', port: 8080 }])],
    };
    const r = gen(c);
    expect(r.ipvsadmRestore.split('\n')[0]).toBe('-A -t 10.96.5.5:80 -s rr -p 600');
    expect(r.ipvs.services[0].flags).toEqual(['persistent 600']);
  });

  it('keeps the iptables part constant in the number of services', () => {
    const small = gen(syntheticCluster({ services: 3, endpoints: 2, nodePorts: 1, kindDefaults: true }), { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] });
    const large = gen(syntheticCluster({ services: 600, endpoints: 5, nodePorts: 300, kindDefaults: true }), { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] });
    expect(large.iptablesRestore).toBe(small.iptablesRestore);
    expect(large.counts.virtualServers).toBe(604 + 300);
    expect(large.counts.ipsetMembers['KUBE-CLUSTER-IP']).toBe(604);
    expect(large.counts.ipsetMembers['KUBE-NODE-PORT-TCP']).toBe(300);
  });

  it('sends traffic to serving-terminating endpoints only when none is ready', () => {
    const term = { ...ep('10.244.1.7'), ready: false, terminating: true };
    const c: Cluster = {
      services: [service('default', 'web', { clusterIP: '10.96.9.9', ports: [port('', 'TCP', 80)] })],
      endpointSlices: [slice('default', 'web', [term], [{ name: '', protocol: 'TCP', port: 80 }])],
    };
    expect(gen(c).ipvs.services[0].destinations.map((d) => d.address)).toEqual(['10.244.1.7']);
    c.endpointSlices[0].endpoints.push(ep('10.244.2.7'));
    expect(gen(c).ipvs.services[0].destinations.map((d) => d.address)).toEqual(['10.244.2.7']);
  });

  it('publishes kube-proxy’s set types', () => {
    expect(ipvsSetTypes['KUBE-CLUSTER-IP']).toBe('hash:ip,port');
    expect(ipvsSetTypes['KUBE-LOOP-BACK']).toBe('hash:ip,port,ip');
    expect(ipvsSetTypes['KUBE-NODE-PORT-TCP']).toBe('bitmap:port');
    expect(IPVS_IPSETS).toHaveLength(17);
  });
});

/** Everything a workshop cluster uses, apart from the -m ipvs rule this kernel cannot load. */
function richCluster(): Cluster {
  const c = httpbin();
  c.services.push(
    service('default', 'web-np', { type: 'NodePort', clusterIP: '10.96.7.7', ports: [port('http', 'TCP', 80, 30080), port('dns', 'UDP', 53, 30053)], sessionAffinity: 'ClientIP' }),
    service('default', 'web-local', { type: 'NodePort', clusterIP: '10.96.7.8', ports: [port('', 'TCP', 80, 30081)], externalTrafficPolicy: 'Local' }),
    service('default', 'web-ext', { clusterIP: '10.96.7.9', ports: [port('', 'TCP', 80)], externalIPs: ['192.0.2.10'] }),
    service('default', 'web-lb', {
      type: 'LoadBalancer', clusterIP: '10.96.7.10', ports: [port('', 'TCP', 80, 30082)], loadBalancerIPs: ['198.51.100.7'],
      loadBalancerSourceRanges: ['172.18.0.0/16', '203.0.113.0/24'], externalTrafficPolicy: 'Local',
    }),
    service('default', 'sctp-np', { type: 'NodePort', clusterIP: '10.96.7.11', ports: [port('', 'SCTP', 9000, 30090)] }),
  );
  const eps = [ep('10.244.1.5', 'kind-worker'), ep('10.244.2.5', 'kind-worker2')];
  for (const name of ['web-np', 'web-local', 'web-ext', 'web-lb', 'sctp-np']) {
    c.endpointSlices.push(slice('default', name, eps, [
      { name: 'http', protocol: 'TCP', port: 8080 }, { name: 'dns', protocol: 'UDP', port: 5353 },
      { name: '', protocol: 'TCP', port: 8080 }, { name: '', protocol: 'SCTP', port: 9000 },
    ]));
  }
  return c;
}

describe('the kernel accepts what kube-proxy would program', () => {
  const opts: IpvsOptions = { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] };

  it('ipset restore, read back with ipset list and ipset save; iptables-restore with -m set', async () => {
    const r = gen(richCluster(), opts);
    expect(r.iptablesRestore).not.toContain('-m ipvs');
    expect(r.ipsets['KUBE-NODE-PORT-SCTP-HASH']).toEqual(['172.18.0.3,sctp:30090']);
    expect(r.ipsets['KUBE-LOAD-BALANCER-SOURCE-IP']).toEqual(['198.51.100.7,tcp:80,198.51.100.7']);
    await withNetns(async (ns) => {
      await ns.run(['ipset', 'restore'], { input: r.ipsetRestore });
      const listed = parseIpsetList((await ns.run(['ipset', 'list'])).stdout);
      const saved = parseIpsetSave((await ns.run(['ipset', 'save'])).stdout);
      const generated = parseIpsetSave(r.ipsetRestore);
      for (const state of [listed, saved]) {
        expect(state.sets.map((s) => [s.name, s.type])).toEqual(IPVS_IPSETS.map((s) => [s.name, s.type]));
        for (const s of state.sets) expect([...s.members].sort(), s.name).toEqual([...r.ipsets[s.name]].sort());
      }
      for (const s of listed.sets) {
        const want = generated.sets.find((g) => g.name === s.name)!.header;
        expect(s.header, s.name).toMatchObject(want);
        expect(s.entries, s.name).toBe(r.counts.ipsetMembers[s.name]);
      }

      await ns.run(['iptables-restore', '--noflush'], { input: r.iptablesRestore });
      for (const j of IPVS_JUMPS) await ns.run(['iptables', '-t', j.table, '-I', j.chain, ...j.args]);
      for (const table of ['nat', 'filter'] as const) {
        const dump = (await ns.run(['iptables-save', '-t', table])).stdout.split('\n');
        const kubeRules = dump.filter((l) => /^-A KUBE-/.test(l));
        const jumps = dump.filter((l) => /^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /.test(l));
        expect(kubeRules, table).toHaveLength(r.counts.iptables[table].rules);
        expect(dump.filter((l) => /^:KUBE-/.test(l)), table).toHaveLength(r.counts.iptables[table].chains);
        expect(jumps, table).toHaveLength(IPVS_JUMPS.filter((j) => j.table === table).length);
      }
      const filter = (await ns.run(['iptables-save', '-t', 'filter'])).stdout;
      // -I puts the last jump kube-proxy ensures first.
      expect(filter.split('\n').filter((l) => l.startsWith('-A INPUT'))[0]).toContain('-j KUBE-IPVS-FILTER');
      // Sets now have references from the rules that name them.
      const refs = parseIpsetList((await ns.run(['ipset', 'list', '-t'])).stdout);
      expect(refs.sets.find((s) => s.name === 'KUBE-CLUSTER-IP')?.references).toBeGreaterThan(0);
    });
  });

  it.skipIf(ipvsSkipReason() !== null)('ipvsadm -R loads the virtual servers; ipvsadm -Ln and /proc/net/ip_vs show them', async () => {
    const r = gen(richCluster(), opts);
    await withNetns(async (ns) => {
      await ns.run(['ipvsadm', '-R'], { input: r.ipvsadmRestore });
      const listed = parseIpvsadm((await ns.run(['ipvsadm', '-Ln'])).stdout);
      expect(listed).toEqual(r.ipvs);
      const proc = parseProcIpVs((await ns.run(['cat', '/proc/net/ip_vs'])).stdout, { hz: 1 });
      expect(sortIpvsState(proc).services.map((s) => `${s.protocol} ${s.address}:${s.port}`)).toEqual(r.ipvs.services.map((s) => `${s.protocol} ${s.address}:${s.port}`));
    });
  });
  if (ipvsSkipReason() !== null) console.log(`skipped ipvsadm -R against the kernel: ${ipvsSkipReason()}`);
});
