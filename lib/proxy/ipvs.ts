import { cidrHolds, compareIps, parseCidrSloppy, parseIpSloppy } from '../k8s/ip.ts';
import { endpointString, usableEndpoints } from '../k8s/resolve.ts';
import type { EndpointInfo, IpFamily, ServicePortInfo } from '../k8s/types.ts';
import type { IpvsDestination, IpvsService, IpvsState } from '../parse/ipvs-types.ts';
import { isLoopbackText, resolveProxyOptions, type ProxyOptions } from './options.ts';
import { GeneratorInputError, safeServicePorts } from './tokens.ts';

/*
 * What kube-proxy's IPVS proxier (kubernetes pkg/proxy/ipvs/proxier.go, syncProxyRules and
 * writeIptablesRules; set names and comments from pkg/proxy/ipvs/ipset.go) programs on one
 * node: addresses on the dummy interface, ipsets, IPVS virtual servers and a fixed set of
 * iptables rules that does not grow with the number of services; the IPv6 proxier's sets are
 * `family inet6` and named KUBE-6-… (pkg/proxy/ipvs/ipset.go). Where kube-proxy iterates Go
 * maps we sort, so output is byte-for-byte stable.
 */

export type IpsetType = 'hash:ip' | 'hash:ip,port' | 'hash:ip,port,ip' | 'hash:ip,port,net' | 'bitmap:port';

export interface IpvsSetInfo {
  name: string;
  type: IpsetType;
  /** kube-proxy's comment for the set; it appears in iptables rules, not on the set. */
  comment: string;
}

/** kube-proxy's ipsetInfo table, in its order. */
export const IPVS_IPSETS: readonly IpvsSetInfo[] = [
  { name: 'KUBE-LOOP-BACK', type: 'hash:ip,port,ip', comment: 'Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose' },
  { name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port', comment: 'Kubernetes service cluster ip + port for masquerade purpose' },
  { name: 'KUBE-EXTERNAL-IP', type: 'hash:ip,port', comment: 'Kubernetes service external ip + port for masquerade and filter purpose' },
  { name: 'KUBE-EXTERNAL-IP-LOCAL', type: 'hash:ip,port', comment: 'Kubernetes service external ip + port with externalTrafficPolicy=local' },
  { name: 'KUBE-LOAD-BALANCER', type: 'hash:ip,port', comment: 'Kubernetes service lb portal' },
  { name: 'KUBE-LOAD-BALANCER-FW', type: 'hash:ip,port', comment: 'Kubernetes service load balancer ip + port for load balancer with sourceRange' },
  { name: 'KUBE-LOAD-BALANCER-LOCAL', type: 'hash:ip,port', comment: 'Kubernetes service load balancer ip + port with externalTrafficPolicy=local' },
  { name: 'KUBE-LOAD-BALANCER-SOURCE-IP', type: 'hash:ip,port,ip', comment: 'Kubernetes service load balancer ip + port + source IP for packet filter purpose' },
  { name: 'KUBE-LOAD-BALANCER-SOURCE-CIDR', type: 'hash:ip,port,net', comment: 'Kubernetes service load balancer ip + port + source cidr for packet filter purpose' },
  { name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port', comment: 'Kubernetes nodeport TCP port for masquerade purpose' },
  { name: 'KUBE-NODE-PORT-LOCAL-TCP', type: 'bitmap:port', comment: 'Kubernetes nodeport TCP port with externalTrafficPolicy=local' },
  { name: 'KUBE-NODE-PORT-UDP', type: 'bitmap:port', comment: 'Kubernetes nodeport UDP port for masquerade purpose' },
  { name: 'KUBE-NODE-PORT-LOCAL-UDP', type: 'bitmap:port', comment: 'Kubernetes nodeport UDP port with externalTrafficPolicy=local' },
  { name: 'KUBE-NODE-PORT-SCTP-HASH', type: 'hash:ip,port', comment: "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'" },
  { name: 'KUBE-NODE-PORT-LOCAL-SCTP-HASH', type: 'hash:ip,port', comment: "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'" },
  { name: 'KUBE-HEALTH-CHECK-NODE-PORT', type: 'bitmap:port', comment: 'Kubernetes health check node port' },
  { name: 'KUBE-IPVS-IPS', type: 'hash:ip', comment: 'Addresses on the ipvs interface' },
];

/** Set name → ipset type, as kube-proxy creates them (IPv4 names). */
export const ipvsSetTypes: Readonly<Record<string, IpsetType>> = Object.fromEntries(IPVS_IPSETS.map((s) => [s.name, s.type]));

/**
 * The name a set has on the node: the IPv6 proxier's sets start KUBE-6- instead of KUBE-, cut
 * to ipset's 31 characters (KUBE-6-NODE-PORT-LOCAL-SCTP-HASH loses its final H).
 */
export function ipvsSetName(name: string, family: IpFamily): string {
  return family === 'IPv6' && name.startsWith('KUBE-') ? `KUBE-6-${name.slice(5)}`.slice(0, 31) : name;
}

const COMMENT = Object.fromEntries(IPVS_IPSETS.map((s) => [s.name, s.comment]));

/**
 * Sets that get one iptables rule each when they have members (kube-proxy's
 * ipsetWithIptablesChain, in its order: the LOCAL sets come before their non-local twins).
 */
const SET_RULES: readonly { set: string; table: 'nat' | 'filter'; chain: string; target: string; match: string; proto?: string }[] = [
  { set: 'KUBE-LOOP-BACK', table: 'nat', chain: 'KUBE-POSTROUTING', target: 'MASQUERADE', match: 'dst,dst,src' },
  { set: 'KUBE-LOAD-BALANCER', table: 'nat', chain: 'KUBE-SERVICES', target: 'KUBE-LOAD-BALANCER', match: 'dst,dst' },
  { set: 'KUBE-LOAD-BALANCER-LOCAL', table: 'nat', chain: 'KUBE-LOAD-BALANCER', target: 'RETURN', match: 'dst,dst' },
  { set: 'KUBE-NODE-PORT-LOCAL-TCP', table: 'nat', chain: 'KUBE-NODE-PORT', target: 'RETURN', match: 'dst', proto: 'tcp' },
  { set: 'KUBE-NODE-PORT-TCP', table: 'nat', chain: 'KUBE-NODE-PORT', target: 'KUBE-MARK-MASQ', match: 'dst', proto: 'tcp' },
  { set: 'KUBE-NODE-PORT-LOCAL-UDP', table: 'nat', chain: 'KUBE-NODE-PORT', target: 'RETURN', match: 'dst', proto: 'udp' },
  { set: 'KUBE-NODE-PORT-UDP', table: 'nat', chain: 'KUBE-NODE-PORT', target: 'KUBE-MARK-MASQ', match: 'dst', proto: 'udp' },
  { set: 'KUBE-NODE-PORT-LOCAL-SCTP-HASH', table: 'nat', chain: 'KUBE-NODE-PORT', target: 'RETURN', match: 'dst,dst', proto: 'sctp' },
  { set: 'KUBE-NODE-PORT-SCTP-HASH', table: 'nat', chain: 'KUBE-NODE-PORT', target: 'KUBE-MARK-MASQ', match: 'dst,dst', proto: 'sctp' },
  { set: 'KUBE-LOAD-BALANCER-FW', table: 'filter', chain: 'KUBE-PROXY-FIREWALL', target: 'KUBE-SOURCE-RANGES-FIREWALL', match: 'dst,dst' },
  { set: 'KUBE-LOAD-BALANCER-SOURCE-CIDR', table: 'filter', chain: 'KUBE-SOURCE-RANGES-FIREWALL', target: 'RETURN', match: 'dst,dst,src' },
  { set: 'KUBE-LOAD-BALANCER-SOURCE-IP', table: 'filter', chain: 'KUBE-SOURCE-RANGES-FIREWALL', target: 'RETURN', match: 'dst,dst,src' },
];

const NAT_CHAINS = ['KUBE-SERVICES', 'KUBE-POSTROUTING', 'KUBE-NODE-PORT', 'KUBE-LOAD-BALANCER', 'KUBE-MARK-MASQ'];
const FILTER_CHAINS = ['KUBE-FORWARD', 'KUBE-NODE-PORT', 'KUBE-PROXY-FIREWALL', 'KUBE-SOURCE-RANGES-FIREWALL', 'KUBE-IPVS-FILTER', 'KUBE-IPVS-OUT-FILTER'];

/**
 * Jumps from the built-in chains, which kube-proxy adds with `iptables -I` (EnsureRule,
 * Prepend) rather than in its restore input. In kube-proxy's order; each is inserted at the
 * top, so the last one listed for a chain ends up first.
 */
export const IPVS_JUMPS: readonly { table: 'nat' | 'filter'; chain: string; args: readonly string[] }[] = [
  { table: 'nat', chain: 'OUTPUT', args: ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'] },
  { table: 'nat', chain: 'PREROUTING', args: ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'] },
  { table: 'nat', chain: 'POSTROUTING', args: ['-m', 'comment', '--comment', 'kubernetes postrouting rules', '-j', 'KUBE-POSTROUTING'] },
  { table: 'filter', chain: 'FORWARD', args: ['-m', 'comment', '--comment', 'kubernetes forwarding rules', '-j', 'KUBE-FORWARD'] },
  { table: 'filter', chain: 'INPUT', args: ['-m', 'comment', '--comment', 'kubernetes health check rules', '-j', 'KUBE-NODE-PORT'] },
  { table: 'filter', chain: 'INPUT', args: ['-m', 'comment', '--comment', 'kube-proxy firewall rules', '-j', 'KUBE-PROXY-FIREWALL'] },
  { table: 'filter', chain: 'FORWARD', args: ['-m', 'comment', '--comment', 'kube-proxy firewall rules', '-j', 'KUBE-PROXY-FIREWALL'] },
  { table: 'filter', chain: 'INPUT', args: ['-m', 'comment', '--comment', 'kubernetes ipvs access filter', '-j', 'KUBE-IPVS-FILTER'] },
  { table: 'filter', chain: 'OUTPUT', args: ['-m', 'comment', '--comment', 'kubernetes ipvs access filter', '-j', 'KUBE-IPVS-OUT-FILTER'] },
];

export interface IpvsOptions extends ProxyOptions {
  /** kube-proxy --ipvs-scheduler; `rr` by default. */
  scheduler?: string;
}

export interface IpvsRules {
  /** IPv6: the sets are KUBE-6-… `family inet6` and the iptables rules are ip6tables input. */
  family: IpFamily;
  dummyInterface: 'kube-ipvs0';
  /** Every address bound to kube-ipvs0, as `IP/32` (`IP/128`), sorted numerically, unique. */
  dummyAddresses: string[];
  /** `ipset restore` input: all of kube-proxy's sets, then their members. */
  ipsetRestore: string;
  /** `ipvsadm -R` input. */
  ipvsadmRestore: string;
  /** `iptables-restore --noflush` (`ip6tables-restore`) input (nat, then filter), as kube-proxy writes it. */
  iptablesRestore: string;
  /** The IPVS table as `ipvsadm -Ln` would show it, sorted as ipvsadm sorts. */
  ipvs: IpvsState;
  /** Set name on the node → members, sorted. */
  ipsets: Record<string, string[]>;
  counts: {
    ipsetMembers: Record<string, number>;
    virtualServers: number;
    realServers: number;
    iptables: { filter: { chains: number; rules: number }; nat: { chains: number; rules: number } };
  };
  /** Rules of the iptables-restore input per chain, counted as written. */
  iptablesRulesPerChain: { filter: Record<string, number>; nat: Record<string, number> };
}

const PROTO_FLAG: Record<string, string> = { TCP: '-t', UDP: '-u', SCTP: '--sctp-service' };

/** Go's fmt.Sprintf("%#08x", v): kube-proxy's masquerade mark, e.g. 0x00004000. */
function goHex08(v: number): string {
  return `0x${(v >>> 0).toString(16).padStart(8, '0')}`;
}

/** externalTrafficPolicy only matters for services reachable from outside (ExternallyAccessible). */
function externallyAccessible(sp: ServicePortInfo): boolean {
  return sp.type === 'NodePort' || sp.type === 'LoadBalancer' || sp.externalIPs.length > 0;
}

/**
 * Cluster-wide and node-local endpoints the way proxy.CategorizeEndpoints picks them
 * (topology hints aside): ready endpoints, falling back to serving-and-terminating ones.
 */
function categorize(sp: ServicePortInfo): { cluster: EndpointInfo[]; local: EndpointInfo[] } {
  const internalLocal = sp.internalTrafficPolicy === 'Local';
  const externalLocal = externallyAccessible(sp) && sp.externalTrafficPolicy === 'Local';
  // kube-proxy's UsesClusterEndpoints, as in the iptables and nftables generators.
  const usesCluster = !internalLocal || externallyAccessible(sp);
  const usesLocal = internalLocal || externalLocal;
  return {
    cluster: usesCluster ? usableEndpoints(sp.endpoints) : [],
    local: usesLocal ? usableEndpoints(sp.endpoints.filter((e) => e.isLocal)) : [],
  };
}

export function generateIpvs(input: readonly ServicePortInfo[], opts: IpvsOptions = {}): IpvsRules {
  const o = resolveProxyOptions(opts);
  const family = o.ipFamily;
  // From here on every address is a canonical one of the family (tokens.ts).
  const ports = safeServicePorts(input, family);
  const scheduler = opts.scheduler ?? 'rr';
  if (!/^[a-z]{1,16}$/.test(scheduler)) throw new GeneratorInputError('options', 'scheduler', `${JSON.stringify(scheduler)} is not an IPVS scheduler name such as rr`);
  // GetAllLocalAddressesExcept(kube-ipvs0): the node's addresses, without loopback (or IPv6 link-local).
  const nodeAddresses = o.nodeIPs.filter((ip) => !isLoopbackText(ip) && !/^fe[89ab]/.test(ip));
  const nodeAddressSet = new Set(nodeAddresses);
  // Node-port virtual servers: every node address, or those --nodeport-addresses selects.
  const nodePortIPs = o.nodePorts.matchAll ? nodeAddresses : o.nodePorts.ips.filter((ip) => !isLoopbackText(ip));
  const nodeIP = parseIpSloppy(o.nodeIP)!;
  const mark = goHex08(2 ** o.masqueradeBit);
  const name = (set: string) => ipvsSetName(set, family);
  const hostMask = family === 'IPv4' ? 32 : 128;

  const sets = new Map<string, Set<string>>(IPVS_IPSETS.map((s) => [s.name, new Set<string>()]));
  const add = (set: string, entry: string) => sets.get(set)!.add(entry);
  const bound = new Set<string>();
  const services = new Map<string, IpvsService>();
  const lbNoNodeAccess: { ip: string; proto: string; port: number }[] = [];

  const virtualServer = (proto: ServicePortInfo['protocol'], address: string, port: number, sp: ServicePortInfo, eps: EndpointInfo[]) => {
    const key = `${proto} ${endpointString(address, port)}`;
    if (services.has(key)) return; // a second service claiming the same VIP:port changes nothing
    const flags: string[] = [];
    if (scheduler === 'mh') flags.push('(mh-port)');
    if (sp.sessionAffinity === 'ClientIP') flags.push(`persistent ${sp.sessionAffinityTimeoutSeconds}`);
    const seen = new Set<string>();
    const destinations: IpvsDestination[] = [];
    for (const e of eps) {
      const k = endpointString(e.ip, e.port);
      if (seen.has(k)) continue;
      seen.add(k);
      destinations.push({ address: e.ip, port: e.port, forward: 'Masq', weight: 1, activeConn: 0, inactConn: 0 });
    }
    services.set(key, { protocol: proto, address, port, scheduler, flags, destinations });
  };

  for (const sp of ports) {
    const proto = sp.protocol.toLowerCase();
    const { cluster, local } = categorize(sp);
    const pick = (onlyLocal: boolean) => (onlyLocal && local.length > 0 ? local : cluster);
    const externalLocal = externallyAccessible(sp) && sp.externalTrafficPolicy === 'Local';

    // Hairpin: a local endpoint reaching itself through the service is masqueraded.
    for (const e of sp.endpoints) {
      if (e.isLocal) add('KUBE-LOOP-BACK', `${e.ip},${proto}:${e.port},${e.ip}`);
    }

    add('KUBE-CLUSTER-IP', `${sp.clusterIP},${proto}:${sp.port}`);
    virtualServer(sp.protocol, sp.clusterIP, sp.port, sp, pick(sp.internalTrafficPolicy === 'Local'));
    bound.add(sp.clusterIP);

    for (const ip of sp.externalIPs) {
      add(externalLocal ? 'KUBE-EXTERNAL-IP-LOCAL' : 'KUBE-EXTERNAL-IP', `${ip},${proto}:${sp.port}`);
      virtualServer(sp.protocol, ip, sp.port, sp, pick(externalLocal));
      // An address the node already owns is not bound to the dummy interface.
      if (!nodeAddressSet.has(ip)) bound.add(ip);
    }

    for (const ip of sp.loadBalancerIPs) {
      const entry = `${ip},${proto}:${sp.port}`;
      add('KUBE-LOAD-BALANCER', entry);
      if (externalLocal) add('KUBE-LOAD-BALANCER-LOCAL', entry);
      // ipset refuses a /0 member; a range that allows every source is no firewall at all
      // (upstream kube-proxy does the same since kubernetes/kubernetes#132722).
      const ranges = sp.loadBalancerSourceRanges;
      if (ranges.length > 0 && ranges.every((c) => !c.endsWith('/0'))) {
        add('KUBE-LOAD-BALANCER-FW', entry);
        let allowFromNode = false;
        for (const cidr of ranges) {
          add('KUBE-LOAD-BALANCER-SOURCE-CIDR', `${entry},${cidr}`);
          if (cidrHolds(parseCidrSloppy(cidr)!, nodeIP)) allowFromNode = true;
        }
        if (allowFromNode) add('KUBE-LOAD-BALANCER-SOURCE-IP', `${entry},${ip}`);
        else lbNoNodeAccess.push({ ip, proto, port: sp.port });
      }
      virtualServer(sp.protocol, ip, sp.port, sp, pick(externalLocal));
      if (!nodeAddressSet.has(ip)) bound.add(ip);
    }

    if (sp.nodePort) {
      // Without node addresses kube-proxy skips node ports, and, like it, the rest of the loop.
      if (nodePortIPs.length === 0) continue;
      const entries = sp.protocol === 'SCTP' ? nodePortIPs.map((ip) => `${ip},sctp:${sp.nodePort}`) : [String(sp.nodePort)];
      const base = sp.protocol === 'SCTP' ? 'KUBE-NODE-PORT-SCTP-HASH' : `KUBE-NODE-PORT-${sp.protocol}`;
      const localSet = sp.protocol === 'SCTP' ? 'KUBE-NODE-PORT-LOCAL-SCTP-HASH' : `KUBE-NODE-PORT-LOCAL-${sp.protocol}`;
      for (const e of entries) add(base, e);
      if (externalLocal) for (const e of entries) add(localSet, e);
      for (const ip of nodePortIPs) virtualServer(sp.protocol, ip, sp.nodePort, sp, pick(externalLocal));
    }

    // The health check node port is accepted on the node whether or not it has endpoints.
    const hc = sp.healthCheckNodePort ?? 0;
    if (hc !== 0 && sp.type === 'LoadBalancer' && externalLocal) add('KUBE-HEALTH-CHECK-NODE-PORT', String(hc));
  }
  for (const ip of bound) add('KUBE-IPVS-IPS', ip);

  const ipsets: Record<string, string[]> = {};
  for (const s of IPVS_IPSETS) ipsets[name(s.name)] = sortMembers(s.type, [...sets.get(s.name)!]);
  const members = (set: string) => ipsets[name(set)];
  const nonEmpty = (set: string) => members(set).length > 0;

  // ipset restore: every set exists whether or not it has members (the iptables rules name them).
  const inet = family === 'IPv4' ? 'inet' : 'inet6';
  const ipsetLines: string[] = IPVS_IPSETS.map((s) =>
    s.type === 'bitmap:port'
      ? `create ${name(s.name)} bitmap:port range 0-65535`
      : `create ${name(s.name)} ${s.type} family ${inet} hashsize 1024 maxelem 65536`,
  );
  for (const s of IPVS_IPSETS) for (const m of members(s.name)) ipsetLines.push(`add ${name(s.name)} ${m}`);

  // iptables-restore input, in writeIptablesRules' order.
  const q = (s: string) => `"${s}"`;
  // Connections from localhost leave KUBE-SERVICES at once.
  const nat: string[] = [`-A KUBE-SERVICES -s ${family === 'IPv4' ? '127.0.0.0/8' : '::1/128'} -j RETURN`];
  const filter: string[] = [];
  for (const r of SET_RULES) {
    if (!nonEmpty(r.set)) continue;
    const line = `-A ${r.chain}${r.proto ? ` -p ${r.proto}` : ''} -m comment --comment ${q(COMMENT[r.set])} -m set --match-set ${name(r.set)} ${r.match} -j ${r.target}`;
    (r.table === 'nat' ? nat : filter).push(line);
  }
  if (nonEmpty('KUBE-CLUSTER-IP')) {
    const head = `-A KUBE-SERVICES -m comment --comment ${q(COMMENT['KUBE-CLUSTER-IP'])} -m set --match-set ${name('KUBE-CLUSTER-IP')}`;
    if (o.masqueradeAll) nat.push(`${head} dst,dst -j KUBE-MARK-MASQ`);
    else if (o.clusterCIDR !== null) nat.push(`${head} dst,dst ! -s ${o.clusterCIDR} -j KUBE-MARK-MASQ`);
    // No local-traffic detector: masquerade what the node sends from a VIP (kube-ipvs0 holds them all).
    else nat.push(`${head} src,dst -j KUBE-MARK-MASQ`);
  }
  const externalIPRules = (head: string) => {
    nat.push(`${head} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT`);
    nat.push(`${head} -m addrtype --dst-type LOCAL -j ACCEPT`);
  };
  if (nonEmpty('KUBE-EXTERNAL-IP')) {
    const head = `-A KUBE-SERVICES -m comment --comment ${q(COMMENT['KUBE-EXTERNAL-IP'])} -m set --match-set ${name('KUBE-EXTERNAL-IP')} dst,dst`;
    nat.push(`${head} -j KUBE-MARK-MASQ`);
    externalIPRules(head);
  }
  if (nonEmpty('KUBE-EXTERNAL-IP-LOCAL')) {
    externalIPRules(`-A KUBE-SERVICES -m comment --comment ${q(COMMENT['KUBE-EXTERNAL-IP-LOCAL'])} -m set --match-set ${name('KUBE-EXTERNAL-IP-LOCAL')} dst,dst`);
  }
  nat.push('-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT');
  nat.push('-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ');
  filter.push('-A KUBE-SOURCE-RANGES-FIREWALL -j DROP');
  for (const e of lbNoNodeAccess) {
    filter.push(`-A KUBE-IPVS-OUT-FILTER -s ${e.ip} -m ipvs --vaddr ${e.ip} --vproto ${e.proto} --vport ${e.port} -j DROP`);
  }
  // acceptIPVSTraffic: the last rules of KUBE-SERVICES.
  for (const set of ['KUBE-CLUSTER-IP', 'KUBE-LOAD-BALANCER']) {
    if (nonEmpty(set)) nat.push(`-A KUBE-SERVICES -m set --match-set ${name(set)} dst,dst -j ACCEPT`);
  }
  filter.push(`-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${mark}/${mark} -j ACCEPT`);
  filter.push('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
  filter.push(`-A KUBE-NODE-PORT -m comment --comment ${q(COMMENT['KUBE-HEALTH-CHECK-NODE-PORT'])} -m set --match-set ${name('KUBE-HEALTH-CHECK-NODE-PORT')} dst -j ACCEPT`);
  for (const set of ['KUBE-LOAD-BALANCER', 'KUBE-CLUSTER-IP', 'KUBE-EXTERNAL-IP', 'KUBE-EXTERNAL-IP-LOCAL']) {
    filter.push(`-A KUBE-IPVS-FILTER -m set --match-set ${name(set)} dst,dst -j RETURN`);
  }
  filter.push(`-A KUBE-IPVS-FILTER -m set --match-set ${name('KUBE-HEALTH-CHECK-NODE-PORT')} dst -j RETURN`);
  filter.push(`-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set ${name('KUBE-IPVS-IPS')} dst -j REJECT`);
  nat.push(`-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`);
  nat.push(`-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`);
  nat.push('-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully');
  nat.push(`-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`);

  const iptablesRestore = [
    '*nat',
    ...NAT_CHAINS.map((c) => `:${c} - [0:0]`),
    ...nat,
    'COMMIT',
    '*filter',
    ...FILTER_CHAINS.map((c) => `:${c} - [0:0]`),
    ...filter,
    'COMMIT',
  ].join('\n');

  // ipvsadm -R input and the predicted table, in ipvsadm's order.
  const ipvs = sortServices([...services.values()]);
  const ipvsadmLines: string[] = [];
  for (const s of ipvs.services) {
    const vs = `${PROTO_FLAG[s.protocol]} ${endpointString(s.address, s.port)}`;
    const persistent = s.flags.find((f) => f.startsWith('persistent '));
    ipvsadmLines.push(`-A ${vs} -s ${s.scheduler}${scheduler === 'mh' ? ' -b mh-port' : ''}${persistent ? ` -p ${persistent.slice(11)}` : ''}`);
    for (const d of s.destinations) ipvsadmLines.push(`-a ${vs} -r ${endpointString(d.address, d.port)} -m -w ${d.weight}`);
  }

  const ipsetMembers: Record<string, number> = {};
  for (const s of IPVS_IPSETS) ipsetMembers[name(s.name)] = members(s.name).length;
  return {
    family,
    dummyInterface: 'kube-ipvs0',
    dummyAddresses: [...bound].sort(byAddress).map((ip) => `${ip}/${hostMask}`),
    ipsetRestore: `${ipsetLines.join('\n')}\n`,
    ipvsadmRestore: ipvsadmLines.length ? `${ipvsadmLines.join('\n')}\n` : '',
    iptablesRestore: `${iptablesRestore}\n`,
    ipvs,
    ipsets,
    counts: {
      ipsetMembers,
      virtualServers: ipvs.services.length,
      realServers: ipvs.services.reduce((n, s) => n + s.destinations.length, 0),
      iptables: {
        nat: { chains: NAT_CHAINS.length, rules: nat.length },
        filter: { chains: FILTER_CHAINS.length, rules: filter.length },
      },
    },
    iptablesRulesPerChain: { nat: rulesPerChain(nat), filter: rulesPerChain(filter) },
  };
}

const byAddress = (a: string, b: string) => compareIps(parseIpSloppy(a)!, parseIpSloppy(b)!);

/** Each entry of `rules` is one `-A CHAIN …` rule as written. */
function rulesPerChain(rules: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rules) {
    const chain = r.slice(3, r.indexOf(' ', 3));
    out[chain] = (out[chain] ?? 0) + 1;
  }
  return out;
}

/** Members in a stable order: by address numerically, then the rest of the entry. */
function sortMembers(type: IpsetType, members: string[]): string[] {
  if (type === 'bitmap:port') return members.sort((a, b) => Number(a) - Number(b));
  const key = (m: string) => {
    const comma = m.indexOf(',');
    return { ip: comma < 0 ? m : m.slice(0, comma), rest: comma < 0 ? '' : m.slice(comma + 1) };
  };
  return members
    .map((m) => ({ m, k: key(m) }))
    .sort((a, b) => byAddress(a.k.ip, b.k.ip) || (a.k.rest < b.k.rest ? -1 : a.k.rest > b.k.rest ? 1 : 0))
    .map((x) => x.m);
}

const PROTO_NUMBER: Record<string, number> = { TCP: 6, UDP: 17, SCTP: 132 };

/** ipvsadm's listing order: protocol number, then address, then port; real servers by address, port. */
function sortServices(list: IpvsService[]): IpvsState {
  const byAddr = (a: { address: string; port: number }, b: { address: string; port: number }) =>
    byAddress(a.address, b.address) || a.port - b.port;
  return {
    services: list
      .map((s) => ({ ...s, destinations: [...s.destinations].sort(byAddr) }))
      .sort((a, b) => PROTO_NUMBER[a.protocol] - PROTO_NUMBER[b.protocol] || byAddr(a, b)),
  };
}
