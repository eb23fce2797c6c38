import { canonicalIpv4, formatIpv4, goTrimSpace, parseCidrSloppy, parseIpSloppy } from './ip.ts';
import type { Cluster, EndpointInfo, ServicePortInfo } from './types.ts';

export interface ResolveOptions {
  /** The node rules are generated for; decides EndpointInfo.isLocal. */
  nodeName?: string | null;
}

/** kube-proxy's ServicePortName string: `ns/name:port`, or `ns/name` for an unnamed port. */
export function servicePortName(namespace: string, name: string, portName: string): string {
  return portName === '' ? `${namespace}/${name}` : `${namespace}/${name}:${portName}`;
}

/**
 * Join Services with their EndpointSlices the way kube-proxy's IPv4 change trackers do:
 * one entry per (service, port) with an IPv4 ClusterIP, IPv4 endpoints matched by port name and
 * protocol, de-duplicated, sorted by `ip:port` string. Sorted by servicePortName. Like the IPv4
 * proxier, IPv6 Services, external IPs, ingress IPs, source ranges and endpoints are left out;
 * IPv4 addresses are written as canonical dotted quads. A value that is no address at all is
 * passed on unchanged: lib/k8s/read.ts refuses it, and so do the generators.
 */
export function resolveServicePorts(cluster: Cluster, opts: ResolveOptions = {}): ServicePortInfo[] {
  const nodeName = opts.nodeName ?? null;
  const slicesByService = new Map<string, Cluster['endpointSlices']>();
  for (const s of cluster.endpointSlices) {
    if (s.addressType !== 'IPv4') continue;
    const key = `${s.namespace}/${s.serviceName}`;
    const list = slicesByService.get(key);
    if (list) list.push(s);
    else slicesByService.set(key, [s]);
  }
  const out: ServicePortInfo[] = [];
  for (const svc of cluster.services) {
    if (svc.type === 'ExternalName' || svc.clusterIP === 'None' || svc.clusterIP === '') continue;
    const clusterIP = ipv4OrInvalid(svc.clusterIP);
    if (clusterIP === null) continue;
    const externalIPs = svc.externalIPs.map(ipv4OrInvalid).filter((ip): ip is string => ip !== null);
    const loadBalancerIPs = svc.loadBalancerIPs.map(ipv4OrInvalid).filter((ip): ip is string => ip !== null);
    const loadBalancerSourceRanges = svc.loadBalancerSourceRanges.map(ipv4CidrOrInvalid).filter((r): r is string => r !== null);
    const slices = slicesByService.get(`${svc.namespace}/${svc.name}`) ?? [];
    for (const sp of svc.ports) {
      const byKey = new Map<string, EndpointInfo>();
      for (const slice of slices) {
        const port = slice.ports.find((p) => p.name === sp.name && p.protocol === sp.protocol);
        if (!port) continue;
        for (const ep of slice.endpoints) {
          // kube-proxy uses the first address and skips an endpoint of the other family.
          const ip = ipv4OrInvalid(ep.addresses[0]);
          if (ip === null) continue;
          const key = `${ip}:${port.port}`;
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
      });
    }
  }
  return out.sort((a, b) => (a.servicePortName < b.servicePortName ? -1 : a.servicePortName > b.servicePortName ? 1 : a.protocol < b.protocol ? -1 : 1));
}

/** Canonical IPv4; null for IPv6 (skipped); anything else unchanged, for the generators to refuse. */
function ipv4OrInvalid(s: string): string | null {
  const v4 = canonicalIpv4(s);
  if (v4 !== null) return v4;
  return isIpv6(s) ? null : s;
}

function ipv4CidrOrInvalid(s: string): string | null {
  const cidr = parseCidrSloppy(goTrimSpace(s));
  if (cidr === null) return s;
  return cidr.family === 4 ? `${formatIpv4(cidr.network)}/${cidr.prefix}` : null;
}

function isIpv6(s: string): boolean {
  return parseIpSloppy(s)?.family === 6;
}

/** Endpoints kube-proxy sends traffic to: ready ones, else serving-and-terminating ones (KEP-1669). */
export function usableEndpoints(endpoints: readonly EndpointInfo[]): EndpointInfo[] {
  const ready = endpoints.filter((e) => e.ready);
  return ready.length > 0 ? ready : endpoints.filter((e) => e.serving && e.terminating);
}
