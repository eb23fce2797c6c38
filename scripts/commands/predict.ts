import { isProxyMode } from '../../lib/proxy/modes.ts';
import { predictCounts } from '../../lib/sim/counts.ts';
import { predictSplit } from '../../lib/sim/split.ts';
import { UsageError, intOption, printJson, stringOption, type CommandSpec } from '../cli.ts';

export const predict: CommandSpec = {
  summary: 'predict rule counts (and a traffic split) in closed form, per mode',
  usage: 'predict [--mode iptables|ipvs|nftables] --services S --endpoints E [--node-ports N] [--requests N] [--json]',
  options: {
    mode: { type: 'string' },
    services: { type: 'string' },
    endpoints: { type: 'string' },
    'node-ports': { type: 'string' },
    requests: { type: 'string' },
  },
  async run(args, io) {
    const mode = stringOption(args, 'mode') ?? 'all';
    if (mode !== 'all' && !isProxyMode(mode)) throw new UsageError(`--mode must be iptables, ipvs or nftables, got ${JSON.stringify(mode)}`);
    const input = { services: intOption(args, 'services'), endpoints: intOption(args, 'endpoints'), nodePorts: intOption(args, 'node-ports', 0) };
    let counts;
    try {
      counts = predictCounts(mode, input);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const requests = args.values.requests !== undefined ? intOption(args, 'requests') : undefined;
    const modes = mode === 'all' ? (['iptables', 'ipvs', 'nftables'] as const) : [mode];
    const split = requests !== undefined && input.endpoints > 0
      ? Object.fromEntries(modes.map((m) => [m, predictSplit(m, input.endpoints, requests)]))
      : undefined;
    const result = { source: 'predicted' as const, ...input, ...counts, ...(split ? { split } : {}) };
    if (args.values.json) return printJson(io, result);
    io.out(`Predicted for ${input.services} services × ${input.endpoints} endpoints${input.nodePorts ? `, ${input.nodePorts} NodePorts` : ''}:`);
    if (counts.iptables) {
      const c = counts.iptables;
      io.out(`  iptables  nat ${c.nat.rules} rules in ${c.nat.chains} chains; filter ${c.filter.rules} rules in ${c.filter.chains} chains`);
    }
    if (counts.ipvs) {
      const c = counts.ipvs;
      const members = Object.entries(c.ipsetMembers).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ');
      io.out(`  ipvs      ${c.virtualServers} virtual servers, ${c.realServers} real servers, ${c.dummyAddresses} kube-ipvs0 addresses; ipset members: ${members || 'none'}; nat ${c.iptables.nat.rules} rules`);
    }
    if (counts.nftables) {
      const c = counts.nftables;
      io.out(`  nftables  ${c.chains} chains, ${c.rules} rules, ${c.sets} sets, ${c.maps} maps, ${c.elements} elements`);
    }
    for (const [m, s] of Object.entries(split ?? {})) {
      io.out(`\n  ${m}: ${s.basis}`);
      for (const sh of s.shares) io.out(`    endpoint ${sh.index + 1}: p=${sh.probability.toFixed(6)}  expected ${sh.expected.toFixed(1)}  95% [${sh.low}, ${sh.high}]`);
    }
  },
};
