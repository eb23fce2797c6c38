import { ObjectError } from './errors.ts';
import { formatCidrParsed, formatIp, goTrimSpace, parseCidrSloppy, parseIpSloppy, specialIpProblem } from './ip.ts';
import type {
  Cluster, Endpoint, EndpointPort, EndpointSlice, Protocol, Service, ServicePort, ServiceType, TrafficPolicy,
} from './types.ts';
import {
  dns1035LabelProblem, dns1123LabelProblem, dns1123SubdomainProblem, fqdnProblem, ianaSvcNameProblem,
  labelKeyProblem, labelValueProblem, quoted,
} from './validation.ts';

/*
 * Every field is checked as the API server validates it (kubernetes pkg/apis/core/validation
 * ValidateService, pkg/apis/discovery/validation ValidateEndpointSlice, apimachinery
 * pkg/util/validation), so nothing reaches lib/proxy that a cluster could not hold. Addresses
 * follow the API's legacy-field rules (Go 1.16 parsing, see ip.ts) and are stored as kube-proxy
 * prints them (Go's IP.String()): dotted quads without leading zeros, IPv6 in canonical form.
 */

type Json = Record<string, unknown>;

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** The API's caps on one EndpointSlice. */
const MAX_ENDPOINTS = 1000;
const MAX_ADDRESSES = 100;
const MAX_SLICE_PORTS = 100;
/** spec.sessionAffinityConfig.clientIP.timeoutSeconds: at most a day. */
const MAX_AFFINITY_SECONDS = 86400;

/**
 * Read the List that `kubectl get services,endpointslices -A -o json` prints (or a single
 * object, or a plain array). Unknown kinds are skipped: kubectl lists may hold other objects.
 */
export function readCluster(input: unknown): Cluster {
  const items = listItems(input);
  const cluster: Cluster = { services: [], endpointSlices: [] };
  // kube-proxy keys objects by namespace/name: a second copy would silently replace the first.
  const firstSeen = new Map<string, number>();
  const once = (id: string, i: number) => {
    const first = firstSeen.get(id);
    if (first !== undefined) throw new ObjectError(id, 'metadata.name', `items[${i}] duplicates items[${first}]: a cluster holds one ${id}`);
    firstSeen.set(id, i);
  };
  items.forEach((item, i) => {
    if (!isObject(item)) throw new ObjectError(`items[${i}]`, '', 'expected an object');
    const kind = item.kind;
    if (kind === 'Service') {
      const s = readService(item, `items[${i}]`);
      once(`Service ${s.namespace}/${s.name}`, i);
      cluster.services.push(s);
    } else if (kind === 'EndpointSlice') {
      const s = readEndpointSlice(item, `items[${i}]`);
      once(`EndpointSlice ${s.namespace}/${s.name}`, i);
      cluster.endpointSlices.push(s);
    }
  });
  return cluster;
}

/** Parse JSON text first; a syntax error names the position. */
export function readClusterJson(text: string): Cluster {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ObjectError('input', '', `not valid JSON: ${(e as Error).message}`);
  }
  return readCluster(parsed);
}

function listItems(input: unknown): unknown[] {
  if (Array.isArray(input)) return input;
  if (isObject(input)) {
    if (Array.isArray(input.items)) return input.items;
    if (typeof input.kind === 'string') return [input];
  }
  throw new ObjectError('input', 'items', 'expected a Kubernetes List, an object or an array');
}

/** metadata.namespace (a DNS-1123 label, `default` when absent) and metadata.name. */
function objectName(o: Json, kind: string, where: string, nameProblem: (v: string) => string | null): { namespace: string; name: string } {
  const meta = o.metadata;
  if (!isObject(meta)) throw new ObjectError(`${kind} ${where}`, 'metadata', 'missing or not an object');
  const namespace = meta.namespace ?? 'default';
  const name = meta.name;
  if (typeof name !== 'string') throw new ObjectError(`${kind} ${where}`, 'metadata.name', `expected a string, got ${quoted(name)}`);
  const nameFault = nameProblem(name);
  if (nameFault) throw new ObjectError(`${kind} ${where}`, 'metadata.name', nameFault);
  if (typeof namespace !== 'string') throw new ObjectError(`${kind} ${where}`, 'metadata.namespace', `expected a string, got ${quoted(namespace)}`);
  const nsFault = dns1123LabelProblem(namespace);
  if (nsFault) throw new ObjectError(`${kind} ${where}`, 'metadata.namespace', nsFault);
  return { namespace, name };
}

function readService(o: Json, where: string): Service {
  const { namespace, name } = objectName(o, 'Service', where, dns1035LabelProblem);
  const id = `Service ${namespace}/${name}`;
  const spec = objectField(o, 'spec', id);
  const type = (optionalString(spec, 'type', id) ?? 'ClusterIP') as ServiceType;
  if (!SERVICE_TYPES.includes(type)) throw new ObjectError(id, 'spec.type', `unknown type ${quoted(type)}`);
  const { clusterIP, clusterIPs } = readClusterIP(spec, id, type);
  const rawPorts = spec.ports ?? [];
  if (!Array.isArray(rawPorts)) throw new ObjectError(id, 'spec.ports', 'expected a list');
  if (rawPorts.length === 0 && type !== 'ExternalName' && clusterIP !== 'None') throw new ObjectError(id, 'spec.ports', 'required: a Service needs at least one port');
  const ports = rawPorts.map((p, i) => readServicePort(p, id, `spec.ports[${i}]`, type));
  checkPortsUnique(ports, id);
  const affinity = optionalString(spec, 'sessionAffinity', id) ?? 'None';
  if (affinity !== 'None' && affinity !== 'ClientIP') {
    throw new ObjectError(id, 'spec.sessionAffinity', `expected None or ClientIP, got ${quoted(affinity)}`);
  }
  const timeout = affinityTimeout(spec, id, affinity);
  const externalTrafficPolicy = policy(spec, 'externalTrafficPolicy', id);
  const ingress = ingressIPs(o, id);
  const healthCheckNodePort = readHealthCheckNodePort(spec, id, type, externalTrafficPolicy);
  return {
    namespace,
    name,
    type,
    clusterIP,
    ...(clusterIPs ? { clusterIPs } : {}),
    ports,
    selector: labels(spec.selector, id, 'spec.selector'),
    sessionAffinity: affinity,
    sessionAffinityTimeoutSeconds: timeout,
    externalTrafficPolicy,
    internalTrafficPolicy: policy(spec, 'internalTrafficPolicy', id),
    externalIPs: stringList(spec.externalIPs, id, 'spec.externalIPs').map((s, i) => address(s, id, `spec.externalIPs[${i}]`, { nonSpecial: true })),
    loadBalancerIPs: ingress.vip,
    ...(ingress.proxy.length ? { loadBalancerProxyIPs: ingress.proxy } : {}),
    loadBalancerSourceRanges: stringList(spec.loadBalancerSourceRanges, id, 'spec.loadBalancerSourceRanges')
      .map((s, i) => sourceRange(s, id, `spec.loadBalancerSourceRanges[${i}]`)),
    ...(healthCheckNodePort !== null ? { healthCheckNodePort } : {}),
  };
}

/**
 * spec.healthCheckNodePort: only a LoadBalancer Service with externalTrafficPolicy Local has one
 * (the API allocates it on create), and it is a port number.
 */
function readHealthCheckNodePort(spec: Json, id: string, type: ServiceType, etp: TrafficPolicy): number | null {
  const v = spec.healthCheckNodePort;
  if (v === undefined || v === null || v === 0) return null;
  if (!(type === 'LoadBalancer' && etp === 'Local')) {
    throw new ObjectError(id, 'spec.healthCheckNodePort', `${quoted(v)}: may only be set when \`type\` is 'LoadBalancer' and \`externalTrafficPolicy\` is 'Local'`);
  }
  return portNumber(v, id, 'spec.healthCheckNodePort');
}

/**
 * The cluster IP the IPv4 proxier uses: spec.clusterIPs' IPv4 entry on a dual-stack Service
 * (clusterIPs[0] must equal clusterIP), else spec.clusterIP, and on a dual-stack Service both,
 * for the proxier of each family. `None` marks a headless Service, `` one without an address yet;
 * an IPv6-only Service keeps its IPv6 address (the IPv4 proxier skips it).
 */
function readClusterIP(spec: Json, id: string, type: ServiceType): { clusterIP: string; clusterIPs?: string[] } {
  const clusterIP = optionalString(spec, 'clusterIP', id) ?? '';
  const clusterIPs = stringList(spec.clusterIPs, id, 'spec.clusterIPs');
  if (type === 'ExternalName') {
    if ((clusterIP !== '' && clusterIP !== 'None') || clusterIPs.length > 0) throw new ObjectError(id, 'spec.clusterIP', 'may not be set for ExternalName services');
    return { clusterIP: 'None' };
  }
  if (clusterIP === '' && clusterIPs.length > 0) throw new ObjectError(id, 'spec.clusterIPs', 'must be empty when spec.clusterIP is not set');
  if (clusterIPs.length > 0 && clusterIPs[0] !== clusterIP) {
    throw new ObjectError(id, 'spec.clusterIPs', `first value ${quoted(clusterIPs[0])} must match spec.clusterIP ${quoted(clusterIP)}`);
  }
  if (clusterIPs.length > 2) throw new ObjectError(id, 'spec.clusterIPs', 'may only hold up to 2 values');
  if (clusterIP === 'None') {
    if (clusterIPs.length > 1) throw new ObjectError(id, 'spec.clusterIPs', "'None' must be the first and only value");
    if (type === 'NodePort' || type === 'LoadBalancer') throw new ObjectError(id, 'spec.clusterIP', `may not be 'None' for ${type} services`);
    return { clusterIP: 'None' };
  }
  if (clusterIP === '') return { clusterIP: '' };
  const ips = (clusterIPs.length > 0 ? clusterIPs : [clusterIP]).map((ip, i) =>
    address(ip, id, clusterIPs.length > 0 ? `spec.clusterIPs[${i}]` : 'spec.clusterIP', { nonSpecial: false }));
  if (ips.length === 2 && isIpv4Text(ips[0]) === isIpv4Text(ips[1])) {
    throw new ObjectError(id, 'spec.clusterIPs', 'may specify no more than one IP for each IP family');
  }
  return { clusterIP: ips.find(isIpv4Text) ?? ips[0], ...(ips.length === 2 ? { clusterIPs: ips } : {}) };
}

function isIpv4Text(s: string): boolean {
  return parseIpSloppy(s)?.family === 4;
}

function readServicePort(p: unknown, id: string, field: string, type: ServiceType): ServicePort {
  if (!isObject(p)) throw new ObjectError(id, field, 'expected an object');
  const name = p.name ?? '';
  if (typeof name !== 'string') throw new ObjectError(id, `${field}.name`, `expected a string, got ${quoted(name)}`);
  const nameFault = name === '' ? null : dns1123LabelProblem(name);
  if (nameFault) throw new ObjectError(id, `${field}.name`, nameFault);
  const protocol = protocolField(p.protocol, id, `${field}.protocol`);
  const port = portNumber(p.port, id, `${field}.port`);
  let targetPort: number | string = port;
  if (typeof p.targetPort === 'string') {
    const fault = ianaSvcNameProblem(p.targetPort);
    if (fault) throw new ObjectError(id, `${field}.targetPort`, fault);
    targetPort = p.targetPort;
  } else if (p.targetPort !== undefined && p.targetPort !== null) {
    targetPort = portNumber(p.targetPort, id, `${field}.targetPort`);
  }
  const nodePort = p.nodePort === undefined || p.nodePort === null ? null : portNumber(p.nodePort, id, `${field}.nodePort`);
  if (nodePort !== null && type !== 'NodePort' && type !== 'LoadBalancer') {
    throw new ObjectError(id, `${field}.nodePort`, `set, but type ${type} has no node ports`);
  }
  return { name, protocol, port, targetPort, nodePort };
}

/** Names (required when there are several ports), protocol+port and protocol+nodePort are unique. */
function checkPortsUnique(ports: readonly ServicePort[], id: string): void {
  const names = new Map<string, number>();
  const portKeys = new Map<string, number>();
  const nodePortKeys = new Map<string, number>();
  ports.forEach((p, i) => {
    if (ports.length > 1 && p.name === '') throw new ObjectError(id, `spec.ports[${i}].name`, 'required when a Service has several ports');
    const clash = (seen: Map<string, number>, key: string, field: string, what: string) => {
      const first = seen.get(key);
      if (first !== undefined) throw new ObjectError(id, `spec.ports[${i}]${field}`, `${what} duplicates spec.ports[${first}]`);
      seen.set(key, i);
    };
    if (p.name !== '') clash(names, p.name, '.name', quoted(p.name));
    clash(portKeys, `${p.protocol}/${p.port}`, '', `${p.protocol} port ${p.port}`);
    if (p.nodePort !== null) clash(nodePortKeys, `${p.protocol}/${p.nodePort}`, '.nodePort', `${p.protocol} node port ${p.nodePort}`);
  });
}

function affinityTimeout(spec: Json, id: string, affinity: string): number {
  const config = spec.sessionAffinityConfig;
  if (config === undefined || config === null) return 10800;
  if (affinity === 'None') throw new ObjectError(id, 'spec.sessionAffinityConfig', 'must not be set when session affinity is None');
  if (!isObject(config)) throw new ObjectError(id, 'spec.sessionAffinityConfig', 'expected an object');
  const clientIP = config.clientIP ?? {};
  if (!isObject(clientIP)) throw new ObjectError(id, 'spec.sessionAffinityConfig.clientIP', 'expected an object');
  const timeout = clientIP.timeoutSeconds ?? 10800;
  if (!Number.isInteger(timeout) || (timeout as number) <= 0 || (timeout as number) > MAX_AFFINITY_SECONDS) {
    throw new ObjectError(id, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', `expected an integer in 1..${MAX_AFFINITY_SECONDS}, got ${quoted(timeout)}`);
  }
  return timeout as number;
}

/**
 * status.loadBalancer.ingress[].ip by ipMode; entries with only a hostname carry no address.
 * ipMode is VIP or Proxy, only with an ip; the API defaults it to VIP.
 */
function ingressIPs(o: Json, id: string): { vip: string[]; proxy: string[] } {
  const lb = isObject(o.status) ? o.status.loadBalancer : undefined;
  const ingress = isObject(lb) ? lb.ingress ?? [] : [];
  if (!Array.isArray(ingress)) throw new ObjectError(id, 'status.loadBalancer.ingress', 'expected a list');
  const out = { vip: [] as string[], proxy: [] as string[] };
  ingress.forEach((ing, i) => {
    const field = `status.loadBalancer.ingress[${i}]`;
    if (!isObject(ing)) throw new ObjectError(id, field, 'expected an object');
    const hasIP = !(ing.ip === undefined || ing.ip === null || ing.ip === '');
    const mode = ing.ipMode ?? null;
    if (mode !== null && mode !== 'VIP' && mode !== 'Proxy') throw new ObjectError(id, `${field}.ipMode`, `expected VIP or Proxy, got ${quoted(mode)}`);
    if (mode !== null && !hasIP) throw new ObjectError(id, `${field}.ipMode`, 'may not be specified when `ip` is not set');
    if (!hasIP) return;
    out[mode === 'Proxy' ? 'proxy' : 'vip'].push(address(ing.ip, id, `${field}.ip`, { nonSpecial: false }));
  });
  return out;
}

function readEndpointSlice(o: Json, where: string): EndpointSlice {
  const { namespace, name } = objectName(o, 'EndpointSlice', where, dns1123SubdomainProblem);
  const id = `EndpointSlice ${namespace}/${name}`;
  const meta = o.metadata as Json;
  const sliceLabels = labels(meta.labels, id, 'metadata.labels');
  const serviceName = sliceLabels[SERVICE_NAME_LABEL];
  if (!serviceName) throw new ObjectError(id, `metadata.labels["${SERVICE_NAME_LABEL}"]`, 'missing');
  const addressType = o.addressType;
  if (addressType !== 'IPv4' && addressType !== 'IPv6' && addressType !== 'FQDN') {
    throw new ObjectError(id, 'addressType', `expected IPv4, IPv6 or FQDN, got ${quoted(addressType)}`);
  }
  const rawEndpoints = o.endpoints ?? [];
  if (!Array.isArray(rawEndpoints)) throw new ObjectError(id, 'endpoints', 'expected a list');
  if (rawEndpoints.length > MAX_ENDPOINTS) throw new ObjectError(id, 'endpoints', `${rawEndpoints.length} endpoints; an EndpointSlice holds at most ${MAX_ENDPOINTS}`);
  const endpoints = rawEndpoints.map((e, i) => readEndpoint(e, id, `endpoints[${i}]`, addressType));
  const rawPorts = o.ports ?? [];
  if (!Array.isArray(rawPorts)) throw new ObjectError(id, 'ports', 'expected a list');
  if (rawPorts.length > MAX_SLICE_PORTS) throw new ObjectError(id, 'ports', `${rawPorts.length} ports; an EndpointSlice holds at most ${MAX_SLICE_PORTS}`);
  const portNames = new Map<string, number>();
  const ports = rawPorts.flatMap((p, i): EndpointPort[] => {
    const f = `ports[${i}]`;
    if (!isObject(p)) throw new ObjectError(id, f, 'expected an object');
    const portName = p.name ?? '';
    if (typeof portName !== 'string') throw new ObjectError(id, `${f}.name`, `expected a string, got ${quoted(portName)}`);
    const fault = portName === '' ? null : dns1123LabelProblem(portName);
    if (fault) throw new ObjectError(id, `${f}.name`, fault);
    const first = portNames.get(portName);
    if (first !== undefined) throw new ObjectError(id, `${f}.name`, `${quoted(portName)} duplicates ports[${first}].name`);
    portNames.set(portName, i);
    const protocol = protocolField(p.protocol, id, `${f}.protocol`);
    // A port without a number means "all ports" to the API; kube-proxy ignores it.
    if (p.port === undefined || p.port === null) return [];
    return [{ name: portName, protocol, port: portNumber(p.port, id, `${f}.port`) }];
  });
  return { namespace, name, serviceName, addressType, endpoints, ports };
}

function readEndpoint(e: unknown, id: string, f: string, addressType: EndpointSlice['addressType']): Endpoint {
  if (!isObject(e)) throw new ObjectError(id, f, 'expected an object');
  if (!Array.isArray(e.addresses) || e.addresses.length === 0) throw new ObjectError(id, `${f}.addresses`, 'expected a non-empty list');
  if (e.addresses.length > MAX_ADDRESSES) throw new ObjectError(id, `${f}.addresses`, `${e.addresses.length} addresses; an endpoint holds at most ${MAX_ADDRESSES}`);
  const addresses = e.addresses.map((a, j) => endpointAddress(a, id, `${f}.addresses[${j}]`, addressType));
  const cond = e.conditions ?? {};
  if (!isObject(cond)) throw new ObjectError(id, `${f}.conditions`, 'expected an object');
  const flag = (key: string): boolean | null => {
    const v = cond[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'boolean') throw new ObjectError(id, `${f}.conditions.${key}`, `expected true, false or null, got ${quoted(v)}`);
    return v;
  };
  // EndpointSlice API: a nil `ready` means ready; nil `serving` follows ready.
  const ready = flag('ready') ?? true;
  const serving = flag('serving') ?? ready;
  const terminating = flag('terminating') ?? false;
  const nodeName = subdomainOrNull(e.nodeName, id, `${f}.nodeName`);
  const ref = e.targetRef ?? null;
  if (ref !== null && !isObject(ref)) throw new ObjectError(id, `${f}.targetRef`, 'expected an object');
  const refName = ref === null ? null : subdomainOrNull(ref.name, id, `${f}.targetRef.name`);
  return { addresses, ready, serving, terminating, nodeName, podName: ref !== null && ref.kind === 'Pod' ? refName : null };
}

function endpointAddress(a: unknown, id: string, field: string, addressType: EndpointSlice['addressType']): string {
  if (typeof a !== 'string') throw new ObjectError(id, field, `expected a string, got ${quoted(a)}`);
  if (addressType === 'FQDN') {
    const fault = fqdnProblem(a);
    if (fault) throw new ObjectError(id, field, fault);
    return a;
  }
  const ip = address(a, id, field, { nonSpecial: true });
  if (isIpv4Text(ip) !== (addressType === 'IPv4')) throw new ObjectError(id, field, `${quoted(a)} is not an ${addressType} address`);
  return ip;
}

/**
 * An address as the API accepts it in legacy fields (leading zeros allowed, `::ffff:a.b.c.d`
 * is IPv4), stored as kube-proxy prints it (Go's IP.String()).
 */
function address(v: unknown, id: string, field: string, opts: { nonSpecial: boolean }): string {
  if (typeof v !== 'string') throw new ObjectError(id, field, `expected a string, got ${quoted(v)}`);
  const ip = parseIpSloppy(v);
  if (ip === null) throw new ObjectError(id, field, `${quoted(v)} is not an IP address`);
  const special = opts.nonSpecial ? specialIpProblem(ip) : null;
  if (special) throw new ObjectError(id, field, `${quoted(v)} ${special}`);
  return formatIp(ip);
}

/** The API trims the spaces its annotation-era values may carry, then parses a CIDR. */
function sourceRange(v: string, id: string, field: string): string {
  const trimmed = goTrimSpace(v);
  const cidr = parseCidrSloppy(trimmed);
  if (cidr === null) throw new ObjectError(id, field, `${quoted(v)} is not a CIDR such as 203.0.113.0/24`);
  return formatCidrParsed(cidr);
}

function subdomainOrNull(v: unknown, id: string, field: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new ObjectError(id, field, `expected a string, got ${quoted(v)}`);
  const fault = dns1123SubdomainProblem(v);
  if (fault) throw new ObjectError(id, field, fault);
  return v;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function objectField(o: Json, key: string, id: string): Json {
  const v = o[key];
  if (!isObject(v)) throw new ObjectError(id, key, 'missing or not an object');
  return v;
}

function optionalString(o: Json, key: string, id: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ObjectError(id, `spec.${key}`, `expected a string, got ${quoted(v)}`);
  return v;
}

function protocolField(v: unknown, id: string, field: string): Protocol {
  const protocol = (v ?? 'TCP') as Protocol;
  if (!PROTOCOLS.includes(protocol)) throw new ObjectError(id, field, `expected TCP, UDP or SCTP, got ${quoted(protocol)}`);
  return protocol;
}

function policy(spec: Json, key: string, id: string): TrafficPolicy {
  const v = optionalString(spec, key, id) ?? 'Cluster';
  if (v !== 'Cluster' && v !== 'Local') throw new ObjectError(id, `spec.${key}`, `expected Cluster or Local, got ${quoted(v)}`);
  return v;
}

function portNumber(v: unknown, id: string, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) {
    throw new ObjectError(id, field, `expected a port number 1..65535, got ${quoted(v)}`);
  }
  return v as number;
}

function stringList(v: unknown, id: string, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ObjectError(id, field, 'expected a list of strings');
  v.forEach((s, i) => {
    if (typeof s !== 'string') throw new ObjectError(id, `${field}[${i}]`, `expected a string, got ${quoted(s)}`);
  });
  return v as string[];
}

/** A label map (selectors, metadata.labels): keys and values as the API validates them. */
function labels(v: unknown, id: string, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new ObjectError(id, field, 'expected a map of strings');
  for (const [k, value] of Object.entries(v)) {
    const keyFault = labelKeyProblem(k);
    if (keyFault) throw new ObjectError(id, `${field}[${quoted(k)}]`, keyFault);
    if (typeof value !== 'string') throw new ObjectError(id, `${field}[${quoted(k)}]`, `expected a string, got ${quoted(value)}`);
    const valueFault = labelValueProblem(value);
    if (valueFault) throw new ObjectError(id, `${field}[${quoted(k)}]`, valueFault);
  }
  return v as Record<string, string>;
}
