import { describe, expect, it } from 'vitest';
import { resolveServicePorts } from '../../lib/k8s/resolve.ts';
import { KIND_DEFAULTS } from '../../lib/k8s/synthetic.ts';
import { workshopCluster } from '../../lib/k8s/workshop.ts';
import { parseIpsetSave, parseIptablesRestoreInput, parseIptablesSave, parseNftRuleset, type IptTable } from '../../lib/parse/index.ts';
import { generateIptables } from '../../lib/proxy/iptables.ts';
import { generateIpvs } from '../../lib/proxy/ipvs.ts';
import { svcChain } from '../../lib/proxy/names.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import {
  chainNamed, clusterIpMember, ipsetNamed, jumpProbabilities, kubeChains, kubeSetMembers, nftServiceChain, numgenOf, ruleCount,
  serviceJumps, virtualServer,
} from '../../lib/proxy/read.ts';
import { withNetns } from '../helpers/netns.ts';

const opts = { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'], clusterCIDR: KIND_DEFAULTS.podSubnet };
const portsOf = (replicas: number) => resolveServicePorts(workshopCluster({ replicas }), { nodeName: opts.nodeName });
const httpbin = (replicas: number) => portsOf(replicas).find((p) => p.name === 'httpbin')!;

describe('reading kube-proxy back from a kernel', () => {
  it('a Service chain\'s jumps: endpoint, DNAT target and the probability as the kernel stores it', async () => {
    const port = httpbin(5);
    const chain = svcChain(port.servicePortName, port.protocol);
    const saved = await withNetns(async (ns) => {
      await ns.run(['iptables-restore'], { input: generateIptables(portsOf(5), opts).restore });
      return parseIptablesSave((await ns.run(['iptables-save', '-t', 'nat'])).stdout);
    });
    const jumps = serviceJumps(saved, chain);
    expect(jumps.map((j) => j.to)).toEqual(port.endpoints.map((e) => `${e.ip}:${e.port}`));
    expect(jumps.map((j) => j.probability)).toEqual(jumpProbabilities(5));
    expect(jumps.map((j) => j.probability)).toEqual(['0.20000000019', '0.25000000000', '0.33333333349', '0.50000000000', null]);
    expect(jumps.every((j) => j.sep.startsWith('KUBE-SEP-'))).toBe(true);
    expect(() => serviceJumps(saved, 'KUBE-SVC-NOSUCHCHAIN')).toThrow(/no chain KUBE-SVC-NOSUCHCHAIN/);
  });

  it('the numgen dispatch of an nftables Service chain, from nft list ruleset', async () => {
    const port = httpbin(3);
    const listed = await withNetns(async (ns) => {
      await ns.run(['nft', '-f', '-'], { input: generateNftables(portsOf(3), opts).nft });
      return parseNftRuleset((await ns.run(['nft', 'list', 'ruleset'])).stdout);
    });
    const chain = nftServiceChain(port);
    expect(chain).toBe('service-5WI3VASQ-default/httpbin/tcp/http');
    const ng = numgenOf(listed, chain);
    expect(ng?.mod).toBe(3);
    expect(ng?.entries.map((e) => e.index)).toEqual([0, 1, 2]);
    expect(numgenOf(listed, 'no-such-chain')).toBeNull();
    expect(numgenOf({ tables: [] }, chain)).toBeNull();
  });
});

describe('reading kube-proxy\'s IPVS-mode state', () => {
  const gen = generateIpvs(portsOf(3), opts);

  it('KUBE-* nat chains without the canaries, and their rules', () => {
    const nat = parseIptablesRestoreInput(gen.iptablesRestore).tables.find((t) => t.name === 'nat')!;
    const withCanary: IptTable = { ...nat, chains: [...nat.chains, { name: 'KUBE-PROXY-CANARY', builtin: false, policy: null, counters: null, rules: [] }] };
    expect(kubeChains(withCanary).map((c) => c.name)).toEqual(kubeChains(nat).map((c) => c.name));
    expect(kubeChains(nat)).toHaveLength(gen.counts.iptables.nat.chains);
    expect(ruleCount(kubeChains(nat))).toBe(gen.counts.iptables.nat.rules);
    expect(chainNamed(nat, 'KUBE-SERVICES').rules).toHaveLength(4);
    expect(() => chainNamed(nat, 'KUBE-NOPE')).toThrow(/no chain KUBE-NOPE in table nat \(it has KUBE-/);
  });

  it('ipsets by name, members sorted, and a Service port as a KUBE-CLUSTER-IP member', () => {
    const sets = parseIpsetSave(gen.ipsetRestore);
    const port = httpbin(3);
    expect(clusterIpMember(port)).toBe(`${port.clusterIP},tcp:8000`);
    expect(ipsetNamed(sets, 'KUBE-CLUSTER-IP').members).toContain(clusterIpMember(port));
    expect(() => ipsetNamed(sets, 'KUBE-NOPE')).toThrow(/no ipset KUBE-NOPE \(there are KUBE-/);
    const members = kubeSetMembers(sets);
    expect(members['KUBE-CLUSTER-IP']).toEqual([...gen.ipsets['KUBE-CLUSTER-IP']].sort());
    expect(Object.keys(members).every((n) => n.startsWith('KUBE-'))).toBe(true);
  });

  it('a virtual server by address and port, TCP unless told', () => {
    const port = httpbin(3);
    expect(virtualServer(gen.ipvs, port.clusterIP, 8000)?.destinations).toHaveLength(3);
    expect(virtualServer(gen.ipvs, '10.96.0.10', 53)?.protocol).toBe('TCP');
    expect(virtualServer(gen.ipvs, '10.96.0.10', 53, 'UDP')?.protocol).toBe('UDP');
    expect(virtualServer(gen.ipvs, port.clusterIP, 9)).toBeUndefined();
  });

  it('jump probabilities for n endpoints: the last jump has none', () => {
    expect(jumpProbabilities(1)).toEqual([null]);
    expect(jumpProbabilities(3)).toEqual(['0.33333333349', '0.50000000000', null]);
  });
});
