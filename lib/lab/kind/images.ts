/**
 * The images a kind lab runs, kept in Docker's own image store on this machine and side-loaded
 * into every new cluster, so that a room full of laptops behind one NAT does not pull them from
 * Docker Hub once per cluster (anonymous pulls are limited per IP address).
 *
 * Docker's store is the cache: `prefetch` (or the first `up`) pulls each image once; after that
 * every cluster gets them through `docker save` to a private temp file and
 * `kind load image-archive`, and the manifests' `imagePullPolicy: IfNotPresent` with pinned tags
 * keeps the kubelet from pulling again. The node image is kind's to fetch: `kind create` pulls it
 * only when `docker inspect --type=image` does not find it (kind's providers/docker/images.go).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Runner } from '../../exec/index.ts';
import { loadManifest } from '../manifests.ts';
import {
  dockerImageInspect, dockerPull, dockerSave, dockerServerPlatform, kindLoadArchive, parseDockerServerPlatform, saveTakesPlatform,
} from './commands.ts';
import { kindConfigPath } from './index.ts';

/** The images a kind lab runs: the node image (from labs/kind-iptables.yaml) and the manifests'. */
export async function labImages(): Promise<{ node: string; workloads: string[] }> {
  const config = parseYaml(await readFile(kindConfigPath('iptables'), 'utf8')) as { nodes?: { image?: string }[] };
  const node = config.nodes?.find((n) => n.image)?.image;
  if (!node) throw new Error('labs/kind-iptables.yaml pins no node image');
  const workloads = new Set<string>();
  for (const m of ['httpbin', 'curl'] as const) {
    for (const o of await loadManifest(m)) {
      const containers = (o.spec as { template?: { spec?: { containers?: { image?: string }[] } } } | undefined)?.template?.spec?.containers ?? [];
      for (const c of containers) if (c.image) workloads.add(c.image);
    }
  }
  return { node, workloads: [...workloads] };
}

export interface ImageStep { command: string; ok: boolean; detail: string }

const step = (res: { command: string; exitCode: number; stderr: string }, done: string): ImageStep =>
  ({ command: res.command, ok: res.exitCode === 0, detail: res.exitCode === 0 ? done : res.stderr.trim().split('\n').at(-1) ?? '' });

/**
 * Pull `image` into Docker's store unless it is there already: then nothing is fetched, and the
 * step says so (`docker image inspect`), or is null with `quiet`.
 */
export async function ensureImage(r: Runner, image: string, opts: { quiet?: boolean } = {}): Promise<ImageStep | null> {
  const have = await r.run(dockerImageInspect(image), { allowFailure: true, timeoutMs: 10_000 });
  if (have.exitCode === 0) return opts.quiet ? null : { command: have.command, ok: true, detail: "already in Docker's image store" };
  return step(await r.run(dockerPull(image), { allowFailure: true, timeoutMs: 20 * 60_000 }), 'pulled');
}

/**
 * Load `images` into every node of cluster `name` from Docker's store: pulled first only if
 * missing there, then saved (only the daemon's platform, when it can) into a file in a private
 * temporary folder, and loaded with `kind load image-archive`. The steps, in order; the first that
 * fails ends it (the nodes then pull the images themselves).
 */
export async function sideLoadImages(r: Runner, name: string, images: readonly string[]): Promise<ImageStep[]> {
  const steps: ImageStep[] = [];
  for (const image of images) {
    const pulled = await ensureImage(r, image, { quiet: true });
    if (pulled) steps.push(pulled);
    if (pulled && !pulled.ok) return steps;
  }
  const server = parseDockerServerPlatform((await r.run(dockerServerPlatform(), { timeoutMs: 10_000 })).stdout);
  // mkdtemp makes the folder 0700: nobody else can swap the archive between save and load.
  const dir = await mkdtemp(join(tmpdir(), 'kube-netlab-images-'));
  try {
    const file = join(dir, 'images.tar');
    const saved = step(await r.run(dockerSave(images, file, saveTakesPlatform(server.api) ? server.platform : null), { allowFailure: true, timeoutMs: 10 * 60_000 }), `saved for ${server.platform}`);
    steps.push(saved);
    if (!saved.ok) return steps;
    steps.push(step(await r.run(kindLoadArchive(name, file), { allowFailure: true, timeoutMs: 10 * 60_000 }), `loaded into ${name}'s nodes`));
    return steps;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
