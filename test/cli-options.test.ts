/**
 * `kube-netlab rules` with kube-proxy's settings as flags: each one reaches the rules (and the
 * kernel takes them), and a bad value is a usage error naming the flag and the value.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './helpers/cli.ts';
import { withNetns } from './helpers/netns.ts';

let dir: string;
let dual: string;

// A dual-stack LoadBalancer Service with endpoints of both families, as kubectl prints it.
const DUAL = {
  kind: 'List',
  items: [
    {
      kind: 'Service', metadata: { name: 'web', namespace: 'default' },
      spec: {
        type: 'LoadBalancer', clusterIP: '10.96.0.80', clusterIPs: ['10.96.0.80', 'fd00:10:96::80'], ipFamilies: ['IPv4', 'IPv6'],
        ports: [{ name: 'http', port: 80, nodePort: 30080 }],
      },
      status: { loadBalancer: { ingress: [{ ip: '198.51.100.1', ipMode: 'VIP' }, { ip: '2001:db8:1::1' }, { ip: '198.51.100.9', ipMode: 'Proxy' }] } },
    },
    {
      kind: 'EndpointSlice', metadata: { name: 'web-4', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4', endpoints: [{ addresses: ['10.244.1.5'], nodeName: 'kind-worker' }], ports: [{ name: 'http', port: 8080 }],
    },
    {
      kind: 'EndpointSlice', metadata: { name: 'web-6', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv6', endpoints: [{ addresses: ['fd00:10:244:1::5'], nodeName: 'kind-worker' }], ports: [{ name: 'http', port: 8080 }],
    },
  ],
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kube-netlab-cli-options-'));
  dual = join(dir, 'dual.json');
  await writeFile(dual, JSON.stringify(DUAL));
});
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

const rules = async (...argv: string[]) => {
  const r = await cli('rules', ...argv);
  expect([r.code, r.err.includes('Usage:')], r.err).toEqual([0, false]);
  return r;
};

describe('kube-proxy\'s settings as flags of `rules`', () => {
  it('--cluster-cidr "" and --no-local-detector: no local-traffic detector, and the nftables text loads (it did not)', async () => {
    for (const flag of [['--cluster-cidr', ''], ['--no-local-detector']]) {
      const r = await rules('--mode', 'nftables', '--objects', dual, ...flag);
      expect(r.out).not.toMatch(/saddr != *jump|saddr != 10\.244/);
      await withNetns(async (ns) => { await ns.run(['nft', '-f', '-'], { input: r.out }); });
      const ipt = await rules('--mode', 'iptables', '--objects', dual, ...flag);
      expect(ipt.out).not.toContain('! -s 10.244.0.0/16');
    }
  });

  it('--masquerade-all masquerades all traffic to cluster IPs in each mode', async () => {
    expect((await rules('--mode', 'iptables', '--objects', dual, '--masquerade-all')).out)
      .toMatch(/-A KUBE-SVC-\S+ -m comment --comment "default\/web:http cluster IP" -m tcp -p tcp -d 10\.96\.0\.80 --dport 80 -j KUBE-MARK-MASQ\n/);
    expect((await rules('--mode', 'nftables', '--objects', dual, '--masquerade-all')).out).toMatch(/ ip daddr 10\.96\.0\.80 jump mark-for-masquerade\n/);
    expect((await rules('--mode', 'ipvs', '--objects', dual, '--masquerade-all')).out).toContain('--match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ\n');
  });

  it('--nodeport-addresses, --node-ip and --node decide where NodePorts answer and which endpoints are local', async () => {
    const ipt = await rules('--mode', 'iptables', '--objects', dual, '--node-ip', '172.18.0.7', '--nodeport-addresses', '172.18.0.0/16,fd00::/8');
    expect(ipt.out).toContain('"kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 172.18.0.7 -j KUBE-NODEPORTS\n');
    const nft = await rules('--mode', 'nftables', '--objects', dual, '--node-ip', '172.18.0.7');
    expect(nft.out).toContain('add element ip kube-proxy nodeport-ips { 172.18.0.7 }\n');
    expect((await rules('--mode', 'nftables', '--objects', dual, '--nodeport-addresses', '0.0.0.0/0')).out).not.toContain('nodeport-ips');
    const ipvs = await rules('--mode', 'ipvs', '--objects', dual, '--node-ip', '172.18.0.7', '--nodeport-addresses', 'primary');
    expect(ipvs.out).toContain('-A -t 172.18.0.7:30080 -s rr\n');
    // The endpoint is on kind-worker: the hairpin set lists it there, not on kind-worker2.
    expect((await rules('--mode', 'ipvs', '--objects', dual)).out).toContain('add KUBE-LOOP-BACK 10.244.1.5,tcp:8080,10.244.1.5\n');
    expect((await rules('--mode', 'ipvs', '--objects', dual, '--node', 'kind-worker2')).out).not.toContain('add KUBE-LOOP-BACK');
  });

  it('--localhost-nodeports false keeps NodePorts off 127.0.0.0/8 in iptables mode; other modes say it changes nothing', async () => {
    const on = await rules('--mode', 'iptables', '--objects', dual);
    expect(on.out).toContain('-A KUBE-FIREWALL ');
    const off = await rules('--mode', 'iptables', '--objects', dual, '--localhost-nodeports', 'false');
    expect(off.out).not.toContain('KUBE-FIREWALL');
    expect(off.out).toContain('-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS\n');
    expect((await rules('--mode', 'nftables', '--objects', dual, '--localhost-nodeports', 'false')).err).toContain('# --localhost-nodeports changes nothing in nftables mode');
  });

  it('--service-cidr sets the nftables drop rule for unallocated service IPs; other modes say it changes nothing', async () => {
    const r = await rules('--mode', 'nftables', '--objects', dual, '--service-cidr', '10.96.0.0/12,fd00:10:96::/112');
    expect(r.out).toContain('add rule ip kube-proxy cluster-ips-check ip daddr { 10.96.0.0/12 } drop comment "Drop traffic to unallocated ClusterIPs"\n');
    expect((await rules('--mode', 'ipvs', '--objects', dual, '--service-cidr', '10.96.0.0/12')).err).toContain('# --service-cidr changes nothing in ipvs mode');
  });

  it('--ip-family ipv6 writes what the IPv6 proxier writes, and the kernel takes it', async () => {
    const ipt = await rules('--mode', 'iptables', '--objects', dual, '--ip-family', 'ipv6', '--with-jumps');
    expect(ipt.out).toContain('--to-destination [fd00:10:244:1::5]:8080');
    expect(ipt.out).not.toMatch(/10\.96\.0\.80|198\.51\.100/);
    const nft = await rules('--mode', 'nftables', '--objects', dual, '--ip-family', 'ipv6');
    expect(nft.out).toContain('add table ip6 kube-proxy { comment "rules for kube-proxy" ; }\n');
    expect(nft.out).toContain('add element ip6 kube-proxy nodeport-ips { fc00:f853:ccd:e793::3 }\n');
    const ipvs = await rules('--mode', 'ipvs', '--objects', dual, '--ip-family', 'ipv6', '--json');
    const json = JSON.parse(ipvs.out) as { family: string; ipsets: Record<string, string[]>; dummyAddresses: string[] };
    expect(json.family).toBe('IPv6');
    expect(json.ipsets['KUBE-6-CLUSTER-IP']).toEqual(['fd00:10:96::80,tcp:80']);
    expect(json.dummyAddresses).toEqual(['2001:db8:1::1/128', 'fd00:10:96::80/128']);
    await withNetns(async (ns) => {
      await ns.run(['ip6tables-restore', '--noflush'], { input: ipt.out });
      await ns.run(['nft', '-f', '-'], { input: nft.out });
      expect((await ns.run(['ip6tables-save', '-t', 'nat'])).stdout).toContain('-d fd00:10:96::80/128 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-');
    });
  });

  it('an ingress IP with ipMode Proxy is left out in every mode', async () => {
    for (const mode of ['iptables', 'ipvs', 'nftables']) {
      const r = await rules('--mode', mode, '--objects', dual);
      expect([mode, r.out.includes('198.51.100.1'), r.out.includes('198.51.100.9')]).toEqual([mode, true, false]);
    }
  });
});

describe('bad values are usage errors naming the flag and the value', () => {
  it.each([
    [['--ip-family', 'inet6'], '--ip-family must be ipv4 or ipv6, got "inet6"'],
    [['--node-ip', '172.18.0.3,node-a'], '--node-ip must be an IPv4 address such as 172.18.0.3, got "node-a" in "172.18.0.3,node-a" (or an IPv6 one such as fc00:f853:ccd:e793::3; one of each as IP,IP)'],
    [['--node-ip', 'fe80::1%eth0'], '--node-ip must be an IPv4 address such as 172.18.0.3, got "fe80::1%eth0"'],
    [['--node-ip', '172.18.0.3,172.18.0.4'], '--node-ip takes one address per IP family, got two IPv4 ones in "172.18.0.3,172.18.0.4"'],
    [['--cluster-cidr', '10.0.0.0/8,10.1.0.0/16'], '--cluster-cidr must be an IPv4 CIDR such as 10.244.0.0/16 or an IPv6 one such as fd00:10:244::/56 (one of each as CIDR,CIDR; \'\' for no local-traffic detector), got "10.0.0.0/8,10.1.0.0/16"'],
    [['--cluster-cidr', 'fd00::/129'], 'got "fd00::/129"'],
    [['--cluster-cidr', '10.0.0.0/8', '--no-local-detector'], '--no-local-detector and --cluster-cidr "10.0.0.0/8" contradict each other: give one of them'],
    [['--service-cidr', '10.96.0.0/12,nowhere'], '--service-cidr must be CIDR[,CIDR…] such as 10.96.0.0/16, and "nowhere" is not a CIDR, got "10.96.0.0/12,nowhere"'],
    [['--service-cidr', ''], '--service-cidr must be CIDR[,CIDR…] such as 10.96.0.0/16, not empty, got ""'],
    [['--nodeport-addresses', 'primary,10.0.0.0/8'], '--nodeport-addresses must be CIDR[,CIDR…] such as 172.18.0.0/16, or primary, and "primary" is not a CIDR, got "primary,10.0.0.0/8"'],
    [['--nodeport-addresses', '010.0.0.0/8'], 'and "010.0.0.0/8" is not a CIDR'],
    [['--localhost-nodeports', 'yes'], '--localhost-nodeports must be true or false, got "yes"'],
  ])('%j', async (flags, message) => {
    const r = await cli('rules', '--mode', 'nftables', '--services', '1', '--endpoints', '1', ...flags);
    expect([r.code, r.out]).toEqual([2, '']);
    expect(r.err).toContain(message);
  });
});
