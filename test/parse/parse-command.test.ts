import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers/cli.ts';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

describe('parse --format, on the new variants', () => {
  it('nf-conntrack reads /proc/net/nf_conntrack; conntrack refuses it with the line', async () => {
    const ok = await cli('parse', '--format', 'nf-conntrack', fixture('captured/proc-net-nf_conntrack.txt'));
    expect(ok).toMatchObject({ code: 0, out: '9 flows\n', err: '' });
    const json = await cli('parse', '--format', 'nf-conntrack', fixture('captured/proc-net-nf_conntrack.txt'), '--json');
    const table = JSON.parse(json.out) as { entries: Array<{ family: string; original: { src: string } }> };
    expect(table.entries.find((e) => e.family === 'ipv6')?.original.src).toBe('::1');
    const wrong = await cli('parse', '--format', 'nf-conntrack', fixture('captured/conntrack-L.txt'));
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/\/proc\/net\/nf_conntrack: line 1: expected /);
  });

  it('ip6tables-save and ip6tables-list read ip6tables output, old and new', async () => {
    expect(await cli('parse', '--format', 'ip6tables-save', fixture('captured/ip6tables-nft-save-c.txt'))).toMatchObject({
      code: 0, out: 'filter: 5 chains, 6 rules\nnat: 8 chains, 7 rules\n',
    });
    expect(await cli('parse', '--format', 'ip6tables-list', fixture('ip6tables-1.8.7-L-nv.txt'))).toMatchObject({ code: 0, out: '8 chains, 12 rules\n' });
  });

  it('ipvsadm reads --rate; nft says how many warnings nft printed into the listing', async () => {
    const rate = await cli('parse', '--format', 'ipvsadm', fixture('ipvsadm-Ln-rate.txt'));
    expect(rate.code).toBe(0);
    expect(rate.out.split('\n')[3]).toBe('TCP 10.96.120.15:8000: 3 real servers');
    const nft = await cli('parse', '--format', 'nft', fixture('captured/nft-a-list-ruleset-no-xtables.txt'));
    expect(nft.code).toBe(0);
    expect(nft.out).toMatch(/\n\d+ warnings from nft \(kept with --json\), the first on line 1: "# Warning: table ip filter is managed by iptables-nft, do not touch!"\n$/);
  });
});
