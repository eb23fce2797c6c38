import { quoteForTerminal } from '../../lib/parse/errors.ts';
import { isProxyMode } from '../../lib/proxy/modes.ts';
import { MAX_COUNT_SERVICES, MAX_COUNT_SERVICE_ENDPOINTS, predictCounts } from '../../lib/sim/counts.ts';
import { MAX_SPLIT_ENDPOINTS, MAX_SPLIT_WORK, predictSplit } from '../../lib/sim/split.ts';
import { UsageError, intOption, printJson, stringOption, type CommandSpec } from '../cli.ts';

const n = (x: number) => x.toLocaleString('en-US');

export const predict: CommandSpec = {
  summary: 'predict rule counts (and a traffic split) in closed form, per mode',
  usage: `predict [--mode iptables|ipvs|nftables] --services S --endpoints E [--node-ports N] [--requests R] [--json]
  S at most ${n(MAX_COUNT_SERVICES)}, S × E at most 10^12 (counts stay exact), N at most S;
  with --requests: E from 1 to ${n(MAX_SPLIT_ENDPOINTS)} and R × E at most 10^10 (the split's intervals take time ∝ √(R × E))`,
  readOnly: true,
  options: {
    mode: { type: 'string' },
    services: { type: 'string' },
    endpoints: { type: 'string' },
    'node-ports': { type: 'string' },
    requests: { type: 'string' },
  },
  async run(args, io) {
    const mode = stringOption(args, 'mode') ?? 'all';
    if (mode !== 'all' && !isProxyMode(mode)) throw new UsageError(`--mode must be iptables, ipvs or nftables, got ${quoteForTerminal(mode)}`);
    const services = intOption(args, 'services', undefined, { max: MAX_COUNT_SERVICES });
    const endpoints = intOption(args, 'endpoints', undefined, { max: MAX_COUNT_SERVICE_ENDPOINTS });
    if (services * endpoints > MAX_COUNT_SERVICE_ENDPOINTS) {
      throw new UsageError(`--services × --endpoints must be at most 10^12 so every count stays exact, got ${n(services)} × ${n(endpoints)}`);
    }
    const nodePorts = intOption(args, 'node-ports', 0, { max: services, why: 'at most one NodePort per service' });
    const input = { services, endpoints, nodePorts };
    let counts;
    try {
      counts = predictCounts(mode, input);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    let requests: number | undefined;
    if (args.values.requests !== undefined) {
      requests = intOption(args, 'requests', undefined, { max: MAX_SPLIT_WORK });
      if (endpoints < 1 || endpoints > MAX_SPLIT_ENDPOINTS) {
        throw new UsageError(`--requests predicts how connections split over endpoints: --endpoints must be from 1 to ${n(MAX_SPLIT_ENDPOINTS)} with it, got ${n(endpoints)}`);
      }
      if (requests * endpoints > MAX_SPLIT_WORK) {
        throw new UsageError(`--requests × --endpoints must be at most 10^10 (the split's 95% intervals take time ∝ √(requests × endpoints)), got ${n(requests)} × ${n(endpoints)}`);
      }
    }
    const modes = mode === 'all' ? (['iptables', 'ipvs', 'nftables'] as const) : [mode];
    const r = requests;
    const split = r !== undefined ? Object.fromEntries(modes.map((m) => [m, predictSplit(m, endpoints, r)])) : undefined;
    const result = { source: 'predicted' as const, ...input, ...counts, ...(split ? { split } : {}) };
    if (args.values.json) return printJson(io, result);
    io.out(`Predicted for ${input.services} services × ${input.endpoints} endpoints${input.nodePorts ? `, ${input.nodePorts} NodePorts` : ''}:`);
    if (counts.iptables) {
      const c = counts.iptables;
      io.out(`  iptables  nat ${c.nat.rules} rules in ${c.nat.chains} chains; filter ${c.filter.rules} rules in ${c.filter.chains} chains`);
    }
    if (counts.ipvs) {
      const c = counts.ipvs;
      const members = Object.entries(c.ipsetMembers).filter(([, k]) => k > 0).map(([k, m]) => `${k} ${m}`).join(', ');
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
