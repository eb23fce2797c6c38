import type { Cluster, EndpointSlice, Service } from './types.ts';

/** The List `kubectl get services,endpointslices -A -o json` would print for this cluster. */
export function toKubernetesList(cluster: Cluster): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'List',
    items: [...cluster.services.map(serviceObject), ...cluster.endpointSlices.map(endpointSliceObject)],
    metadata: { resourceVersion: '' },
  };
}

export function serviceObject(s: Service): Record<string, unknown> {
  const spec: Record<string, unknown> = {
    type: s.type,
    // spec.clusterIP is the first of spec.clusterIPs, which may be the IPv6 one.
    clusterIP: s.clusterIPs?.[0] ?? s.clusterIP,
    clusterIPs: s.clusterIPs ?? [s.clusterIP],
    ports: s.ports.map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      protocol: p.protocol,
      port: p.port,
      targetPort: p.targetPort,
      ...(p.nodePort !== null ? { nodePort: p.nodePort } : {}),
    })),
    selector: s.selector,
    sessionAffinity: s.sessionAffinity,
    internalTrafficPolicy: s.internalTrafficPolicy,
  };
  if (s.sessionAffinity === 'ClientIP') spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: s.sessionAffinityTimeoutSeconds } };
  if (s.type === 'NodePort' || s.type === 'LoadBalancer') spec.externalTrafficPolicy = s.externalTrafficPolicy;
  if (s.externalIPs.length) spec.externalIPs = s.externalIPs;
  if (s.loadBalancerSourceRanges.length) spec.loadBalancerSourceRanges = s.loadBalancerSourceRanges;
  if (s.healthCheckNodePort !== undefined) spec.healthCheckNodePort = s.healthCheckNodePort;
  const ingress = [
    ...s.loadBalancerIPs.map((ip) => ({ ip })),
    ...(s.loadBalancerProxyIPs ?? []).map((ip) => ({ ip, ipMode: 'Proxy' })),
  ];
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: s.name, namespace: s.namespace },
    spec,
    status: { loadBalancer: ingress.length ? { ingress } : {} },
  };
}

export function endpointSliceObject(s: EndpointSlice): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: s.name,
      namespace: s.namespace,
      labels: { 'kubernetes.io/service-name': s.serviceName, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: s.addressType,
    endpoints: s.endpoints.map((e) => ({
      addresses: e.addresses,
      conditions: { ready: e.ready, serving: e.serving, terminating: e.terminating },
      ...(e.nodeName ? { nodeName: e.nodeName } : {}),
      ...(e.podName ? { targetRef: { kind: 'Pod', name: e.podName, namespace: s.namespace } } : {}),
    })),
    ports: s.ports.map((p) => ({ name: p.name, protocol: p.protocol, port: p.port })),
  };
}
