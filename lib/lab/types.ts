import type { ExecResult, RunOptions } from '../exec/index.ts';
import type { EndpointSlice, Service } from '../k8s/types.ts';
import type { Backend } from '../provenance/index.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import type { IptablesBackend } from '../proxy/iptables-backend.ts';

export type { Backend };

/** A Kubernetes manifest as parsed from YAML or JSON (Deployment, Service, …). */
export type K8sObject = Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string } };

export interface LabNode {
  name: string;
  role: 'control-plane' | 'worker';
  /** The node's address on the node network (kind's docker network). */
  ip: string;
  /** The pod CIDR this node hands out, e.g. 10.244.1.0/24. */
  podCIDR: string;
}

export interface Pod {
  namespace: string;
  name: string;
  ip: string;
  node: string;
  labels: Record<string, string>;
  ready: boolean;
}

/** What one kube-proxy resync changed on one node. */
export interface SyncReport {
  node: string;
  mode: ProxyMode;
  /** Rules (or nft statements, ipset members) present after the sync but not before. */
  added: string[];
  removed: string[];
}

export interface LoadSpec {
  /** `http://IP:PORT/path`; the labs use `/hostname` so each answer names its pod. */
  url: string;
  requests: number;
  concurrency?: number;
  /** Where requests start: the client pod (default) or a node. */
  from?: { pod: string } | { node: string };
  timeoutMs?: number;
  /**
   * Send even where nothing can answer: IPVS mode on a kernel without IP_VS, whose iptables part
   * the live trace follows all the same. Every request then counts as an error.
   */
  unanswered?: boolean;
}

export interface LoadResult {
  total: number;
  ok: number;
  errors: number;
  /** Answers per pod name, from /hostname. */
  byPod: Record<string, number>;
  durationMs: number;
  /** When the first successful answer arrived, from the start of the run. */
  firstOkMs: number | null;
  /** Up to five distinct reasons requests failed (`connect ECONNREFUSED …`), where the backend reports them (netns). */
  errorSamples?: string[];
}

export interface Capabilities {
  /** The kernel can run the IPVS data path (/proc/net/ip_vs exists where the nodes run). */
  ipvs: boolean;
}

/**
 * One small interface, one implementation per backend (as kind's providers do); callers never
 * branch on the backend.
 */
export interface Lab {
  readonly name: string;
  readonly backend: Backend;
  readonly mode: ProxyMode;
  /**
   * The iptables backend the lab programs its nodes with, where it chooses one (netns); kind's
   * nodes pick their own (capture detects it).
   */
  readonly iptablesBackend?: IptablesBackend;
  capabilities(): Promise<Capabilities>;
  nodes(): Promise<LabNode[]>;
  /** Run argv on a node (its network namespace, or `docker exec` into the kind node). */
  exec(node: string, argv: string[], opts?: RunOptions): Promise<ExecResult>;
  /** Apply Deployments and Services; returns what each node's kube-proxy resync changed. */
  apply(objects: K8sObject[]): Promise<SyncReport[]>;
  scale(deployment: string, replicas: number, namespace?: string): Promise<SyncReport[]>;
  pods(selector?: Record<string, string>): Promise<Pod[]>;
  services(): Promise<Service[]>;
  endpointSlices(): Promise<EndpointSlice[]>;
  /** Send HTTP requests to a Service from the client pod (or a node) and tally the answers. */
  load(spec: LoadSpec): Promise<LoadResult>;
  destroy(): Promise<void>;
}

/** Lab names end up in namespace and cluster names: keep them short and plain. */
export function checkLabName(name: string): string {
  if (!/^[a-z][a-z0-9-]{0,14}$/.test(name) || name.endsWith('-')) {
    throw new Error(`lab name ${JSON.stringify(name)} must be 1–15 lower-case letters, digits or dashes, start with a letter and not end with a dash`);
  }
  return name;
}
