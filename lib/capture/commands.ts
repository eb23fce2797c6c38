/**
 * What a capture reads off a node: one command per kind, the tool it needs, the kernel feature
 * behind it, and the parser that turns its output into data. Pure; nothing here runs anything.
 */
import {
  parseConntrack, parseIpAddrJson, parseIpRouteJson, parseIpsetList, parseIptablesList,
  parseIptablesSave, parseIpvsadm, parseNftRuleset, parseProcIpVs,
  type ConntrackTable, type IpLink, type IpRoute, type IpsetState, type IptablesList,
  type IptablesSave, type IpvsState, type NftRuleset,
} from '../parse/index.ts';

export type CaptureKind =
  | 'iptables-save' | 'iptables-nat-list' | 'ipset' | 'ipvsadm' | 'proc-ip-vs'
  | 'nft' | 'ip-route' | 'ip-addr' | 'conntrack';

/** Every kind, in the order a capture runs them. */
export const CAPTURE_KINDS: readonly CaptureKind[] = [
  'iptables-save', 'iptables-nat-list', 'ipset', 'ipvsadm', 'proc-ip-vs', 'nft', 'ip-route', 'ip-addr', 'conntrack',
];

/** The parsed form of each kind, so callers get typed data back. */
export interface CaptureParsed {
  'iptables-save': IptablesSave;
  'iptables-nat-list': IptablesList;
  ipset: IpsetState;
  ipvsadm: IpvsState;
  'proc-ip-vs': IpvsState;
  nft: NftRuleset;
  'ip-route': IpRoute[];
  'ip-addr': IpLink[];
  conntrack: ConntrackTable;
}

export interface ParseOptions {
  /** The node kernel's CONFIG_HZ, for persistence timeouts in /proc/net/ip_vs (default 250). */
  procIpVsHz?: number;
}

export interface CaptureSpec<K extends CaptureKind = CaptureKind> {
  kind: K;
  /** argv as typed on the node. */
  argv: readonly string[];
  /** The binary that must exist on the node (argv[0]). */
  tool: string;
  /** The kernel feature the command reads, named as its Kconfig option. */
  feature: string;
  /** For file reads: a missing file means the kernel lacks the feature. */
  file?: string;
  /** Hint added when the tool is missing: where else the same data can be read. */
  alternative?: string;
  parse(stdout: string, stderr: string, opts: ParseOptions): CaptureParsed[K];
}

/** conntrack prints its "N flow entries have been shown." summary on stderr; keep only those lines. */
function conntrackSummary(stderr: string): string {
  return stderr.split('\n').filter((l) => l.startsWith('conntrack v')).map((l) => `${l}\n`).join('');
}

export const CAPTURE_SPECS: { readonly [K in CaptureKind]: CaptureSpec<K> } = {
  'iptables-save': {
    kind: 'iptables-save', argv: ['iptables-save', '-c'], tool: 'iptables-save', feature: 'NF_TABLES',
    parse: (out) => parseIptablesSave(out),
  },
  'iptables-nat-list': {
    kind: 'iptables-nat-list', argv: ['iptables', '-t', 'nat', '-L', '-n', '-v'], tool: 'iptables', feature: 'NF_TABLES',
    parse: (out) => parseIptablesList(out),
  },
  ipset: {
    kind: 'ipset', argv: ['ipset', 'list'], tool: 'ipset', feature: 'IP_SET',
    alternative: "kube-proxy's own pod on the node ships ipset",
    parse: (out) => parseIpsetList(out),
  },
  ipvsadm: {
    kind: 'ipvsadm', argv: ['ipvsadm', '-Ln', '--stats'], tool: 'ipvsadm', feature: 'IP_VS',
    alternative: '/proc/net/ip_vs holds the same table',
    parse: (out) => parseIpvsadm(out),
  },
  'proc-ip-vs': {
    kind: 'proc-ip-vs', argv: ['cat', '/proc/net/ip_vs'], tool: 'cat', feature: 'IP_VS', file: '/proc/net/ip_vs',
    parse: (out, _err, opts) => parseProcIpVs(out, { hz: opts.procIpVsHz }),
  },
  nft: {
    kind: 'nft', argv: ['nft', 'list', 'ruleset'], tool: 'nft', feature: 'NF_TABLES',
    parse: (out) => parseNftRuleset(out),
  },
  'ip-route': {
    kind: 'ip-route', argv: ['ip', '-j', 'route'], tool: 'ip', feature: 'INET',
    parse: (out) => parseIpRouteJson(out),
  },
  'ip-addr': {
    kind: 'ip-addr', argv: ['ip', '-j', 'addr'], tool: 'ip', feature: 'INET',
    parse: (out) => parseIpAddrJson(out),
  },
  conntrack: {
    kind: 'conntrack', argv: ['conntrack', '-L'], tool: 'conntrack', feature: 'NF_CONNTRACK',
    parse: (out, err) => parseConntrack(out + (out === '' || out.endsWith('\n') ? '' : '\n') + conntrackSummary(err)),
  },
};
