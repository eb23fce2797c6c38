import * as parse from '../../lib/parse/index.ts';
import { quoteForTerminal } from '../../lib/parse/errors.ts';
import { UsageError, printJson, requiredOption, type CommandSpec } from '../cli.ts';
import { readInputFile } from './input.ts';

const FORMATS: Record<string, { parse: (text: string) => unknown; summary: (v: never) => string }> = {
  'iptables-save': { parse: parse.parseIptablesSave, summary: saveSummary },
  'iptables-list': { parse: parse.parseIptablesList, summary: listSummary },
  // ip6tables prints the same grammar; the names are there to be found.
  'ip6tables-save': { parse: parse.parseIptablesSave, summary: saveSummary },
  'ip6tables-list': { parse: parse.parseIptablesList, summary: listSummary },
  ipset: {
    parse: parse.parseIpsetAuto,
    summary: (d: parse.IpsetState) => d.sets.map((s) => `${s.name} (${s.type}): ${s.members.length} members`).join('\n'),
  },
  ipvsadm: { parse: parse.parseIpvsadm, summary: ipvsSummary },
  'proc-ip-vs': { parse: parse.parseProcIpVs, summary: ipvsSummary },
  nft: { parse: parse.parseNftRuleset, summary: nftSummary },
  'nft-json': { parse: parse.parseNftJson, summary: nftSummary },
  'ip-route': {
    // `ip -j route` prints JSON; plain `ip route` text is accepted too.
    parse: (t: string) => (t.trimStart().startsWith('[') ? parse.parseIpRouteJson(t) : parse.parseIpRoute(t)),
    summary: (d: parse.IpRoute[]) => `${d.length} routes`,
  },
  'ip-addr': { parse: parse.parseIpAddrJson, summary: (d: parse.IpLink[]) => `${d.length} links` },
  conntrack: { parse: parse.parseConntrack, summary: (d: parse.ConntrackTable) => `${d.entries.length} flows` },
  'nf-conntrack': { parse: parse.parseNfConntrack, summary: (d: parse.ConntrackTable) => `${d.entries.length} flows` },
};

function saveSummary(d: parse.IptablesSave): string {
  return d.tables.map((t) => `${t.name}: ${t.chains.length} chains, ${t.chains.reduce((a, c) => a + c.rules.length, 0)} rules`).join('\n');
}

function listSummary(d: parse.IptablesList): string {
  return `${d.chains.length} chains, ${d.chains.reduce((a, c) => a + c.rules.length, 0)} rules`;
}

function ipvsSummary(d: parse.IpvsState): string {
  return d.services.map((s) => `${s.protocol} ${s.address}:${s.port}${s.scheduler ? ` ${s.scheduler}` : ''}: ${s.destinations.length} real servers`).join('\n');
}

function nftSummary(d: parse.NftRuleset): string {
  const tables = d.tables.map((t) => `table ${t.family} ${t.name}: ${t.chains.length} chains, ${t.chains.reduce((a, c) => a + c.rules.length, 0)} rules, ${t.sets.length} sets/maps`);
  const n = d.warnings?.length ?? 0;
  if (n > 0) tables.push(`${n} warning${n === 1 ? '' : 's'} from nft (kept with --json), the first on line ${d.warnings![0].line}: ${quoteForTerminal(d.warnings![0].text)}`);
  return tables.join('\n');
}

export const parseCommand: CommandSpec = {
  summary: 'parse what a node shows into typed JSON; a parse error names the line',
  usage: `parse --format ${Object.keys(FORMATS).join('|')} FILE [--json]
  iptables-*, ip6tables-*: iptables-save or iptables -L of either backend, 1.4 to 1.8; ipvsadm: -Ln with
  --stats, --rate, --thresholds, --persistent-conn, --tun-info or --exact; proc-ip-vs: /proc/net/ip_vs;
  nft: nft list ruleset, 0.9 to 1.1, with -a, -n, -s, -y, and nft's warnings merged in; conntrack:
  conntrack -L or -E; nf-conntrack: /proc/net/nf_conntrack
  FILE: - for standard input; at most 64 MiB of text or 128 MiB of JSON (nft-json, ip-addr):
  a node with 10,000 Services × 10 endpoints dumps 32 MB of iptables-save and 92 MB of nft -j`,
  readOnly: true,
  options: { format: { type: 'string' } },
  allowPositionals: true,
  async run(args, io) {
    const format = requiredOption(args, 'format');
    const f = Object.hasOwn(FORMATS, format) ? FORMATS[format] : undefined;
    if (!f) throw new UsageError(`unknown --format ${quoteForTerminal(format)}; one of ${Object.keys(FORMATS).join(', ')}`);
    if (args.positionals.length !== 1 || args.positionals[0] === '') throw new UsageError('give exactly one FILE (- for standard input)');
    const json = format === 'nft-json' || format === 'ip-addr';
    const parsed = f.parse(await readInputFile(args.positionals[0], json ? 'json' : 'text'));
    if (args.values.json) return printJson(io, parsed);
    io.out(f.summary(parsed as never) || '(empty)');
  },
};
