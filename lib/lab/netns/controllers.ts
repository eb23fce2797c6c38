import { createHash } from 'node:crypto';
import { addressAt, cidrSize, ipv4ToInt, parseIpv4Cidr } from '../../k8s/addresses.ts';
import { readCluster } from '../../k8s/read.ts';
import { KIND_DEFAULTS, slice } from '../../k8s/synthetic.ts';
import type { Cluster, EndpointSlice, Service } from '../../k8s/types.ts';
import type { K8sObject, LabNode } from '../types.ts';
import type { DeploymentState, LabState, PodState } from './state.ts';

/*
 * The few Kubernetes controllers a netns lab needs, as pure functions over the lab's state:
 * the ClusterIP allocator, the scheduler, the pod IP allocator and the EndpointSlice controller.
 */

export const SERVICE_SUBNET = '10.96.0.0/16';

/** A ClusterIP chosen from the service's name, so the same lab gives the same addresses. */
export function allocateClusterIP(namespace: string, name: string, taken: ReadonlySet<string>): string {
  const net = parseIpv4Cidr(SERVICE_SUBNET);
  const size = cidrSize(net);
  const h = createHash('sha256').update(`${namespace}/${name}`).digest().readUInt32BE(0);
  // Skip .0 and the low addresses kind reserves (.1 kubernetes, .10 kube-dns).
  for (let i = 0; i < size; i++) {
    const offset = 256 + ((h + i) % (size - 512));
    const ip = addressAt(net, offset);
    if (!taken.has(ip)) return ip;
  }
  throw new Error(`no free ClusterIP left in ${SERVICE_SUBNET}`);
}

/** kube-apiserver's default --service-node-port-range. */
export const NODE_PORT_RANGE = { first: 30000, last: 32767 } as const;

/**
 * A free nodePort for one Service port. kube-apiserver draws a random free port from the range;
 * we start from a hash of the port's identity instead, so a lab gets the same ports every run.
 */
export function allocateNodePort(key: string, taken: ReadonlySet<number>): number {
  const { first, last } = NODE_PORT_RANGE;
  const size = last - first + 1;
  const h = createHash('sha256').update(key).digest().readUInt32BE(0);
  for (let i = 0; i < size; i++) {
    const port = first + ((h + i) % size);
    if (!taken.has(port)) return port;
  }
  throw new Error(`no free nodePort left in ${first}-${last}`);
}

/**
 * Where LoadBalancer ingress IPs come from: the node network, handed out from its top down
 * (172.18.255.254 first), far from the nodes, which count up from .2.
 */
export const LOAD_BALANCER_POOL = KIND_DEFAULTS.nodeSubnet;

export function allocateLoadBalancerIP(taken: ReadonlySet<string>): string {
  const net = parseIpv4Cidr(LOAD_BALANCER_POOL);
  const size = cidrSize(net);
  // Down from the last usable address; stop well above the nodes.
  for (let i = size - 2; i >= 256; i--) {
    const ip = addressAt(net, i);
    if (!taken.has(ip)) return ip;
  }
  throw new Error(`no free LoadBalancer IP left in ${LOAD_BALANCER_POOL}`);
}

/**
 * What kube-apiserver and a LoadBalancer controller add to a Service after it is written:
 * nodePorts for NodePort and LoadBalancer Services (kept from the previous version of the
 * Service, or checked when the manifest asks for one), and an ingress IP for LoadBalancers.
 * `others` are the lab's other Services, whose ports and IPs are taken.
 */
export function assignExternalAccess(svc: Service, prev: Service | undefined, others: readonly Service[]): Service {
  const id = `Service ${svc.namespace}/${svc.name}`;
  const external = svc.type === 'NodePort' || svc.type === 'LoadBalancer';
  const taken = new Set(others.flatMap((s) => s.ports.map((p) => p.nodePort)).filter((p): p is number => p !== null));
  const ports = svc.ports.map((p, i) => {
    if (!external) return { ...p, nodePort: null };
    if (p.nodePort !== null) {
      const { first, last } = NODE_PORT_RANGE;
      if (p.nodePort < first || p.nodePort > last) {
        throw new Error(`${id}: spec.ports[${i}].nodePort: Invalid value: ${p.nodePort}: provided port is not in the valid range. The range of valid ports is ${first}-${last}`);
      }
      if (taken.has(p.nodePort)) throw new Error(`${id}: spec.ports[${i}].nodePort: Invalid value: ${p.nodePort}: provided port is already allocated`);
      taken.add(p.nodePort);
      return p;
    }
    const kept = prev?.ports.find((q) => q.name === p.name && q.protocol === p.protocol)?.nodePort ?? null;
    const nodePort = kept !== null && !taken.has(kept) ? kept : allocateNodePort(`${svc.namespace}/${svc.name}:${p.name}/${p.protocol}`, taken);
    taken.add(nodePort);
    return { ...p, nodePort };
  });
  let loadBalancerIPs: string[] = [];
  if (svc.type === 'LoadBalancer') {
    const used = new Set(others.flatMap((s) => s.loadBalancerIPs));
    const kept = prev?.loadBalancerIPs.find((ip) => !used.has(ip));
    loadBalancerIPs = [kept ?? allocateLoadBalancerIP(used)];
  }
  return { ...svc, ports, loadBalancerIPs };
}

/** kube-scheduler's spreading, simplified: the worker with the fewest of this deployment's pods. */
export function pickNode(nodes: LabNode[], pods: PodState[], deployment: string): LabNode {
  const workers = nodes.filter((n) => n.role === 'worker');
  const candidates = workers.length > 0 ? workers : nodes;
  let best = candidates[0];
  let bestCount = Infinity;
  for (const n of candidates) {
    const count = pods.filter((p) => p.node === n.name && p.deployment === deployment).length;
    if (count < bestCount) {
      best = n;
      bestCount = count;
    }
  }
  return best;
}

/** host-local IPAM: the lowest free address from .2 of the node's pod CIDR. */
export function allocatePodIP(node: LabNode, pods: PodState[]): string {
  const net = parseIpv4Cidr(node.podCIDR);
  const used = new Set(pods.filter((p) => p.node === node.name).map((p) => ipv4ToInt(p.ip)));
  for (let i = 2; i < cidrSize(net) - 1; i++) {
    if (!used.has(net.network + i)) return addressAt(net, i);
  }
  throw new Error(`node ${node.name} has no free pod address left in ${node.podCIDR}`);
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  const keys = Object.keys(selector);
  return keys.length > 0 && keys.every((k) => labels[k] === selector[k]);
}

/** The EndpointSlice controller: ready pods matching each Service's selector. */
export function endpointSlicesFor(state: LabState): EndpointSlice[] {
  const out: EndpointSlice[] = [];
  const controlPlane = state.nodes.find((n) => n.role === 'control-plane');
  for (const svc of state.services) {
    if (svc.namespace === 'default' && svc.name === 'kubernetes' && controlPlane) {
      // The API server's endpoint is the control-plane node itself.
      out.push(slice('default', 'kubernetes', [
        { addresses: [controlPlane.ip], ready: true, serving: true, terminating: false, nodeName: null, podName: null },
      ], [{ name: 'https', protocol: 'TCP', port: 6443 }]));
      continue;
    }
    const pods = state.pods.filter((p) => p.namespace === svc.namespace && selects(svc.selector, p.labels));
    if (Object.keys(svc.selector).length === 0) continue;
    const endpoints = pods.map((p) => ({
      addresses: [p.ip], ready: p.ready, serving: p.ready, terminating: false, nodeName: p.node, podName: p.name,
    }));
    const ports = svc.ports.map((sp) => ({ name: sp.name, protocol: sp.protocol, port: targetPortNumber(svc, sp.targetPort) }));
    out.push(slice(svc.namespace, svc.name, endpoints, ports));
  }
  return out;
}

function targetPortNumber(svc: Service, target: number | string): number {
  if (typeof target === 'number') return target;
  throw new Error(`Service ${svc.namespace}/${svc.name}: named targetPort ${JSON.stringify(target)} is not supported by the netns backend; use a number`);
}

export function clusterOf(state: LabState): Cluster {
  return { services: state.services, endpointSlices: endpointSlicesFor(state) };
}

/** What the netns backend can run: istio's httpbin and curl samples. */
export function workloadOf(image: string): DeploymentState['runs'] {
  if (image.includes('go-httpbin') || image.includes('/httpbin')) return 'httpbin';
  if (image.includes('curl')) return 'sleep';
  throw new Error(`image ${image}: the netns backend runs httpbin and curl pods only; use the kind backend for other images`);
}

/** Read a Deployment manifest into what the backend keeps; errors name the field. */
export function readDeployment(o: K8sObject): Omit<DeploymentState, 'created'> {
  const id = `Deployment ${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;
  const spec = o.spec as Record<string, unknown> | undefined;
  const template = spec?.template as { metadata?: { labels?: Record<string, string> }; spec?: { containers?: Record<string, unknown>[] } } | undefined;
  const containers = template?.spec?.containers;
  if (!Array.isArray(containers) || containers.length === 0) throw new Error(`${id}: spec.template.spec.containers is missing`);
  const c = containers[0];
  if (typeof c.image !== 'string') throw new Error(`${id}: spec.template.spec.containers[0].image is missing`);
  const replicas = spec?.replicas ?? 1;
  if (!Number.isInteger(replicas) || (replicas as number) < 0) throw new Error(`${id}: spec.replicas must be a whole number ≥ 0`);
  const ports = Array.isArray(c.ports) ? (c.ports as { containerPort?: number }[]) : [];
  const runs = workloadOf(c.image);
  const containerPort = ports[0]?.containerPort ?? null;
  if (runs === 'httpbin' && containerPort === null) throw new Error(`${id}: spec.template.spec.containers[0].ports[0].containerPort is missing`);
  return {
    namespace: o.metadata.namespace ?? 'default',
    name: o.metadata.name,
    replicas: replicas as number,
    labels: template?.metadata?.labels ?? {},
    runs,
    containerPort,
  };
}

/** Read a Service manifest with lib/k8s's validation, then give it a ClusterIP if it has none. */
export function readServiceManifest(o: K8sObject, taken: ReadonlySet<string>): Service {
  const [svc] = readCluster({ kind: 'List', items: [{ ...o, metadata: { namespace: 'default', ...o.metadata } }] }).services;
  if (svc.clusterIP === '' ) svc.clusterIP = allocateClusterIP(svc.namespace, svc.name, taken);
  return svc;
}
