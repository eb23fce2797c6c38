/**
 * kube-proxy's iptables mode as a pure function: the iptables-restore input that
 * syncProxyRules (kubernetes pkg/proxy/iptables/proxier.go) writes for one node on a full
 * sync, plus the jumps it inserts into the built-in chains beforehand.
 *
 * Order: kube-proxy writes fixed chains and rules first, then every service port's rules as a
 * group (in Go map order, i.e. random between runs), then the nodeports jump and the
 * KUBE-FORWARD rules. We keep that real layout and visit service ports in input order
 * (resolveServicePorts sorts them by name), which makes the output one of the outputs
 * kube-proxy itself can produce, byte for byte. `sortRestoreLikeUpstream` (or
 * `{ normalize: true }`) gives the sorted form kube-proxy's unit tests compare instead.
 */
import type { EndpointInfo, ServicePortInfo } from '../k8s/types.ts';
import { cidrHolds, parseCidrSloppy, parseIpSloppy } from '../k8s/ip.ts';
import { endpointString } from '../k8s/resolve.ts';
import { isLoopbackText, resolveProxyOptions, type ProxyOptions } from './options.ts';
import { extChain, fwChain, sepChain, svcChain, svlChain } from './names.ts';
import { restoreQuote, sortRestoreLikeUpstream } from './iptables-restore.ts';
import { GeneratorInputError, safeServicePorts } from './tokens.ts';

export { countRestore, ruleComment, sortRestoreLikeUpstream } from './iptables-restore.ts';

/** A rule kube-proxy inserts (-I) at the top of a built-in chain; args follow the chain name. */
export interface BuiltinJump {
  table: 'nat' | 'filter';
  chain: string;
  args: string[];
}

export interface IptablesRules {
  /** iptables (IPv4) or ip6tables (IPv6): the tools that load and list these rules. */
  family: 'IPv4' | 'IPv6';
  /** Full iptables-restore (or ip6tables-restore) input, *filter … COMMIT then *nat … COMMIT, as kube-proxy writes it. */
  restore: string;
  /** Jumps from PREROUTING/OUTPUT/POSTROUTING/INPUT/FORWARD into KUBE-* chains, in the order kube-proxy ensures them. */
  builtinJumps: BuiltinJump[];
  /** Of the restore text only, counted as the generator writes each line. */
  counts: { filter: { chains: number; rules: number }; nat: { chains: number; rules: number } };
  /** Rules written per chain of each table (chains without rules are absent). */
  rulesPerChain: { filter: Record<string, number>; nat: Record<string, number> };
  /** More than 1000 endpoints in all: comments on SEP rules and SVC→SEP jumps are dropped. */
  largeClusterMode: boolean;
}

/** kube-proxy flags and node facts that change the iptables output. */
export interface IptablesOptions extends ProxyOptions {
  /**
   * --iptables-localhost-nodeports (kube-proxy's default: true). Adds KUBE-FIREWALL's
   * anti-martian rule; false adds `! -d 127.0.0.0/8` to the nodeports jump. kube-proxy turns it
   * off when --nodeport-addresses holds no IPv4 loopback address, and the IPv6 proxier never has it.
   */
  localhostNodePorts?: boolean;
  /**
   * kube-proxy managed to create its nfacct counters (needs the kernel's nfnetlink_acct).
   * Then it counts INVALID drops and localhost NodePort hits with `-m nfacct`. Default false:
   * those rules only load where the counters already exist.
   */
  nfacct?: boolean;
  /** iptables supports MASQUERADE --random-fully (any iptables ≥ 1.6.2; default true). */
  randomFully?: boolean;
  /** net.netfilter.nf_conntrack_tcp_be_liberal is set: no INVALID-drop rule in KUBE-FORWARD. */
  conntrackTCPLiberal?: boolean;
  /** Exact mark text. kube-proxy prints 1<<masqueradeBit with Go's %#08x, giving 0x00004000. */
  masqueradeMark?: string;
  /** Return the sorted form kube-proxy's unit tests compare, instead of write order. */
  normalize?: boolean;
}

/** ServicePortInfo, whose healthCheckNodePort this mode writes a filter rule for. */
export type IptablesServicePort = ServicePortInfo;

const LARGE_CLUSTER_ENDPOINTS = 1000;

/** kube-proxy's computeProbability: Go's `%0.10f` of 1/n (exact decimal, ties to even). */
export function formatProbability(n: number): string {
  if (!Number.isInteger(n) || n < 1) throw new Error(`probability needs a whole number of endpoints ≥ 1, got ${n}`);
  return toFixedHalfEven(1 / n, 10);
}

// JS toFixed rounds ties up; Go's strconv rounds the exact decimal value half to even
// (1/2048 = 0.00048828125 prints as 0.0004882812). toFixed(100) is exact for these values.
function toFixedHalfEven(x: number, digits: number): string {
  const exact = x.toFixed(100);
  const dot = exact.indexOf('.');
  const kept = exact.slice(0, dot) + exact.slice(dot + 1, dot + 1 + digits);
  const rest = exact.slice(dot + 1 + digits);
  const first = rest.charCodeAt(0) - 48;
  const odd = (kept.charCodeAt(kept.length - 1) - 48) % 2 === 1;
  const up = first > 5 || (first === 5 && (/[1-9]/.test(rest.slice(1)) || odd));
  const s = (BigInt(kept) + (up ? 1n : 0n)).toString().padStart(digits + 1, '0');
  return `${s.slice(0, -digits)}.${s.slice(-digits)}`;
}

/**
 * What iptables-save prints for kube-proxy's 1/n jump: the kernel keeps round(p·2³¹) and
 * prints it back with %.11f (0.3333333333 → 0.33333333349).
 */
export function savedProbability(n: number): string {
  const stored = Math.round(Number(formatProbability(n)) * 2 ** 31);
  return toFixedHalfEven(stored / 2 ** 31, 11);
}

/** Go's fmt.Sprintf("%#08x", v): zero-pads the digits to 8 and then adds 0x. */
function goHexMark(bit: number): string {
  return `0x${(2 ** bit).toString(16).padStart(8, '0')}`;
}

const FILTER_CHAINS = ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL'];
const NAT_CHAINS = ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'];
const NODEPORTS_LAST = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"';

/** The jumps kube-proxy ensures on every full sync (iptablesJumpChains, then kubelet's KUBE-FIREWALL). */
export function builtinJumps(): BuiltinJump[] {
  const NEW = ['-m', 'conntrack', '--ctstate', 'NEW'];
  const spec: [BuiltinJump['table'], string, string, string, string[]][] = [
    ['filter', 'INPUT', 'KUBE-EXTERNAL-SERVICES', 'kubernetes externally-visible service portals', NEW],
    ['filter', 'FORWARD', 'KUBE-EXTERNAL-SERVICES', 'kubernetes externally-visible service portals', NEW],
    ['filter', 'INPUT', 'KUBE-NODEPORTS', 'kubernetes health check service ports', []],
    ['filter', 'FORWARD', 'KUBE-SERVICES', 'kubernetes service portals', NEW],
    ['filter', 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals', NEW],
    ['filter', 'FORWARD', 'KUBE-FORWARD', 'kubernetes forwarding rules', []],
    ['filter', 'INPUT', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', NEW],
    ['filter', 'OUTPUT', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', NEW],
    ['filter', 'FORWARD', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', NEW],
    ['nat', 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals', []],
    ['nat', 'PREROUTING', 'KUBE-SERVICES', 'kubernetes service portals', []],
    ['nat', 'POSTROUTING', 'KUBE-POSTROUTING', 'kubernetes postrouting rules', []],
    // kubelet's anti-martian chain, which kube-proxy also ensures (no comment).
    ['filter', 'INPUT', 'KUBE-FIREWALL', '', []],
    ['filter', 'OUTPUT', 'KUBE-FIREWALL', '', []],
  ];
  return spec.map(([table, chain, target, comment, extra]) => ({
    table,
    chain,
    args: [...extra, ...(comment ? ['-m', 'comment', '--comment', comment] : []), '-j', target],
  }));
}

/**
 * Restore text for `iptables-restore --noflush` that creates the jump targets and inserts the
 * jumps with -I, in kube-proxy's order (so later jumps end up on top, as on a node).
 * Declaring a chain flushes it: load this before the main restore, as kube-proxy does.
 */
export function builtinJumpsRestore(jumps: BuiltinJump[]): string {
  let out = '';
  for (const table of ['filter', 'nat'] as const) {
    const mine = jumps.filter((j) => j.table === table);
    if (mine.length === 0) continue;
    const targets: string[] = [];
    for (const j of mine) {
      const t = j.args[j.args.lastIndexOf('-j') + 1];
      if (t?.startsWith('KUBE-') && !targets.includes(t)) targets.push(t);
    }
    out += `*${table}\n`;
    for (const t of targets) out += `:${t} - [0:0]\n`;
    for (const j of mine) out += `-I ${j.chain} ${j.args.map(restoreQuote).join(' ')}\n`;
    out += 'COMMIT\n';
  }
  return out;
}

interface Categorized {
  clusterEndpoints: EndpointInfo[];
  localEndpoints: EndpointInfo[];
  allReachable: EndpointInfo[];
  hasAnyEndpoints: boolean;
}

const epKey = (e: EndpointInfo) => endpointString(e.ip, e.port);

/** kube-proxy's CategorizeEndpoints (pkg/proxy/topology.go), without topology hints. */
function categorize(eps: readonly EndpointInfo[], usesCluster: boolean, usesLocal: boolean): Categorized {
  let clusterEndpoints: EndpointInfo[] = [];
  let localEndpoints: EndpointInfo[] = [];
  let hasAnyEndpoints = false;
  if (usesCluster) {
    clusterEndpoints = eps.filter((e) => e.ready);
    if (clusterEndpoints.length === 0) clusterEndpoints = eps.filter((e) => e.serving && e.terminating);
    hasAnyEndpoints = clusterEndpoints.length > 0;
  }
  if (!usesLocal) return { clusterEndpoints, localEndpoints, allReachable: clusterEndpoints, hasAnyEndpoints };

  let localReady = false;
  let localServingTerminating = false;
  for (const e of eps) {
    if (e.ready) {
      hasAnyEndpoints = true;
      if (e.isLocal) localReady = true;
    } else if (e.serving && e.terminating) {
      hasAnyEndpoints = true;
      if (e.isLocal) localServingTerminating = true;
    }
  }
  let servingTerminating = false;
  if (localReady) localEndpoints = eps.filter((e) => e.isLocal && e.ready);
  else if (localServingTerminating) {
    servingTerminating = true;
    localEndpoints = eps.filter((e) => e.isLocal && e.serving && e.terminating);
  }
  if (!usesCluster) return { clusterEndpoints, localEndpoints, allReachable: localEndpoints, hasAnyEndpoints };
  if (!servingTerminating) return { clusterEndpoints, localEndpoints, allReachable: clusterEndpoints, hasAnyEndpoints };
  // kube-proxy merges through a Go map here (random order); we keep ip:port order.
  const merged = new Map<string, EndpointInfo>();
  for (const e of [...clusterEndpoints, ...localEndpoints]) merged.set(epKey(e), e);
  const allReachable = [...merged.values()].sort((a, b) => (epKey(a) < epKey(b) ? -1 : epKey(a) > epKey(b) ? 1 : 0));
  return { clusterEndpoints, localEndpoints, allReachable, hasAnyEndpoints };
}

/**
 * A rule line: parts joined with single spaces, as kube-proxy's LineBuffer writes them.
 * Lines are counted per call, not by re-reading the text, so the counts say what was meant.
 */
class Lines {
  text = '';
  count = 0;
  readonly perChain: Record<string, number> = {};
  write(...parts: (string | readonly string[])[]): void {
    const line = parts.flat().join(' ');
    this.text += `${line}\n`;
    this.count++;
    if (line.startsWith('-A ')) {
      const chain = line.slice(3, line.indexOf(' ', 3));
      this.perChain[chain] = (this.perChain[chain] ?? 0) + 1;
    }
  }
}

const MARK = /^0x[0-9a-f]{1,8}$/;

/**
 * What kube-proxy (iptables mode) programs for these service ports on one node.
 * Pure: no I/O, same input gives the same bytes.
 */
export function generateIptables(input: readonly IptablesServicePort[], opts: IptablesOptions = {}): IptablesRules {
  const base = resolveProxyOptions(opts);
  const isIPv6 = base.ipFamily === 'IPv6';
  const ports = safeServicePorts(input, base.ipFamily);
  for (const k of ['localhostNodePorts', 'nfacct', 'randomFully', 'conntrackTCPLiberal', 'normalize'] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== 'boolean') throw new GeneratorInputError('options', k, `expected true or false, got ${JSON.stringify(opts[k])}`);
  }
  // kube-proxy's NewProxier: localhost NodePorts need an IPv4 loopback address among the node port addresses.
  const localhostNodePorts = (opts.localhostNodePorts ?? true) && !isIPv6 && base.nodePorts.containsIPv4Loopback;
  const nfacct = opts.nfacct ?? false;
  const masqueradeAll = base.masqueradeAll;
  const randomFully = opts.randomFully ?? true;
  const mark = opts.masqueradeMark ?? goHexMark(base.masqueradeBit);
  if (!MARK.test(mark)) throw new GeneratorInputError('options', 'masqueradeMark', `${JSON.stringify(mark)} is not a hex mark such as 0x4000`);
  const nodeIP = parseIpSloppy(base.nodeIP)!;
  // The ClusterCIDR local-traffic detector; without a CIDR kube-proxy has no detector.
  const localCIDR = base.clusterCIDR;

  const filterChains = new Lines();
  const filterRules = new Lines();
  const natChains = new Lines();
  const natRules = new Lines();

  for (const c of FILTER_CHAINS) filterChains.write(`:${c} - [0:0]`);
  for (const c of NAT_CHAINS) natChains.write(`:${c} - [0:0]`);

  natRules.write('-A KUBE-POSTROUTING -m mark ! --mark', `${mark}/${mark}`, '-j RETURN');
  // Clear the mark so a packet that re-traverses the stack is not masqueraded twice.
  natRules.write('-A KUBE-POSTROUTING -j MARK --xor-mark', mark);
  natRules.write('-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE', randomFully ? ['--random-fully'] : []);
  natRules.write('-A KUBE-MARK-MASQ -j MARK --or-mark', mark);

  if (localhostNodePorts) {
    // Mitigates route_localnet (kubernetes issue 90259); kubelet writes the same rule. IPv4 only.
    filterChains.write(':KUBE-FIREWALL - [0:0]');
    filterRules.write('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP');
  }

  const totalEndpoints = ports.reduce((n, p) => n + p.endpoints.length, 0);
  const largeClusterMode = totalEndpoints > LARGE_CLUSTER_ENDPOINTS;
  // Large clusters drop per-endpoint comments: they make up ~40% of the restore text.
  const svcComment = (c: string): string[] => (largeClusterMode ? [] : ['-m', 'comment', '--comment', c]);

  for (const sp of ports) {
    const proto = sp.protocol.toLowerCase();
    const name = sp.servicePortName;
    const port = String(sp.port);
    const nodePort = sp.nodePort ?? 0;
    // safeServicePorts left canonical IPv4 values only.
    const externalIPs = sp.externalIPs;
    const lbVIPs = sp.loadBalancerIPs;
    const sourceRanges = sp.loadBalancerSourceRanges;
    const affinity = sp.sessionAffinity === 'ClientIP';

    const externallyAccessible = nodePort !== 0 || lbVIPs.length > 0 || externalIPs.length > 0;
    // The API only honours externalTrafficPolicy on services reachable from outside.
    const apiExternal = sp.type === 'LoadBalancer' || sp.type === 'NodePort' || (sp.type === 'ClusterIP' && sp.externalIPs.length > 0);
    const externalPolicyLocal = apiExternal && sp.externalTrafficPolicy === 'Local';
    const internalPolicyLocal = sp.internalTrafficPolicy === 'Local';
    const usesCluster = !internalPolicyLocal || externallyAccessible;
    const usesLocal = internalPolicyLocal || (externalPolicyLocal && externallyAccessible);
    const { clusterEndpoints, localEndpoints, allReachable, hasAnyEndpoints: hasEndpoints } = categorize(sp.endpoints, usesCluster, usesLocal);

    const clusterPolicyChain = svcChain(name, proto);
    const localPolicyChain = svlChain(name, proto);
    const usesClusterPolicyChain = clusterEndpoints.length > 0 && usesCluster;
    const usesLocalPolicyChain = localEndpoints.length > 0 && usesLocal;

    const internalTrafficChain = internalPolicyLocal ? localPolicyChain : clusterPolicyChain;
    const hasInternalEndpoints = hasEndpoints && !(internalPolicyLocal && localEndpoints.length === 0);
    const externalPolicyChain = externalPolicyLocal ? localPolicyChain : clusterPolicyChain;
    const hasExternalEndpoints = hasEndpoints && !(externalPolicyLocal && localEndpoints.length === 0);
    const externalTrafficChain = extChain(name, proto);
    // Needed even without external endpoints: it holds the short-circuit rules for local traffic.
    const usesExternalTrafficChain = hasEndpoints && externallyAccessible;
    const firewallChain = fwChain(name, proto);
    const usesFWChain = hasEndpoints && lbVIPs.length > 0 && sourceRanges.length > 0;
    const loadBalancerTrafficChain = usesFWChain ? firewallChain : externalTrafficChain;

    let internalFilterTarget = '';
    let internalFilterComment = '';
    let externalFilterTarget = '';
    let externalFilterComment = '';
    if (!hasEndpoints) {
      internalFilterTarget = externalFilterTarget = 'REJECT';
      internalFilterComment = externalFilterComment = `"${name} has no endpoints"`;
    } else {
      if (!hasInternalEndpoints) {
        internalFilterTarget = 'DROP';
        internalFilterComment = `"${name} has no local endpoints"`;
      }
      if (!hasExternalEndpoints) {
        externalFilterTarget = 'DROP';
        externalFilterComment = `"${name} has no local endpoints"`;
      }
    }

    const match = (dst: string, dport: string) => ['-m', proto, '-p', proto, '-d', dst, '--dport', dport];

    // Capture the cluster IP.
    if (hasInternalEndpoints) {
      natRules.write('-A KUBE-SERVICES -m comment --comment', `"${name} cluster IP"`, match(sp.clusterIP, port), '-j', internalTrafficChain);
    } else {
      filterRules.write('-A KUBE-SERVICES -m comment --comment', internalFilterComment, match(sp.clusterIP, port), '-j', internalFilterTarget);
    }

    // Capture external IPs.
    for (const ip of externalIPs) {
      if (hasEndpoints) natRules.write('-A KUBE-SERVICES -m comment --comment', `"${name} external IP"`, match(ip, port), '-j', externalTrafficChain);
      if (!hasExternalEndpoints) filterRules.write('-A KUBE-EXTERNAL-SERVICES -m comment --comment', externalFilterComment, match(ip, port), '-j', externalFilterTarget);
    }

    // Capture load-balancer ingress IPs.
    for (const ip of lbVIPs) {
      if (hasEndpoints) natRules.write('-A KUBE-SERVICES -m comment --comment', `"${name} loadbalancer IP"`, match(ip, port), '-j', loadBalancerTrafficChain);
      if (usesFWChain) filterRules.write('-A KUBE-PROXY-FIREWALL -m comment --comment', `"${name} traffic not accepted by ${firewallChain}"`, match(ip, port), '-j DROP');
    }
    if (!hasExternalEndpoints) {
      for (const ip of lbVIPs) filterRules.write('-A KUBE-EXTERNAL-SERVICES -m comment --comment', externalFilterComment, match(ip, port), '-j', externalFilterTarget);
    }

    // Capture node ports (not subject to loadBalancerSourceRanges).
    if (nodePort !== 0) {
      const np = String(nodePort);
      if (hasEndpoints) {
        if (localhostNodePorts && nfacct) {
          natRules.write('-A KUBE-NODEPORTS -m comment --comment', name, match('127.0.0.0/8', np), '-m nfacct --nfacct-name localhost_nps_accepted_pkts -j', externalTrafficChain);
        }
        natRules.write('-A KUBE-NODEPORTS -m comment --comment', name, '-m', proto, '-p', proto, '--dport', np, '-j', externalTrafficChain);
      }
      if (!hasExternalEndpoints) {
        filterRules.write('-A KUBE-EXTERNAL-SERVICES -m comment --comment', externalFilterComment, '-m addrtype --dst-type LOCAL -m', proto, '-p', proto, '--dport', np, '-j', externalFilterTarget);
      }
    }

    // Health-check node ports are accepted whether or not this node has endpoints.
    const hc = sp.healthCheckNodePort ?? 0;
    if (hc !== 0 && sp.type === 'LoadBalancer' && externalPolicyLocal) {
      filterRules.write('-A KUBE-NODEPORTS -m comment --comment', `"${name} health check node port"`, '-m tcp -p tcp --dport', String(hc), '-j ACCEPT');
    }

    // Internal traffic: masquerade what comes from outside the cluster CIDR.
    if (hasInternalEndpoints) {
      const args = ['-m', 'comment', '--comment', `"${name} cluster IP"`, ...match(sp.clusterIP, port)];
      if (masqueradeAll) natRules.write('-A', internalTrafficChain, args, '-j KUBE-MARK-MASQ');
      else if (localCIDR) natRules.write('-A', internalTrafficChain, args, '! -s', localCIDR, '-j KUBE-MARK-MASQ');
    }

    // External traffic: every external destination jumps to KUBE-EXT-…
    if (usesExternalTrafficChain) {
      natChains.write(`:${externalTrafficChain} - [0:0]`);
      if (!externalPolicyLocal) {
        // Endpoints may be on other nodes, so masquerade.
        natRules.write('-A', externalTrafficChain, '-m comment --comment', `"masquerade traffic for ${name} external destinations"`, '-j KUBE-MARK-MASQ');
      } else {
        // Pods reaching an external IP are treated as if they went out and came back in.
        if (localCIDR) {
          natRules.write('-A', externalTrafficChain, '-m comment --comment', `"pod traffic for ${name} external destinations"`, '-s', localCIDR, '-j', clusterPolicyChain);
        }
        // The node itself picks the external IP as source, so it still needs masquerade.
        natRules.write('-A', externalTrafficChain, '-m comment --comment', `"masquerade LOCAL traffic for ${name} external destinations"`, '-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ');
        natRules.write('-A', externalTrafficChain, '-m comment --comment', `"route LOCAL traffic for ${name} external destinations"`, '-m addrtype --src-type LOCAL -j', clusterPolicyChain);
      }
      if (hasExternalEndpoints) natRules.write('-A', externalTrafficChain, '-j', externalPolicyChain);
    }

    // loadBalancerSourceRanges: a KUBE-FW chain in front of KUBE-EXT.
    if (usesFWChain) {
      natChains.write(`:${firewallChain} - [0:0]`);
      const head = ['-A', firewallChain, '-m', 'comment', '--comment', `"${name} loadbalancer IP"`];
      let allowFromNode = false;
      for (const r of sourceRanges) {
        natRules.write(head, '-s', r, '-j', externalTrafficChain);
        if (cidrHolds(parseCidrSloppy(r)!, nodeIP)) allowFromNode = true;
      }
      // VIP-like load balancers loop node → VIP traffic back with the VIP as source.
      if (allowFromNode) for (const ip of lbVIPs) natRules.write(head, '-s', ip, '-j', externalTrafficChain);
      // What falls off the end was not DNATed and is dropped by KUBE-PROXY-FIREWALL.
      natRules.write('-A', firewallChain, '-m comment --comment', `"other traffic to ${name} will be dropped by KUBE-PROXY-FIREWALL"`);
    }

    if (usesClusterPolicyChain) {
      natChains.write(`:${clusterPolicyChain} - [0:0]`);
      writeServiceToEndpoints(natRules, sp, clusterPolicyChain, clusterEndpoints, svcComment);
    }
    if (usesLocalPolicyChain) {
      natChains.write(`:${localPolicyChain} - [0:0]`);
      writeServiceToEndpoints(natRules, sp, localPolicyChain, localEndpoints, svcComment);
    }

    for (const ep of allReachable) {
      const sep = sepChain(name, proto, epKey(ep));
      natChains.write(`:${sep} - [0:0]`);
      const head = ['-A', sep, ...svcComment(name)];
      // Hairpin: a pod reaching itself through the service must be SNATed.
      natRules.write(head, '-s', ep.ip, '-j KUBE-MARK-MASQ');
      natRules.write(head, affinity ? ['-m', 'recent', '--name', sep, '--set'] : [], '-m', proto, '-p', proto, '-j DNAT --to-destination', epKey(ep));
    }
  }

  // The nodeports jump must stay the last rule of KUBE-SERVICES: to every local address, or one
  // per node port address. Localhost NodePorts never work in IPv6, and in IPv4 only with route_localnet.
  if (base.nodePorts.matchAll) {
    const notLocalhost = isIPv6 ? ['!', '-d', '::1/128'] : localhostNodePorts ? [] : ['!', '-d', '127.0.0.0/8'];
    natRules.write('-A KUBE-SERVICES -m comment --comment', NODEPORTS_LAST, '-m addrtype --dst-type LOCAL', notLocalhost, '-j KUBE-NODEPORTS');
  } else {
    for (const ip of base.nodePorts.ips) {
      if (isLoopbackText(ip) && (isIPv6 || !localhostNodePorts)) continue;
      natRules.write('-A KUBE-SERVICES -m comment --comment', NODEPORTS_LAST, '-d', ip, '-j KUBE-NODEPORTS');
    }
  }

  if (!(opts.conntrackTCPLiberal ?? false)) {
    // Out-of-window packets would otherwise reset connections (kubernetes issue 74839).
    filterRules.write('-A KUBE-FORWARD -m conntrack --ctstate INVALID', nfacct ? ['-m', 'nfacct', '--nfacct-name', 'ct_state_invalid_dropped_pkts'] : [], '-j DROP');
  }
  filterRules.write('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark', `${mark}/${mark}`, '-j ACCEPT');
  filterRules.write('-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');

  let restore = `*filter\n${filterChains.text}${filterRules.text}COMMIT\n*nat\n${natChains.text}${natRules.text}COMMIT\n`;
  if (opts.normalize) restore = sortRestoreLikeUpstream(restore);
  return {
    family: base.ipFamily,
    restore,
    builtinJumps: builtinJumps(),
    counts: { filter: { chains: filterChains.count, rules: filterRules.count }, nat: { chains: natChains.count, rules: natRules.count } },
    rulesPerChain: { filter: { ...filterRules.perChain }, nat: { ...natRules.perChain } },
    largeClusterMode,
  };
}

/** Affinity checks first, then one random-probability jump per endpoint (the last always matches). */
function writeServiceToEndpoints(
  out: Lines,
  sp: ServicePortInfo,
  chain: string,
  endpoints: readonly EndpointInfo[],
  svcComment: (c: string) => string[],
): void {
  const proto = sp.protocol.toLowerCase();
  if (sp.sessionAffinity === 'ClientIP') {
    for (const ep of endpoints) {
      const sep = sepChain(sp.servicePortName, proto, epKey(ep));
      out.write('-A', chain, svcComment(`"${sp.servicePortName} -> ${epKey(ep)}"`), '-m recent --name', sep, '--rcheck --seconds', String(sp.sessionAffinityTimeoutSeconds), '--reap -j', sep);
    }
  }
  const n = endpoints.length;
  endpoints.forEach((ep, i) => {
    const sep = sepChain(sp.servicePortName, proto, epKey(ep));
    const stat = i < n - 1 ? ['-m', 'statistic', '--mode', 'random', '--probability', formatProbability(n - i)] : [];
    out.write('-A', chain, svcComment(`"${sp.servicePortName} -> ${epKey(ep)}"`), stat, '-j', sep);
  });
}
