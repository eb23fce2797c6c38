import { readFileSync } from 'node:fs';

/** A process, told apart from a later one that reuses its pid by its start time. */
export interface ProcessRef {
  pid: number;
  /** processStart(pid) when the reference was taken; null where /proc could not say. */
  start: string | null;
}

/** Whether a pid names a running process (EPERM: it runs, as another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or null. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null;
  } catch {
    return null;
  }
}

export function processRef(pid: number): ProcessRef {
  return { pid, start: processStart(pid) };
}

/** The referenced process still runs: its pid is alive and not reused by a later process. */
export function stillRuns(ref: ProcessRef, probe = { alive: pidAlive, start: processStart }): boolean {
  if (!probe.alive(ref.pid)) return false;
  const now = probe.start(ref.pid);
  return ref.start === null || now === null || now === ref.start;
}
