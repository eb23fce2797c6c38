/**
 * The nftables tracer on what the kernel lists: every ruleset here is loaded with `nft -f` into a
 * private namespace and read back with `nft list ruleset` and `nft -j list ruleset`; both
 * listings must trace alike.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { readClusterJson, resolveServicePorts } from '../../lib/k8s/index.ts';
import { parseNftJson, parseNftRuleset, type NftRuleset } from '../../lib/parse/nft.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import { TraceError } from '../../lib/trace/iptables.ts';
import { numgenShare } from '../../lib/trace/nft-values.ts';
import { traceNftables, type NftTraceInput } from '../../lib/trace/nftables.ts';
import type { Outcome, Packet, TraceResult } from '../../lib/trace/types.ts';
import { withNetns, type TestNetns } from '../helpers/netns.ts';

interface Listing {
  /** `nft list ruleset` as the kernel printed it. */
  raw: string;
  text: NftRuleset;
  json: NftRuleset;
}

async function list(ns: TestNetns): Promise<Listing> {
  const raw = (await ns.run(['nft', 'list', 'ruleset'])).stdout;
  return { raw, text: parseNftRuleset(raw), json: parseNftJson((await ns.run(['nft', '-j', 'list', 'ruleset'])).stdout) };
}

async function load(nft: string): Promise<Listing> {
  return withNetns(async (ns) => {
    await ns.run(['nft', '-f', '-'], { input: nft });
    return list(ns);
  });
}

/**
 * Trace through both listings; they must take the same rules (chain and index) to the same
 * outcomes. Lines differ, and so may a rule's text: the parser's rendering of `nft -j` leaves out
 * the quotes around interface names and `with icmp port-unreachable` after reject.
 */
function trace(l: Listing, input: Omit<NftTraceInput, 'ruleset'>): TraceResult {
  const fromText = traceNftables({ ...input, ruleset: l.text });
  const fromJson = traceNftables({ ...input, ruleset: l.json });
  const strip = (r: TraceResult) => ({
    ...r, outcomes: r.outcomes.map((o) => ({ ...o, steps: o.steps.map((s) => ({ ...s, line: 0, text: '' })) })),
  });
  expect(strip(fromJson)).toEqual(strip(fromText));
  return fromText;
}

/** 1-based line of the listing that holds `text`. */
function lineOf(raw: string, text: string): number {
  const i = raw.split('\n').findIndex((l) => l.includes(text));
  if (i < 0) throw new Error(`listing has no line with ${text}`);
  return i + 1;
}

const tcp = (src: string, dst: string, dport: number): Packet => ({ protocol: 'tcp', src, dst, dport, sport: 40000 });
const total = (r: TraceResult) => r.outcomes.reduce((a, o) => a + o.probability, 0);
const byDnat = (r: TraceResult) => Object.fromEntries(r.outcomes.map((o) => [o.dnat ?? 'none', o.probability]));

const NODE = 'kind-worker';
const NODE_IP = '172.18.0.3';

async function kubeProxyListing(affinity = false): Promise<Listing> {
  const json = JSON.parse(await readFile(new URL('../fixtures/kind-httpbin.kubectl.json', import.meta.url), 'utf8')) as { items: Record<string, any>[] };
  if (affinity) {
    const httpbin = json.items.find((i) => i.kind === 'Service' && i.metadata.name === 'httpbin')!;
    httpbin.spec.sessionAffinity = 'ClientIP';
  }
  const ports = resolveServicePorts(readClusterJson(JSON.stringify(json)), { nodeName: NODE });
  return load(generateNftables(ports, { nodeName: NODE, nodeIPs: [NODE_IP] }).nft);
}

describe("kube-proxy's rules as the kernel lists them", () => {
  it('spreads a pod\'s connection to a ClusterIP over the endpoints with numgen\'s exact shares', async () => {
    const l = await kubeProxyListing();
    const r = trace(l, { packet: tcp('10.244.1.7', '10.96.120.15', 8000), hook: 'PREROUTING', localAddresses: [NODE_IP] });
    expect(r.mode).toBe('nftables');
    expect(r.warnings).toBeUndefined();
    expect(byDnat(r)).toEqual({
      '10.244.1.2:8080': numgenShare(3, 0, 0), '10.244.2.2:8080': numgenShare(3, 1, 1), '10.244.2.3:8080': numgenShare(3, 2, 2),
    });
    expect(total(r)).toBe(1);
    for (const o of r.outcomes) {
      expect(Math.abs(o.probability - 1 / 3)).toBeLessThanOrEqual(2 ** -32);
      expect(o.verdict).toBe('ACCEPT');
      // A pod inside the cluster CIDR keeps its source.
      expect(o.snat).toBeNull();
      expect(o.hooks).toEqual(['prerouting', 'forward', 'postrouting']);
      expect(o.path.slice(0, 5)).toEqual(['filter-prerouting-pre-dnat', 'firewall-check', 'nat-prerouting', 'services', 'service-5WI3VASQ-default/httpbin/tcp/http']);
      expect(o.path.slice(-5)).toEqual(['filter-forward', 'service-endpoints-check', 'cluster-ips-check', 'nat-postrouting', 'masquerading']);
    }
    const lookup = r.outcomes[0].steps.find((s) => s.text.endsWith('vmap @service-ips'))!;
    expect(lookup).toMatchObject({ chain: 'services', table: 'ip kube-proxy', verdict: 'goto service-5WI3VASQ-default/httpbin/tcp/http' });
    expect(lookup.line).toBe(lineOf(l.raw, 'ip daddr . meta l4proto . th dport vmap @service-ips'));
  });

  it('marks what the node sends to a ClusterIP and masquerades it in postrouting, clearing the mark', async () => {
    const l = await kubeProxyListing();
    const r = trace(l, { packet: tcp(NODE_IP, '10.96.0.10', 53), hook: 'OUTPUT', localAddresses: [NODE_IP] });
    expect(Object.keys(byDnat(r)).sort()).toEqual(['10.244.0.2:53', '10.244.0.3:53']);
    expect(total(r)).toBe(1);
    for (const o of r.outcomes) {
      expect(o).toMatchObject({ verdict: 'ACCEPT', snat: 'MASQUERADE', mark: 0, hooks: ['output', 'postrouting'] });
      expect(o.path).toContain('mark-for-masquerade');
      expect(o.steps.map((s) => s.text)).toContain('meta mark set meta mark ^ 0x00004000');
    }
  });

  it('rejects a wrong port of a ClusterIP and drops an unallocated service address', async () => {
    const l = await kubeProxyListing();
    const wrongPort = trace(l, { packet: tcp('10.244.1.7', '10.96.120.15', 9999), hook: 'PREROUTING', localAddresses: [NODE_IP] });
    expect(wrongPort.outcomes).toHaveLength(1);
    expect(wrongPort.outcomes[0]).toMatchObject({ verdict: 'REJECT', dnat: null, probability: 1 });
    expect(wrongPort.outcomes[0].steps.at(-1)!.text).toContain('ip daddr @cluster-ips reject');
    const unallocated = trace(l, { packet: tcp('10.244.1.7', '10.96.200.200', 80), hook: 'PREROUTING', localAddresses: [NODE_IP] });
    expect(unallocated.outcomes.map((o) => o.verdict)).toEqual(['DROP']);
    expect(unallocated.outcomes[0].steps.at(-1)!.line).toBe(lineOf(l.raw, 'ip daddr 10.96.0.0/16 drop'));
  });

  it('takes a new client past the affinity lookup and records it with update @set; remembered clients are left out with a warning', async () => {
    const l = await kubeProxyListing(true);
    const r = trace(l, { packet: tcp('10.244.1.7', '10.96.120.15', 8000), hook: 'PREROUTING', localAddresses: [NODE_IP] });
    expect(r.outcomes).toHaveLength(3);
    expect(total(r)).toBe(1);
    for (const o of r.outcomes) {
      const texts = o.steps.map((s) => s.text);
      expect(texts.some((t) => t.startsWith('ip saddr @affinity-'))).toBe(false);
      expect(texts.some((t) => t.startsWith('update @affinity-'))).toBe(true);
    }
    // The same rules on a node that has seen this client: the kernel lists the entry.
    const seen = await withNetns(async (ns) => {
      await ns.run(['nft', '-f', '-'], { input: await kubeProxyText(true) });
      const affinity = (await list(ns)).text.tables[0].sets.find((s) => s.name.startsWith('affinity-'))!;
      await ns.run(['nft', 'add', 'element', 'ip', 'kube-proxy', affinity.name, '{ 10.244.1.7 }']);
      return list(ns);
    });
    const again = trace(seen, { packet: tcp('10.244.1.7', '10.96.120.15', 8000), hook: 'PREROUTING', localAddresses: [NODE_IP] });
    expect(again.outcomes).toHaveLength(3);
    expect(again.warnings).toEqual([expect.stringMatching(/^set affinity-.* of ip kube-proxy remembers 1 clients; the trace is of a client it has not seen/)]);
  });
});

async function kubeProxyText(affinity: boolean): Promise<string> {
  const json = JSON.parse(await readFile(new URL('../fixtures/kind-httpbin.kubectl.json', import.meta.url), 'utf8')) as { items: Record<string, any>[] };
  if (affinity) json.items.find((i) => i.kind === 'Service' && i.metadata.name === 'httpbin')!.spec.sessionAffinity = 'ClientIP';
  return generateNftables(resolveServicePorts(readClusterJson(JSON.stringify(json)), { nodeName: NODE }), { nodeName: NODE, nodeIPs: [NODE_IP] }).nft;
}

const FIREWALL = `
table ip fw {
  set allowed {
    type ipv4_addr . inet_proto . inet_service . ipv4_addr
    flags interval
    elements = { 5.6.7.8 . tcp . 80 . 203.0.113.0/25, 5.6.7.8 . tcp . 80 . 10.0.0.1-10.0.0.9, 5.6.7.8 . udp . 53 . 0.0.0.0/0 }
  }
  map ports {
    type inet_proto . inet_service : verdict
    elements = { tcp . 22 : drop, udp . 53 : accept, tcp . 443 : jump tls }
  }
  chain tls {
    ip saddr 198.51.100.0/24 reject with tcp reset
  }
  chain pre {
    type filter hook prerouting priority -150; policy accept;
    ip daddr . meta l4proto . th dport . ip saddr @allowed accept
    ip daddr 5.6.7.8 drop
    meta l4proto . th dport vmap @ports
    ip saddr != { 10.0.0.0/8, 192.168.1.1 } tcp dport { 8080, 9000-9100 } reject
    ip daddr 192.0.2.0/24 meta l4proto . th dport vmap { tcp . 25 : drop, udp . 123 : jump tls }
  }
  chain in {
    type filter hook input priority 0; policy drop;
    tcp dport 8080 accept
  }
}`;

describe('sets, maps and verdicts as the kernel lists them', () => {
  it('matches concatenations with CIDR and range parts in an interval set', async () => {
    const l = await load(FIREWALL);
    expect(l.raw).toContain('5.6.7.8 . tcp . 80 . 10.0.0.1-10.0.0.9');
    const verdict = (src: string, dport = 80, protocol: Packet['protocol'] = 'tcp') =>
      trace(l, { packet: { protocol, src, dst: '5.6.7.8', dport }, hook: 'PREROUTING' }).outcomes.map((o) => o.verdict);
    expect(verdict('203.0.113.5')).toEqual(['ACCEPT']);
    expect(verdict('203.0.113.127')).toEqual(['ACCEPT']);
    expect(verdict('203.0.113.128')).toEqual(['DROP']);
    expect(verdict('10.0.0.9')).toEqual(['ACCEPT']);
    expect(verdict('10.0.0.10')).toEqual(['DROP']);
    expect(verdict('10.0.0.9', 81)).toEqual(['DROP']);
    expect(verdict('198.51.100.1', 53, 'udp')).toEqual(['ACCEPT']);
    const accepted = trace(l, { packet: tcp('10.0.0.5', '5.6.7.8', 80), hook: 'PREROUTING' }).outcomes[0];
    expect(accepted.steps.map((s) => s.line)).toEqual([lineOf(l.raw, '@allowed accept')]);
    // Forwarded, so the input chain's drop policy does not apply.
    expect(accepted.hooks).toEqual(['prerouting', 'forward', 'postrouting']);
  });

  it('looks verdicts up in named and anonymous maps, and anonymous sets with ranges, negated', async () => {
    const l = await load(FIREWALL);
    const run = (p: Packet) => trace(l, { packet: p, hook: 'PREROUTING' }).outcomes;
    expect(run(tcp('203.0.113.9', '192.0.2.1', 22))).toMatchObject([{ verdict: 'DROP' }]);
    const dropped = run(tcp('203.0.113.9', '192.0.2.1', 22))[0];
    expect(dropped.steps.at(-1)).toMatchObject({ chain: 'pre', verdict: 'drop' });
    expect(run(tcp('198.51.100.7', '192.0.2.1', 443))).toMatchObject([{ verdict: 'REJECT', path: ['pre', 'tls'] }]);
    expect(run(tcp('203.0.113.9', '192.0.2.1', 443))).toMatchObject([{ verdict: 'ACCEPT', path: ['pre', 'tls'] }]);
    expect(run(tcp('203.0.113.9', '192.0.2.1', 9050))).toMatchObject([{ verdict: 'REJECT' }]);
    expect(run(tcp('192.168.1.1', '192.0.2.1', 9050))).toMatchObject([{ verdict: 'ACCEPT' }]);
    expect(run(tcp('10.1.2.3', '192.0.2.1', 8080))).toMatchObject([{ verdict: 'ACCEPT' }]);
    expect(run(tcp('203.0.113.9', '192.0.2.1', 25))).toMatchObject([{ verdict: 'DROP' }]);
    expect(run({ protocol: 'udp', src: '198.51.100.7', dst: '192.0.2.1', dport: 123 })).toMatchObject([{ verdict: 'ACCEPT', path: ['pre', 'tls'] }]);
  });

  it("applies a base chain's drop policy when the packet falls off it", async () => {
    const l = await load(FIREWALL);
    const local = { localAddresses: ['192.0.2.1'] };
    const off = trace(l, { ...local, packet: tcp('203.0.113.9', '192.0.2.1', 80), hook: 'PREROUTING' });
    expect(off.outcomes).toHaveLength(1);
    expect(off.outcomes[0]).toMatchObject({ verdict: 'DROP', hooks: ['prerouting', 'input'], path: ['pre', 'in'] });
    expect(off.outcomes[0].steps.at(-1)).toMatchObject({ chain: 'in', index: -1, text: 'policy drop', line: lineOf(l.raw, 'chain in {') });
    expect(trace(l, { ...local, packet: tcp('10.1.2.3', '192.0.2.1', 8080), hook: 'PREROUTING' }).outcomes).toMatchObject([{ verdict: 'ACCEPT' }]);
  });
});

describe('numgen', () => {
  const NUMGEN = `
table ip lb {
  chain a {
    meta l4proto tcp dnat to 10.1.0.1:8080
  }
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    tcp dport 80 numgen random mod 4 offset 1 vmap { 1-2 : goto a, 3 : drop }
    tcp dport 81 numgen random mod 10 vmap { 0 : goto a, 1 : goto a, 2 : goto a, 3 : goto a, 4 : goto a, 5 : goto a, 6 : goto a, 7 : goto a, 8 : goto a, 9 : drop }
    tcp dport 82 meta l4proto tcp dnat ip to numgen random mod 3 map { 0 : 10.2.0.1 . 80, 1 : 10.2.0.2 . 81, 2 : 10.2.0.3 . 82 }
    tcp dport 83 numgen random mod 2 == 1 drop
  }
}`;

  it('gives each value of numgen random mod N the kernel\'s share, and falls through for values no entry holds', async () => {
    const l = await load(NUMGEN);
    const r = trace(l, { packet: tcp('203.0.113.9', '192.0.2.1', 80), hook: 'PREROUTING' });
    const by = (pred: (o: Outcome) => boolean) => r.outcomes.filter(pred).reduce((a, o) => a + o.probability, 0);
    expect(by((o) => o.dnat === '10.1.0.1:8080')).toBe(0.5);
    expect(by((o) => o.verdict === 'DROP')).toBe(0.25);
    expect(by((o) => o.verdict === 'ACCEPT' && o.dnat === null)).toBe(0.25);
    expect(total(r)).toBe(1);
  });

  it('adds the shares of mod 10 up to exactly 1, each within 2^-32 of 1/10', async () => {
    const l = await load(NUMGEN);
    const r = trace(l, { packet: tcp('203.0.113.9', '192.0.2.1', 81), hook: 'PREROUTING' });
    const dropped = r.outcomes.find((o) => o.verdict === 'DROP')!;
    expect(dropped.probability).toBe(numgenShare(10, 9, 9));
    expect(r.outcomes.find((o) => o.dnat === '10.1.0.1:8080')!.probability).toBe(1 - numgenShare(10, 9, 9));
    const shares = Array.from({ length: 10 }, (_, i) => numgenShare(10, i, i));
    expect(shares.reduce((a, p) => a + p, 0)).toBe(1);
    for (const p of shares) expect(Math.abs(p - 0.1)).toBeLessThanOrEqual(2 ** -32);
    // 2^32 draws do not split evenly in ten: four values get one draw fewer.
    expect(shares.filter((p) => p * 2 ** 32 === 429496729)).toHaveLength(4);
    expect(total(r)).toBe(1);
  });

  it('follows a numgen map inside dnat and a numgen comparison', async () => {
    const l = await load(NUMGEN);
    const r = trace(l, { packet: tcp('203.0.113.9', '192.0.2.1', 82), hook: 'PREROUTING' });
    expect(byDnat(r)).toEqual({ '10.2.0.1:80': numgenShare(3, 0, 0), '10.2.0.2:81': numgenShare(3, 1, 1), '10.2.0.3:82': numgenShare(3, 2, 2) });
    expect(r.outcomes.find((o) => o.dnat === '10.2.0.2:81')!.steps.at(-1)!.verdict).toBe('10.2.0.2 . 81');
    const half = trace(l, { packet: tcp('203.0.113.9', '192.0.2.1', 83), hook: 'PREROUTING' });
    expect(half.outcomes.map((o) => [o.verdict, o.probability]).sort()).toEqual([['ACCEPT', 0.5], ['DROP', 0.5]]);
  });
});

describe('families, hooks and priorities', () => {
  const FAMILIES = `
table ip6 v6 {
  chain pre {
    type filter hook prerouting priority -110; policy accept;
    ip6 saddr 2001:db8:bad::/48 tcp dport 80 drop
  }
  chain nat {
    type nat hook prerouting priority dstnat; policy accept;
    ip6 daddr fd00::10 tcp dport 80 dnat to [fd00:10:180::2]:8080
  }
}
table inet both {
  chain forward-check {
    type filter hook forward priority 0; policy accept;
    ip saddr 10.9.0.0/16 reject
    meta nfproto ipv6 tcp dport 8080 ct state new counter
  }
}`;

  it('traces an IPv6 packet through ip6 and inet tables, and an IPv4 one through inet only', async () => {
    const l = await load(FAMILIES);
    const v6 = traceNftables({ ruleset: l.text, packet: tcp('2001:db8:1::5', 'fd00::10', 80), hook: 'PREROUTING' });
    expect(v6.outcomes).toMatchObject([{ verdict: 'ACCEPT', dnat: '[fd00:10:180::2]:8080', path: ['pre', 'nat', 'forward-check'], hooks: ['prerouting', 'forward', 'postrouting'] }]);
    expect(v6.outcomes[0].steps.map((s) => s.table)).toEqual(['ip6 v6', 'inet both']);
    expect(trace(l, { packet: tcp('2001:db8:bad::5', 'fd00::10', 80), hook: 'PREROUTING' }).outcomes).toMatchObject([{ verdict: 'DROP', path: ['pre'] }]);
    const v4 = trace(l, { packet: tcp('10.9.1.1', '192.0.2.1', 80), hook: 'PREROUTING' });
    expect(v4.outcomes).toMatchObject([{ verdict: 'REJECT', path: ['forward-check'] }]);
    expect(v4.warnings).toEqual(['no base chain hooks prerouting for IPv4 packets: no rule sees this packet']);
    // `ip saddr` in an inet table never matches an IPv6 packet, even negated.
    expect(trace(l, { packet: tcp('2001:db8:1::5', 'fd00::99', 80), hook: 'PREROUTING' }).outcomes[0].steps).toEqual([]);
  });

  // `nft -j` gives the address and port apart; rendered as `fd00:10:180::2:8080` the port would
  // read as part of another valid IPv6 address.
  it('traces an IPv6 dnat with a port alike through the JSON listing', async () => {
    const r = trace(await load(FAMILIES), { packet: tcp('2001:db8:1::5', 'fd00::10', 80), hook: 'PREROUTING' });
    expect(r.outcomes.map((o) => o.dnat)).toEqual(['[fd00:10:180::2]:8080']);
  });

  it("warns when kube-proxy's table has base chains, but none on the packet's hook", async () => {
    const l = await load('table ip kube-proxy {\n  chain services {\n  }\n  chain nat-output {\n    type nat hook output priority -100; policy accept;\n    jump services\n  }\n}');
    const r = trace(l, { packet: tcp('10.244.1.7', '10.96.0.1', 443), hook: 'PREROUTING' });
    expect(r.warnings).toEqual([
      'no base chain hooks prerouting for IPv4 packets: no rule sees this packet',
      "no base chain of ip kube-proxy hooks prerouting: kube-proxy's chains are not reached from there",
    ]);
    expect(trace(l, { packet: tcp('10.244.1.7', '10.96.0.1', 443), hook: 'OUTPUT' }).warnings).toBeUndefined();
  });

  it('refuses a packet whose addresses are of two families', async () => {
    const l = await load(FAMILIES);
    expect(() => traceNftables({ ruleset: l.text, packet: tcp('10.0.0.1', 'fd00::10', 80), hook: 'PREROUTING' })).toThrow(TraceError);
  });

  it('warns that a table without base chains is never entered, and traces only the tables asked for', async () => {
    const l = await load(`${FAMILIES}\ntable ip orphan {\n  chain services {\n    ip daddr 10.96.0.1 drop\n  }\n}`);
    const r = trace(l, { packet: tcp('10.0.0.1', '10.96.0.1', 443), hook: 'PREROUTING' });
    expect(r.outcomes).toMatchObject([{ verdict: 'ACCEPT' }]);
    expect(r.warnings).toContain('table ip orphan has no base chains: nothing leads into its 1 chains');
    const only = trace(l, { packet: tcp('10.9.1.1', '192.0.2.1', 80), hook: 'PREROUTING', tables: ['ip orphan'] });
    expect(only.outcomes).toMatchObject([{ verdict: 'ACCEPT', path: [] }]);
    expect(only.warnings).toContain('base chains of inet both were not traced (only ip orphan)');
  });
});

describe('rules the tracer cannot evaluate', () => {
  const ODD = `
table ip odd {
  chain pre {
    type filter hook prerouting priority 0; policy accept;
    tcp dport 22 drop
    tcp dport 80 limit rate 10/second accept
    tcp dport 81 numgen inc mod 2 vmap { 0 : accept, 1 : drop }
    tcp dport 82 iifname "eth0" drop
  }
}`;

  it('names the line of a rule whose outcome depends on more than the packet, only when a packet reaches it', async () => {
    const l = await load(ODD);
    expect(trace(l, { packet: tcp('203.0.113.9', '192.0.2.1', 22), hook: 'PREROUTING' }).outcomes).toMatchObject([{ verdict: 'DROP' }]);
    const fail = (dport: number, listing: NftRuleset) => {
      try {
        traceNftables({ ruleset: listing, packet: tcp('203.0.113.9', '192.0.2.1', dport), hook: 'PREROUTING' });
      } catch (e) {
        return e as TraceError;
      }
      throw new Error('traced');
    };
    const limit = fail(80, l.text);
    expect(limit).toBeInstanceOf(TraceError);
    expect(limit.line).toBe(lineOf(l.raw, 'limit rate'));
    expect(limit.message).toMatch(/rate limit depends on the traffic before this packet/);
    expect(fail(81, l.text).message).toMatch(/numgen inc depends on the packets counted before/);
    expect(fail(82, l.text).message).toMatch(/matches the input interface: give the packet one/);
    // The same rule in the JSON listing is named by its place in the nftables array.
    expect(fail(80, l.json).line).toBe(l.json.tables[0].chains[0].rules[1].line);
    const withIface = trace(l, { packet: { ...tcp('203.0.113.9', '192.0.2.1', 82), inInterface: 'eth0' }, hook: 'PREROUTING' });
    expect(withIface.outcomes).toMatchObject([{ verdict: 'DROP' }]);
  });
});

describe('the kernel agrees', () => {
  /**
   * Every rule counts the packets it matches. One connection attempt from inside the namespace,
   * then the counters show which rules the kernel ran: nat chains run at the NAT hook's priority
   * whatever their own, and a packet for the node itself comes back through prerouting and input
   * with its NAT already done.
   */
  const COUNTED = `
table ip t {
  chain out-early {
    type filter hook output priority -150; policy accept;
    tcp dport 81 meta mark 0x00000001 counter
    tcp dport 81 meta mark 0x00000000 counter
  }
  chain out-nat {
    type nat hook output priority -190; policy accept;
    tcp dport 81 counter meta mark set 0x00000001
    tcp dport 81 counter dnat to 127.0.0.1:80
  }
  chain out-late {
    type filter hook output priority 0; policy accept;
    tcp dport 80 meta mark 0x00000001 counter
    tcp dport 81 counter
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    tcp dport 80 ct state new counter
  }
  chain pre-nat {
    type nat hook prerouting priority dstnat; policy accept;
    tcp dport { 80, 81 } counter
  }
  chain pre {
    type filter hook prerouting priority -110; policy accept;
    tcp dport 80 ct state new iifname "lo" counter
  }
  chain in {
    type filter hook input priority 0; policy accept;
    tcp dport 80 ct state new counter
  }
}`;

  it('runs the same rules for a packet the node sends to itself as the kernel does', async () => {
    const l = await withNetns(async (ns) => {
      await ns.run(['ip', 'link', 'set', 'lo', 'up']);
      await ns.run(['nft', '-f', '-'], { input: COUNTED });
      // Nothing listens on port 80: the attempt ends in a reset, after the SYN crossed every hook.
      await ns.run(['bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/81'], { allowFailure: true });
      return list(ns);
    });
    const counted = l.text.tables[0].chains.flatMap((c) => c.rules.filter((r) => (r.counter?.packets ?? 0) > 0).map((r) => r.line));
    expect(counted.length).toBeGreaterThan(0);
    const r = trace(l, { packet: tcp('127.0.0.1', '127.0.0.1', 81), hook: 'OUTPUT' });
    expect(r.outcomes).toHaveLength(1);
    const o = r.outcomes[0];
    expect(o).toMatchObject({ verdict: 'ACCEPT', dnat: '127.0.0.1:80', hooks: ['output', 'postrouting', 'prerouting', 'input'] });
    expect(o.steps.map((s) => s.line).sort((a, b) => a - b)).toEqual(counted.sort((a, b) => a - b));
  });
});
