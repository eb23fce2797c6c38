import { isIpv4, isIpv6 } from '../../lib/parse/addr.ts';
import { ParseError, quoteForTerminal, rejectBinary } from '../../lib/parse/errors.ts';
import { parseIpsetAuto, parseIptablesSave, parseIpvsAuto, parseNftJson, parseNftRuleset } from '../../lib/parse/index.ts';
import { detectDump, traceIptables, traceNftables, type Hook, type Outcome, type Packet, type TraceResult } from '../../lib/trace/index.ts';
import { UsageError, intOption, printJson, requiredOption, stringOption, type CommandSpec, type ParsedArgs } from '../cli.ts';
import { readInputFile } from './input.ts';
import { LIVE_ONLY, runLiveTrace } from './trace-live.ts';

/** Why a value is not an address, in words, or null when it is one. */
function notAddress(v: string): string | null {
  if (isIpv4(v) || isIpv6(v)) return null;
  if (/^[A-Za-z]/.test(v) && !v.includes(' ') && !v.includes(':')) return 'names are not resolved: give the address';
  return 'an IPv4 address is four numbers 0-255 joined by dots, such as 10.96.0.10; IPv6 is taken too, such as fd00:10:96::a';
}

function addressOption(args: ParsedArgs, key: string, fallback?: string): string {
  const v = fallback === undefined ? requiredOption(args, key) : (stringOption(args, key) ?? fallback);
  const why = notAddress(v);
  if (why) throw new UsageError(`--${key} must be an IPv4 address, got ${quoteForTerminal(v)} (${why})`);
  return v;
}

/** `--local 172.18.0.3,10.0.0.1`: every item an address, none empty. */
function localOption(args: ParsedArgs): string[] {
  const v = stringOption(args, 'local');
  if (v === undefined) return [];
  return v.split(',').map((item, i) => {
    const why = item === '' ? 'an empty item' : notAddress(item);
    if (why) throw new UsageError(`--local must be IPv4 addresses separated by commas, got ${quoteForTerminal(v)} (item ${i + 1}, ${quoteForTerminal(item)}: ${why})`);
    return item;
  });
}

const PORT = { min: 1, max: 65535 };
const showName = (f: string) => (f === '-' ? 'standard input' : quoteForTerminal(f));
const family = (ip: string) => (isIpv4(ip) ? 'IPv4' : 'IPv6');

/** The first line that is neither blank nor a comment, for a message about an unknown dump. */
function firstLine(text: string): { line: number; text: string } {
  const lines = text.slice(0, 65536).split('\n');
  const i = lines.findIndex((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  return i < 0 ? { line: 1, text: '' } : { line: i + 1, text: lines[i] };
}

/**
 * Built-in chains named with their table, for the text output: the same names occur in nat and
 * filter, and the hook order says which is which.
 */
function describePath(o: Outcome, hook: Hook): string {
  const tables: Record<string, string[]> = hook === 'PREROUTING'
    ? { PREROUTING: ['nat'], INPUT: ['filter', 'nat'], FORWARD: ['filter'], POSTROUTING: ['nat'] }
    : { OUTPUT: ['nat', 'filter'], POSTROUTING: ['nat'], INPUT: ['filter'] };
  const seen = new Map<string, number>();
  return o.path.map((c) => {
    const order = tables[c];
    if (!order) return c;
    const n = seen.get(c) ?? 0;
    seen.set(c, n + 1);
    return order[n] ? `${order[n]} ${c}` : c;
  }).join(' › ');
}

export const trace: CommandSpec = {
  summary: 'follow one packet through a node dump (iptables, ip6tables, IPVS or nftables), with the probability of every outcome',
  usage: `trace --live [--name LAB] [--service NS/NAME[:PORT]] [--from POD|NODE] [--to clusterip|loadbalancer|NODE] [--requests N] [--concurrency C] [--monitor netlink|nft|xtables] [--json]
  the kernel of the node that picks the backend traces N new connections (a rule of the kit's own, removed on the way out);
  each packet's path is counted against the predicted outcomes (exit 3 where the node cannot be traced, with the reason);
  IPVS mode: the iptables part is traced, the split over the real servers read from ipvsadm -Ln --stats counters
  --monitor: who reads the kernel's trace events: netlink, the kit's reader (default where the node has /usr/bin/python3
  and nft; keeps pace with the connections), nft (nft -a monitor trace, the same events as nft prints them), xtables
  (xtables-monitor --trace, iptables syntax, one connection at a time)
       trace --dump FILE [--ipsets FILE] [--ipvs FILE] [--proto tcp|udp|sctp] --dst IP --dport PORT [--src IP] [--sport PORT] [--hook PREROUTING|OUTPUT] [--local IP,…] [--no-postrouting] [--json]
  IP: IPv4 (dotted quad) or IPv6; PORT: 1-65535
  FILE: iptables-save, ip6tables-save, nft list ruleset or nft -j list ruleset output (recognised by its content; - for standard input), at most 64 MiB
  --ipsets and --ipvs (ipset list/save, ipvsadm -Ln or /proc/net/ip_vs) make it IPVS mode, with an iptables-save dump
  --local: the node's own addresses (what addrtype LOCAL and fib daddr type local match, and where packets are delivered)`,
  // --live adds rules to a node: it must finish (and remove them) even when its reader goes away.
  readOnly: (argv) => !argv.includes('--live'),
  options: {
    live: { type: 'boolean' },
    name: { type: 'string' },
    service: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    requests: { type: 'string' },
    concurrency: { type: 'string' },
    monitor: { type: 'string' },
    dump: { type: 'string' },
    ipsets: { type: 'string' },
    ipvs: { type: 'string' },
    proto: { type: 'string' },
    src: { type: 'string' },
    dst: { type: 'string' },
    sport: { type: 'string' },
    dport: { type: 'string' },
    hook: { type: 'string' },
    local: { type: 'string' },
    'no-postrouting': { type: 'boolean' },
  },
  async run(args, io) {
    if (args.values.live === true) return runLiveTrace(args, io);
    for (const k of LIVE_ONLY) if (args.values[k] !== undefined) throw new UsageError(`--${k} goes with --live (a trace on a lab's node); --dump traces a saved dump`);
    // Every option is checked before any file is read, so a typo costs nothing.
    const proto = stringOption(args, 'proto') ?? 'tcp';
    if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') throw new UsageError(`--proto must be tcp, udp or sctp, got ${quoteForTerminal(proto)}`);
    const rawHook = stringOption(args, 'hook') ?? 'PREROUTING';
    const hook = rawHook.toUpperCase();
    if (hook !== 'PREROUTING' && hook !== 'OUTPUT') throw new UsageError(`--hook must be PREROUTING or OUTPUT, got ${quoteForTerminal(rawHook)}`);
    const dst = addressOption(args, 'dst');
    // A pod in kind's pod subnet is the usual client.
    const src = addressOption(args, 'src', isIpv4(dst) ? '10.244.1.100' : 'fd00:10:244:1::100');
    if (family(src) !== family(dst)) throw new UsageError(`--src ${src} and --dst ${dst} must be of one family (both IPv4 or both IPv6)`);
    const packet: Packet = {
      protocol: proto,
      src,
      dst,
      dport: intOption(args, 'dport', undefined, PORT),
      sport: intOption(args, 'sport', 40000, PORT),
    };
    const localAddresses = localOption(args);
    const dumpFile = requiredOption(args, 'dump');
    const ipsetsFile = stringOption(args, 'ipsets');
    const ipvsFile = stringOption(args, 'ipvs');
    for (const [k, v] of [['dump', dumpFile], ['ipsets', ipsetsFile], ['ipvs', ipvsFile]] as const) {
      if (v === '') throw new UsageError(`--${k} must name a file (- for standard input)`);
    }
    if ([dumpFile, ipsetsFile, ipvsFile].filter((f) => f === '-').length > 1) throw new UsageError('only one of --dump, --ipsets and --ipvs can read standard input');
    const noPostrouting = args.values['no-postrouting'] === true;

    const text = await readInputFile(dumpFile);
    const detected = detectDump(text);
    if (!detected) {
      rejectBinary('trace --dump', text);
      const first = firstLine(text);
      throw new ParseError('trace --dump', first.line, first.text, 'iptables-save, ip6tables-save, nft list ruleset or nft -j list ruleset output');
    }
    const isNft = detected.kind === 'nft' || detected.kind === 'nft-json';
    if (isNft && (ipsetsFile || ipvsFile)) throw new UsageError(`--ipsets and --ipvs go with an iptables-save dump (IPVS mode); ${dumpFile} is ${detected.kind === 'nft' ? 'nft list ruleset' : 'nft -j list ruleset'} output`);
    if (isNft && noPostrouting) throw new UsageError('--no-postrouting applies to iptables dumps; an nftables trace follows every hook');
    if (!isNft) {
      const dumpFamily = detected.kind === 'ip6tables-save' ? 'IPv6' : 'IPv4';
      if (dumpFamily !== family(dst)) {
        const other = dumpFamily === 'IPv4' ? 'ip6tables-save' : 'iptables-save';
        throw new UsageError(`--dst must be an ${dumpFamily} address, got ${quoteForTerminal(dst)} (${family(dst)} is not traced through ${detected.kind} output such as ${showName(dumpFile)}: give ${other} output for ${family(dst)})`);
      }
    }

    let result: TraceResult;
    if (isNft) {
      const ruleset = detected.kind === 'nft' ? parseNftRuleset(text) : parseNftJson(text);
      result = traceNftables({ ruleset, packet, hook: hook as Hook, localAddresses });
      result.mode ??= 'nftables';
    } else {
      result = traceIptables({
        dump: parseIptablesSave(text),
        packet,
        hook: hook as Hook,
        localAddresses,
        ipsets: ipsetsFile ? parseIpsetAuto(await readInputFile(ipsetsFile)) : undefined,
        ipvs: ipvsFile ? parseIpvsAuto(await readInputFile(ipvsFile)) : undefined,
        postrouting: !noPostrouting,
      });
    }
    const warnings = result.warnings ?? [];
    if (args.values.json) {
      return printJson(io, {
        packet: result.packet,
        hook: result.hook,
        mode: result.mode,
        warnings,
        outcomes: result.outcomes.map((o) => ({
          probability: o.probability, verdict: o.verdict, dnat: o.dnat, snat: o.snat, mark: `0x${o.mark.toString(16)}`, path: o.path,
          rules: o.steps.map((s) => ({ chain: s.chain, ...(s.table ? { table: s.table } : {}), line: s.line, rule: s.text })),
          ...(o.ipvs ? { ipvs: o.ipvs } : {}),
        })),
      });
    }
    const endpoint = (ip: string, port: number | undefined) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
    io.out(`${packet.protocol} ${endpoint(packet.src, packet.sport)} → ${endpoint(packet.dst, packet.dport)}, entering ${isNft ? 'the' : 'nat'} ${hook}${isNft ? ' hook' : ''} (${result.mode ?? 'iptables'} mode)`);
    for (const w of warnings) io.out(`warning: ${w}`);
    for (const o of [...result.outcomes].sort((a, b) => b.probability - a.probability)) {
      const nat = [o.dnat ? `DNAT → ${o.dnat}` : 'no DNAT', o.snat ? `${o.snat}` : null].filter(Boolean).join(', ');
      io.out(`${(o.probability * 100).toFixed(4).padStart(9)}%  ${o.verdict.padEnd(6)} ${nat}\n           via ${isNft ? o.path.join(' › ') : describePath(o, hook as Hook)}`);
    }
  },
};
