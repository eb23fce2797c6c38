import { addressAt, cidrSize, formatCidr, parseIpv4Cidr, subnetAt } from './addresses.ts';
import type { Cluster, EndpointSlice, Service } from './types.ts';

/** kind's defaults, which every lab and synthetic cluster starts from. */
export const KIND_DEFAULTS = {
  podSubnet: '10.244.0.0/16',
  nodeMaskSize: 24,
  serviceSubnet: '10.96.0.0/16',
  /** kind's IPv6 defaults (networking.ipFamily ipv6 or dual). */
  podSubnetIPv6: 'fd00:10:244::/56',
  serviceSubnetIPv6: 'fd00:10:96::/112',
  nodeSubnet: '172.18.0.0/16',
  clusterName: 'kind',
} as const;

export interface SyntheticOptions {
  services: number;
  endpoints: number;
  /** Nodes to spread pods over; grows automatically when the pods don't fit. */
  nodes?: number;
  podSubnet?: string;
  nodeMaskSize?: number;
  serviceSubnet?: string;
  namespace?: string;
  /** The first N services are type NodePort (ports from 30000 up). */
  nodePorts?: number;
  /** Add default/kubernetes and kube-system/kube-dns as kind has them. */
  kindDefaults?: boolean;
  clusterName?: string;
}

/** Most pods a synthetic cluster holds; ten times the largest the scale sweeps use (10,000 × 10). */
export const MAX_SYNTHETIC_PODS = 1_000_000;
/** NodePorts are handed out from 30000 up, within Kubernetes' default range 30000-32767. */
const NODE_PORT_RANGE = 32767 - 30000 + 1;

/**
 * The pods do not fit the pod subnet: names the narrowest subnet (longest prefix) that would hold
 * them, so a command can say which flag to pass. `nodesHeld`: the node subnets `subnet` has.
 */
export class PodSubnetTooSmallError extends Error {
  override readonly name = 'PodSubnetTooSmallError';
  constructor(
    readonly subnet: string, readonly nodesNeeded: number, readonly nodesHeld: number, readonly nodeMaskSize: number,
    readonly longestFittingPrefix: number, detail: string,
  ) {
    super(detail);
  }
}

/** kind's node names: `<cluster>-control-plane`, `<cluster>-worker`, `<cluster>-worker2`, … */
export function kindNodeName(cluster: string, index: number): string {
  if (index === 0) return `${cluster}-control-plane`;
  return index === 1 ? `${cluster}-worker` : `${cluster}-worker${index}`;
}

/**
 * S services × E endpoints, addressed like kind: node i owns the i-th /24 of the pod subnet,
 * pods are spread round-robin over nodes, services take addresses from the service subnet
 * after the ones kind reserves (.1 kubernetes, .10 kube-dns).
 */
export function syntheticCluster(opts: SyntheticOptions): Cluster {
  const S = opts.services;
  const E = opts.endpoints;
  if (!Number.isInteger(S) || S < 0) throw new Error(`services must be a whole number ≥ 0, got ${S}`);
  if (!Number.isInteger(E) || E < 0) throw new Error(`endpoints must be a whole number ≥ 0, got ${E}`);
  if (S * E > MAX_SYNTHETIC_PODS) {
    throw new Error(`services × endpoints must be at most ${MAX_SYNTHETIC_PODS.toLocaleString('en-US')} pods (every pod is an object in memory), got ${S} × ${E}`);
  }
  const nodePortCount = opts.nodePorts ?? 0;
  if (!Number.isInteger(nodePortCount) || nodePortCount < 0 || nodePortCount > Math.min(S, NODE_PORT_RANGE)) {
    throw new Error(`nodePorts must be a whole number from 0 to ${Math.min(S, NODE_PORT_RANGE)} (at most one per service, ports 30000-32767), got ${nodePortCount}`);
  }
  const podNet = parseIpv4Cidr(opts.podSubnet ?? KIND_DEFAULTS.podSubnet);
  const svcNet = parseIpv4Cidr(opts.serviceSubnet ?? KIND_DEFAULTS.serviceSubnet);
  const mask = opts.nodeMaskSize ?? KIND_DEFAULTS.nodeMaskSize;
  const namespace = opts.namespace ?? 'default';
  const clusterName = opts.clusterName ?? KIND_DEFAULTS.clusterName;
  const perNode = 2 ** (32 - mask) - 3;
  const reservedPods = opts.kindDefaults ? 2 : 0; // two coredns pods on the control plane
  const totalPods = S * E + reservedPods;
  const nodes = Math.max(opts.nodes ?? 3, Math.ceil(totalPods / perNode), 1);
  const subnets = 2 ** (mask - podNet.prefix);
  if (nodes > subnets) {
    const prefix = mask - Math.ceil(Math.log2(nodes));
    const detail = `${S}×${E} pods need ${nodes} nodes of /${mask}, but ${formatCidr(podNet)} holds ${subnets}; pass a larger pod subnet (a /${prefix} or wider, e.g. 10.0.0.0/8)`;
    throw new PodSubnetTooSmallError(formatCidr(podNet), nodes, subnets, mask, prefix, detail);
  }
  const firstServiceOffset = 256; // after kind's reserved .1 and .10
  if (firstServiceOffset + S >= cidrSize(svcNet)) throw new Error(`${S} services don't fit in ${formatCidr(svcNet)}`);

  const nextHost = new Array<number>(nodes).fill(2); // .1 is the node side of the ptp veths
  let rr = 0;
  const allocPod = (node?: number) => {
    const n = node ?? rr++ % nodes;
    const ip = addressAt(subnetAt(podNet, mask, n), nextHost[n]++);
    return { ip, nodeName: kindNodeName(clusterName, n) };
  };

  const cluster: Cluster = { services: [], endpointSlices: [] };
  if (opts.kindDefaults) addKindDefaults(cluster, svcNet, allocPod);

  const width = String(Math.max(S, 1)).length;
  const nodePorts = opts.nodePorts ?? 0;
  for (let i = 0; i < S; i++) {
    const name = `svc-${String(i + 1).padStart(width, '0')}`;
    const isNodePort = i < nodePorts;
    cluster.services.push(service({
      namespace,
      name,
      type: isNodePort ? 'NodePort' : 'ClusterIP',
      clusterIP: addressAt(svcNet, firstServiceOffset + i),
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: isNodePort ? 30000 + i : null }],
      selector: { app: name },
    }));
    const endpoints = [];
    for (let j = 0; j < E; j++) {
      const { ip, nodeName } = allocPod();
      endpoints.push({ addresses: [ip], ready: true, serving: true, terminating: false, nodeName, podName: `${name}-${j}` });
    }
    cluster.endpointSlices.push(slice(namespace, name, endpoints, [{ name: 'http', protocol: 'TCP', port: 8080 }]));
  }
  return cluster;
}

function addKindDefaults(
  cluster: Cluster,
  svcNet: ReturnType<typeof parseIpv4Cidr>,
  allocPod: (node?: number) => { ip: string; nodeName: string },
): void {
  cluster.services.push(service({
    namespace: 'default', name: 'kubernetes', clusterIP: addressAt(svcNet, 1),
    ports: [{ name: 'https', protocol: 'TCP', port: 443, targetPort: 6443, nodePort: null }],
  }));
  cluster.endpointSlices.push(slice('default', 'kubernetes', [
    { addresses: [addressAt(parseIpv4Cidr(KIND_DEFAULTS.nodeSubnet), 2)], ready: true, serving: true, terminating: false, nodeName: null, podName: null },
  ], [{ name: 'https', protocol: 'TCP', port: 6443 }]));
  cluster.services.push(service({
    namespace: 'kube-system', name: 'kube-dns', clusterIP: addressAt(svcNet, 10),
    ports: [
      { name: 'dns', protocol: 'UDP', port: 53, targetPort: 53, nodePort: null },
      { name: 'dns-tcp', protocol: 'TCP', port: 53, targetPort: 53, nodePort: null },
      { name: 'metrics', protocol: 'TCP', port: 9153, targetPort: 9153, nodePort: null },
    ],
    selector: { 'k8s-app': 'kube-dns' },
  }));
  const dnsPods = [0, 1].map((k) => {
    const { ip, nodeName } = allocPod(0);
    return { addresses: [ip], ready: true, serving: true, terminating: false, nodeName, podName: `coredns-${k}` };
  });
  cluster.endpointSlices.push(slice('kube-system', 'kube-dns', dnsPods, [
    { name: 'dns', protocol: 'UDP', port: 53 },
    { name: 'dns-tcp', protocol: 'TCP', port: 53 },
    { name: 'metrics', protocol: 'TCP', port: 9153 },
  ]));
}

type ServiceInit = Pick<Service, 'namespace' | 'name' | 'clusterIP' | 'ports'> & Partial<Service>;

/** A Service with Kubernetes' defaults filled in. */
export function service(init: ServiceInit): Service {
  return {
    type: 'ClusterIP',
    selector: {},
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    externalIPs: [],
    loadBalancerIPs: [],
    loadBalancerSourceRanges: [],
    ...init,
  };
}

/** An EndpointSlice named the way the controller names them (`<service>-<suffix>`). */
export function slice(namespace: string, serviceName: string, endpoints: EndpointSlice['endpoints'], ports: EndpointSlice['ports']): EndpointSlice {
  return { namespace, name: `${serviceName}-${sliceSuffix(serviceName)}`, serviceName, addressType: 'IPv4', endpoints, ports };
}

// Stable stand-in for the controller's random 5-character suffix.
function sliceSuffix(name: string): string {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) { s += alphabet[h % alphabet.length]; h = Math.floor(h / alphabet.length) + i * 7; }
  return s;
}
