import { describe, expect, it } from 'vitest';
import { resolveProxyOptions } from '../../lib/proxy/options.ts';
import { GeneratorInputError } from '../../lib/proxy/tokens.ts';

/** The GeneratorInputError resolveProxyOptions throws, or a failure when it returns. */
function refusal(run: () => unknown): GeneratorInputError {
  try {
    run();
  } catch (e) {
    if (e instanceof GeneratorInputError) return e;
    throw e;
  }
  throw new Error('the options were accepted');
}

describe('resolveProxyOptions: kube-proxy settings of one proxier', () => {
  it('defaults to the IPv4 proxier with kind\'s pod subnet as the local-traffic detector', () => {
    const o = resolveProxyOptions();
    expect(o).toMatchObject({ ipFamily: 'IPv4', nodeName: null, nodeIPs: [], nodeIP: '127.0.0.1', clusterCIDR: '10.244.0.0/16', masqueradeAll: false, masqueradeMark: '0x4000' });
    expect(o.nodePorts).toEqual({ cidrs: ['0.0.0.0/0'], matchAll: true, ips: ['127.0.0.1'], containsIPv4Loopback: true });
    expect(resolveProxyOptions({ ipFamily: 'IPv6' })).toMatchObject({ nodeIP: '::1', clusterCIDR: 'fd00:10:244::/56' });
  });

  it('each proxier takes the node IPs of its family, written as kube-proxy writes them; the first is its nodeIP', () => {
    const nodeIPs = ['2001:DB8:0:0:0:0:0:3', '172.018.000.003', '172.18.0.4', '2001:db8::3'];
    expect(resolveProxyOptions({ nodeIPs })).toMatchObject({ nodeIPs: ['172.18.0.3', '172.18.0.4'], nodeIP: '172.18.0.3' });
    expect(resolveProxyOptions({ nodeIPs, ipFamily: 'IPv6' })).toMatchObject({ nodeIPs: ['2001:db8::3'], nodeIP: '2001:db8::3' });
  });

  it('--cluster-cidr: one CIDR per family, the detector of a family without one is off; null or "" is no detector', () => {
    const dual = '10.244.1.1/16,fd00:10:244::1/56';
    expect(resolveProxyOptions({ clusterCIDR: dual }).clusterCIDR).toBe('10.244.0.0/16');
    expect(resolveProxyOptions({ clusterCIDR: dual, ipFamily: 'IPv6' }).clusterCIDR).toBe('fd00:10:244::/56');
    expect(resolveProxyOptions({ clusterCIDR: '10.0.0.0/8', ipFamily: 'IPv6' }).clusterCIDR).toBeNull();
    expect(resolveProxyOptions({ clusterCIDR: null }).clusterCIDR).toBeNull();
    expect(resolveProxyOptions({ clusterCIDR: '' }).clusterCIDR).toBeNull();
  });

  it.each([
    [{ clusterCIDR: '10.0.0.0/8,10.1.0.0/16' }, 'clusterCIDR', '"10.0.0.0/8,10.1.0.0/16": two CIDRs must be one IPv4 and one IPv6'],
    [{ clusterCIDR: '10.0.0.0/8,fd00::/64,fd01::/64' }, 'clusterCIDR', '"10.0.0.0/8,fd00::/64,fd01::/64": at most two CIDRs, one per IP family'],
    [{ clusterCIDR: '10.0.0.0/8 } ; add table ip x' }, 'clusterCIDR', '"10.0.0.0/8 } ; add table ip x" is not a CIDR such as 10.244.0.0/16 or fd00:10:244::/56'],
    [{ nodeIPs: ['172.18.0.3', 'node-1'] }, 'nodeIPs[1]', '"node-1" is not an IP address'],
    [{ nodePortAddresses: ['primary', '10.0.0.0/8'] }, 'nodePortAddresses[0]', '"primary" must be a valid CIDR (or the only value, primary)'],
    [{ nodePortAddresses: ['10.0.0.1'] }, 'nodePortAddresses[0]', '"10.0.0.1" must be a valid CIDR (or the only value, primary)'],
    [{ ipFamily: 'IPv5' }, 'ipFamily', 'expected IPv4 or IPv6, got "IPv5"'],
    [{ masqueradeAll: 'yes' }, 'masqueradeAll', 'expected true or false, got "yes"'],
  ])('refuses %j, naming %s', (opts, field, problem) => {
    const e = refusal(() => resolveProxyOptions(opts as never));
    expect([e.where, e.field, e.problem]).toEqual(['options', field, problem]);
  });

  describe('--nodeport-addresses (NewNodePortAddresses and GetNodeIPs over lo and the node IPs)', () => {
    const nodeIPs = ['192.168.0.2', '192.168.1.2', '192.168.99.11', '2001:db8::1', '2001:db8:1::2'];

    it('CIDRs select the local addresses inside them; the other family\'s CIDRs are ignored', () => {
      const v4 = resolveProxyOptions({ nodeIPs, nodePortAddresses: ['192.168.0.0/24', '192.168.1.0/24', '2001:db8::/64'] }).nodePorts;
      expect(v4).toEqual({ cidrs: ['192.168.0.0/24', '192.168.1.0/24'], matchAll: false, ips: ['192.168.0.2', '192.168.1.2'], containsIPv4Loopback: false });
      const v6 = resolveProxyOptions({ ipFamily: 'IPv6', nodeIPs, nodePortAddresses: ['192.168.0.0/24', '2001:db8::/64', '2001:db8:1::2/128'] }).nodePorts;
      expect(v6).toEqual({ cidrs: ['2001:db8::/64', '2001:db8:1::2/128'], matchAll: false, ips: ['2001:db8::1', '2001:db8:1::2'], containsIPv4Loopback: false });
    });

    it('no CIDR of the family, or a zero CIDR, matches every local address', () => {
      expect(resolveProxyOptions({ ipFamily: 'IPv6', nodeIPs, nodePortAddresses: ['192.168.0.0/24'] }).nodePorts).toMatchObject({ cidrs: ['::/0'], matchAll: true });
      expect(resolveProxyOptions({ nodeIPs, nodePortAddresses: ['192.168.0.0/24', '0.0.0.0/0'] }).nodePorts).toMatchObject({ cidrs: ['0.0.0.0/0'], matchAll: true });
    });

    it('primary is the first node IP of each family as /32 and /128; without one, every address', () => {
      expect(resolveProxyOptions({ nodeIPs, nodePortAddresses: ['primary'] }).nodePorts).toMatchObject({ cidrs: ['192.168.0.2/32'], ips: ['192.168.0.2'] });
      expect(resolveProxyOptions({ ipFamily: 'IPv6', nodeIPs, nodePortAddresses: ['primary'] }).nodePorts).toMatchObject({ cidrs: ['2001:db8::1/128'], ips: ['2001:db8::1'] });
      expect(resolveProxyOptions({ nodePortAddresses: ['primary'] }).nodePorts.matchAll).toBe(true);
      // nftables mode passes primary as its default: [] means the mode's default.
      expect(resolveProxyOptions({ nodeIPs, nodePortAddresses: [] }, { nodePortAddresses: ['primary'] }).nodePorts.cidrs).toEqual(['192.168.0.2/32']);
    });

    it('loopback counts: 127.0.0.0/8 selects 127.0.0.1 and allows localhost NodePorts', () => {
      expect(resolveProxyOptions({ nodeIPs, nodePortAddresses: ['127.0.0.0/8'] }).nodePorts).toEqual({ cidrs: ['127.0.0.0/8'], matchAll: false, ips: ['127.0.0.1'], containsIPv4Loopback: true });
      expect(resolveProxyOptions({ nodePortAddresses: ['127.0.0.1/32'] }).nodePorts.containsIPv4Loopback).toBe(true);
    });
  });
});
