import { findTable, parseIpsetAuto, parseIptablesSave, parseIpvsAuto } from '../../lib/parse/index.ts';
import { traceNat, type Hook, type Packet } from '../../lib/trace/index.ts';
import { UsageError, intOption, printJson, requiredOption, stringOption, type CommandSpec } from '../cli.ts';
import { readInputFile } from './input.ts';

export const trace: CommandSpec = {
  summary: 'follow one packet through a captured nat table, with the probability of every outcome',
  usage: 'trace --dump FILE [--ipsets FILE] [--ipvs FILE] --proto tcp|udp|sctp --dst IP --dport PORT [--src IP] [--sport PORT] [--hook PREROUTING|OUTPUT] [--local IP,…] [--json]',
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
    const proto = stringOption(args, 'proto') ?? 'tcp';
    if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') throw new UsageError(`--proto must be tcp, udp or sctp, got ${proto}`);
    const hook = (stringOption(args, 'hook') ?? 'PREROUTING').toUpperCase();
    if (hook !== 'PREROUTING' && hook !== 'OUTPUT') throw new UsageError(`--hook must be PREROUTING or OUTPUT, got ${hook}`);
    const dump = parseIptablesSave(await readInputFile(requiredOption(args, 'dump')));
    const nat = findTable(dump, 'nat');
    if (!nat) throw new UsageError('the dump has no *nat table (capture it with iptables-save, or iptables-save -t nat)');
    const ipsetsFile = stringOption(args, 'ipsets');
    const ipvsFile = stringOption(args, 'ipvs');
    const packet: Packet = {
      protocol: proto,
      // A pod in kind's pod subnet is the usual client.
      src: stringOption(args, 'src') ?? '10.244.1.100',
      dst: requiredOption(args, 'dst'),
      dport: intOption(args, 'dport'),
      sport: args.values.sport !== undefined ? intOption(args, 'sport') : 40000,
    };
    const result = traceNat({
      nat,
      packet,
      hook: hook as Hook,
      localAddresses: stringOption(args, 'local')?.split(',').filter(Boolean) ?? [],
      ipsets: ipsetsFile ? parseIpsetAuto(await readInputFile(ipsetsFile)) : undefined,
      ipvs: ipvsFile ? parseIpvsAuto(await readInputFile(ipvsFile)) : undefined,
      postrouting: args.values['no-postrouting'] ? false : undefined,
    });
    if (args.values.json) {
      printJson(io, {
        packet: result.packet,
        hook: result.hook,
        outcomes: result.outcomes.map((o) => ({
          probability: o.probability, verdict: o.verdict, dnat: o.dnat, snat: o.snat, mark: `0x${o.mark.toString(16)}`, path: o.path,
          rules: o.steps.map((s) => ({ chain: s.chain, line: s.line, rule: s.text })),
          ...(o.ipvs ? { ipvs: o.ipvs } : {}),
        })),
      });
      return;
    }
    io.out(`${packet.protocol} ${packet.src}:${packet.sport} → ${packet.dst}:${packet.dport}, entering nat ${hook}`);
    for (const o of [...result.outcomes].sort((a, b) => b.probability - a.probability)) {
      const nat = [o.dnat ? `DNAT → ${o.dnat}` : 'no DNAT', o.snat ? `${o.snat}` : null].filter(Boolean).join(', ');
      io.out(`${(o.probability * 100).toFixed(4).padStart(9)}%  ${o.verdict.padEnd(6)} ${nat}\n           via ${o.path.join(' › ')}`);
    }
  },
};
