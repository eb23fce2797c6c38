import { resolveServicePorts } from '../../lib/k8s/index.ts';
import { generateIptables, builtinJumpsRestore } from '../../lib/proxy/iptables.ts';
import { generateIpvs } from '../../lib/proxy/ipvs.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import { isProxyMode } from '../../lib/proxy/modes.ts';
import { UsageError, printJson, requiredOption, stringOption, type CommandSpec } from '../cli.ts';
import { clusterFromArgs, clusterOptions } from './input.ts';

export const rules: CommandSpec = {
  summary: 'print what kube-proxy would program on one node, per mode',
  usage: 'rules --mode iptables|ipvs|nftables (--objects FILE | --services S --endpoints E [--node-ports N] [--kind-defaults]) [--cluster-cidr CIDR] [--node NAME] [--node-ip IP] [--with-jumps] [--json]',
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
    if (!isProxyMode(mode)) throw new UsageError(`--mode must be iptables, ipvs or nftables, got ${JSON.stringify(mode)}`);
    const cluster = await clusterFromArgs(args);
    const nodeName = stringOption(args, 'node') ?? 'kind-worker';
    const ports = resolveServicePorts(cluster, { nodeName });
    const podSubnet = stringOption(args, 'pod-subnet');
    const opts = {
      nodeName,
      nodeIPs: [stringOption(args, 'node-ip') ?? '172.18.0.3'],
      clusterCIDR: stringOption(args, 'cluster-cidr') ?? podSubnet,
    };
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
