/** The slice of the Kubernetes API that kube-proxy reads: Services and EndpointSlices. */

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
export type TrafficPolicy = 'Cluster' | 'Local';

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
   * Service; IPv4 addresses are canonical dotted quads (readCluster), IPv6 ones as written.
   */
  clusterIP: string;
  ports: ServicePort[];
  selector: Record<string, string>;
  sessionAffinity: 'None' | 'ClientIP';
  /** Only meaningful with ClientIP affinity; Kubernetes defaults it to 10800. */
  sessionAffinityTimeoutSeconds: number;
  externalTrafficPolicy: TrafficPolicy;
  internalTrafficPolicy: TrafficPolicy;
  externalIPs: string[];
  loadBalancerIPs: string[];
  /** Trimmed; IPv4 ones canonical with host bits cleared. */
  loadBalancerSourceRanges: string[];
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
  /** Sorted by the string `ip:port`, as kube-proxy sorts them. */
  endpoints: EndpointInfo[];
}
