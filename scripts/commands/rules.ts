import { resolveServicePorts } from '../../lib/k8s/index.ts';
import { generateIptables, builtinJumpsRestore } from '../../lib/proxy/iptables.ts';
import { generateIpvs } from '../../lib/proxy/ipvs.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import { isProxyMode } from '../../lib/proxy/modes.ts';
import { isIpv4 } from '../../lib/parse/addr.ts';
import { quoteForTerminal } from '../../lib/parse/errors.ts';
import { UsageError, printJson, requiredOption, stringOption, type CommandSpec, type ParsedArgs } from '../cli.ts';
import { MAX_RULES_ENDPOINTS, cidrOption, clusterFromArgs, clusterOptions } from './input.ts';

/** A Kubernetes node name: a DNS subdomain (lower-case letters, digits, `-` and `.`, at most 253). */
function nodeOption(args: ParsedArgs): string {
  const v = stringOption(args, 'node') ?? 'kind-worker';
  const ok = v.length <= 253 && /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(v);
  if (!ok) throw new UsageError(`--node must be a node name (lower-case letters, digits, "-" and ".", at most 253), got ${quoteForTerminal(v)}`);
  return v;
}

export const rules: CommandSpec = {
  summary: 'print what kube-proxy would program on one node, per mode',
  usage: `rules --mode iptables|ipvs|nftables (--objects FILE | --services S --endpoints E [--node-ports N] [--pod-subnet CIDR] [--kind-defaults]) [--cluster-cidr CIDR] [--node NAME] [--node-ip IP] [--with-jumps] [--json]
  S at most 65,000, S × E at most ${MAX_RULES_ENDPOINTS.toLocaleString('en-US')} (10,000 Services × 10 endpoints: 32 MB of iptables rules); N at most S and 2,768 (NodePorts 30000-32767); FILE at most 128 MiB`,
  readOnly: true,
  options: {
    mode: { type: 'string' },
    ...clusterOptions,
    'cluster-cidr': { type: 'string' },
    node: { type: 'string' },
    'node-ip': { type: 'string' },
    'with-jumps': { type: 'boolean' },
  },
  async run(args, io) {
    const mode = requiredOption(args, 'mode');
    if (!isProxyMode(mode)) throw new UsageError(`--mode must be iptables, ipvs or nftables, got ${quoteForTerminal(mode)}`);
    const cluster = await clusterFromArgs(args);
    const nodeName = nodeOption(args);
    const nodeIP = stringOption(args, 'node-ip') ?? '172.18.0.3';
    if (!isIpv4(nodeIP)) throw new UsageError(`--node-ip must be an IPv4 address such as 172.18.0.3, got ${quoteForTerminal(nodeIP)}`);
    const clusterCIDR = cidrOption(args, 'cluster-cidr') ?? cidrOption(args, 'pod-subnet');
    const ports = resolveServicePorts(cluster, { nodeName });
    // --objects can name any number of endpoints; hold it to the same bound as S × E.
    const total = ports.reduce((a, p) => a + Math.max(1, p.endpoints.length), 0);
    if (total > MAX_RULES_ENDPOINTS) {
      throw new UsageError(`the objects hold ${total.toLocaleString('en-US')} service-port endpoints; rules generates for at most ${MAX_RULES_ENDPOINTS.toLocaleString('en-US')}`);
    }
    const opts = { nodeName, nodeIPs: [nodeIP], clusterCIDR };
    if (mode === 'iptables') {
      const r = generateIptables(ports, opts);
      if (args.values.json) return printJson(io, { mode, node: nodeName, counts: r.counts, builtinJumps: r.builtinJumps, restore: r.restore });
      // kube-proxy ensures its jumps from the built-in chains first, then restores with --noflush;
      // --with-jumps prints both, in that order, as one `iptables-restore --noflush` input.
      if (args.values['with-jumps']) io.out(builtinJumpsRestore(r.builtinJumps));
      else io.err('# without the jumps from PREROUTING/OUTPUT/POSTROUTING (add --with-jumps, load with iptables-restore --noflush)');
      io.out(r.restore);
      return;
    }
    if (mode === 'ipvs') {
      const r = generateIpvs(ports, opts);
      if (args.values.json) return printJson(io, { mode, node: nodeName, ...r });
      io.out([
        `# ip link add kube-ipvs0 type dummy; then for each address: ip addr add ADDR dev kube-ipvs0`,
        ...r.dummyAddresses.map((a) => `#   ${a}`),
        '# --- ipset restore ---',
        r.ipsetRestore.trimEnd(),
        '# --- ipvsadm -R ---',
        r.ipvsadmRestore.trimEnd(),
        '# --- iptables-restore ---',
        r.iptablesRestore.trimEnd(),
      ].join('\n'));
      return;
    }
    const r = generateNftables(ports, opts);
    if (args.values.json) return printJson(io, { mode, node: nodeName, counts: r.counts, nft: r.nft });
    io.out(r.nft);
  },
};
