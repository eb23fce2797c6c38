import { readFile } from 'node:fs/promises';
import { readClusterJson, syntheticCluster, type Cluster } from '../../lib/k8s/index.ts';
import { UsageError, intOption, stringOption, type ParsedArgs } from '../cli.ts';

/** Read a file named on the command line (`-` is standard input) with a clear error. */
export async function readInputFile(path: string): Promise<string> {
  if (path === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `${path}: no such file` : `${path}: cannot read (${code ?? (e as Error).message})`);
  }
}

export const clusterOptions = {
  objects: { type: 'string' },
  services: { type: 'string' },
  endpoints: { type: 'string' },
  'node-ports': { type: 'string' },
  'pod-subnet': { type: 'string' },
  'kind-defaults': { type: 'boolean' },
} as const;

/** `--objects FILE` (kubectl's List) or a synthetic `--services S --endpoints E` cluster. */
export async function clusterFromArgs(args: ParsedArgs): Promise<Cluster> {
  const objects = stringOption(args, 'objects');
  if (objects !== undefined) {
    if (args.values.services !== undefined || args.values.endpoints !== undefined) {
      throw new UsageError('give either --objects FILE or --services S --endpoints E, not both');
    }
    return readClusterJson(await readInputFile(objects));
  }
  if (args.values.services === undefined) throw new UsageError('give --objects FILE or --services S --endpoints E');
  try {
    return syntheticCluster({
      services: intOption(args, 'services'),
      endpoints: intOption(args, 'endpoints', 3),
      nodePorts: intOption(args, 'node-ports', 0),
      podSubnet: stringOption(args, 'pod-subnet'),
      kindDefaults: args.values['kind-defaults'] === true,
    });
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError((e as Error).message);
  }
}

