// Kubernetes objects as kubectl prints them, for the object-reading tests.
import { ObjectError, readCluster } from '../../lib/k8s/index.ts';

export const list = (...items: unknown[]) => ({ apiVersion: 'v1', kind: 'List', items });

/** The EndpointSlice port most tests use. */
export const HTTP_PORTS = [{ name: 'http', port: 8080 }];

export function svc(name: string, spec: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { kind: 'Service', metadata: { name, namespace: 'default' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80 }], ...spec }, ...extra };
}

export function slice(name: string, service: string, endpoints: unknown[], ports: unknown[] = HTTP_PORTS, addressType = 'IPv4') {
  return { kind: 'EndpointSlice', metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': service } }, addressType, endpoints, ports };
}

/** The ObjectError readCluster throws, or a failure when it throws nothing. */
export function refusal(input: unknown): ObjectError {
  try {
    readCluster(input);
  } catch (e) {
    if (e instanceof ObjectError) return e;
    throw e;
  }
  throw new Error('readCluster accepted the input');
}
