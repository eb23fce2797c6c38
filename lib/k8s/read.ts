import ipaddr from 'ipaddr.js';
import { ObjectError } from './errors.ts';
import type {
  Cluster, Endpoint, EndpointPort, EndpointSlice, Protocol, Service, ServicePort, ServiceType, TrafficPolicy,
} from './types.ts';

type Json = Record<string, unknown>;

const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * Read the List that `kubectl get services,endpointslices -A -o json` prints (or a single
 * object, or a plain array). Unknown kinds are skipped: kubectl lists may hold other objects.
 */
export function readCluster(input: unknown): Cluster {
  const items = listItems(input);
  const cluster: Cluster = { services: [], endpointSlices: [] };
  items.forEach((item, i) => {
    if (!isObject(item)) throw new ObjectError(`items[${i}]`, '', 'expected an object');
    const kind = item.kind;
    if (kind === 'Service') cluster.services.push(readService(item, `items[${i}]`));
    else if (kind === 'EndpointSlice') cluster.endpointSlices.push(readEndpointSlice(item, `items[${i}]`));
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

function readService(o: Json, where: string): Service {
  const meta = objectField(o, 'metadata', where);
  const namespace = nameField(meta, 'namespace', where, 'default');
  const name = nameField(meta, 'name', where);
  const id = `Service ${namespace}/${name}`;
  const spec = objectField(o, 'spec', id);
  const type = (optionalString(spec, 'type', id) ?? 'ClusterIP') as ServiceType;
  if (!SERVICE_TYPES.includes(type)) throw new ObjectError(id, 'spec.type', `unknown type ${JSON.stringify(type)}`);
  const clusterIP = optionalString(spec, 'clusterIP', id) ?? (type === 'ExternalName' ? 'None' : '');
  if (type !== 'ExternalName' && clusterIP !== 'None' && clusterIP !== '' && !ipaddr.isValid(clusterIP)) {
    throw new ObjectError(id, 'spec.clusterIP', `${JSON.stringify(clusterIP)} is not an IP address`);
  }
  const rawPorts = spec.ports ?? [];
  if (!Array.isArray(rawPorts)) throw new ObjectError(id, 'spec.ports', 'expected a list');
  const ports = rawPorts.map((p, i) => readServicePort(p, id, `spec.ports[${i}]`, type));
  if (ports.length > 1) {
    ports.forEach((p, i) => {
      if (p.name === '') throw new ObjectError(id, `spec.ports[${i}].name`, 'required when a Service has several ports');
    });
  }
  const affinity = optionalString(spec, 'sessionAffinity', id) ?? 'None';
  if (affinity !== 'None' && affinity !== 'ClientIP') {
    throw new ObjectError(id, 'spec.sessionAffinity', `expected None or ClientIP, got ${JSON.stringify(affinity)}`);
  }
  const affinityConfig = isObject(spec.sessionAffinityConfig) ? spec.sessionAffinityConfig : {};
  const clientIP = isObject(affinityConfig.clientIP) ? affinityConfig.clientIP : {};
  const timeout = clientIP.timeoutSeconds ?? 10800;
  if (!Number.isInteger(timeout) || (timeout as number) <= 0 || (timeout as number) > 86400) {
    throw new ObjectError(id, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', 'expected an integer in 1..86400');
  }
  const lbIngress = isObject(o.status) && isObject(o.status.loadBalancer) && Array.isArray(o.status.loadBalancer.ingress)
    ? o.status.loadBalancer.ingress
    : [];
  return {
    namespace,
    name,
    type,
    clusterIP,
    ports,
    selector: stringMap(spec.selector, id, 'spec.selector'),
    sessionAffinity: affinity,
    sessionAffinityTimeoutSeconds: timeout as number,
    externalTrafficPolicy: policy(spec, 'externalTrafficPolicy', id),
    internalTrafficPolicy: policy(spec, 'internalTrafficPolicy', id),
    externalIPs: ipList(spec.externalIPs, id, 'spec.externalIPs'),
    loadBalancerIPs: lbIngress.flatMap((ing, i) =>
      isObject(ing) && typeof ing.ip === 'string' ? [checkIp(ing.ip, id, `status.loadBalancer.ingress[${i}].ip`)] : []),
    loadBalancerSourceRanges: stringList(spec.loadBalancerSourceRanges, id, 'spec.loadBalancerSourceRanges'),
  };
}

function readServicePort(p: unknown, id: string, field: string, type: ServiceType): ServicePort {
  if (!isObject(p)) throw new ObjectError(id, field, 'expected an object');
  const name = typeof p.name === 'string' ? p.name : '';
  const protocol = (p.protocol ?? 'TCP') as Protocol;
  if (!PROTOCOLS.includes(protocol)) throw new ObjectError(id, `${field}.protocol`, `expected TCP, UDP or SCTP, got ${JSON.stringify(protocol)}`);
  const port = portNumber(p.port, id, `${field}.port`);
  const targetPort = p.targetPort === undefined ? port
    : typeof p.targetPort === 'string' ? p.targetPort : portNumber(p.targetPort, id, `${field}.targetPort`);
  const nodePort = p.nodePort === undefined || p.nodePort === null ? null : portNumber(p.nodePort, id, `${field}.nodePort`);
  if (nodePort !== null && type !== 'NodePort' && type !== 'LoadBalancer') {
    throw new ObjectError(id, `${field}.nodePort`, `set, but type ${type} has no node ports`);
  }
  return { name, protocol, port, targetPort, nodePort };
}

function readEndpointSlice(o: Json, where: string): EndpointSlice {
  const meta = objectField(o, 'metadata', where);
  const namespace = nameField(meta, 'namespace', where, 'default');
  const name = typeof meta.name === 'string' && meta.name !== '' ? meta.name : '';
  if (name === '') throw new ObjectError(`EndpointSlice in ${namespace} (${where})`, 'metadata.name', 'missing');
  const id = `EndpointSlice ${namespace}/${name}`;
  const labels = stringMap(meta.labels, id, 'metadata.labels');
  const serviceName = labels['kubernetes.io/service-name'];
  if (!serviceName) throw new ObjectError(id, 'metadata.labels["kubernetes.io/service-name"]', 'missing');
  const addressType = o.addressType;
  if (addressType !== 'IPv4' && addressType !== 'IPv6' && addressType !== 'FQDN') {
    throw new ObjectError(id, 'addressType', `expected IPv4, IPv6 or FQDN, got ${JSON.stringify(addressType)}`);
  }
  const rawEndpoints = o.endpoints ?? [];
  if (!Array.isArray(rawEndpoints)) throw new ObjectError(id, 'endpoints', 'expected a list');
  const endpoints = rawEndpoints.map((e, i): Endpoint => {
    const f = `endpoints[${i}]`;
    if (!isObject(e)) throw new ObjectError(id, f, 'expected an object');
    if (!Array.isArray(e.addresses) || e.addresses.length === 0) throw new ObjectError(id, `${f}.addresses`, 'expected a non-empty list');
    const addresses = e.addresses.map((a, j) =>
      addressType === 'FQDN' ? String(a) : checkIp(a, id, `${f}.addresses[${j}]`));
    const cond = isObject(e.conditions) ? e.conditions : {};
    // EndpointSlice API: a nil `ready` means ready; nil `serving` follows ready.
    const ready = cond.ready === undefined || cond.ready === null ? true : cond.ready === true;
    const serving = cond.serving === undefined || cond.serving === null ? ready : cond.serving === true;
    const terminating = cond.terminating === true;
    const ref = isObject(e.targetRef) ? e.targetRef : null;
    return {
      addresses,
      ready,
      serving,
      terminating,
      nodeName: typeof e.nodeName === 'string' ? e.nodeName : null,
      podName: ref && ref.kind === 'Pod' && typeof ref.name === 'string' ? ref.name : null,
    };
  });
  const rawPorts = o.ports ?? [];
  if (!Array.isArray(rawPorts)) throw new ObjectError(id, 'ports', 'expected a list');
  const ports = rawPorts.map((p, i): EndpointPort => {
    const f = `ports[${i}]`;
    if (!isObject(p)) throw new ObjectError(id, f, 'expected an object');
    const protocol = (p.protocol ?? 'TCP') as Protocol;
    if (!PROTOCOLS.includes(protocol)) throw new ObjectError(id, `${f}.protocol`, `expected TCP, UDP or SCTP, got ${JSON.stringify(protocol)}`);
    return { name: typeof p.name === 'string' ? p.name : '', protocol, port: portNumber(p.port, id, `${f}.port`) };
  });
  return { namespace, name, serviceName, addressType, endpoints, ports };
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function objectField(o: Json, key: string, id: string): Json {
  const v = o[key];
  if (!isObject(v)) throw new ObjectError(id, key, 'missing or not an object');
  return v;
}

function nameField(meta: Json, key: string, where: string, fallback?: string): string {
  const v = meta[key] ?? fallback;
  if (typeof v !== 'string' || !DNS_LABEL.test(v)) {
    throw new ObjectError(`object ${where}${typeof meta.name === 'string' ? ` (${meta.name})` : ''}`, `metadata.${key}`,
      `${JSON.stringify(v)} is not a valid DNS label`);
  }
  return v;
}

function optionalString(o: Json, key: string, id: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new ObjectError(id, `spec.${key}`, 'expected a string');
  return v;
}

function policy(spec: Json, key: string, id: string): TrafficPolicy {
  const v = optionalString(spec, key, id) ?? 'Cluster';
  if (v !== 'Cluster' && v !== 'Local') throw new ObjectError(id, `spec.${key}`, `expected Cluster or Local, got ${JSON.stringify(v)}`);
  return v;
}

function portNumber(v: unknown, id: string, field: string): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) {
    throw new ObjectError(id, field, `expected a port number 1..65535, got ${JSON.stringify(v)}`);
  }
  return v as number;
}

function checkIp(v: unknown, id: string, field: string): string {
  if (typeof v !== 'string' || !ipaddr.isValid(v)) throw new ObjectError(id, field, `${JSON.stringify(v)} is not an IP address`);
  return v;
}

function ipList(v: unknown, id: string, field: string): string[] {
  return stringList(v, id, field).map((s, i) => checkIp(s, id, `${field}[${i}]`));
}

function stringList(v: unknown, id: string, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new ObjectError(id, field, 'expected a list of strings');
  return v as string[];
}

function stringMap(v: unknown, id: string, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObject(v) || !Object.values(v).every((s) => typeof s === 'string')) throw new ObjectError(id, field, 'expected a map of strings');
  return v as Record<string, string>;
}
