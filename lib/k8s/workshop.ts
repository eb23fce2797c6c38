import { addressAt, parseIpv4Cidr, subnetAt } from './addresses.ts';
import { KIND_DEFAULTS, kindNodeName, service, slice, syntheticCluster } from './synthetic.ts';
import type { Cluster } from './types.ts';

export interface WorkshopOptions {
  /** httpbin replicas (the workshop starts with 3). */
  replicas?: number;
  /** Worker nodes besides the control plane (kind's workshop config has 2). */
  workers?: number;
  clusterName?: string;
  /** httpbin's ClusterIP; kind allocates one at random, the workshop fixture uses this one. */
  clusterIP?: string;
}

/** Pod names the way a Deployment names them: `<name>-<template hash>-<5 chars>`. */
export function deploymentPodName(deployment: string, index: number): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let h = 2166136261;
  for (const ch of `${deployment}/${index}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  let suffix = '';
  for (let i = 0; i < 5; i++) { suffix += alphabet[h % alphabet.length]; h = Math.floor(h / alphabet.length) ^ (i * 2654435761); h >>>= 0; }
  return `${deployment}-${templateHash(deployment)}-${suffix}`;
}

/** Stand-in for the pod-template-hash label: 10 characters from the deployment's name. */
function templateHash(deployment: string): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let h = 2166136261;
  for (const ch of deployment) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  let out = '';
  for (let i = 0; i < 10; i++) { out += alphabet[h % alphabet.length]; h = (Math.imul(h, 2654435761) + i) >>> 0; }
  return out;
}

/**
 * The workshop's cluster as kind builds it: default/kubernetes, kube-system/kube-dns, and
 * istio's httpbin sample (Service port `http` 8000 → 8080) with its pods spread over the workers.
 */
export function workshopCluster(opts: WorkshopOptions = {}): Cluster {
  const replicas = opts.replicas ?? 3;
  const workers = opts.workers ?? 2;
  const clusterName = opts.clusterName ?? KIND_DEFAULTS.clusterName;
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 250) throw new Error(`replicas must be 0..250, got ${replicas}`);
  if (!Number.isInteger(workers) || workers < 1 || workers > 250) throw new Error(`workers must be 1..250, got ${workers}`);
  const cluster = syntheticCluster({ services: 0, endpoints: 0, kindDefaults: true, clusterName, nodes: workers + 1 });
  const podNet = parseIpv4Cidr(KIND_DEFAULTS.podSubnet);
  const endpoints = Array.from({ length: replicas }, (_, i) => {
    const node = 1 + (i % workers);
    // .1 is the node side of the ptp veths; pods count up from .2 on each node.
    const ip = addressAt(subnetAt(podNet, KIND_DEFAULTS.nodeMaskSize, node), 2 + Math.floor(i / workers));
    return { addresses: [ip], ready: true, serving: true, terminating: false, nodeName: kindNodeName(clusterName, node), podName: deploymentPodName('httpbin', i) };
  });
  cluster.services.push(service({
    namespace: 'default', name: 'httpbin', clusterIP: opts.clusterIP ?? '10.96.120.15',
    ports: [{ name: 'http', protocol: 'TCP', port: 8000, targetPort: 8080, nodePort: null }],
    selector: { app: 'httpbin' },
  }));
  cluster.endpointSlices.push(slice('default', 'httpbin', endpoints, [{ name: 'http', protocol: 'TCP', port: 8080 }]));
  return cluster;
}
