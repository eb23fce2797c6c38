/**
 * The one gate between generator input and rule text, shared by the iptables, IPVS and
 * nftables generators. They can be called from code with any ServicePortInfo, bypassing
 * lib/k8s/read.ts, so each checks its input here first: addresses, CIDRs and numbers are
 * re-formatted from what they parse to, names must have the syntax Kubernetes allows (so only
 * [a-z0-9-] reach chain names and comments), and anything else is refused with an error that
 * names the service port and field. Nothing from input can carry `"`, `\`, newline, `{`, `}`,
 * `;` or `#` into iptables-restore, ipset or nft text.
 *
 * Values of the other IP family are dropped, not refused, as the proxier of one family ignores
 * them (the IPv4 proxier skips IPv6 Services and addresses, the IPv6 proxier IPv4 ones).
 */
import { formatCidrParsed, formatIp, goTrimSpace, parseCidrSloppy, parseIpSloppy } from '../k8s/ip.ts';
import { endpointString, servicePortName } from '../k8s/resolve.ts';
import type { EndpointInfo, IpFamily, ServicePortInfo } from '../k8s/types.ts';
import { dns1035LabelProblem, dns1123LabelProblem, quoted } from '../k8s/validation.ts';

/** Generator input that kube-proxy could never have been given. */
export class GeneratorInputError extends Error {
  override readonly name = 'GeneratorInputError';
  constructor(
    /** `ports[3] (default/web:http TCP)`, or `options`. */
    readonly where: string,
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${where}: ${field}: ${problem}`);
  }
}

const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];
const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
const MAX_AFFINITY_SECONDS = 86400;

const familyNumber = (f: IpFamily) => (f === 'IPv4' ? 4 : 6);

/** Canonical text (Go's IP.String()) of an address of `family`, null for the other family; throws for anything else. */
export function ipToken(v: unknown, family: IpFamily, where: string, field: string): string | null {
  const ip = typeof v === 'string' ? parseIpSloppy(v) : null;
  if (ip === null) throw new GeneratorInputError(where, field, `${quoted(v)} is not an IP address`);
  return ip.family === familyNumber(family) ? formatIp(ip) : null;
}

/** Canonical CIDR of `family` (host bits cleared, spaces trimmed as the API does), null for the other family; throws for anything else. */
export function cidrToken(v: unknown, family: IpFamily, where: string, field: string): string | null {
  const cidr = typeof v === 'string' ? parseCidrSloppy(goTrimSpace(v)) : null;
  if (cidr === null) throw new GeneratorInputError(where, field, `${quoted(v)} is not a CIDR`);
  return cidr.family === familyNumber(family) ? formatCidrParsed(cidr) : null;
}

/** Canonical IPv4 text, null for an IPv6 address; throws for anything else. */
export const ipv4Token = (v: unknown, where: string, field: string) => ipToken(v, 'IPv4', where, field);

/** Canonical IPv4 CIDR, null for IPv6; throws for anything else. */
export const ipv4CidrToken = (v: unknown, where: string, field: string) => cidrToken(v, 'IPv4', where, field);

/** A whole number in [min, max]; `String()` of it is digits only. */
export function integerToken(v: unknown, min: number, max: number, where: string, field: string): number {
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) {
    throw new GeneratorInputError(where, field, `expected a whole number ${min}..${max}, got ${quoted(v)}`);
  }
  return v as number;
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], where: string, field: string): T {
  if (!(allowed as readonly unknown[]).includes(v)) throw new GeneratorInputError(where, field, `expected ${allowed.join(', ')}, got ${quoted(v)}`);
  return v as T;
}

function booleanToken(v: unknown, where: string, field: string): boolean {
  if (typeof v !== 'boolean') throw new GeneratorInputError(where, field, `expected true or false, got ${quoted(v)}`);
  return v;
}

function listOf(v: unknown, where: string, field: string): unknown[] {
  if (!Array.isArray(v)) throw new GeneratorInputError(where, field, `expected a list, got ${quoted(v)}`);
  return v;
}

/** A name as the API allows it: the only text from input that reaches chain names and comments. */
function nameToken(v: unknown, problem: (s: string) => string | null, where: string, field: string): string {
  if (typeof v !== 'string') throw new GeneratorInputError(where, field, `expected a string, got ${quoted(v)}`);
  const fault = problem(v);
  if (fault) throw new GeneratorInputError(where, field, fault);
  return v;
}

/**
 * The service ports a generator may write, checked and re-formatted; ports without a cluster IP
 * of `family` (headless, ExternalName, the other family) are left out, as kube-proxy skips them,
 * and so are addresses, ranges and endpoints of the other family. Throws a GeneratorInputError
 * for anything kube-proxy could not have been given, including two entries for the same service
 * port and protocol.
 */
export function safeServicePorts<T extends ServicePortInfo>(ports: readonly T[], family: IpFamily = 'IPv4'): T[] {
  const out: T[] = [];
  const seen = new Map<string, number>();
  listOf(ports, 'input', 'ports').forEach((raw, i) => {
    if (typeof raw !== 'object' || raw === null) throw new GeneratorInputError(`ports[${i}]`, '', 'expected a ServicePortInfo object');
    const p = raw as T;
    let where = `ports[${i}]`;
    const namespace = nameToken(p.namespace, dns1123LabelProblem, where, 'namespace');
    const name = nameToken(p.name, dns1035LabelProblem, where, 'name');
    const portName = p.portName === '' ? '' : nameToken(p.portName, dns1123LabelProblem, where, 'portName');
    const spn = servicePortName(namespace, name, portName);
    if (p.servicePortName !== spn) throw new GeneratorInputError(where, 'servicePortName', `${quoted(p.servicePortName)} is not ${quoted(spn)}, the name of namespace/name:portName`);
    const protocol = oneOf(p.protocol, PROTOCOLS, where, 'protocol') as T['protocol'];
    where = `ports[${i}] (${spn} ${protocol})`;
    const first = seen.get(`${spn} ${protocol}`);
    if (first !== undefined) throw new GeneratorInputError(where, 'servicePortName', `duplicates ports[${first}]: kube-proxy holds one entry per service port and protocol`);
    seen.set(`${spn} ${protocol}`, i);

    const type = oneOf(p.type, SERVICE_TYPES, where, 'type') as T['type'];
    const sessionAffinity = oneOf(p.sessionAffinity, ['None', 'ClientIP'], where, 'sessionAffinity') as T['sessionAffinity'];
    const externalTrafficPolicy = oneOf(p.externalTrafficPolicy, ['Cluster', 'Local'], where, 'externalTrafficPolicy') as T['externalTrafficPolicy'];
    const internalTrafficPolicy = oneOf(p.internalTrafficPolicy, ['Cluster', 'Local'], where, 'internalTrafficPolicy') as T['internalTrafficPolicy'];
    const port = integerToken(p.port, 1, 65535, where, 'port');
    const nodePort = p.nodePort === null ? null : integerToken(p.nodePort, 1, 65535, where, 'nodePort');
    const sessionAffinityTimeoutSeconds = integerToken(p.sessionAffinityTimeoutSeconds, 1, MAX_AFFINITY_SECONDS, where, 'sessionAffinityTimeoutSeconds');
    const ips = (field: 'externalIPs' | 'loadBalancerIPs') =>
      listOf(p[field], where, field).map((ip, j) => ipToken(ip, family, where, `${field}[${j}]`)).filter((ip): ip is string => ip !== null);
    const externalIPs = ips('externalIPs');
    const loadBalancerIPs = ips('loadBalancerIPs');
    const loadBalancerSourceRanges = listOf(p.loadBalancerSourceRanges, where, 'loadBalancerSourceRanges')
      .map((r, j) => cidrToken(r, family, where, `loadBalancerSourceRanges[${j}]`))
      .filter((r): r is string => r !== null);
    const endpoints = safeEndpoints(p.endpoints, family, where);
    const extra: Partial<Record<'healthCheckNodePort', number | null>> = {};
    if ('healthCheckNodePort' in p) {
      const hc = (p as { healthCheckNodePort?: unknown }).healthCheckNodePort;
      extra.healthCheckNodePort = hc === undefined || hc === null ? null : integerToken(hc, 0, 65535, where, 'healthCheckNodePort');
    }

    // Headless and ExternalName services have no rules; one of the other family belongs to the other proxier.
    if (type === 'ExternalName' || p.clusterIP === 'None' || p.clusterIP === '') return;
    const clusterIP = ipToken(p.clusterIP, family, where, 'clusterIP');
    if (clusterIP === null) return;
    out.push({
      ...p, ...extra, namespace, name, portName, servicePortName: spn, protocol, type, clusterIP, port, nodePort,
      externalIPs, loadBalancerIPs, loadBalancerSourceRanges, sessionAffinity, sessionAffinityTimeoutSeconds,
      externalTrafficPolicy, internalTrafficPolicy, endpoints,
    });
  });
  return out;
}

function safeEndpoints(v: unknown, family: IpFamily, where: string): EndpointInfo[] {
  const seen = new Map<string, number>();
  const out: EndpointInfo[] = [];
  listOf(v, where, 'endpoints').forEach((raw, k) => {
    const field = `endpoints[${k}]`;
    if (typeof raw !== 'object' || raw === null) throw new GeneratorInputError(where, field, 'expected an EndpointInfo object');
    const e = raw as EndpointInfo;
    const port = integerToken(e.port, 1, 65535, where, `${field}.port`);
    const flags = {
      ready: booleanToken(e.ready, where, `${field}.ready`),
      serving: booleanToken(e.serving, where, `${field}.serving`),
      terminating: booleanToken(e.terminating, where, `${field}.terminating`),
      isLocal: booleanToken(e.isLocal, where, `${field}.isLocal`),
    };
    const ip = ipToken(e.ip, family, where, `${field}.ip`);
    if (ip === null) return; // the proxier skips endpoints of the other family
    const key = endpointString(ip, port);
    const first = seen.get(key);
    if (first !== undefined) throw new GeneratorInputError(where, field, `${key} duplicates endpoints[${first}]`);
    seen.set(key, k);
    out.push({ ...e, ...flags, ip, port });
  });
  return out;
}
