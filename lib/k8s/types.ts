/** The slice of the Kubernetes API that kube-proxy reads: Services and EndpointSlices. */

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
export type TrafficPolicy = 'Cluster' | 'Local';
/** The IP family a kube-proxy proxier programs; a dual-stack node runs one of each. */
export type IpFamily = 'IPv4' | 'IPv6';

export interface ServicePort {
  /** Empty string when the Service has a single unnamed port. */
  name: string;
  protocol: Protocol;
  port: number;
  targetPort: number | string;
  nodePort: number | null;
}

export interface Service {
  namespace: string;
  name: string;
  type: ServiceType;
  /**
   * `None` for headless services, `` before one is allocated. The IPv4 one on a dual-stack
   * Service. Addresses are written as kube-proxy prints them (readCluster): dotted quads
   * without leading zeros, IPv6 in Go's canonical form (lower case, `::` for the longest run).
   */
  clusterIP: string;
  /** Both cluster IPs of a dual-stack Service, in spec.clusterIPs order; absent when it has one or none. */
  clusterIPs?: string[];
  ports: ServicePort[];
  selector: Record<string, string>;
  sessionAffinity: 'None' | 'ClientIP';
  /** Only meaningful with ClientIP affinity; Kubernetes defaults it to 10800. */
  sessionAffinityTimeoutSeconds: number;
  externalTrafficPolicy: TrafficPolicy;
  internalTrafficPolicy: TrafficPolicy;
  externalIPs: string[];
  /** status.loadBalancer.ingress IPs with ipMode VIP (or none, as the API defaults it): kube-proxy programs these. */
  loadBalancerIPs: string[];
  /**
   * Ingress IPs with ipMode Proxy: the load balancer proxies them itself, so kube-proxy writes
   * no rules for them (LoadBalancerIPMode: beta and on by default in 1.30, GA in 1.32).
   * Absent when there are none.
   */
  loadBalancerProxyIPs?: string[];
  /** Trimmed, canonical, host bits cleared. */
  loadBalancerSourceRanges: string[];
  /** spec.healthCheckNodePort, which the API allocates for LoadBalancer Services with externalTrafficPolicy Local; absent when unset. */
  healthCheckNodePort?: number;
}

export interface Endpoint {
  addresses: string[];
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName: string | null;
  /** Name of the Pod behind the endpoint, from targetRef. */
  podName: string | null;
}

export interface EndpointPort {
  name: string;
  protocol: Protocol;
  port: number;
}

export interface EndpointSlice {
  namespace: string;
  name: string;
  /** From the `kubernetes.io/service-name` label. */
  serviceName: string;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints: Endpoint[];
  ports: EndpointPort[];
}

export interface Cluster {
  services: Service[];
  endpointSlices: EndpointSlice[];
}

/** One endpoint of one service port, as kube-proxy sees it. */
export interface EndpointInfo {
  ip: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  nodeName: string | null;
  podName: string | null;
  /** The endpoint runs on the node rules are generated for. */
  isLocal: boolean;
}

/**
 * One (service, port) pair: the unit kube-proxy programs. Named like kube-proxy's
 * ServicePortName, whose string form is `ns/name:port` (`ns/name` for an unnamed port).
 */
export interface ServicePortInfo {
  namespace: string;
  name: string;
  portName: string;
  servicePortName: string;
  protocol: Protocol;
  type: ServiceType;
  clusterIP: string;
  port: number;
  nodePort: number | null;
  externalIPs: string[];
  loadBalancerIPs: string[];
  loadBalancerSourceRanges: string[];
  sessionAffinity: 'None' | 'ClientIP';
  sessionAffinityTimeoutSeconds: number;
  externalTrafficPolicy: TrafficPolicy;
  internalTrafficPolicy: TrafficPolicy;
  /** Sorted by the string `ip:port` (`[ip]:port` for IPv6), as kube-proxy sorts them. */
  endpoints: EndpointInfo[];
  /**
   * spec.healthCheckNodePort, when kube-proxy uses it (a LoadBalancer Service with
   * externalTrafficPolicy Local); null or absent otherwise.
   */
  healthCheckNodePort?: number | null;
}
