import { fileURLToPath } from 'node:url';
import type { LoadResult } from '../../types.ts';

/** The programs a netns lab runs inside pod namespaces (plain JavaScript, so they start fast). */
export const HTTPBIN_SCRIPT = fileURLToPath(new URL('./httpbin.mjs', import.meta.url));
export const LOAD_SCRIPT = fileURLToPath(new URL('./load.mjs', import.meta.url));

/** Read load.mjs's one JSON line; anything else is an error that shows what came back. */
export function parseLoadOutput(stdout: string): LoadResult & { errorSamples: string[] } {
  const line = stdout.trim().split('\n').pop() ?? '';
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error(`the load generator printed no result line: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  const o = v as Record<string, unknown>;
  const isCount = (x: unknown) => Number.isInteger(x) && (x as number) >= 0;
  if (!isCount(o.total) || !isCount(o.ok) || !isCount(o.errors) || typeof o.byPod !== 'object' || o.byPod === null || !isCount(o.durationMs)) {
    throw new Error(`the load generator's result is malformed: ${line.slice(0, 200)}`);
  }
  return {
    total: o.total as number,
    ok: o.ok as number,
    errors: o.errors as number,
    byPod: o.byPod as Record<string, number>,
    durationMs: o.durationMs as number,
    firstOkMs: isCount(o.firstOkMs) ? (o.firstOkMs as number) : null,
    errorSamples: Array.isArray(o.errorSamples) ? (o.errorSamples as string[]) : [],
  };
}
