/**
 * Rules counted in a kernel rather than by a formula: iptables-restore input loaded into a
 * private, empty network namespace made for the purpose, read back with iptables-save and
 * counted, the namespace deleted again (gc removes it if the process dies first).
 */
import { captureNode, parsedOf } from '../capture/index.ts';
import { runner as defaultRunner, withScratchNetns, type Runner } from '../exec/index.ts';
import type { Provenance } from '../provenance/index.ts';
import { countIptables } from './plan.ts';

/** Why rules cannot be loaded here (not Linux, not root, no iptables-restore); null when they can. */
export async function scratchLoadUnavailable(r: Runner = defaultRunner): Promise<string | null> {
  if (process.platform !== 'linux') return `loading rules into a private network namespace needs Linux, not ${process.platform}`;
  if (process.getuid?.() !== 0) return 'loading rules into a private network namespace needs root';
  if (!(await r.has('iptables-restore'))) return 'iptables-restore is not installed';
  return null;
}

export interface LoadedRules {
  /** KUBE-* chains and their rules in the nat table, as iptables-save printed them back. */
  nat: { chains: number; rules: number };
  provenance: Provenance;
  /** The private namespace, deleted again by the time this returns. */
  namespace: string;
  seconds: number;
}

/**
 * Load `restore` (iptables-restore input) into a private namespace named `<prefix>-<pid>-<random>`
 * and count the KUBE-* nat chains and rules the kernel then holds. Large inputs take a while: each
 * command has `timeoutMs` (default 300 s).
 */
export async function loadIptablesInScratch(
  restore: string,
  opts: { prefix?: string; runner?: Runner; timeoutMs?: number } = {},
): Promise<LoadedRules> {
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const t0 = performance.now();
  return withScratchNetns(opts.prefix ?? 'kn-load', async (ns) => {
    await ns.run(['iptables-restore'], { input: restore, timeoutMs });
    const ctx = { backend: 'netns' as const, mode: 'iptables' as const, node: ns.name, lab: 'scratch' };
    const cap = await captureNode((argv, o) => ns.run(argv, { ...o, timeoutMs }), ctx, ['iptables-save']);
    const save = parsedOf(cap, 'iptables-save');
    if (!save) throw new Error(`iptables-save in ${ns.name}: ${cap.items['iptables-save']?.error ?? 'nothing parsed'}`);
    return {
      nat: countIptables(save).nat,
      provenance: { ...cap.provenance, command: 'iptables-save -t nat in a private namespace' },
      namespace: ns.name,
      seconds: (performance.now() - t0) / 1000,
    };
  }, opts.runner ?? defaultRunner);
}
