import { isIpv4, isIpv6 } from '../../lib/parse/addr.ts';
import { quoteForTerminal } from '../../lib/parse/errors.ts';
import { findTable, parseIpsetAuto, parseIptablesSave, parseIpvsAuto } from '../../lib/parse/index.ts';
import { traceNat, type Hook, type Packet } from '../../lib/trace/index.ts';
import { UsageError, intOption, printJson, requiredOption, stringOption, type CommandSpec, type ParsedArgs } from '../cli.ts';
import { readInputFile } from './input.ts';

/** Why a value is not an IPv4 address, in words, or null when it is one. */
function notIpv4(v: string): string | null {
  if (isIpv4(v)) return null;
  if (isIpv6(v)) return 'IPv6 is not traced: the tracer follows iptables (IPv4) rules';
  if (/^[A-Za-z]/.test(v) && !v.includes(' ')) return 'names are not resolved: give the address';
  return 'an IPv4 address is four numbers 0-255 joined by dots, such as 10.96.0.10';
}

function ipv4Option(args: ParsedArgs, key: string, fallback?: string): string {
  const v = fallback === undefined ? requiredOption(args, key) : (stringOption(args, key) ?? fallback);
  const why = notIpv4(v);
  if (why) throw new UsageError(`--${key} must be an IPv4 address, got ${quoteForTerminal(v)} (${why})`);
  return v;
}

/** `--local 172.18.0.3,10.0.0.1`: every item an IPv4 address, none empty. */
function localOption(args: ParsedArgs): string[] {
  const v = stringOption(args, 'local');
  if (v === undefined) return [];
  return v.split(',').map((item, i) => {
    const why = item === '' ? 'an empty item' : notIpv4(item);
    if (why) throw new UsageError(`--local must be IPv4 addresses separated by commas, got ${quoteForTerminal(v)} (item ${i + 1}, ${quoteForTerminal(item)}: ${why})`);
    return item;
  });
}

const PORT = { min: 1, max: 65535 };

export const trace: CommandSpec = {
  summary: 'follow one packet through a captured nat table, with the probability of every outcome',
  usage: `trace --dump FILE [--ipsets FILE] [--ipvs FILE] [--proto tcp|udp|sctp] --dst IP --dport PORT [--src IP] [--sport PORT] [--hook PREROUTING|OUTPUT] [--local IP,…] [--no-postrouting] [--json]
  IP: IPv4 (dotted quad); PORT: 1-65535; FILE: iptables-save output (- for standard input), at most 64 MiB`,
  readOnly: true,
  options: {
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
    // Every option is checked before any file is read, so a typo costs nothing.
    const proto = stringOption(args, 'proto') ?? 'tcp';
    if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') throw new UsageError(`--proto must be tcp, udp or sctp, got ${quoteForTerminal(proto)}`);
    const rawHook = stringOption(args, 'hook') ?? 'PREROUTING';
    const hook = rawHook.toUpperCase();
    if (hook !== 'PREROUTING' && hook !== 'OUTPUT') throw new UsageError(`--hook must be PREROUTING or OUTPUT, got ${quoteForTerminal(rawHook)}`);
    const packet: Packet = {
      protocol: proto,
      // A pod in kind's pod subnet is the usual client.
      src: ipv4Option(args, 'src', '10.244.1.100'),
      dst: ipv4Option(args, 'dst'),
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

    const dump = parseIptablesSave(await readInputFile(dumpFile));
    const nat = findTable(dump, 'nat');
    if (!nat) throw new UsageError('the dump has no *nat table (capture it with iptables-save, or iptables-save -t nat)');
    const result = traceNat({
      nat,
      packet,
      hook: hook as Hook,
      localAddresses,
      ipsets: ipsetsFile ? parseIpsetAuto(await readInputFile(ipsetsFile)) : undefined,
      ipvs: ipvsFile ? parseIpvsAuto(await readInputFile(ipvsFile)) : undefined,
      postrouting: args.values['no-postrouting'] ? false : undefined,
    });
    if (args.values.json) {
      return printJson(io, {
        packet: result.packet,
        hook: result.hook,
        outcomes: result.outcomes.map((o) => ({
          probability: o.probability, verdict: o.verdict, dnat: o.dnat, snat: o.snat, mark: `0x${o.mark.toString(16)}`, path: o.path,
          rules: o.steps.map((s) => ({ chain: s.chain, line: s.line, rule: s.text })),
          ...(o.ipvs ? { ipvs: o.ipvs } : {}),
        })),
      });
    }
    io.out(`${packet.protocol} ${packet.src}:${packet.sport} → ${packet.dst}:${packet.dport}, entering nat ${hook}`);
    for (const o of [...result.outcomes].sort((a, b) => b.probability - a.probability)) {
      const nat = [o.dnat ? `DNAT → ${o.dnat}` : 'no DNAT', o.snat ? `${o.snat}` : null].filter(Boolean).join(', ');
      io.out(`${(o.probability * 100).toFixed(4).padStart(9)}%  ${o.verdict.padEnd(6)} ${nat}\n           via ${o.path.join(' › ')}`);
    }
  },
};
