import { createHash } from 'node:crypto';

/**
 * Every namespace a netns lab makes is named `kn-<lab>.<object>`. Lab names hold no dots, so the
 * prefix `kn-<lab>.` finds exactly one lab's leftovers, even after a crash.
 */
export const LAB_PREFIX = 'kn-';

export function labPrefix(lab: string): string {
  return `${LAB_PREFIX}${lab}.`;
}

/** The node network's bridge lives in its own namespace, as docker's `kind` network would. */
export function networkNs(lab: string): string {
  return `${labPrefix(lab)}net`;
}

export function nodeNs(lab: string, node: string): string {
  return `${labPrefix(lab)}${node}`;
}

export function podNs(lab: string, pod: string): string {
  return `${labPrefix(lab)}pod.${pod}`;
}

/** The lab a namespace belongs to, or null when it is not a lab namespace. */
export function labOfNamespace(ns: string): string | null {
  if (!ns.startsWith(LAB_PREFIX)) return null;
  const dot = ns.indexOf('.', LAB_PREFIX.length);
  return dot < 0 ? null : ns.slice(LAB_PREFIX.length, dot);
}

/** kindnet names host-side pod veths `veth` + 8 hex characters. */
export function podVethName(pod: string): string {
  return `veth${createHash('sha256').update(pod).digest('hex').slice(0, 8)}`;
}
