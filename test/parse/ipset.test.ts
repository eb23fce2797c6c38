import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ParseError } from '../../lib/parse/errors.ts';
import { parseIpsetAuto, parseIpsetList, parseIpsetSave, renderIpsetList, renderIpsetSave } from '../../lib/parse/ipset.ts';
import type { IpsetSet, IpsetState } from '../../lib/parse/ipset-types.ts';
import { expectTotal } from '../helpers/fuzz.ts';
import { withNetns } from '../helpers/netns.ts';

/** Every set type kube-proxy uses, plus the extensions ipset prints per member. */
const RESTORE = `create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536
create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536
create KUBE-NODE-PORT-TCP bitmap:port range 0-65535
create KUBE-LOAD-BALANCER-SOURCE-CIDR hash:ip,port,net family inet hashsize 1024 maxelem 65536
create KUBE-IPVS-IPS hash:ip family inet hashsize 1024 maxelem 65536
create KUBE-EMPTY hash:ip,port family inet hashsize 1024 maxelem 65536
create EXTRAS hash:ip family inet hashsize 1024 maxelem 65536 comment counters
add KUBE-CLUSTER-IP 10.96.0.10,udp:53
add KUBE-CLUSTER-IP 10.96.0.1,tcp:443
add KUBE-CLUSTER-IP 10.96.0.5,sctp:80
add KUBE-LOOP-BACK 10.244.1.2,tcp:8080,10.244.1.2
add KUBE-NODE-PORT-TCP 30080
add KUBE-NODE-PORT-TCP 31000
add KUBE-LOAD-BALANCER-SOURCE-CIDR 1.2.3.4,tcp:80,10.0.0.1/8
add KUBE-IPVS-IPS 10.96.0.1
add EXTRAS 192.0.2.1 comment "hello world"
add EXTRAS 192.0.2.2
`;

const EXPECTED_MEMBERS: Record<string, string[]> = {
  'KUBE-CLUSTER-IP': ['10.96.0.1,tcp:443', '10.96.0.10,udp:53', '10.96.0.5,sctp:80'],
  'KUBE-LOOP-BACK': ['10.244.1.2,tcp:8080,10.244.1.2'],
  'KUBE-NODE-PORT-TCP': ['30080', '31000'],
  // The kernel stores the network, not the address given.
  'KUBE-LOAD-BALANCER-SOURCE-CIDR': ['1.2.3.4,tcp:80,10.0.0.0/8'],
  'KUBE-IPVS-IPS': ['10.96.0.1'],
  'KUBE-EMPTY': [],
  EXTRAS: ['192.0.2.1', '192.0.2.2'],
};

const members = (state: IpsetState) => Object.fromEntries(state.sets.map((s) => [s.name, [...s.members].sort()]));

let list = '';
let save = '';
let terse = '';

beforeAll(async () => {
  await withNetns(async (ns) => {
    await ns.run(['ipset', 'restore'], { input: RESTORE });
    list = (await ns.run(['ipset', 'list'])).stdout;
    save = (await ns.run(['ipset', 'save'])).stdout;
    terse = (await ns.run(['ipset', 'list', '-t'])).stdout;
  });
});

describe('ipset list and ipset save, read back from the kernel', () => {
  it('parse to the same sets and members the restore put in', () => {
    const fromList = parseIpsetList(list);
    const fromSave = parseIpsetSave(save);
    expect(members(fromList)).toEqual(Object.fromEntries(Object.entries(EXPECTED_MEMBERS).map(([k, v]) => [k, [...v].sort()])));
    expect(members(fromSave)).toEqual(members(fromList));
    expect(fromList.sets.map((s) => [s.name, s.type])).toEqual(fromSave.sets.map((s) => [s.name, s.type]));
  });

  it('keep header options and list-only fields', () => {
    const set = (st: IpsetState, n: string) => st.sets.find((s) => s.name === n) as IpsetSet;
    const l = parseIpsetList(list);
    const cip = set(l, 'KUBE-CLUSTER-IP');
    expect(cip).toMatchObject({ type: 'hash:ip,port', entries: 3, references: 0 });
    expect(cip.header).toMatchObject({ family: 'inet', hashsize: '1024', maxelem: '65536' });
    expect(cip.revision).toBeGreaterThan(0);
    expect(set(l, 'KUBE-NODE-PORT-TCP').header).toEqual({ range: '0-65535' });
    expect(set(l, 'EXTRAS').header).toMatchObject({ comment: true, counters: true });
    expect(set(l, 'EXTRAS').memberOptions?.['192.0.2.1']).toEqual({ packets: '0', bytes: '0', comment: '"hello world"' });
    expect(set(parseIpsetSave(save), 'EXTRAS').memberOptions?.['192.0.2.1']).toMatchObject({ comment: '"hello world"' });
    // -t prints headers only.
    const t = parseIpsetList(terse);
    expect(t.sets.map((s) => s.members.length)).toEqual(t.sets.map(() => 0));
    expect(set(t, 'KUBE-CLUSTER-IP').entries).toBe(3);
    expect(parseIpsetAuto(list)).toEqual(l);
    expect(parseIpsetAuto(save)).toEqual(parseIpsetSave(save));
  });

  it('errors name the line, the text and what was expected', () => {
    const cases: [() => unknown, number, RegExp][] = [
      [() => parseIpsetList(list.replace('Type: hash:ip,port\n', 'Tipe: hash:ip,port\n')), 2, /Type:, Revision:/],
      [() => parseIpsetList(`Name: X\nRevision: 1\nMembers:\n1.2.3.4\n`), 1, /"Type:" line for set X/],
      [() => parseIpsetList(`Name: X\nType: hash:ip\nMembers:\n1.2.3.4 comment "open\n`), 4, /closing double quote/],
      [() => parseIpsetSave('add NOPE 1.2.3.4\n'), 1, /"create NOPE …" line before/],
      [() => parseIpsetSave('create A hash:ip family\n'), 1, /a value after family/],
      [() => parseIpsetSave('flush A\n'), 1, /"create NAME TYPE …" or "add NAME MEMBER …"/],
    ];
    for (const [run, line, expected] of cases) {
      let err: unknown;
      try {
        run();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ParseError);
      expect((err as ParseError).line).toBe(line);
      expect((err as ParseError).message).toMatch(expected);
    }
  });
});

// ---- property tests ----------------------------------------------------------------------

const word = fc.stringMatching(/^[a-z0-9][a-z0-9.,:/_-]{0,20}$/);
const setName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,30}$/);
const optKey = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
const optValue = fc.oneof(word, fc.stringMatching(/^[a-z ]{0,12}$/).map((s) => `"${s}"`));
const FLAGS = ['comment', 'counters', 'skbinfo', 'forceadd'];
const headerArb = fc
  .dictionary(optKey.filter((k) => !FLAGS.includes(k) && k !== 'nomatch'), optValue, { maxKeys: 4 })
  .chain((d) => fc.subarray(FLAGS).map((flags) => ({ ...d, ...Object.fromEntries(flags.map((f) => [f, true as const])) })));
const memberOptsArb = fc
  .dictionary(optKey.filter((k) => !FLAGS.includes(k) && k !== 'nomatch'), optValue, { minKeys: 1, maxKeys: 3 })
  .chain((d) => fc.boolean().map((nomatch) => (nomatch ? { ...d, nomatch: true as const } : d)));

// Members take the form of their set's type, as the parser checks them.
const ip = fc.oneof(fc.ipV4(), fc.ipV6());
const portPart = fc.tuple(fc.constantFrom('tcp', 'udp', 'sctp'), fc.nat(65535)).map(([p, n]) => `${p}:${n}`);
const net = fc.tuple(fc.ipV4(), fc.nat(32)).map(([a, n]) => `${a}/${n}`);
const MEMBER: Record<string, fc.Arbitrary<string>> = {
  'hash:ip': ip,
  'hash:ip,port': fc.tuple(ip, portPart).map((p) => p.join(',')),
  'hash:ip,port,ip': fc.tuple(fc.ipV4(), portPart, fc.ipV4()).map((p) => p.join(',')),
  'hash:ip,port,net': fc.tuple(fc.ipV4(), portPart, net).map((p) => p.join(',')),
  'bitmap:port': fc.nat(65535).map(String),
  'list:set': setName,
};
const setArb: fc.Arbitrary<IpsetSet> = fc
  .constantFrom(...Object.keys(MEMBER))
  .chain((type) => fc.record({
    name: setName,
    type: fc.constant(type),
    header: headerArb,
    members: fc.uniqueArray(MEMBER[type], { maxLength: 6 }),
    withOptions: fc.array(memberOptsArb, { maxLength: 6 }),
  }))
  .map(({ withOptions, ...s }) => {
    const set: IpsetSet = { ...s };
    const opts = Object.fromEntries(s.members.flatMap((m, i) => (withOptions[i] ? [[m, withOptions[i]]] : [])));
    if (Object.keys(opts).length > 0) set.memberOptions = opts;
    return set;
  });
const stateArb = fc.uniqueArray(setArb, { selector: (s) => s.name, maxLength: 5 }).map((sets) => ({ sets }));

describe('ipset parsers are total and round-trip', () => {
  it('arbitrary and mutated input parse or throw ParseError', () => {
    // The list's own counters (revision, size, references) are not in the rendering's input.
    const sets = (st: IpsetState) => st.sets.map(({ revision: _r, sizeInMemory: _s, references: _f, entries: _e, ...set }) => set);
    const tokens = ['Name: A\n', 'Type: hash:ip\n', 'Members:\n', '10.0.0.1\n', 'create A hash:ip\n', 'add A 10.0.0.1\n', 'add A '];
    expectTotal(parseIpsetList, [list, terse], { roundTrip: (st) => parseIpsetList(renderIpsetList(st)), comparable: sets, tokens });
    expectTotal(parseIpsetSave, [save, RESTORE], { roundTrip: (st) => parseIpsetSave(renderIpsetSave(st)), tokens });
  });

  it('ipset save: state → render → parse gives the state back', () => {
    fc.assert(
      fc.property(stateArb, (state) => {
        expect(parseIpsetSave(renderIpsetSave(state))).toEqual(state);
      }),
      { numRuns: 300 },
    );
  });

  it('ipset list: state → render → parse gives the state back', () => {
    const withListFields = stateArb.chain((st) =>
      fc.tuple(...st.sets.map(() => fc.tuple(fc.nat(10), fc.nat(100_000), fc.nat(5)))).map((extra) => ({
        sets: st.sets.map((s, i) => ({ ...s, revision: extra[i][0], sizeInMemory: extra[i][1], references: extra[i][2], entries: s.members.length })),
      })),
    );
    fc.assert(
      fc.property(withListFields, (state) => {
        expect(parseIpsetList(renderIpsetList(state))).toEqual(state);
      }),
      { numRuns: 300 },
    );
  });
});
