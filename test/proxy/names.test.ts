import { describe, expect, it } from 'vitest';
import { base32, hashAndTruncate, sepChain, svcChain } from '../../lib/proxy/names.ts';

describe("kube-proxy's chain names", () => {
  it('match the chains the workshop article shows on a kind node', () => {
    // From the article's `iptables -L -t nat` listing of KUBE-SERVICES.
    expect(svcChain('default/httpbin:http', 'tcp')).toBe('KUBE-SVC-FREKB6WNWYJLKTHC');
    expect(svcChain('default/kubernetes:https', 'tcp')).toBe('KUBE-SVC-NPX46M4PTMTKRN6Y');
    expect(svcChain('kube-system/kube-dns:dns-tcp', 'tcp')).toBe('KUBE-SVC-ERIFXISQEP7F7OF4');
    expect(svcChain('kube-system/kube-dns:metrics', 'tcp')).toBe('KUBE-SVC-JD5MR3NA4I4DYORP');
    expect(svcChain('kube-system/kube-dns:dns', 'udp')).toBe('KUBE-SVC-TCOU7JCQXEZGVUNU');
    expect(svcChain('default/httpbin:http', 'TCP')).toBe('KUBE-SVC-FREKB6WNWYJLKTHC');
  });

  it('hash the endpoint into KUBE-SEP names, as upstream tests expect', () => {
    // pkg/proxy/iptables/proxier_test.go: ns1/svc1:p80 → 10.180.0.1:80.
    expect(sepChain('ns1/svc1:p80', 'tcp', '10.180.0.1:80')).toBe('KUBE-SEP-SXIVWICOYRO3J4NJ');
    expect(svcChain('ns1/svc1:p80', 'tcp')).toBe('KUBE-SVC-XPGD46QRK7WJZT7O');
  });

  it('encode base32 as Go does, with padding', () => {
    const enc = (s: string) => base32(new TextEncoder().encode(s));
    expect(['', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar'].map(enc)).toEqual(
      ['', 'MY======', 'MZXQ====', 'MZXW6===', 'MZXW6YQ=', 'MZXW6YTB', 'MZXW6YTBOI======'],
    );
  });

  it('prefix nftables chain names with 8 hash characters and cap their length', () => {
    expect(hashAndTruncate('default/httpbin/tcp/http')).toBe('5WI3VASQ-default/httpbin/tcp/http');
    const long = hashAndTruncate('x'.repeat(300), 240);
    expect(long).toHaveLength(240);
    expect(long.endsWith('...')).toBe(true);
  });
});
