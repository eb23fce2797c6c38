import { describe, expect, it } from 'vitest';
import { formatCidr, parseIpv4Cidr, subnetAt, subnetIndex } from '../../lib/k8s/addresses.ts';

describe('subnetIndex, the inverse of subnetAt', () => {
  const podNetwork = parseIpv4Cidr('10.244.0.0/16');

  it('gives back the i of every /24 subnetAt made, as kind numbers node blocks', () => {
    for (let i = 0; i < 256; i++) expect(subnetIndex(podNetwork, subnetAt(podNetwork, 24, i))).toBe(i);
    expect(subnetIndex(podNetwork, parseIpv4Cidr('10.244.2.0/24'))).toBe(2);
  });

  it('counts in the subnet\'s own size, and the network itself is subnet 0', () => {
    expect(subnetIndex(parseIpv4Cidr('10.244.1.0/24'), parseIpv4Cidr('10.244.1.192/26'))).toBe(3);
    expect(subnetIndex(podNetwork, podNetwork)).toBe(0);
    expect(formatCidr(subnetAt(podNetwork, 26, subnetIndex(podNetwork, parseIpv4Cidr('10.244.255.192/26'))!))).toBe('10.244.255.192/26');
  });

  it('is null for a CIDR outside or larger than the network', () => {
    expect(subnetIndex(podNetwork, parseIpv4Cidr('10.245.0.0/24'))).toBeNull();
    expect(subnetIndex(podNetwork, parseIpv4Cidr('10.243.255.0/24'))).toBeNull();
    expect(subnetIndex(podNetwork, parseIpv4Cidr('10.0.0.0/8'))).toBeNull();
    expect(subnetIndex(parseIpv4Cidr('255.255.255.0/24'), parseIpv4Cidr('255.255.255.128/25'))).toBe(1);
  });
});
