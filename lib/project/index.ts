import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** package.json's name, which tells the checkout's root from any other package.json above it. */
export const PACKAGE_NAME = 'kube-netlab';

function packageName(file: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name as string | undefined;
  } catch {
    return undefined;
  }
}

/**
 * The checkout's root: the nearest folder above `from` whose package.json is kube-netlab's.
 * Walked up to, not counted, because the same module runs from lib/ (tests import the sources)
 * and from out/build/lib/ (the bin, the notebooks and the labs run the build).
 */
export function findProjectRoot(from: string | URL = import.meta.url): string {
  const start = from instanceof URL || from.startsWith('file:') ? fileURLToPath(from) : from;
  for (let dir = dirname(start); ; dir = dirname(dir)) {
    if (packageName(join(dir, 'package.json')) === PACKAGE_NAME) return dir;
    if (dirname(dir) === dir) {
      throw new Error(`no package.json named "${PACKAGE_NAME}" in ${dirname(start)} or above it: run kube-netlab from its checkout`);
    }
  }
}

/** The checkout this module belongs to. */
export const PROJECT_ROOT = findProjectRoot();

/** A path inside the checkout, e.g. `projectPath('labs', 'manifests')`. */
export function projectPath(...parts: string[]): string {
  return join(PROJECT_ROOT, ...parts);
}
