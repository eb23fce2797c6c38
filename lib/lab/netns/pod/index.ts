import { fileURLToPath } from 'node:url';
import type { LoadResult } from '../../types.ts';

/**
 * The programs a netns lab runs inside pod namespaces. They are plain JavaScript, so a pod starts
 * in tens of milliseconds: `ip netns exec POD node HTTPBIN_SCRIPT --port 8080 …`. The build copies
 * them beside this module, so the build runs its own copies and the sources theirs.
 */
export const HTTPBIN_SCRIPT = fileURLToPath(new URL('./httpbin.mjs', import.meta.url));
export const LOAD_SCRIPT = fileURLToPath(new URL('./load.mjs', import.meta.url));

export interface HttpbinOptions {
  port: number;
  /** What `/hostname` answers: the pod name (go-httpbin with USE_REAL_HOSTNAME=true). */
  hostname: string;
  /** Address to bind; 0.0.0.0 when absent. */
  address?: string;
  /** Written (`ready`) once the server listens, so the caller can wait without polling the port. */
  readyFile?: string;
}

/** argv for one httpbin pod process; prefix it with `ip netns exec NS`. */
export function httpbinArgv(o: HttpbinOptions): string[] {
  return [
    process.execPath, HTTPBIN_SCRIPT, '--port', String(o.port), '--hostname', o.hostname,
    ...(o.address ? ['--address', o.address] : []),
    ...(o.readyFile ? ['--ready-file', o.readyFile] : []),
  ];
}

/** argv for one load run; prefix it with `ip netns exec NS`. */
export function loadArgv(spec: { url: string; requests: number; concurrency?: number; timeoutMs?: number }): string[] {
  return [
    process.execPath, LOAD_SCRIPT, '--url', spec.url, '--requests', String(spec.requests),
    ...(spec.concurrency !== undefined ? ['--concurrency', String(spec.concurrency)] : []),
    ...(spec.timeoutMs !== undefined ? ['--timeout-ms', String(spec.timeoutMs)] : []),
  ];
}

/** What load.mjs prints: a LoadResult plus a few distinct error messages. */
export interface LoadOutput extends LoadResult {
  errorSamples: string[];
}

/** load.mjs printed something other than its one result line. */
export class LoadOutputError extends Error {
  override readonly name = 'LoadOutputError';
  constructor(readonly problem: string, readonly stdout: string) {
    super(`load generator output ${problem}: ${JSON.stringify(stdout.length > 300 ? `${stdout.slice(0, 300)}…` : stdout)}`);
  }
}

const isCount = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0;
const isMs = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;

/** Read load.mjs's JSON line (the last non-empty line of stdout) and check every field. */
export function parseLoadOutput(stdout: string): LoadOutput {
  const line = stdout.trimEnd().split('\n').pop()?.trim() ?? '';
  if (line === '') throw new LoadOutputError('is empty (expected one JSON line)', stdout);
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new LoadOutputError(`is not JSON (${(e as Error).message})`, line);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new LoadOutputError('is not a JSON object', line);
  const o = v as Record<string, unknown>;
  for (const k of ['total', 'ok', 'errors'] as const) {
    if (!isCount(o[k])) throw new LoadOutputError(`has "${k}" = ${JSON.stringify(o[k])}, expected a whole number ≥ 0`, line);
  }
  const total = o.total as number, ok = o.ok as number, errors = o.errors as number;
  if (ok + errors !== total) throw new LoadOutputError(`has ok + errors = ${ok + errors}, expected total = ${total}`, line);
  if (typeof o.byPod !== 'object' || o.byPod === null || Array.isArray(o.byPod)) {
    throw new LoadOutputError('has no "byPod" object', line);
  }
  const byPod: Record<string, number> = {};
  let attributed = 0;
  for (const [pod, n] of Object.entries(o.byPod)) {
    if (!isCount(n)) throw new LoadOutputError(`has byPod[${JSON.stringify(pod)}] = ${JSON.stringify(n)}, expected a whole number ≥ 0`, line);
    byPod[pod] = n;
    attributed += n;
  }
  if (attributed > ok) throw new LoadOutputError(`tallies ${attributed} answers by pod but only ${ok} ok`, line);
  if (!isMs(o.durationMs)) throw new LoadOutputError(`has "durationMs" = ${JSON.stringify(o.durationMs)}, expected milliseconds ≥ 0`, line);
  if (o.firstOkMs !== null && !isMs(o.firstOkMs)) throw new LoadOutputError(`has "firstOkMs" = ${JSON.stringify(o.firstOkMs)}, expected milliseconds or null`, line);
  const samples = o.errorSamples ?? [];
  if (!Array.isArray(samples) || !samples.every((s) => typeof s === 'string')) {
    throw new LoadOutputError('has "errorSamples" that is not a list of strings', line);
  }
  return { total, ok, errors, byPod, durationMs: o.durationMs, firstOkMs: o.firstOkMs as number | null, errorSamples: samples };
}
