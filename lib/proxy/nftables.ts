import { cidrHolds, parseCidrSloppy, parseIpSloppy } from '../k8s/ip.ts';
import { endpointString, usableEndpoints } from '../k8s/resolve.ts';
import type { EndpointInfo, IpFamily, ServicePortInfo } from '../k8s/types.ts';
import { hashAndTruncate } from './names.ts';
import { KIND_SERVICE_SUBNET, isLoopbackText, resolveProxyOptions, type ProxyOptions } from './options.ts';
import { GeneratorInputError, cidrToken, safeServicePorts } from './tokens.ts';

/**
 * kube-proxy's nftables mode (kubernetes pkg/proxy/nftables/proxier.go: setupNFTables and
 * syncProxyRules), modelled on the release whose TestOverallNFTablesRules expects base chains
 * `filter-prerouting-pre-dnat`/`filter-output-pre-dnat` (priority dstnat-10) and per-endpoint
 * chains dispatched by `numgen random mod N vmap`.
 */

export const KUBE_PROXY_TABLE = 'kube-proxy';

export interface NftablesOptions extends ProxyOptions {
  /**
   * Service CIDRs (the cluster's ServiceCIDR objects), of either family; traffic to unallocated
   * addresses in those of the proxier's family is dropped by cluster-ips-check. Defaults to
   * kind's service subnet of the family; none of the family omits the rule, as upstream does.
   */
  serviceCIDRs?: string[];
}

/**
 * What the generated text creates, counted from the objects written (not by re-reading text):
 * - chains: `add chain` statements (base chains included); each names a distinct chain.
 * - rules: `add rule` statements.
 * - sets: `add set` statements (cluster-ips, nodeport-ips when written, affinity-* sets).
 * - maps: `add map` statements (the five verdict maps).
 * - elements: distinct keys added to sets and maps by `add element` (a ClusterIP shared by
 *   several ports is one element of cluster-ips).
 * The `add table`/`delete table` preamble is not counted.
 */
export interface NftablesCounts {
  chains: number;
  rules: number;
  sets: number;
  maps: number;
  elements: number;
}

export interface NftablesRules {
  /** The table's family: `ip` for the IPv4 proxier, `ip6` for the IPv6 one. */
  family: 'ip' | 'ip6';
  /** Complete `nft -f` input for table `ip kube-proxy` (`ip6 kube-proxy` in IPv6). */
  nft: string;
  counts: NftablesCounts;
  /** Rules per chain, as written (chains without rules are absent). */
  rulesPerChain: Record<string, number>;
  /** Distinct elements per set or map, as written (empty ones are absent). */
  elementsPerSet: Record<string, number>;
}

/** The kernel refuses longer comments (NFT_USERDATA_MAXLEN); upstream kube-proxy cuts them too. */
export const NFT_COMMENT_MAX = 128;

// Base chains: name, type, hook, priority. Filter chains that look at pre-DNAT addresses
// run just before DNAT (dstnat - 10 = -110); the others at the standard priorities.
const BASE_CHAINS: ReadonlyArray<readonly [string, 'filter' | 'nat', string, number]> = [
  ['filter-prerouting-pre-dnat', 'filter', 'prerouting', -110],
  ['filter-output-pre-dnat', 'filter', 'output', -110],
  ['filter-input', 'filter', 'input', 0],
  ['filter-forward', 'filter', 'forward', 0],
  ['filter-output', 'filter', 'output', 0],
  ['nat-prerouting', 'nat', 'prerouting', -100],
  ['nat-output', 'nat', 'output', -100],
  ['nat-postrouting', 'nat', 'postrouting', 100],
];

// Regular chains jumped to from base chains: [destination, source, match]. The order fixes
// the rule order inside each base chain (checked against TestOverallNFTablesRules).
const JUMP_CHAINS: ReadonlyArray<readonly [string, string, string]> = [
  ['nodeport-endpoints-check', 'filter-input', 'ct state new'],
  ['service-endpoints-check', 'filter-input', 'ct state new'],
  ['service-endpoints-check', 'filter-forward', 'ct state new'],
  ['service-endpoints-check', 'filter-output', 'ct state new'],
  ['firewall-check', 'filter-prerouting-pre-dnat', 'ct state new'],
  ['firewall-check', 'filter-output-pre-dnat', 'ct state new'],
  ['services', 'nat-output', ''],
  ['services', 'nat-prerouting', ''],
  ['masquerading', 'nat-postrouting', ''],
  ['cluster-ips-check', 'filter-forward', 'ct state new'],
  ['cluster-ips-check', 'filter-output', 'ct state new'],
];

const PROTO_PORT = 'inet_proto . inet_service : verdict';

/** What differs between the IPv4 and IPv6 proxier's text (setupNFTables' ipX, ipvX_addr, noLocalhost). */
interface Family {
  table: 'ip' | 'ip6';
  /** `ip` or `ip6`, before daddr/saddr. */
  ipX: 'ip' | 'ip6';
  addrType: 'ipv4_addr' | 'ipv6_addr';
  noLocalhost: string;
}

const FAMILIES: Record<IpFamily, Family> = {
  IPv4: { table: 'ip', ipX: 'ip', addrType: 'ipv4_addr', noLocalhost: 'ip daddr != 127.0.0.0/8' },
  IPv6: { table: 'ip6', ipX: 'ip6', addrType: 'ipv6_addr', noLocalhost: 'ip6 daddr != ::1' },
};

/** nft names longer than this are truncated by hashAndTruncate (256 minus the longest prefix). */
const CHAIN_NAME_BASE_MAX = 256 - 16;

/** `ns/name/proto/port`, hashed: the suffix of service-, local-, external- and firewall- chains. */
export function servicePortChainBase(p: Pick<ServicePortInfo, 'namespace' | 'name' | 'protocol' | 'portName'>): string {
  return hashAndTruncate(`${p.namespace}/${p.name}/${p.protocol.toLowerCase()}/${p.portName}`, CHAIN_NAME_BASE_MAX);
}

/** `ns/name/proto/port__ip/port`, hashed: the suffix of endpoint- chains and affinity- sets. */
export function endpointChainBase(
  p: Pick<ServicePortInfo, 'namespace' | 'name' | 'protocol' | 'portName'>,
  ep: Pick<EndpointInfo, 'ip' | 'port'>,
): string {
  // IPv6 colons are not allowed in chain names; upstream swaps them for dots (no brackets).
  const ip = ep.ip.replaceAll(':', '.');
  return hashAndTruncate(`${p.namespace}/${p.name}/${p.protocol.toLowerCase()}/${p.portName}__${ip}/${ep.port}`, CHAIN_NAME_BASE_MAX);
}

export const nftServiceChain = (p: ServicePortInfo) => `service-${servicePortChainBase(p)}`;
export const nftEndpointChain = (p: ServicePortInfo, ep: Pick<EndpointInfo, 'ip' | 'port'>) => `endpoint-${endpointChainBase(p, ep)}`;

/** The endpoint sets kube-proxy's CategorizeEndpoints computes (without topology hints). */
export interface CategorizedEndpoints {
  cluster: EndpointInfo[];
  local: EndpointInfo[];
  /** Endpoints that get an endpoint chain: the union of the two in use, sorted by ip:port. */
  reachable: EndpointInfo[];
  /** Some endpoint anywhere can take traffic. */
  hasAny: boolean;
}

export function externallyAccessible(p: ServicePortInfo): boolean {
  return p.nodePort !== null || p.externalIPs.length > 0 || p.loadBalancerIPs.length > 0;
}

export function categorizeEndpoints(p: ServicePortInfo): CategorizedEndpoints {
  const internalLocal = p.internalTrafficPolicy === 'Local';
  const external = externallyAccessible(p);
  const externalLocal = external && p.externalTrafficPolicy === 'Local';
  // kube-proxy's UsesClusterEndpoints: an external destination needs the cluster chain even with
  // externalTrafficPolicy Local, for the short-circuit rules of pod and node traffic.
  const usesCluster = !internalLocal || external;
  const usesLocal = internalLocal || externalLocal;
  const cluster = usesCluster ? usableEndpoints(p.endpoints) : [];
  const local = usesLocal ? usableEndpoints(p.endpoints.filter((e) => e.isLocal)) : [];
  let hasAny = cluster.length > 0;
  if (usesLocal && !hasAny) hasAny = p.endpoints.some((e) => e.ready || (e.serving && e.terminating));
  const byKey = new Map<string, EndpointInfo>();
  for (const e of [...cluster, ...local]) byKey.set(endpointString(e.ip, e.port), e);
  const reachable = [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
  return { cluster, local, reachable, hasAny };
}

/** Accumulates statements and counts what they create. */
class Tx {
  readonly lines: string[] = [];
  readonly counts: NftablesCounts = { chains: 0, rules: 0, sets: 0, maps: 0, elements: 0 };
  readonly rulesPerChain: Record<string, number> = {};
  readonly elementsPerSet: Record<string, number> = {};
  private readonly prefix: string;
  constructor(family: Family) {
    this.prefix = `${family.table} ${KUBE_PROXY_TABLE}`;
  }

  raw(line: string): void {
    this.lines.push(line);
  }
  chain(name: string, spec?: string): void {
    this.lines.push(`add chain ${this.prefix} ${name}${spec ? ` { ${spec} ; }` : ''}`);
    this.counts.chains++;
  }
  rule(chain: string, rule: string, comment?: string): void {
    this.lines.push(`add rule ${this.prefix} ${chain} ${rule}${comment ? ` comment ${quote(comment)}` : ''}`);
    this.counts.rules++;
    this.rulesPerChain[chain] = (this.rulesPerChain[chain] ?? 0) + 1;
  }
  set(name: string, spec: string): void {
    this.lines.push(`add set ${this.prefix} ${name} { ${spec} ; }`);
    this.counts.sets++;
  }
  map(name: string, spec: string): void {
    this.lines.push(`add map ${this.prefix} ${name} { ${spec} ; }`);
    this.counts.maps++;
  }
  private readonly keys = new Set<string>();
  element(container: string, key: string, value?: string, comment?: string): void {
    // Ports of one service share its ClusterIP; like upstream's element storage, add it once.
    const id = `${container} ${key}`;
    if (this.keys.has(id)) return;
    this.keys.add(id);
    const c = comment ? ` comment ${quote(comment)}` : '';
    this.lines.push(`add element ${this.prefix} ${container} { ${key}${c}${value ? ` : ${value}` : ''} }`);
    this.counts.elements++;
    this.elementsPerSet[container] = (this.elementsPerSet[container] ?? 0) + 1;
  }
}

function quote(s: string): string {
  // Comments are fixed text or a service port name (tokens.ts allows no quote in those).
  return `"${s.slice(0, NFT_COMMENT_MAX)}"`;
}

/**
 * The `nft -f` input kube-proxy's nftables proxier writes on one node for these service
 * ports. Pure and deterministic: same ports and options, same text.
 */
export function generateNftables(input: readonly ServicePortInfo[], opts: NftablesOptions = {}): NftablesRules {
  // kube-proxy defaults --nodeport-addresses to "primary" in nftables mode.
  const o = resolveProxyOptions(opts, { nodePortAddresses: ['primary'] });
  const fam = FAMILIES[o.ipFamily];
  const { ipX, addrType } = fam;
  const ports = safeServicePorts(input, o.ipFamily);
  const mark = o.masqueradeMark;
  if (opts.serviceCIDRs !== undefined && !Array.isArray(opts.serviceCIDRs)) {
    throw new GeneratorInputError('options', 'serviceCIDRs', `expected a list of CIDRs, got ${JSON.stringify(opts.serviceCIDRs)}`);
  }
  const serviceCIDRs = (opts.serviceCIDRs ?? [KIND_SERVICE_SUBNET[o.ipFamily]])
    .map((c, i) => cidrToken(c, o.ipFamily, 'options', `serviceCIDRs[${i}]`))
    .filter((c): c is string => c !== null);
  const matchAllNodePorts = o.nodePorts.matchAll;
  // Localhost NodePorts are not supported in nftables mode; matching every address needs no set.
  const nodePortIPs = matchAllNodePorts ? [] : o.nodePorts.ips.filter((ip) => !isLoopbackText(ip));
  const tx = new Tx(fam);
  const table = `${fam.table} ${KUBE_PROXY_TABLE}`;
  const addrProtoPort = `${addrType} . inet_proto . inet_service : verdict`;

  // A self-contained file: add+delete makes the delete safe when the table is absent, and the
  // whole file is one atomic transaction, so packets never see a half-built table. kube-proxy
  // itself never deletes the table: sync.ts's nftFullSyncTx reshapes this into its transaction.
  tx.raw(`add table ${table}`);
  tx.raw(`delete table ${table}`);
  tx.raw(`add table ${table} { comment "rules for kube-proxy" ; }`);

  for (const [name, type, hook, prio] of BASE_CHAINS) tx.chain(name, `type ${type} hook ${hook} priority ${prio}`);
  const created = new Set<string>();
  for (const [dst] of JUMP_CHAINS) {
    if (!created.has(dst)) tx.chain(dst);
    created.add(dst);
  }
  for (const c of ['mark-for-masquerade', 'firewall-check']) if (!created.has(c)) tx.chain(c);
  tx.chain('reject-chain', 'comment "helper for @no-endpoint-services / @no-endpoint-nodeports"');

  tx.set('cluster-ips', `type ${addrType} ; comment "Active ClusterIPs"`);
  if (!matchAllNodePorts) tx.set('nodeport-ips', `type ${addrType} ; comment "IPs that accept NodePort traffic"`);
  tx.map('no-endpoint-services', `type ${addrProtoPort} ; comment "vmap to drop or reject packets to services with no endpoints"`);
  tx.map('no-endpoint-nodeports', `type ${PROTO_PORT} ; comment "vmap to drop or reject packets to service nodeports with no endpoints"`);
  tx.map('firewall-ips', `type ${addrProtoPort} ; comment "destinations that are subject to LoadBalancerSourceRanges"`);
  tx.map('service-ips', `type ${addrProtoPort} ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"`);
  tx.map('service-nodeports', `type ${PROTO_PORT} ; comment "NodePort traffic"`);

  for (const [dst, src, match] of JUMP_CHAINS) tx.rule(src, `${match ? `${match} ` : ''}jump ${dst}`);
  tx.rule('mark-for-masquerade', `mark set mark or ${mark}`);
  tx.rule('masquerading', `mark and ${mark} == 0 return`);
  tx.rule('masquerading', `mark set mark xor ${mark}`);
  tx.rule('masquerading', 'masquerade fully-random');
  tx.rule('cluster-ips-check', `${ipX} daddr @cluster-ips reject`, 'Reject traffic to invalid ports of ClusterIPs');
  if (serviceCIDRs.length > 0) {
    tx.rule('cluster-ips-check', `${ipX} daddr { ${serviceCIDRs.join(', ')} } drop`, 'Drop traffic to unallocated ClusterIPs');
  }
  for (const ip of nodePortIPs) tx.element('nodeport-ips', ip);
  tx.rule('reject-chain', 'reject');
  tx.rule('service-endpoints-check', `${ipX} daddr . meta l4proto . th dport vmap @no-endpoint-services`);
  // Matching every local address, NodePorts answer on all of them but loopback.
  const nodePortMatch = matchAllNodePorts ? fam.noLocalhost : `${ipX} daddr @nodeport-ips`;
  tx.rule('nodeport-endpoints-check', `${nodePortMatch} meta l4proto . th dport vmap @no-endpoint-nodeports`);
  tx.rule('firewall-check', `${ipX} daddr . meta l4proto . th dport vmap @firewall-ips`);
  tx.rule('services', `${ipX} daddr . meta l4proto . th dport vmap @service-ips`);
  tx.rule('services', `${matchAllNodePorts ? `fib daddr type local ${fam.noLocalhost}` : `${ipX} daddr @nodeport-ips`} meta l4proto . th dport vmap @service-nodeports`);

  for (const p of ports) writeServicePort(tx, p, fam, o.clusterCIDR, o.masqueradeAll, o.nodeIP);

  return {
    family: fam.table,
    nft: `${tx.lines.join('\n')}\n`,
    counts: tx.counts,
    rulesPerChain: { ...tx.rulesPerChain },
    elementsPerSet: { ...tx.elementsPerSet },
  };
}

function writeServicePort(tx: Tx, p: ServicePortInfo, fam: Family, clusterCIDR: string | null, masqueradeAll: boolean, nodeIP: string): void {
  const { ipX, addrType } = fam;
  const proto = p.protocol.toLowerCase();
  const base = servicePortChainBase(p);
  const clusterChain = `service-${base}`;
  const localChain = `local-${base}`;
  const externalChain = `external-${base}`;
  const fwChain = `firewall-${base}`;
  const spn = p.servicePortName;
  const eps = categorizeEndpoints(p);
  const affinity = p.sessionAffinity === 'ClientIP';
  const external = externallyAccessible(p);
  const internalLocal = p.internalTrafficPolicy === 'Local';
  const externalLocal = external && p.externalTrafficPolicy === 'Local';
  const usesClusterChain = eps.cluster.length > 0;
  const usesLocalChain = eps.local.length > 0;
  const internalChain = internalLocal ? localChain : clusterChain;
  const hasInternal = eps.hasAny && (!internalLocal || eps.local.length > 0);
  const externalPolicyChain = externalLocal ? localChain : clusterChain;
  const hasExternal = eps.hasAny && (!externalLocal || eps.local.length > 0);
  const usesExternalChain = eps.hasAny && external;
  const lbRanges = p.loadBalancerSourceRanges;
  const usesFw = p.loadBalancerIPs.length > 0 && lbRanges.length > 0;
  // No endpoints at all: reject. Endpoints, but none for this kind of traffic here: drop.
  const internalVerdict = eps.hasAny ? 'drop' : 'goto reject-chain';
  const externalVerdict = internalVerdict;
  const epChain = (e: EndpointInfo) => `endpoint-${endpointChainBase(p, e)}`;
  const affinitySet = (e: EndpointInfo) => `affinity-${endpointChainBase(p, e)}`;
  const key = (ip: string) => `${ip} . ${proto} . ${p.port}`;

  // Objects first: nft resolves chain and set references as it reads the file.
  if (affinity) {
    for (const e of eps.reachable) {
      tx.set(affinitySet(e), `type ${addrType} ; flags dynamic,timeout ; timeout ${p.sessionAffinityTimeoutSeconds}s`);
    }
  }
  if (usesClusterChain) tx.chain(clusterChain);
  if (usesLocalChain) tx.chain(localChain);
  if (usesExternalChain) tx.chain(externalChain);
  if (usesFw) tx.chain(fwChain);
  for (const e of eps.reachable) tx.chain(epChain(e));

  // Internal traffic: masquerade all of it, or what comes from outside the cluster CIDR; with
  // no local-traffic detector, none of it.
  if (hasInternal) {
    if (masqueradeAll) tx.rule(internalChain, `${ipX} daddr ${p.clusterIP} jump mark-for-masquerade`);
    else if (clusterCIDR !== null) tx.rule(internalChain, `${ipX} daddr ${p.clusterIP} ${ipX} saddr != ${clusterCIDR} jump mark-for-masquerade`);
  }

  if (usesExternalChain) {
    if (!externalLocal) {
      // Traffic may leave the node for a remote endpoint: masquerade so replies come back.
      tx.rule(externalChain, 'jump mark-for-masquerade');
    } else {
      if (clusterCIDR !== null) tx.rule(externalChain, `${ipX} saddr ${clusterCIDR} goto ${clusterChain}`, 'short-circuit pod traffic');
      tx.rule(externalChain, 'fib saddr type local jump mark-for-masquerade', 'masquerade local traffic');
      tx.rule(externalChain, `fib saddr type local goto ${clusterChain}`, 'short-circuit local traffic');
    }
    if (hasExternal) tx.rule(externalChain, `goto ${externalPolicyChain}`);
  }

  if (usesFw) {
    const sources = [...lbRanges];
    const node = parseIpSloppy(nodeIP)!;
    // VIP-like load balancers loop node → VIP traffic back with the VIP as source.
    if (lbRanges.some((r) => cidrHolds(parseCidrSloppy(r)!, node))) sources.push(...p.loadBalancerIPs);
    tx.rule(fwChain, `${ipX} saddr != { ${sources.join(', ')} } drop`);
  }

  if (usesClusterChain) writeDispatch(tx, fam, clusterChain, eps.cluster, affinity, epChain, affinitySet);
  if (usesLocalChain) writeDispatch(tx, fam, localChain, eps.local, affinity, epChain, affinitySet);

  for (const e of eps.reachable) {
    const chain = epChain(e);
    // Hairpin: a pod reaching itself through the service must be masqueraded.
    tx.rule(chain, `${ipX} saddr ${e.ip} jump mark-for-masquerade`);
    if (affinity) tx.rule(chain, `update @${affinitySet(e)} { ${ipX} saddr }`);
    tx.rule(chain, `meta l4proto ${proto} dnat to ${endpointString(e.ip, e.port)}`);
  }

  // Elements last, once the chains they point at exist.
  tx.element('cluster-ips', p.clusterIP);
  if (hasInternal) tx.element('service-ips', key(p.clusterIP), `goto ${internalChain}`);
  else tx.element('no-endpoint-services', key(p.clusterIP), internalVerdict, spn);
  for (const ip of p.externalIPs) {
    if (eps.hasAny) tx.element('service-ips', key(ip), `goto ${externalChain}`);
    if (!hasExternal) tx.element('no-endpoint-services', key(ip), externalVerdict, spn);
  }
  for (const ip of p.loadBalancerIPs) {
    if (eps.hasAny) tx.element('service-ips', key(ip), `goto ${externalChain}`);
    if (usesFw) tx.element('firewall-ips', key(ip), `goto ${fwChain}`);
  }
  if (!hasExternal) for (const ip of p.loadBalancerIPs) tx.element('no-endpoint-services', key(ip), externalVerdict, spn);
  if (p.nodePort !== null) {
    if (eps.hasAny) tx.element('service-nodeports', `${proto} . ${p.nodePort}`, `goto ${externalChain}`);
    if (!hasExternal) tx.element('no-endpoint-nodeports', `${proto} . ${p.nodePort}`, externalVerdict, spn);
  }
}

function writeDispatch(
  tx: Tx,
  fam: Family,
  chain: string,
  endpoints: EndpointInfo[],
  affinity: boolean,
  epChain: (e: EndpointInfo) => string,
  affinitySet: (e: EndpointInfo) => string,
): void {
  // Affinity first: a client seen recently goes back to the same endpoint.
  if (affinity) for (const e of endpoints) tx.rule(chain, `${fam.ipX} saddr @${affinitySet(e)} goto ${epChain(e)}`);
  const entries = endpoints.map((e, i) => `${i} : goto ${epChain(e)}`).join(', ');
  tx.rule(chain, `numgen random mod ${endpoints.length} vmap { ${entries} }`);
}
