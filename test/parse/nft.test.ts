import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ParseError } from '../../lib/parse/errors.ts';
import { findNftChain, findNftSet, findNftTable, parseNftJson, parseNftRuleset, type NftRuleset } from '../../lib/parse/nft.ts';
import { resolveServicePorts, syntheticCluster } from '../../lib/k8s/index.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import { expectTotal } from '../helpers/fuzz.ts';
import { withNetns } from '../helpers/netns.ts';

// A ruleset beyond kube-proxy's: inet family, policy drop, counters, an interval set long
// enough to wrap, a named counter object, numgen ranges and a map with element comments.
const blocked = Array.from({ length: 40 }, (_, i) => `198.51.100.${i * 3 + 1}`);
const LAB = `
table inet lab {
  counter hits { }
  set blocked { type ipv4_addr ; flags interval ; elements = { 10.0.0.0/8, ${blocked.join(', ')} } ; }
  map ports { type inet_service : verdict ; elements = { 22 comment "ssh" : accept, 80 : drop } ; }
  chain a { return ; }
  chain b { counter packets 5 bytes 300 ; }
  chain input {
    type filter hook input priority filter + 5 ; policy drop ;
    ct state established,related counter accept
    ip saddr @blocked counter packets 7 bytes 420 drop comment "blocked sources"
    tcp dport vmap @ports
    numgen inc mod 10 vmap { 0-4 : jump a, 5-9 : jump b }
    meta mark set 0x10
  }
  chain pre {
    type nat hook prerouting priority dstnat ;
    tcp dport 8080 dnat ip to 10.1.2.3:80
  }
}
`;

interface Captured {
  text: string;
  json: string;
  handles: string;
}

let captured: Captured;

beforeAll(async () => {
  const ports = resolveServicePorts(syntheticCluster({ services: 3, endpoints: 4, nodePorts: 1, kindDefaults: true }), { nodeName: 'kind-worker' });
  ports[1].sessionAffinity = 'ClientIP';
  const { nft } = generateNftables(ports, { nodeName: 'kind-worker', nodeIPs: ['172.18.0.3'] });
  captured = await withNetns(async (ns) => {
    await ns.run(['nft', '-f', '-'], { input: nft });
    await ns.run(['nft', '-f', '-'], { input: LAB });
    return {
      text: (await ns.run(['nft', 'list', 'ruleset'])).stdout,
      json: (await ns.run(['nft', '-j', 'list', 'ruleset'])).stdout,
      handles: (await ns.run(['nft', '-a', 'list', 'ruleset'])).stdout,
    };
  });
});

/** Positions, handles and what nft 1.0.6's JSON leaves out (table/chain comments, `dynamic`). */
function comparable(rs: NftRuleset): unknown {
  return rs.tables.map((t) => ({
    ...t, line: 0, handle: null, comment: null, others: t.others.map((o) => ({ ...o, line: 0 })),
    chains: t.chains.map((c) => ({ ...c, line: 0, handle: null, comment: null, rules: c.rules.map((r) => ({ ...r, line: 0, handle: null })) })),
    sets: t.sets.map((s) => ({ ...s, line: 0, handle: null, flags: s.flags.filter((f) => f !== 'dynamic') })),
  }));
}

describe('parseNftRuleset and parseNftJson on what the kernel prints', () => {
  it('agree with each other', () => {
    expect(comparable(parseNftJson(captured.json))).toEqual(comparable(parseNftRuleset(captured.text)));
    // -a adds handles and nothing else.
    const withHandles = parseNftRuleset(captured.handles);
    expect(comparable(withHandles)).toEqual(comparable(parseNftRuleset(captured.text)));
    const jsonRules = parseNftJson(captured.json).tables.flatMap((t) => t.chains.flatMap((c) => c.rules.map((r) => r.handle)));
    expect(withHandles.tables.flatMap((t) => t.chains.flatMap((c) => c.rules.map((r) => r.handle)))).toEqual(jsonRules);
  });

  it('decode chains, sets, verdicts, counters and numgen maps', () => {
    for (const rs of [parseNftRuleset(captured.text), parseNftJson(captured.json)]) {
      const lab = findNftTable(rs, 'inet', 'lab');
      expect(lab?.others).toMatchObject([{ kind: 'counter', name: 'hits' }]);
      const input = lab && findNftChain(lab, 'input');
      expect(input).toMatchObject({ type: 'filter', hook: 'input', priority: 5, policy: 'drop' });
      expect(input?.rules.map((r) => r.verdict)).toEqual([
        { kind: 'accept', target: null },
        { kind: 'drop', target: null },
        { kind: 'vmap', target: '@ports' },
        { kind: 'vmap', target: null },
        null,
      ]);
      expect(lab && findNftChain(lab, 'pre')).toMatchObject({ type: 'nat', priority: -100, rules: [{ verdict: { kind: 'dnat', target: '10.1.2.3:80' } }] });
      expect(input?.rules[0].counter).toEqual({ packets: 0, bytes: 0 });
      expect(input?.rules[1]).toMatchObject({ counter: { packets: 7, bytes: 420 }, comment: 'blocked sources' });
      expect(input?.rules[3].numgen).toEqual({
        mode: 'inc', mod: 10, offset: 0,
        entries: [{ index: 0, last: 4, verdict: { kind: 'jump', target: 'a' } }, { index: 5, last: 9, verdict: { kind: 'jump', target: 'b' } }],
      });
      expect(lab && findNftChain(lab, 'b')?.rules[0]).toMatchObject({ counter: { packets: 5, bytes: 300 }, verdict: null });
      const set = lab && findNftSet(lab, 'blocked');
      expect(set?.flags).toEqual(['interval']);
      expect(set?.elements.map((e) => e.key)).toEqual(expect.arrayContaining(['10.0.0.0/8', ...blocked]));
      expect(lab && findNftSet(lab, 'ports')?.elements).toEqual([
        { key: '22', value: 'accept', comment: 'ssh' },
        { key: '80', value: 'drop', comment: null },
      ]);
      const kp = findNftTable(rs, 'ip', 'kube-proxy');
      expect(kp && findNftChain(kp, 'nat-prerouting')).toMatchObject({ type: 'nat', hook: 'prerouting', priority: -100, policy: 'accept' });
      expect(kp && findNftChain(kp, 'filter-prerouting-pre-dnat')?.priority).toBe(-110);
      expect(kp && findNftChain(kp, 'masquerading')?.rules.map((r) => r.verdict?.kind ?? null)).toEqual(['return', null, 'masquerade']);
      expect(kp && findNftSet(kp, 'service-ips')?.type).toBe('ipv4_addr . inet_proto . inet_service : verdict');
    }
    // The wrapped element list really spans lines in the text.
    expect(captured.text.split('\n').filter((l) => l.trim().startsWith('198.51.100.')).length).toBeGreaterThan(1);
  });
});

describe('malformed input', () => {
  const bad: Array<[string, number, RegExp]> = [
    ['tables ip x {\n}', 1, /table <family> <name>/],
    ['table ip x {\n\tchain c {\n\t\tjump d\n', 3, /closing chain c/],
    ['table ip x {\n\tchain c {\n\t\tip daddr { 1.2.3.4 jump d\n\t}\n}', 3, /balanced/],
    ['table ip x {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 1.2.3.4,\n', 4, /closing the element list/],
    ['table ip x {\n\tchain c {\n\t\ttype filter hook input priority bogus; policy accept;\n\t}\n}', 3, /priority/],
    ['table ip x {\n\tchain c {\n\t\tcounter packets x bytes 1 accept\n\t}\n}', 3, /counter packets/],
    ['table ip x {\n\tchain c {\n\t}\n\tchain c {\n\t}\n}', 4, /not already used/],
    ['table ip x {\n\tmap m {\n\t\ttype ipv4_addr : verdict\n\t\telements = { 1.2.3.4 }\n\t}\n}', 4, /key : value/],
    ['table ip x {\n\tchain c {\n\tchain d {\n\t}\n}', 3, /a rule or/],
  ];
  it.each(bad)('text %#: throws ParseError naming the line', (text, line, expected) => {
    let err: unknown;
    try {
      parseNftRuleset(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ParseError);
    expect((err as ParseError).line).toBe(line);
    expect((err as ParseError).message).toMatch(expected);
    expect((err as ParseError).message).toContain(`line ${line}`);
  });

  it('reads the comment nft ≥ 1.0.7 puts after an owned table, and nothing else there', () => {
    const body = '\n\tchain c {\n\t\taccept\n\t}\n}\n';
    expect(parseNftRuleset(`table ip filter { # progname iptables-nft-restore${body}`).tables[0]).toMatchObject({ name: 'filter', handle: null });
    expect(parseNftRuleset(`table ip kube-proxy { # handle 3 progname kube-proxy${body}`).tables[0]).toMatchObject({ name: 'kube-proxy', handle: 3 });
    expect(() => parseNftRuleset(`table ip filter { # anything${body}`)).toThrow(/line 1: expected `table <family> <name> {`/);
  });

  it('JSON: names the item that is wrong', () => {
    expect(() => parseNftJson('{"nftables": [')).toThrow(ParseError);
    expect(() => parseNftJson('{"nft": []}')).toThrow(/"nftables"/);
    expect(() => parseNftJson('{"nftables": [{"chain": {"family": "ip", "table": "t", "name": "c"}}]}')).toThrow(/nftables\[0\]: table ip t listed before/);
    expect(() => parseNftJson('{"nftables": [{"table": {"family": "ip", "name": "t"}}, {"rule": {"family": "ip", "table": "t", "chain": "c", "expr": []}}]}'))
      .toThrow(/nftables\[1\]: chain c listed before its rules/);
  });
});

/** Parsing either succeeds or throws ParseError; anything else (TypeError, hang) fails. */
function parsesOrParseError(parse: (s: string) => unknown, s: string): boolean {
  try {
    parse(s);
    return true;
  } catch (e) {
    if (e instanceof ParseError) return true;
    throw e;
  }
}

describe('properties', () => {
  const mutation = fc.array(
    fc.record({ op: fc.constantFrom('delete', 'duplicate', 'truncate', 'swap'), at: fc.nat(), cut: fc.nat() }),
    { minLength: 1, maxLength: 4 },
  );
  function mutate(text: string, ops: Array<{ op: string; at: number; cut: number }>): string {
    const lines = text.split('\n');
    for (const { op, at, cut } of ops) {
      if (lines.length === 0) break;
      const i = at % lines.length;
      if (op === 'delete') lines.splice(i, 1);
      else if (op === 'duplicate') lines.splice(i, 0, lines[i]);
      else if (op === 'truncate') lines[i] = lines[i].slice(0, cut % (lines[i].length + 1));
      else [lines[i], lines[lines.length - 1 - i]] = [lines[lines.length - 1 - i], lines[i]];
    }
    return lines.join('\n');
  }

  it('arbitrary strings parse or throw ParseError', () => {
    const nftish = fc.array(fc.constantFrom('table', 'ip', 'x', '{', '}', '\n', '\t', ' ', 'chain', 'set', 'map', 'elements = {', ',', ' : ', '"', 'type filter hook input priority', 'counter packets', 'numgen random mod', 'vmap', 'jump', '0'), { maxLength: 60 }).map((a) => a.join(''));
    fc.assert(fc.property(fc.oneof(fc.string(), nftish), (s) => parsesOrParseError(parseNftRuleset, s) && parsesOrParseError(parseNftJson, s)), { numRuns: 500 });
  });

  it('mutated real dumps parse or throw ParseError', () => {
    fc.assert(fc.property(mutation, (ops) => parsesOrParseError(parseNftRuleset, mutate(captured.text, ops)) && parsesOrParseError(parseNftRuleset, mutate(captured.handles, ops))), { numRuns: 400 });
  });

  it('mutated JSON dumps parse or throw ParseError', () => {
    const pretty = JSON.stringify(JSON.parse(captured.json), null, 1);
    const drop = fc.record({ at: fc.nat(), key: fc.constantFrom('family', 'table', 'name', 'chain', 'expr', 'elem', 'type', 'map', 'target', 'key', 'data') });
    fc.assert(fc.property(mutation, drop, (ops, d) => {
      const doc = JSON.parse(captured.json) as { nftables: Array<Record<string, Record<string, unknown>>> };
      const item = doc.nftables[d.at % doc.nftables.length];
      const inner = Object.values(item)[0];
      if (inner && typeof inner === 'object') delete inner[d.key];
      return parsesOrParseError(parseNftJson, JSON.stringify(doc)) && parsesOrParseError(parseNftJson, mutate(pretty, ops));
    }), { numRuns: 300 });
  });

  it('runs in linear time on hostile input', () => {
    const cases = [
      `table ip x {\n\tchain c {\n\t\t${'{'.repeat(200_000)}\n\t}\n}`,
      `table ip x {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { ${'1.2.3.4, '.repeat(50_000)}\n`,
      `table ip x {\n${'\tchain c {\n'.repeat(50_000)}`,
      `table ip x {\n\tchain c {\n\t\t${'"a '.repeat(100_000)}\n\t}\n}`,
      `table ip x {\n\tchain c {\n${'\t\tnumgen random mod 3 vmap { 0 : goto a, 1 : goto b, 2 : goto c }\n'.repeat(20_000)}\t}\n}`,
    ];
    // A quadratic parser shows as the test timing out, not as a timed assertion.
    for (const text of cases) expect(parsesOrParseError(parseNftRuleset, text)).toBe(true);
  });

  it('reject binary and random text, and survive mutation (text and JSON)', () => {
    const commentsOnly = (s: string) => s.split('\n').every((l) => l.trim() === '' || l.trimStart().startsWith('#'));
    expectTotal(parseNftRuleset, [captured.text, captured.handles], {
      blank: commentsOnly,
      tokens: ['table ip x {\n', 'chain c {\n', '}\n', 'ip daddr 10.0.0.1 accept\n', 'type filter hook input priority 0;\n', 'set s {\n', 'type ipv4_addr\n'],
    });
    const onlyMetainfo = (s: string) => {
      try {
        const d = JSON.parse(s) as { nftables?: unknown };
        return Array.isArray(d.nftables) && d.nftables.every((x) => typeof x === 'object' && x !== null && Object.keys(x).join() === 'metainfo');
      } catch {
        return false;
      }
    };
    expectTotal(parseNftJson, [captured.json, JSON.stringify(JSON.parse(captured.json), null, 1)], {
      blank: onlyMetainfo,
      empty: { tables: [] },
      tokens: ['{"nftables":[', ']}', '{"metainfo":{}}', '{"table":{"family":"ip","name":"t"}}', ','],
    });
  });
});
