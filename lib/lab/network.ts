/**
 * Where traffic leaves a lab and where it comes in: a node's default gateway (the first hop
 * outside the cluster) and a LoadBalancer Service's ingress address.
 */
import { parseIpRouteJson } from '../parse/ip.ts';
import type { Lab } from './types.ts';

/** The gateway of a node's default route: on kind the docker bridge, on netns the lab's bridge. */
export async function defaultGateway(lab: Pick<Lab, 'exec'>, node: string): Promise<string> {
  const routes = parseIpRouteJson((await lab.exec(node, ['ip', '-j', 'route', 'show', 'default'])).stdout);
  const route = routes.find((r) => r.dst === 'default');
  const gateway = route?.gateway ?? route?.nexthops[0]?.gateway;
  if (!gateway) throw new Error(`${node} has no default route with a gateway`);
  return gateway;
}

export interface IngressAddress {
  ip: string;
  /**
   * The load-balancer controller reported it with `ipMode: Proxy`: a proxy on that address
   * forwards to the node ports, and kube-proxy writes no rule for it (cloud-provider-kind).
   * false for `ipMode: VIP`: every node's own rules catch the address (MetalLB, the netns lab).
   */
  proxied: boolean;
}

export interface IngressWait {
  namespace?: string;
  /** How long to wait for a load-balancer controller to assign an address (default 20 s). */
  timeoutMs?: number;
  /** How often to look (default 1 s). */
  pollMs?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A LoadBalancer Service's first ingress address once a load-balancer controller has assigned
 * one, or null when none did in time: Kubernetes ships no controller, so without one it stays
 * `<pending>`. Controllers answer asynchronously (cloud-provider-kind takes a few seconds).
 */
export async function waitForIngressIP(lab: Pick<Lab, 'services'>, service: string, opts: IngressWait = {}): Promise<IngressAddress | null> {
  const namespace = opts.namespace ?? 'default';
  const deadline = performance.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    const svc = (await lab.services()).find((s) => s.namespace === namespace && s.name === service);
    if (!svc) throw new Error(`lab has no Service ${namespace}/${service}`);
    if (svc.type !== 'LoadBalancer') throw new Error(`Service ${namespace}/${service} is of type ${svc.type}, not LoadBalancer`);
    if (svc.loadBalancerIPs[0]) return { ip: svc.loadBalancerIPs[0], proxied: false };
    if (svc.loadBalancerProxyIPs?.[0]) return { ip: svc.loadBalancerProxyIPs[0], proxied: true };
    if (performance.now() >= deadline) return null;
    await sleep(opts.pollMs ?? 1000);
  }
}
