/**
 * Proof of what the kit made, so that clean-up removes only that.
 *
 * - A network namespace the kit creates carries a marker: the alias of its loopback interface,
 *   set by the same `ip` process that creates the namespace (`ip -batch`), so no crash of ours
 *   can leave one half-marked. Only root can read it, and nothing else sets it.
 * - A process the kit starts in such a namespace carries the same marker in its environment
 *   (KUBE_NETLAB_OWNER), which only its owner and root can read in /proc/PID/environ. It survives
 *   the namespace being deleted by hand, so such a process is still found and ended.
 */
import { readFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { processStart, type ProcessRef } from './process.ts';
import type { Runner } from './runner.ts';

export const OWNER_ENV = 'KUBE_NETLAB_OWNER';

/** Markers go into `ip -batch` input and environments: keep them to a plain, space-free set. */
const MARKER = /^[A-Za-z0-9/:._=-]{1,200}$/;

export function checkMarker(marker: string): string {
  if (!MARKER.test(marker)) throw new Error(`owner marker ${JSON.stringify(marker)} must be 1–200 letters, digits or /:._=-`);
  return marker;
}

/** The environment that tags a process with `marker`. */
export function ownerEnv(marker: string): Record<string, string> {
  return { [OWNER_ENV]: checkMarker(marker) };
}

/**
 * Create namespace `ns` with `marker` on its loopback (brought up). One `ip -batch` stops at its
 * first failure, so an existing namespace of that name is never marked as ours.
 */
export async function addMarkedNamespace(r: Runner, ns: string, marker: string): Promise<void> {
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(ns)) throw new Error(`namespace name ${JSON.stringify(ns)} must be letters, digits, dots, dashes or underscores`);
  await r.run(['ip', '-batch', '-'], {
    input: `netns add ${ns}\nnetns exec ${ns} ip link set dev lo up alias ${checkMarker(marker)}\n`,
  });
}

export type NamespaceMark =
  | { exists: false }
  | { exists: true; marker: string | null; /** Links other than lo: a namespace with none holds nothing to lose. */ otherLinks: number };

/** What a namespace says about its owner. */
export async function readNamespaceMark(r: Runner, ns: string): Promise<NamespaceMark> {
  const res = await r.run(['ip', '-n', ns, '-j', 'link', 'show'], { allowFailure: true, timeoutMs: 10_000 });
  if (res.exitCode !== 0) return { exists: false };
  let links: { ifname?: string; ifalias?: string }[];
  try {
    links = JSON.parse(res.stdout) as typeof links;
  } catch {
    return { exists: true, marker: null, otherLinks: 0 };
  }
  const lo = links.find((l) => l.ifname === 'lo');
  return { exists: true, marker: typeof lo?.ifalias === 'string' ? lo.ifalias : null, otherLinks: links.filter((l) => l.ifname !== 'lo').length };
}

/**
 * Every running process (this one excepted) whose environment sets `name`, with its value: how the
 * kit finds the processes it started, by the variable it gave them.
 */
export async function processesWithEnv(name: string): Promise<{ ref: ProcessRef; value: string }[]> {
  const prefix = Buffer.from(`${name}=`);
  const out: { ref: ProcessRef; value: string }[] = [];
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return out;
  }
  await Promise.all(entries.map(async (e) => {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return;
    let env: Buffer;
    try {
      env = await readFile(`/proc/${pid}/environ`);
    } catch {
      return; // gone, or not ours to read
    }
    // Each entry ends in NUL; match at the start or after a NUL.
    for (let at = env.indexOf(prefix); at >= 0; at = env.indexOf(prefix, at + 1)) {
      if (at > 0 && env[at - 1] !== 0) continue;
      const end = env.indexOf(0, at);
      out.push({ ref: { pid, start: processStart(pid) }, value: env.subarray(at + prefix.length, end < 0 ? undefined : end).toString() });
      return;
    }
  }));
  return out.sort((a, b) => a.ref.pid - b.ref.pid);
}

/** Running processes whose environment holds KUBE_NETLAB_OWNER=marker exactly (this one excepted). */
export async function processesMarked(marker: string): Promise<ProcessRef[]> {
  return (await processesWithEnv(OWNER_ENV)).filter((p) => p.value === marker).map((p) => p.ref);
}

/** Still the same, living process: not exited (a zombie counts as exited), pid not reused. */
function same(ref: ProcessRef): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${ref.pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // Fields after the command name, which may hold spaces and parentheses: state is the first.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (rest[0] === 'Z' || rest[0] === 'X') return false;
  return ref.start === null || rest[19] === ref.start;
}

function signal(ref: ProcessRef, sig: NodeJS.Signals): void {
  if (!same(ref)) return;
  try {
    process.kill(ref.pid, sig);
  } catch {
    // Already gone.
  }
}

/** SIGTERM, up to `graceMs` to exit, then SIGKILL; each signal only to the very process referenced. */
export async function stopProcesses(refs: readonly ProcessRef[], graceMs = 1000): Promise<number[]> {
  const live = refs.filter(same);
  for (const p of live) signal(p, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (live.some(same) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  for (const p of live) signal(p, 'SIGKILL');
  return live.map((p) => p.pid);
}
