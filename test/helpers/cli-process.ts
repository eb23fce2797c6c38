import { spawn } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { runner } from '../../lib/exec/index.ts';
import { OWNER_ENV } from '../../lib/exec/owned.ts';

/** The package bin, run as `npx kube-netlab` runs it. */
export const BIN = fileURLToPath(new URL('../../scripts/kube-netlab.mjs', import.meta.url));

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

export interface CliProcess {
  pid: number;
  done: Promise<CliRun>;
  /** stderr lines so far. */
  lines: string[];
  /** Resolves with the first stderr line (from now on or already seen) that matches. */
  waitForLine(match: (line: string, index: number) => boolean, ms?: number): Promise<string>;
  /** Close our ends of its stdout and stderr, as `| head -1` does once it has its line. */
  closeOutput(): void;
}

/** The CLI in its own process, as a user starts it; stderr is watched line by line. */
export function startCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let partial = '';
  const lines: string[] = [];
  const waiters: { match: (line: string, i: number) => boolean; resolve: (l: string) => void }[] = [];
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d: Buffer) => {
    err += d;
    partial += d;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.match(line, lines.length - 1)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  const done = new Promise<CliRun>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out, err })));
  return {
    pid: child.pid as number,
    done,
    lines,
    closeOutput() {
      child.stdout.destroy();
      child.stderr.destroy();
    },
    waitForLine(match, ms = 30_000) {
      const seen = lines.findIndex((l, i) => match(l, i));
      if (seen >= 0) return Promise.resolve(lines[seen]);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no stderr line matched within ${ms} ms; stderr so far:\n${lines.slice(-10).join('\n')}`)), ms);
        waiters.push({ match, resolve: (l) => { clearTimeout(timer); resolve(l); } });
        void done.then(() => { clearTimeout(timer); reject(new Error(`the CLI exited before a line matched; stderr:\n${lines.slice(-10).join('\n')}`)); });
      });
    },
  };
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return startCli(args, env).done;
}

/** Processes whose environment says a lab's marker (`kube-netlab/<state>/<lab>/<token>`) names this lab. */
export async function processesOfLab(lab: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    const pid = Number(e);
    if (!Number.isInteger(pid)) continue;
    const env = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
    if (env.split('\0').some((v) => v.startsWith(`${OWNER_ENV}=kube-netlab/`) && v.split('/')[2] === lab)) out.push(pid);
  }
  return out;
}

export async function namespacesOfLab(lab: string): Promise<string[]> {
  const r = await runner.run(['ip', 'netns', 'list']);
  return r.stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(`kn-${lab}.`)).sort();
}

/** The children of a process (to wait for the commands a killed CLI left running). */
export async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const t of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const text = await readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '');
    out.push(...text.split(' ').map(Number).filter((n) => Number.isInteger(n) && n > 0));
  }
  return out;
}

export async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
