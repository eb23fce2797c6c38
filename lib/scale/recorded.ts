/**
 * The scale sweep `npm run bench` recorded in labs/results/results.json: a measurement made
 * earlier, on the machine it names, shown as such rather than re-measured.
 */
import { readFile } from 'node:fs/promises';
import { projectPath } from '../project/index.ts';
import type { ScaleResult } from './types.ts';

/** Where `npm run bench` writes its results. */
export const RECORDED_RESULTS = projectPath('labs', 'results', 'results.json');

export interface RecordedScale {
  /** The command that made it, e.g. `npx kube-netlab scale --modes iptables,nftables …`. */
  command: string;
  /** When it ran (ISO 8601). */
  at: string;
  /** The machine the benchmark file describes. */
  machine: { cpu: string; cores: number; kernel: string };
  result: ScaleResult;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The recorded sweep, or null when nothing was recorded yet (no file, or no scale benchmark in it).
 * A file that is there but not shaped like a benchmark record is an error that names it.
 */
export async function readRecordedScale(path: string = RECORDED_RESULTS): Promise<RecordedScale | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const bad = (what: string) => new Error(`${path}: ${what}; run \`npm run bench\` to write it again`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(`not JSON (${(e as Error).message})`);
  }
  if (!isObject(doc)) throw bad('expected an object');
  const scale = isObject(doc.benchmarks) ? doc.benchmarks.scale : undefined;
  if (scale === undefined) return null;
  if (!isObject(scale) || typeof scale.command !== 'string' || typeof scale.at !== 'string') throw bad('benchmarks.scale has no command or time');
  const result = scale.result;
  if (!isObject(result) || !Array.isArray(result.points) || !isObject(result.options) || !isObject(result.model)) {
    throw bad('benchmarks.scale.result is not a scale sweep (points, options, model)');
  }
  const m = isObject(doc.machine) ? doc.machine : {};
  return {
    command: scale.command,
    at: scale.at,
    machine: {
      cpu: typeof m.cpu === 'string' ? m.cpu : 'unknown CPU',
      cores: typeof m.cores === 'number' ? m.cores : 0,
      kernel: typeof m.kernel === 'string' ? m.kernel : 'unknown kernel',
    },
    result: result as unknown as ScaleResult,
  };
}
