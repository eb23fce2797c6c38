import { beforeAll, describe, expect, it } from 'vitest';
import { ParseError } from '../../lib/parse/errors.ts';
import {
  jsonErrorOffset, parseIpAddrJson, parseIpRoute, parseIpRouteJson, renderIpAddrJson, renderIpRoute, renderIpRouteJson,
} from '../../lib/parse/ip.ts';
import { expectTotal } from '../helpers/fuzz.ts';
import { withNetns } from '../helpers/netns.ts';

// A node-shaped routing table, kindnet style: a /32 host route per pod veth, other nodes'
// pod CIDRs via their node IPs, a default route, plus multipath and special route types.
interface Captured {
  routeJson: string;
  routeAllJson: string;
  route6Json: string;
  routeDetailJson: string;
  routeText: string;
  routeAllText: string;
  addrJson: string;
}
let cap: Captured;

beforeAll(async () => {
  cap = await withNetns(async (ns) => {
    const ip = (...args: string[]) => ns.run(['ip', ...args]);
    await ip('link', 'set', 'lo', 'up');
    await ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'veth1234');
    await ip('addr', 'add', '172.18.0.2/16', 'dev', 'eth0');
    await ip('addr', 'add', 'fd00::2/64', 'dev', 'eth0', 'nodad');
    await ip('link', 'set', 'eth0', 'up');
    await ip('link', 'set', 'veth1234', 'up');
    await ip('route', 'add', '10.244.2.0/24', 'via', '172.18.0.3', 'dev', 'eth0');
    await ip('route', 'add', '10.244.1.2', 'dev', 'veth1234', 'scope', 'host');
    await ip('route', 'add', 'default', 'via', '172.18.0.1');
    await ip('route', 'add', '10.98.0.0/16', 'proto', 'static', 'metric', '100',
      'nexthop', 'via', '172.18.0.4', 'dev', 'eth0', 'weight', '1', 'nexthop', 'via', '172.18.0.5', 'dev', 'eth0', 'weight', '2');
    await ip('route', 'add', 'blackhole', '10.99.0.0/16');
    await ip('route', 'add', 'unreachable', '10.97.0.0/16');
    await ip('route', 'add', '10.100.0.0/16', 'via', '172.18.0.9', 'table', '100');
    const out = async (...args: string[]) => (await ip(...args)).stdout;
    return {
      routeJson: await out('-j', 'route'),
      // IPv4 only: IPv6 link-local routes appear whenever DAD finishes, between two captures.
      routeAllJson: await out('-4', '-j', 'route', 'show', 'table', 'all'),
      route6Json: await out('-j', '-6', 'route'),
      routeDetailJson: await out('-d', '-j', 'route'),
      routeText: await out('route'),
      routeAllText: await out('-4', 'route', 'show', 'table', 'all'),
      addrJson: await out('-j', 'addr'),
    };
  });
});

describe('ip -j route, read from a namespace', () => {
  it('read gateways, devices, host routes, scopes, multipath and route types', () => {
    const routes = parseIpRouteJson(cap.routeJson);
    const by = (dst: string) => routes.find((r) => r.dst === dst);
    expect(by('default')).toMatchObject({ type: 'unicast', gateway: '172.18.0.1', dev: 'eth0', table: null });
    expect(by('10.244.2.0/24')).toMatchObject({ gateway: '172.18.0.3', dev: 'eth0' });
    expect(by('10.244.1.2')).toMatchObject({ gateway: null, dev: 'veth1234', scope: 'host' });
    expect(by('172.18.0.0/16')).toMatchObject({ protocol: 'kernel', scope: 'link', prefsrc: '172.18.0.2' });
    expect(by('10.98.0.0/16')).toMatchObject({ protocol: 'static', metric: 100, gateway: null });
    expect(by('10.98.0.0/16')!.nexthops).toEqual([
      { gateway: '172.18.0.4', dev: 'eth0', weight: 1, flags: [] },
      { gateway: '172.18.0.5', dev: 'eth0', weight: 2, flags: [] },
    ]);
    expect(by('10.99.0.0/16')?.type).toBe('blackhole');
    expect(by('10.97.0.0/16')?.type).toBe('unreachable');
  });

  it('read other tables, IPv6 and -d the same way', () => {
    const all = parseIpRouteJson(cap.routeAllJson);
    expect(all.find((r) => r.dst === '10.100.0.0/16')).toMatchObject({ table: '100', gateway: '172.18.0.9' });
    expect(all.find((r) => r.type === 'local' && r.dst === '172.18.0.2')).toMatchObject({ table: 'local', dev: 'eth0' });
    const v6 = parseIpRouteJson(cap.route6Json);
    expect(v6.find((r) => r.dst === 'fd00::/64')).toMatchObject({ dev: 'eth0', metric: 256, other: { pref: 'medium' } });
    const detailed = parseIpRouteJson(cap.routeDetailJson);
    expect(detailed.find((r) => r.dst === 'default')).toMatchObject({ type: 'unicast', protocol: 'boot', scope: 'global' });
  });

  it('read plain ip route text to the same routes as the JSON', () => {
    const pick = ({ type, dst, gateway, dev, protocol, scope, prefsrc, metric, table, nexthops }: ReturnType<typeof parseIpRoute>[number]) =>
      ({ type, dst, gateway, dev, protocol, scope, prefsrc, metric, table, nexthops: nexthops.map(({ flags: _f, ...h }) => h) });
    expect(parseIpRoute(cap.routeText).map(pick)).toEqual(parseIpRouteJson(cap.routeJson).map(pick));
    expect(parseIpRoute(cap.routeAllText).map(pick)).toEqual(parseIpRouteJson(cap.routeAllJson).map(pick));
    expect(cap.routeText).toContain('10.244.1.2 dev veth1234 scope host');
  });

  it('read the workshop-style lines', () => {
    expect(parseIpRoute('default via 172.18.0.1 dev eth0\n10.244.1.0/24 via 172.18.0.3 dev eth0\n10.244.1.2 dev vethabcd scope host onlink\n')).toEqual([
      { type: 'unicast', dst: 'default', gateway: '172.18.0.1', dev: 'eth0', protocol: null, scope: null, prefsrc: null, metric: null, table: null, flags: [], nexthops: [], other: {} },
      { type: 'unicast', dst: '10.244.1.0/24', gateway: '172.18.0.3', dev: 'eth0', protocol: null, scope: null, prefsrc: null, metric: null, table: null, flags: [], nexthops: [], other: {} },
      { type: 'unicast', dst: '10.244.1.2', gateway: null, dev: 'vethabcd', protocol: null, scope: 'host', prefsrc: null, metric: null, table: null, flags: ['onlink'], nexthops: [], other: {} },
    ]);
  });
});

describe('ip -j addr, read from a namespace', () => {
  it('read links, peers, flags and addresses', () => {
    const links = parseIpAddrJson(cap.addrJson);
    expect(links.map((l) => l.ifname)).toEqual(['lo', 'veth1234', 'eth0']);
    const eth0 = links.find((l) => l.ifname === 'eth0')!;
    expect(eth0).toMatchObject({ link: 'veth1234', mtu: 1500, linkType: 'ether' });
    expect(eth0.flags).toContain('UP');
    expect(eth0.addrInfo.filter((a) => a.scope === 'global').map((a) => [a.family, a.local, a.prefixlen, a.label])).toEqual([
      ['inet', '172.18.0.2', 16, 'eth0'], ['inet6', 'fd00::2', 64, null],
    ]);
    expect(links[0].addrInfo[0]).toMatchObject({ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' });
  });
});

describe('ip errors', () => {
  const catchIt = (f: () => unknown): ParseError => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(ParseError);
      return e as ParseError;
    }
    throw new Error('did not throw');
  };

  it('name the array index and field of a bad shape', () => {
    const good = JSON.parse(cap.routeJson) as Record<string, unknown>[];
    const bad = structuredClone(good);
    bad[2].dst = 42;
    let e = catchIt(() => parseIpRouteJson(JSON.stringify(bad)));
    expect(e.line).toBe(1);
    expect(e.message).toMatch(/^ip -j route: line 1: expected \[2\]\.dst to be a string, got "42"$/);
    e = catchIt(() => parseIpRouteJson('[{"dst":"default","nexthops":[{"weight":"x"}]}]'));
    expect(e.message).toMatch(/\[0\]\.nexthops\[0\]\.weight to be a number/);
    e = catchIt(() => parseIpAddrJson('[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","prefixlen":8}]}]'));
    expect(e.message).toMatch(/\[0\]\.addr_info\[0\]\.local to be a string, got "undefined"/);
    e = catchIt(() => parseIpAddrJson('{"ifindex":1}'));
    expect(e.message).toMatch(/expected a JSON array/);
    e = catchIt(() => parseIpRouteJson('[null]'));
    expect(e.message).toMatch(/\[0\] to be an object/);
  });

  it('name the line where the JSON breaks', () => {
    expect(catchIt(() => parseIpRouteJson('[\n{"dst": "default"},\n{"dst": }\n]')).line).toBe(3);
    expect(catchIt(() => parseIpRouteJson('[\n{"dst": "default"}')).line).toBe(2);
    expect(catchIt(() => parseIpRouteJson('')).line).toBe(1);
    expect(catchIt(() => parseIpRouteJson('[1,\n2,\nx]')).message).toMatch(/^ip -j route: line 3: expected valid JSON/);
  });

  it('find JSON error offsets like JSON.parse', () => {
    const cases: [string, number][] = [
      ['[1,2]', -1], ['{"a":[true,false,null,-1.5e+3,"\\u00e9\\n"]}', -1], ['  []  ', -1],
      ['[1,]', 3], ['{"a" 1}', 5], ['[01]', 2], ['"abc', 4], ['[1] x', 4], ['{"a":1,}', 7], ['[-]', 2], ['"\\x"', 2],
    ];
    for (const [s, off] of cases) {
      expect(jsonErrorOffset(s), s).toBe(off);
      let threw = false;
      try {
        JSON.parse(s);
      } catch {
        threw = true;
      }
      expect(threw, s).toBe(off >= 0);
    }
    expect(jsonErrorOffset('['.repeat(200_000))).toBe(200_000);
  });

  it('name the line of bad plain routes', () => {
    expect(catchIt(() => parseIpRoute('default via 1.1.1.1\n\tnexthop via 2.2.2.2\n10.0.0.0/8 metric y\n')).message).toMatch(/line 3: expected a number after "metric"/);
    expect(catchIt(() => parseIpRoute('\tnexthop via 1.1.1.1\n')).message).toMatch(/line 1: expected a route before/);
    expect(catchIt(() => parseIpRoute('10.0.0.0/8 dev eth0\nblackhole\n')).message).toMatch(/line 2: expected a destination/);
    expect(catchIt(() => parseIpRoute('10.0.0.0/8 dev\n')).message).toMatch(/line 1: expected a value after "dev"/);
  });

  it('are total on arbitrary and mutated output', () => {
    const words = ['default', ' via ', ' dev ', 'eth0', '10.0.0.0/8', '1.2.3.4', 'fe80::1', '\tnexthop', ' onlink', ' metric ', 'blackhole ', ' proto ', 'kernel', '\n'];
    expectTotal(parseIpRouteJson, [cap.routeJson, cap.routeAllJson, cap.route6Json, cap.routeDetailJson], {
      roundTrip: (r) => parseIpRouteJson(renderIpRouteJson(r)),
      tokens: ['[', ']', '{"dst":"default"}', '{"dst":"10.0.0.0/8","dev":"eth0"}', '"gateway":"1.2.3.4"', ','],
    });
    expectTotal(parseIpAddrJson, [cap.addrJson], {
      roundTrip: (l) => parseIpAddrJson(renderIpAddrJson(l)),
      tokens: ['[', ']', '{"ifindex":1,"ifname":"lo"}', ','],
    });
    expectTotal(parseIpRoute, [cap.routeText, cap.routeAllText], { roundTrip: (r) => parseIpRoute(renderIpRoute(r)), tokens: words });
  });
});
