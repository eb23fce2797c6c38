import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { projectPath } from '../project/index.ts';
import type { K8sObject } from './types.ts';

/** Where the vendored manifests live: labs/manifests/ in the checkout. */
export const MANIFEST_DIR = projectPath('labs', 'manifests');

/** Parse multi-document YAML into objects; a bad document names its index and the YAML error. */
export function parseManifests(text: string, source = 'manifest'): K8sObject[] {
  const docs = parseAllDocuments(text);
  const out: K8sObject[] = [];
  docs.forEach((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${source}: document ${i + 1}: ${doc.errors[0].message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) return;
    const o = value as Partial<K8sObject>;
    if (typeof o !== 'object' || typeof o.kind !== 'string' || typeof o.metadata?.name !== 'string') {
      throw new Error(`${source}: document ${i + 1}: expected a Kubernetes object with kind and metadata.name`);
    }
    out.push(o as K8sObject);
  });
  return out;
}

/** The manifests in labs/manifests/: the workshop's two, and Service variants for ingress. */
export type ManifestName = 'httpbin' | 'curl' | 'httpbin-nodeport' | 'httpbin-lb';

/** A vendored manifest by name, e.g. `httpbin` or `curl`. */
export async function loadManifest(name: ManifestName): Promise<K8sObject[]> {
  return parseManifests(await readFile(join(MANIFEST_DIR, `${name}.yaml`), 'utf8'), `labs/manifests/${name}.yaml`);
}

/**
 * The objects with `spec` merged into every Service's spec, the others unchanged: a manifest's
 * Services with, say, `loadBalancerSourceRanges` set, as `kubectl patch` would.
 */
export function withServiceSpec(objects: readonly K8sObject[], spec: Record<string, unknown>): K8sObject[] {
  return objects.map((o) => (o.kind === 'Service' ? { ...o, spec: { ...(o.spec as Record<string, unknown> | undefined), ...spec } } : o));
}
