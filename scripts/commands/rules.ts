import { resolveServicePorts, type IpFamily } from '../../lib/k8s/index.ts';
import { generateIptables, builtinJumpsRestore } from '../../lib/proxy/iptables.ts';
import { generateIpvs } from '../../lib/proxy/ipvs.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import { isProxyMode, type ProxyMode } from '../../lib/proxy/modes.ts';
import type { ProxyOptions } from '../../lib/proxy/options.ts';
import { quoteForTerminal } from '../../lib/parse/errors.ts';
import { UsageError, printJson, requiredOption, stringOption, type CommandSpec, type ParsedArgs } from '../cli.ts';
import { MAX_RULES_ENDPOINTS, cidrListOption, cidrOption, clusterFromArgs, clusterOptions, strictCidrFamily, strictIpFamily } from './input.ts';

/** A kind node's addresses on kind's docker network, IPv4 and IPv6 (dual-stack kind). */
const DEFAULT_NODE_IPS = '172.18.0.3,fc00:f853:ccd:e793::3';

/** A Kubernetes node name: a DNS subdomain (lower-case letters, digits, `-` and `.`, at most 253). */
function nodeOption(args: ParsedArgs): string {
  const v = stringOption(args, 'node') ?? 'kind-worker';
  const ok = v.length <= 253 && /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(v);
  if (!ok) throw new UsageError(`--node must be a node name (lower-case letters, digits, "-" and ".", at most 253), got ${quoteForTerminal(v)}`);
  return v;
}

function ipFamilyOption(args: ParsedArgs): IpFamily {
  const v = stringOption(args, 'ip-family') ?? 'ipv4';
  if (v === 'ipv4') return 'IPv4';
  if (v === 'ipv6') return 'IPv6';
  throw new UsageError(`--ip-family must be ipv4 or ipv6, got ${quoteForTerminal(v)}`);
}

/** `IP[,IP]`: the node's addresses, at most one per family (the node IPs kube-proxy reads from its Node). */
function nodeIPsOption(args: ParsedArgs): string[] {
  const v = stringOption(args, 'node-ip') ?? DEFAULT_NODE_IPS;
  const parts = v.split(',');
  const families = parts.map(strictIpFamily);
  const at = families.indexOf(null);
  if (at >= 0 || parts.length > 2) {
    const shown = at >= 0 && parts.length > 1 ? `${quoteForTerminal(parts[at])} in ${quoteForTerminal(v)}` : quoteForTerminal(v);
    throw new UsageError(`--node-ip must be an IPv4 address such as 172.18.0.3, got ${shown} (or an IPv6 one such as fc00:f853:ccd:e793::3; one of each as IP,IP)`);
  }
  if (families.length === 2 && families[0] === families[1]) {
    throw new UsageError(`--node-ip takes one address per IP family, got two ${families[0]} ones in ${quoteForTerminal(v)}`);
  }
  return parts;
}

/** `CIDR[,CIDR]`, one per family, as kube-proxy's --cluster-cidr; '' or --no-local-detector for none. */
function clusterCIDROption(args: ParsedArgs): string | null | undefined {
  const v = stringOption(args, 'cluster-cidr');
  const none = args.values['no-local-detector'] === true;
  if (none && v !== undefined && v !== '') {
    throw new UsageError(`--no-local-detector and --cluster-cidr ${quoteForTerminal(v)} contradict each other: give one of them`);
  }
  if (none || v === '') return null;
  if (v === undefined) return cidrOption(args, 'pod-subnet');
  const parts = v.split(',');
  const families = parts.map(strictCidrFamily);
  if (parts.length > 2 || families.includes(null) || (families.length === 2 && families[0] === families[1])) {
    throw new UsageError(`--cluster-cidr must be an IPv4 CIDR such as 10.244.0.0/16 or an IPv6 one such as fd00:10:244::/56 (one of each as CIDR,CIDR; '' for no local-traffic detector), got ${quoteForTerminal(v)}`);
  }
  return v;
}

function booleanText(args: ParsedArgs, key: string): boolean | undefined {
  const v = stringOption(args, key);
  if (v === undefined) return undefined;
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new UsageError(`--${key} must be true or false, got ${quoteForTerminal(v)}`);
}

function nodePortAddressesOption(args: ParsedArgs): string[] | undefined {
  if (stringOption(args, 'nodeport-addresses') === 'primary') return ['primary'];
  return cidrListOption(args, 'nodeport-addresses', 'CIDR[,CIDR…] such as 172.18.0.0/16, or primary', { max: 16 });
}

/** Flags the chosen mode has no use for, as kube-proxy in that mode would ignore them. */
function unusedFlagNotes(args: ParsedArgs, mode: ProxyMode): string[] {
  const notes: string[] = [];
  if (mode !== 'nftables' && args.values['service-cidr'] !== undefined) {
    notes.push(`# --service-cidr changes nothing in ${mode} mode: only the nftables mode drops traffic to unallocated service IPs`);
  }
  if (mode !== 'iptables' && args.values['localhost-nodeports'] !== undefined) {
    notes.push(`# --localhost-nodeports changes nothing in ${mode} mode: it is kube-proxy's --iptables-localhost-nodeports`);
  }
  return notes;
}

export const rules: CommandSpec = {
  summary: 'print what kube-proxy would program on one node, per mode',
  usage: `rules --mode iptables|ipvs|nftables (--objects FILE | --services S --endpoints E [--node-ports N] [--pod-subnet CIDR] [--kind-defaults])
      [--ip-family ipv4|ipv6] [--node NAME] [--node-ip IP[,IP]] [--cluster-cidr CIDR[,CIDR] | --no-local-detector] [--masquerade-all]
      [--nodeport-addresses CIDR[,CIDR…]|primary] [--localhost-nodeports true|false] [--service-cidr CIDR[,CIDR…]] [--with-jumps] [--json]
  S at most 65,000, S × E at most ${MAX_RULES_ENDPOINTS.toLocaleString('en-US')} (10,000 Services × 10 endpoints: 32 MB of iptables rules); N at most S and 2,768 (NodePorts 30000-32767); FILE at most 128 MiB
  Pods are addressed from --pod-subnet (kind's 10.244.0.0/16 holds 256 nodes × 253 pods; 10,000 × 10 needs a /15 or wider, e.g. --pod-subnet 10.0.0.0/8)
  Defaults: --ip-family ipv4, --node kind-worker, --node-ip ${DEFAULT_NODE_IPS}, --cluster-cidr the pod subnet (kind's: 10.244.0.0/16, fd00:10:244::/56),
  --nodeport-addresses every local address (primary in nftables mode), --localhost-nodeports true (iptables mode), --service-cidr kind's (nftables mode)`,
  readOnly: true,
  options: {
    mode: { type: 'string' },
    ...clusterOptions,
    'ip-family': { type: 'string' },
    'cluster-cidr': { type: 'string' },
    'no-local-detector': { type: 'boolean' },
    'masquerade-all': { type: 'boolean' },
    'service-cidr': { type: 'string' },
    'nodeport-addresses': { type: 'string' },
    'localhost-nodeports': { type: 'string' },
    node: { type: 'string' },
    'node-ip': { type: 'string' },
    'with-jumps': { type: 'boolean' },
  },
  async run(args, io) {
    const mode = requiredOption(args, 'mode');
    if (!isProxyMode(mode)) throw new UsageError(`--mode must be iptables, ipvs or nftables, got ${quoteForTerminal(mode)}`);
    // Every flag is checked before the (possibly large) cluster is read.
    const ipFamily = ipFamilyOption(args);
    const nodeName = nodeOption(args);
    const nodeIPs = nodeIPsOption(args);
    const clusterCIDR = clusterCIDROption(args);
    const nodePortAddresses = nodePortAddressesOption(args);
    const serviceCIDRs = cidrListOption(args, 'service-cidr', 'CIDR[,CIDR…] such as 10.96.0.0/16', { max: 16 });
    const localhostNodePorts = booleanText(args, 'localhost-nodeports');
    const cluster = await clusterFromArgs(args);
    const ports = resolveServicePorts(cluster, { nodeName, ipFamily });
    // --objects can name any number of endpoints; hold it to the same bound as S × E.
    const total = ports.reduce((a, p) => a + Math.max(1, p.endpoints.length), 0);
    if (total > MAX_RULES_ENDPOINTS) {
      throw new UsageError(`the objects hold ${total.toLocaleString('en-US')} service-port endpoints; rules generates for at most ${MAX_RULES_ENDPOINTS.toLocaleString('en-US')}`);
    }
    for (const note of unusedFlagNotes(args, mode)) io.err(note);
    if (ipFamily === 'IPv6' && args.values.services !== undefined) {
      io.err('# synthetic clusters are IPv4 only: the IPv6 proxier has no Services to program (give --objects with IPv6 Services)');
    }
    const opts: ProxyOptions = {
      ipFamily, nodeName, nodeIPs, masqueradeAll: args.values['masquerade-all'] === true,
      ...(clusterCIDR !== undefined ? { clusterCIDR } : {}),
      ...(nodePortAddresses !== undefined ? { nodePortAddresses } : {}),
    };
    const family = { ipFamily };
    if (mode === 'iptables') {
      const r = generateIptables(ports, { ...opts, ...(localhostNodePorts !== undefined ? { localhostNodePorts } : {}) });
      if (args.values.json) return printJson(io, { mode, node: nodeName, ...family, counts: r.counts, builtinJumps: r.builtinJumps, restore: r.restore });
      const tool = ipFamily === 'IPv4' ? 'iptables-restore' : 'ip6tables-restore';
      // kube-proxy ensures its jumps from the built-in chains first, then restores with --noflush;
      // --with-jumps prints both, in that order, as one `iptables-restore --noflush` input.
      if (args.values['with-jumps']) io.out(builtinJumpsRestore(r.builtinJumps));
      else io.err(`# without the jumps from PREROUTING/OUTPUT/POSTROUTING (add --with-jumps, load with ${tool} --noflush)`);
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
        `# --- ${ipFamily === 'IPv4' ? 'iptables-restore' : 'ip6tables-restore'} ---`,
        r.iptablesRestore.trimEnd(),
      ].join('\n'));
      return;
    }
    const r = generateNftables(ports, { ...opts, ...(serviceCIDRs !== undefined ? { serviceCIDRs } : {}) });
    if (args.values.json) return printJson(io, { mode, node: nodeName, ...family, counts: r.counts, nft: r.nft });
    io.out(r.nft);
  },
};
