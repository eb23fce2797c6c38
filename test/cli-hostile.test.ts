/**
 * Hostile and nonsensical input to the CLI, in process: every case must end in a clear error
 * (exit 2 with the option and what it got, or exit 1 naming the line of a dump) and print
 * nothing on stdout. Real processes (pipes, signals, stdin) are in cli-process.test.ts.
 */
import { mkdtempSync } from 'node:fs';
import { mkdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_JSON_BYTES, MAX_TEXT_BYTES, jsonChunks } from '../scripts/io.ts';
import { cli } from './helpers/cli.ts';

// Made at load time: the case tables below name files in it.
const dir = mkdtempSync(join(tmpdir(), 'kube-netlab-hostile-'));
const file = (name: string) => join(dir, name);
const DUMP = '*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j DNAT --to-destination 172.18.0.2:6443\nCOMMIT\n';

beforeAll(async () => {
  await writeFile(file('dump.txt'), DUMP);
  await mkdir(file('a-directory'));
  // Sparse: one byte over the limit costs no disk.
  for (const [name, size] of [['huge.txt', MAX_TEXT_BYTES + 1], ['at-limit.txt', MAX_TEXT_BYTES], ['huge.json', MAX_JSON_BYTES + 1]] as const) {
    await writeFile(file(name), '');
    await truncate(file(name), size);
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const trace = (...extra: string[]) => ['trace', '--dump', file('dump.txt'), '--dst', '10.96.0.1', '--dport', '443', ...extra];

/** [what, argv, what the message must say]: each must exit 2 naming the option. */
const USAGE: Record<string, [string, string[], RegExp][]> = {
  'whole numbers': [
    ['exponent', ['predict', '--services', '10', '--endpoints', '3', '--requests', '1e3'], /--requests must be a whole number .* got "1e3"/],
    ['hex', ['predict', '--services', '0x10', '--endpoints', '3'], /--services must be a whole number .* got "0x10"/],
    ['negative', ['predict', '--services', '10', '--endpoints=-1'], /--endpoints must be a whole number .* got "-1"/],
    ['empty', ['predict', '--services', '', '--endpoints', '3'], /--services must be a whole number .* got ""/],
    ['leading blank', ['predict', '--services', ' 5', '--endpoints', '3'], /--services must be a whole number .* got " 5"/],
    ['fraction', ['predict', '--services', '1.5', '--endpoints', '3'], /--services must be a whole number .* got "1.5"/],
    ['plus sign', ['rules', '--mode', 'iptables', '--services', '+5'], /--services must be a whole number .* got "\+5"/],
    ['other digits', ['rules', '--mode', 'iptables', '--services', '٣'], /--services must be a whole number .* got "٣"/],
    ['20 digits', ['predict', '--services', '99999999999999999999', '--endpoints', '3'], /--services must be a whole number .* got "99999999999999999999"/],
    ['Infinity', ['predict', '--services', 'Infinity', '--endpoints', '3'], /--services must be a whole number .* got "Infinity"/],
    ['sport word', trace('--sport', 'http'), /--sport must be a whole number .* got "http"/],
  ],
  'bounds (S × E, requests, node ports)': [
    ['split over 10^9 endpoints', ['predict', '--services', '1', '--endpoints', '1000000000', '--requests', '1000'], /--endpoints must be from 1 to 10,000 with it, got 1,000,000,000/],
    ['split with no endpoints', ['predict', '--services', '1', '--endpoints', '0', '--requests', '1000'], /--endpoints must be from 1 to 10,000 with it, got 0/],
    ['requests × endpoints', ['predict', '--services', '1', '--endpoints', '10000', '--requests', '10000000'], /--requests × --endpoints must be at most 10\^10/],
    ['counts past 10^12', ['predict', '--services', '1000000000', '--endpoints', '100000'], /--services × --endpoints must be at most 10\^12/],
    ['services past 10^9', ['predict', '--services', '2000000000', '--endpoints', '1'], /--services must be from 0 to 1,000,000,000, got 2000000000/],
    ['node ports past services', ['predict', '--services', '3', '--endpoints', '1', '--node-ports', '4'], /--node-ports must be from 0 to 3 \(at most one NodePort per service\), got 4/],
    ['rules S × E', ['rules', '--mode', 'iptables', '--services', '20000', '--endpoints', '10', '--pod-subnet', '10.0.0.0/8'], /--services × --endpoints must be at most 100,000 endpoints .* got 20000 × 10 = 200,000/],
    ['rules endpoints alone', ['rules', '--mode', 'nftables', '--services', '1', '--endpoints', '1000000000'], /--endpoints must be from 0 to 100,000/],
    ['rules services alone', ['rules', '--mode', 'ipvs', '--services', '70000', '--endpoints', '0'], /--services must be from 0 to 65,000/],
    ['rules node ports', ['rules', '--mode', 'iptables', '--services', '3000', '--endpoints', '1', '--node-ports', '3000'], /--node-ports must be from 0 to 2,768/],
  ],
  addresses: [
    ['a word', trace().map((a) => (a === '10.96.0.1' ? 'hello' : a)), /--dst must be an IPv4 address, got "hello" \(names are not resolved/],
    ['three parts', trace('--src', '1.2.3'), /--src must be an IPv4 address, got "1\.2\.3"/],
    ['IPv6', trace().map((a) => (a === '10.96.0.1' ? 'fd00::1' : a)), /--dst must be an IPv4 address, got "fd00::1" \(IPv6 is not traced/],
    ['octet 256', trace('--src', '256.1.1.1'), /--src must be an IPv4 address, got "256\.1\.1\.1"/],
    ['five parts', trace('--src', '1.2.3.4.5'), /--src must be an IPv4 address/],
    ['leading zero', trace('--src', '010.1.1.1'), /--src must be an IPv4 address, got "010\.1\.1\.1"/],
    ['trailing blank', trace('--src', '1.2.3.4 '), /--src must be an IPv4 address, got "1\.2\.3\.4 "/],
    ['empty', trace('--src', ''), /--src must be an IPv4 address, got ""/],
    ['local with an empty item', trace('--local', '1.2.3.4,,x'), /--local must be IPv4 addresses separated by commas, got "1\.2\.3\.4,,x" \(item 2, "": an empty item\)/],
    ['local with a word', trace('--local', '1.2.3.4,x'), /--local .* \(item 2, "x": names are not resolved/],
    ['local trailing comma', trace('--local', '1.2.3.4,'), /--local .* \(item 2, "": an empty item\)/],
    ['control character', trace('--src', '1.2.3.4\u001b[2J'), /--src must be an IPv4 address, got "1\.2\.3\.4\\u001b\[2J"/],
    ['node ip', ['rules', '--mode', 'iptables', '--services', '1', '--node-ip', 'x'], /--node-ip must be an IPv4 address such as 172\.18\.0\.3, got "x"/],
    ['cluster cidr', ['rules', '--mode', 'iptables', '--services', '1', '--cluster-cidr', '10.0.0.0/33'], /--cluster-cidr must be an IPv4 CIDR .* got "10\.0\.0\.0\/33"/],
    ['pod subnet', ['rules', '--mode', 'iptables', '--services', '1', '--pod-subnet', 'nowhere'], /--pod-subnet must be an IPv4 CIDR .* got "nowhere"/],
  ],
  ports: [
    ['port 0', trace().map((a) => (a === '443' ? '0' : a)), /--dport must be from 1 to 65,535, got 0/],
    ['port 65536', trace().map((a) => (a === '443' ? '65536' : a)), /--dport must be from 1 to 65,535, got 65536/],
    ['port 99999999', trace().map((a) => (a === '443' ? '99999999' : a)), /--dport must be from 1 to 65,535, got 99999999/],
    ['port -1', ['trace', '--dump', 'x', '--dst', '10.96.0.1', '--dport=-1'], /--dport must be a whole number from 1 to 65,535 .* got "-1"/],
    ['port with text', trace().map((a) => (a === '443' ? '80abc' : a)), /--dport must be a whole number .* got "80abc"/],
    ['source port 0', trace('--sport', '0'), /--sport must be from 1 to 65,535, got 0/],
    ['missing dport', ['trace', '--dump', 'x', '--dst', '10.96.0.1'], /--dport is required/],
  ],
  'names and choices': [
    ['proto', trace('--proto', 'icmp'), /--proto must be tcp, udp or sctp, got "icmp"/],
    ['hook', trace('--hook', 'INPUT'), /--hook must be PREROUTING or OUTPUT, got "INPUT"/],
    ['mode', ['predict', '--mode', 'bpf', '--services', '1', '--endpoints', '1'], /--mode must be iptables, ipvs or nftables, got "bpf"/],
    ['format', ['parse', '--format', 'pcap', 'x'], /unknown --format "pcap"/],
    ['format from the prototype', ['parse', '--format', '__proto__', 'x'], /unknown --format "__proto__"/],
    ['node name', ['rules', '--mode', 'iptables', '--services', '1', '--node', 'Kind_Worker'], /--node must be a node name .* got "Kind_Worker"/],
    ['iptables backend', ['up', '--iptables', 'xtables'], /--iptables must be legacy or nft \(the nodes are programmed with iptables-legacy or iptables-nft\), got "xtables"/],
    ['iptables backend on kind', ['up', '--backend', 'kind', '--iptables', 'legacy'], /--iptables applies to the netns backend: kind's nodes pick their own backend/],
    ['unknown option', ['predict', '--services', '1', '--endpoints', '1', '--bogus'], /Unknown option '--bogus'/],
    ['objects with services', ['rules', '--mode', 'iptables', '--objects', 'x', '--node-ports', '1'], /either --objects FILE or --services S --endpoints E, not both \(--node-ports with --objects\)/],
  ],
  'files': [
    ['missing', ['parse', '--format', 'nft', file('missing.txt')], /missing\.txt: no such file/],
    ['a directory', ['parse', '--format', 'nft', file('a-directory')], /a-directory: cannot read \(EISDIR\)/],
    ['no file', ['parse', '--format', 'nft'], /give exactly one FILE/],
    ['two files', ['parse', '--format', 'nft', file('dump.txt'), file('dump.txt')], /give exactly one FILE/],
    ['empty name', ['parse', '--format', 'nft', ''], /give exactly one FILE/],
    ['stdin twice', trace('--ipsets', '-', '--ipvs', '-'), /only one of --dump, --ipsets and --ipvs can read standard input/],
    ['trace dump missing', trace().map((a) => (a === file('dump.txt') ? file('nope') : a)), /nope: no such file/],
  ],
  'lab names': [
    ['traffic ../etc', ['traffic', '--name', '../etc'], /--name: lab name "\.\.\/etc" must be 1–15 lower-case letters/],
    ['capture ../etc', ['capture', '--name', '../etc'], /--name: lab name "\.\.\/etc" must be/],
    ['up ../etc', ['up', '--name', '../etc'], /--name: lab name "\.\.\/etc" must be/],
    ['down ../etc', ['down', '--name', '../etc'], /--name: lab name "\.\.\/etc" must be/],
    ['upper case', ['traffic', '--name', 'Lab'], /--name: lab name "Lab" must be/],
    ['too long', ['capture', '--name', 'abcdefghijklmnop'], /--name: lab name "abcdefghijklmnop" must be/],
    ['trailing dash', ['traffic', '--name', 'lab-'], /--name: lab name "lab-" must be/],
  ],
};

describe('usage errors: nonsense in any option exits 2, naming the option and what it got', () => {
  for (const [category, cases] of Object.entries(USAGE)) {
    describe(category, () => {
      it.each(cases)('%s', async (_what, argv, message) => {
        const r = await cli(...argv);
        expect(r.err).toMatch(message);
        expect(r.code).toBe(2);
        expect(r.err).toContain(`Usage: kube-netlab ${argv[0]}`);
        expect(r.out).toBe('');
      });
    });
  }
});

describe('input that is not a dump exits 1 and names the line', () => {
  const FORMATS = ['iptables-save', 'iptables-list', 'ipset', 'ipvsadm', 'proc-ip-vs', 'nft', 'nft-json', 'ip-route', 'ip-addr', 'conntrack'];
  const GARBAGE: [string, string | Buffer, number][] = [
    ['random bytes', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x00, 0xff, 0xfe, 0x0a, 0x41]), 1],
    ['text', 'hello world\nthis is not a dump\n', 1],
    ['a NUL on line 3', '\n\nde\u0000fault via 1.2.3.4\n', 3],
    ['JSON of another shape', '{"kind": "List", "items": []}\n', 1],
    ['colour codes', '\u001b[32mdefault\u001b[0m via 172.18.0.1 dev eth0\n', 1],
  ];
  for (const format of FORMATS) {
    it.each(GARBAGE)(`${format}: %s`, async (what, content, line) => {
      const name = file(`${format}-${what.replace(/\W/g, '_')}`);
      await writeFile(name, content);
      const r = await cli('parse', '--format', format, name);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(new RegExp(`^kube-netlab parse: [^\\n]+: line ${line}: expected `));
      expect(r.out).toBe('');
    });
  }

  it('the three reports of the issue', async () => {
    await writeFile(file('elf'), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256)));
    const route = await cli('parse', '--format', 'ip-route', file('elf'));
    expect(route).toMatchObject({ code: 1, out: '' });
    expect(route.err).toMatch(/ip route: line \d+: expected text, not binary data \(\S+ at column \d+/);
    const dst = await cli(...trace().map((a) => (a === '10.96.0.1' ? 'hello' : a)));
    expect(dst.code).toBe(2);
    const dport = await cli(...trace().map((a) => (a === '443' ? '99999999' : a)));
    expect(dport.code).toBe(2);
  });
});

describe('bounded input', () => {
  it('refuses a file over the limit with the limit and why, before reading it all', async () => {
    const r = await cli('parse', '--format', 'iptables-save', file('huge.txt'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/huge\.txt is larger than 64 MiB, the most kube-netlab reads as text: a node with 10,000 Services × 10 endpoints dumps about 32 MB/);
    expect(r.out).toBe('');
    const t = await cli(...trace().map((a) => (a === file('dump.txt') ? file('huge.txt') : a)));
    expect(t.code).toBe(1);
    expect(t.err).toMatch(/larger than 64 MiB/);
    // JSON is bulkier for the same node: nft -j of it is about 92 MB.
    const j = await cli('parse', '--format', 'nft-json', file('huge.json'));
    expect(j.code).toBe(1);
    expect(j.err).toMatch(/huge\.json is larger than 128 MiB, the most kube-netlab reads as JSON: nft -j of a node with 10,000 Services × 10 endpoints is about 92 MB/);
    const o = await cli('rules', '--mode', 'iptables', '--objects', file('huge.json'));
    expect(o.code).toBe(1);
    expect(o.err).toMatch(/larger than 128 MiB/);
    // A text format given the same file is held to the text limit.
    expect((await cli('parse', '--format', 'nft', file('huge.json'))).err).toMatch(/larger than 64 MiB/);
  });

  it('reads a file of exactly the limit (and then finds it is not a dump)', async () => {
    const r = await cli('parse', '--format', 'iptables-save', file('at-limit.txt'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/iptables-save: line 1: expected text, not binary data \(NUL at column 1\)/);
  });
});

describe('a trace whose random branches multiply is stopped', () => {
  it('with a TraceError naming a line, not a hang', async () => {
    const rules = Array.from({ length: 40 }, (_, i) => `-A BOOM -m statistic --mode random --probability 0.5 -j MARK --or-mark 0x${(i + 1).toString(16)}`);
    await writeFile(file('boom.txt'), ['*nat', ':PREROUTING ACCEPT [0:0]', ':BOOM - [0:0]', '-A PREROUTING -j BOOM', ...rules, '-A BOOM -j ACCEPT', 'COMMIT', ''].join('\n'));
    const r = await cli('trace', '--dump', file('boom.txt'), '--dst', '10.0.0.1', '--dport', '80');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/line \d+: the trace needs more than 200,000 rule evaluations: its random branches multiply \(through BOOM\)/);
  });
});

describe('JSON output written in pieces', () => {
  it('is what JSON.stringify(value, null, indent) writes, for any value and piece size', () => {
    const value = fc.anything({ withBoxedValues: false, withMap: false, withSet: false, withTypedArray: false, withBigInt: false, withDate: true, withSparseArray: true, withNullPrototype: false });
    fc.assert(fc.property(value, fc.nat(4), fc.integer({ min: 1, max: 64 }), (v, indent, size) => {
      expect([...jsonChunks(v, indent, size)].join('')).toBe(JSON.stringify(v, null, indent) ?? '');
    }), { numRuns: 2000 });
    expect([...jsonChunks({ weight: NaN, gone: undefined, list: [undefined, () => 1, -0] }, 2, 8)].join('')).toBe(JSON.stringify({ weight: NaN, gone: undefined, list: [undefined, () => 1, -0] }, null, 2));
  });

  it('refuses a circular value as JSON.stringify does', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => [...jsonChunks(a)]).toThrow(/circular/);
  });

  it('keeps pieces near the size asked for', () => {
    const big = { rules: Array.from({ length: 20_000 }, (_, i) => ({ line: i, text: `-A KUBE-SERVICES -j KUBE-SVC-${i}` })) };
    const pieces = [...jsonChunks(big, 2, 4096)];
    expect(pieces.length).toBeGreaterThan(100);
    expect(Math.max(...pieces.map((p) => p.length))).toBeLessThan(4096 + 200);
    expect(pieces.join('')).toBe(JSON.stringify(big, null, 2));
  });
});
