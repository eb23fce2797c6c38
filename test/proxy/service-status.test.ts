/**
 * What kube-proxy reads from a Service beyond its spec ports, in every mode: ingress ipMode
 * (LoadBalancerIPMode, beta and on by default in 1.30, GA in 1.32: pkg/proxy/serviceport.go
 * keeps only VIP-mode ingress IPs) and spec.healthCheckNodePort (only LoadBalancer Services with
 * externalTrafficPolicy Local have one: iptables accepts it in KUBE-NODEPORTS, IPVS lists it in
 * KUBE-HEALTH-CHECK-NODE-PORT, nftables writes nothing for it).
 */
import { describe, expect, it } from 'vitest';
import { readCluster, resolveServicePorts, type Cluster } from '../../lib/k8s/index.ts';
import { generateIptables } from '../../lib/proxy/iptables.ts';
import { generateIpvs } from '../../lib/proxy/ipvs.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import { iptablesModeProblems, ipvsModeProblems, nftablesModeProblems } from '../helpers/kernel-oracle.ts';
import { withNetns } from '../helpers/netns.ts';

const OPTS = { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'], clusterCIDR: '10.244.0.0/16' };

function lb(ingress: unknown[], spec: Record<string, unknown> = {}): Cluster {
  return readCluster({
    kind: 'List',
    items: [
      {
        kind: 'Service', metadata: { name: 'web', namespace: 'default' },
        spec: { type: 'LoadBalancer', clusterIP: '10.96.0.80', ports: [{ name: 'http', port: 80, nodePort: 30080 }], ...spec },
        status: { loadBalancer: { ingress } },
      },
      {
        kind: 'EndpointSlice', metadata: { name: 'web-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
        addressType: 'IPv4', endpoints: [{ addresses: ['10.244.1.5'], nodeName: 'kind-worker' }], ports: [{ name: 'http', port: 8080 }],
      },
    ],
  });
}

/** Every mode's output for the cluster, and the kernel's verdict on each. */
async function everyMode(c: Cluster): Promise<{ iptables: string; ipvs: string; nftables: string }> {
  const ports = resolveServicePorts(c, { nodeName: 'kind-worker' });
  const ipt = generateIptables(ports, OPTS);
  const ipvs = generateIpvs(ports, OPTS);
  const nft = generateNftables(ports, OPTS);
  const meaning = { clusterIPs: new Set(['10.96.0.80']), endpoints: new Set(['10.244.1.5:8080']) };
  await withNetns(async (ns) => expect(await iptablesModeProblems(ns, ipt, meaning)).toEqual([]));
  await withNetns(async (ns) => expect(await ipvsModeProblems(ns, ipvs, meaning)).toEqual([]));
  await withNetns(async (ns) => expect(await nftablesModeProblems(ns, nft, meaning)).toEqual([]));
  return { iptables: ipt.restore, ipvs: ipvs.ipsetRestore + ipvs.ipvsadmRestore + ipvs.dummyAddresses.join('\n'), nftables: nft.nft };
}

describe('status.loadBalancer.ingress[].ipMode', () => {
  it('an ingress IP with ipMode Proxy gets no rules in any mode; the VIP one beside it does', async () => {
    const out = await everyMode(lb([{ ip: '198.51.100.1', ipMode: 'Proxy' }, { ip: '198.51.100.2', ipMode: 'VIP' }, { ip: '198.51.100.3' }]));
    for (const [mode, text] of Object.entries(out)) {
      expect([mode, text.includes('198.51.100.1')]).toEqual([mode, false]);
      expect([mode, text.includes('198.51.100.2'), text.includes('198.51.100.3')]).toEqual([mode, true, true]);
    }
  });
});

describe('spec.healthCheckNodePort', () => {
  it('LoadBalancer with externalTrafficPolicy Local: accepted by iptables, listed by IPVS, nothing in nftables', async () => {
    const out = await everyMode(lb([{ ip: '198.51.100.2' }], { externalTrafficPolicy: 'Local', healthCheckNodePort: 31999 }));
    expect(out.iptables).toContain('-A KUBE-NODEPORTS -m comment --comment "default/web:http health check node port" -m tcp -p tcp --dport 31999 -j ACCEPT\n');
    expect(out.ipvs).toContain('add KUBE-HEALTH-CHECK-NODE-PORT 31999\n');
    expect(out.nftables).not.toContain('31999');
  });
});
