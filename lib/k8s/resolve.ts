import { formatCidrParsed, formatIp, goTrimSpace, parseCidrSloppy, parseIpSloppy } from './ip.ts';
import type { Cluster, EndpointInfo, IpFamily, Service, ServicePortInfo } from './types.ts';

export interface ResolveOptions {
  /** The node rules are generated for; decides EndpointInfo.isLocal. */
  nodeName?: string | null;
  /** The proxier's IP family (default IPv4): only Services, addresses and slices of it are used. */
  ipFamily?: IpFamily;
}

/** kube-proxy's ServicePortName string: `ns/name:port`, or `ns/name` for an unnamed port. */
export function servicePortName(namespace: string, name: string, portName: string): string {
  return portName === '' ? `${namespace}/${name}` : `${namespace}/${name}:${portName}`;
}

/** kube-proxy's endpoint string (Go's net.JoinHostPort): `ip:port`, `[ip]:port` for IPv6. */
export function endpointString(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * Join Services with their EndpointSlices the way kube-proxy's change trackers for one IP family
 * do: one entry per (service, port) with a cluster IP of that family (spec.clusterIPs on a
 * dual-stack Service), endpoints from that family's slices matched by port name and protocol,
 * de-duplicated, sorted by kube-proxy's endpoint string. Sorted by servicePortName. External IPs,
 * ingress IPs and source ranges of the other family are left out, as the proxier of one family
 * leaves them; addresses are written as kube-proxy prints them. A value that is no address at
 * all is passed on unchanged: lib/k8s/read.ts refuses it, and so do the generators.
 */
export function resolveServicePorts(cluster: Cluster, opts: ResolveOptions = {}): ServicePortInfo[] {
  const nodeName = opts.nodeName ?? null;
  const family = opts.ipFamily ?? 'IPv4';
  const want = family === 'IPv4' ? 4 : 6;
  const ofFamily = (s: string): string | null => {
    const ip = parseIpSloppy(s);
    if (ip === null) return s;
    return ip.family === want ? formatIp(ip) : null;
  };
  const cidrOfFamily = (s: string): string | null => {
    const cidr = parseCidrSloppy(goTrimSpace(s));
    if (cidr === null) return s;
    return cidr.family === want ? formatCidrParsed(cidr) : null;
  };
  const slicesByService = new Map<string, Cluster['endpointSlices']>();
  for (const s of cluster.endpointSlices) {
    if (s.addressType !== family) continue;
    const key = `${s.namespace}/${s.serviceName}`;
    const list = slicesByService.get(key);
    if (list) list.push(s);
    else slicesByService.set(key, [s]);
  }
  const out: ServicePortInfo[] = [];
  for (const svc of cluster.services) {
    if (svc.type === 'ExternalName' || svc.clusterIP === 'None' || svc.clusterIP === '') continue;
    const clusterIP = clusterIPOf(svc, ofFamily);
    if (clusterIP === null) continue;
    const externalIPs = svc.externalIPs.map(ofFamily).filter((ip): ip is string => ip !== null);
    const loadBalancerIPs = svc.loadBalancerIPs.map(ofFamily).filter((ip): ip is string => ip !== null);
    const loadBalancerSourceRanges = svc.loadBalancerSourceRanges.map(cidrOfFamily).filter((r): r is string => r !== null);
    // kube-proxy keeps the health check node port only where the API requires one.
    const needsHealthCheck = svc.type === 'LoadBalancer' && svc.externalTrafficPolicy === 'Local';
    const healthCheckNodePort = needsHealthCheck ? svc.healthCheckNodePort ?? null : null;
    const slices = slicesByService.get(`${svc.namespace}/${svc.name}`) ?? [];
    for (const sp of svc.ports) {
      const byKey = new Map<string, EndpointInfo>();
      for (const slice of slices) {
        const port = slice.ports.find((p) => p.name === sp.name && p.protocol === sp.protocol);
        if (!port) continue;
        for (const ep of slice.endpoints) {
          // kube-proxy uses the first address and skips an endpoint of the other family.
          const ip = ofFamily(ep.addresses[0]);
          if (ip === null) continue;
          const key = endpointString(ip, port.port);
          if (byKey.has(key)) continue;
          byKey.set(key, {
            ip,
            port: port.port,
            ready: ep.ready,
            serving: ep.serving,
            terminating: ep.terminating,
            nodeName: ep.nodeName,
            podName: ep.podName,
            isLocal: nodeName !== null && ep.nodeName === nodeName,
          });
        }
      }
      const endpoints = [...byKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
      out.push({
        namespace: svc.namespace,
        name: svc.name,
        portName: sp.name,
        servicePortName: servicePortName(svc.namespace, svc.name, sp.name),
        protocol: sp.protocol,
        type: svc.type,
        clusterIP,
        port: sp.port,
        nodePort: sp.nodePort,
        externalIPs,
        loadBalancerIPs,
        loadBalancerSourceRanges,
        sessionAffinity: svc.sessionAffinity,
        sessionAffinityTimeoutSeconds: svc.sessionAffinityTimeoutSeconds,
        externalTrafficPolicy: svc.externalTrafficPolicy,
        internalTrafficPolicy: svc.internalTrafficPolicy,
        endpoints,
        ...(healthCheckNodePort !== null ? { healthCheckNodePort } : {}),
      });
    }
  }
  return out.sort((a, b) => (a.servicePortName < b.servicePortName ? -1 : a.servicePortName > b.servicePortName ? 1 : a.protocol < b.protocol ? -1 : 1));
}

/** kube-proxy's GetClusterIPByFamily: the entry of spec.clusterIPs of this family, else none. */
function clusterIPOf(svc: Service, ofFamily: (s: string) => string | null): string | null {
  for (const ip of svc.clusterIPs ?? [svc.clusterIP]) {
    const mine = ofFamily(ip);
    if (mine !== null) return mine;
  }
  return null;
}

/** Endpoints kube-proxy sends traffic to: ready ones, else serving-and-terminating ones (KEP-1669). */
export function usableEndpoints(endpoints: readonly EndpointInfo[]): EndpointInfo[] {
  const ready = endpoints.filter((e) => e.ready);
  return ready.length > 0 ? ready : endpoints.filter((e) => e.serving && e.terminating);
}
