/**
 * Captures on disk, so a notebook can replay a run without a lab:
 *
 *   <runDir>/<node>/provenance.json   where, when and how the data was taken
 *   <runDir>/<node>/iptables-backend.json   which iptables backend holds kube-proxy's rules (when detected)
 *   <runDir>/<node>/items.json        per kind: command, exit code, stderr, error, skipped
 *   <runDir>/<node>/<kind>.txt        raw stdout, byte for byte (absent when nothing ran)
 *   <runDir>/<node>/<kind>.json       parsed data (absent when there is none)
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { ensurePrivateDir, ensurePrivateSubdir, writeNewFile } from '../files/index.ts';
import { join } from 'node:path';
import type { Provenance } from '../provenance/index.ts';
import type { CaptureItem, CaptureItems, NodeCapture } from './capture.ts';
import { CAPTURE_KINDS, type CaptureKind } from './commands.ts';

const FORMAT = 'kube-netlab capture v1';

interface ItemMeta {
  command: string;
  exitCode: number | null;
  stderr: string;
  error: string | null;
  skipped?: string;
  raw: boolean;
  parsed: boolean;
}

interface ItemsFile {
  format: typeof FORMAT;
  items: Partial<Record<CaptureKind, ItemMeta>>;
}

// JSON has no NaN (ipvsadm --stats leaves weights NaN): tag non-finite numbers so they round-trip.
function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? { $number: String(value) } : value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const tagged = (value as { $number?: unknown }).$number;
    if (keys.length === 1 && typeof tagged === 'string') return Number(tagged);
  }
  return value;
}

export function captureJson(value: unknown): string {
  return `${JSON.stringify(value, replacer, 2)}\n`;
}

export function parseCaptureJson(text: string): unknown {
  return JSON.parse(text, reviver);
}

/** Node names become directory names: refuse anything that could leave runDir. */
function nodeDirName(node: string | undefined): string {
  if (!node || node === '.' || node === '..' || !/^[A-Za-z0-9._-]+$/.test(node)) {
    throw new Error(`cannot save a capture for node ${JSON.stringify(node)}: node names must be letters, digits, dots, dashes or underscores`);
  }
  return node;
}

/**
 * Write one node's capture under `<runDir>/<node>/`; returns the paths written. The folders are
 * private (0700) and every file is new (0600): a capture never overwrites another, nor writes
 * through a symlink.
 */
export async function saveCapture(capture: NodeCapture, runDir: string): Promise<string[]> {
  const node = nodeDirName(capture.provenance.node);
  const dir = join(runDir, node);
  await ensurePrivateDir(runDir);
  await ensurePrivateSubdir(dir);
  const written: string[] = [];
  const write = async (name: string, text: string) => {
    const path = join(dir, name);
    try {
      await writeNewFile(path, text);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`${dir} already holds a capture of node ${node}: capture into another folder (--out)`);
      throw e;
    }
    written.push(path);
  };
  const meta: ItemsFile = { format: FORMAT, items: {} };
  for (const kind of CAPTURE_KINDS) {
    const item = capture.items[kind] as CaptureItem | undefined;
    if (!item) continue;
    // An empty .txt for a command that never ran would read as "the table is empty".
    const raw = item.exitCode !== null || item.stdout !== '';
    const parsed = item.parsed !== null;
    if (raw) await write(`${kind}.txt`, item.stdout);
    if (parsed) await write(`${kind}.json`, captureJson(item.parsed));
    meta.items[kind] = {
      command: item.command, exitCode: item.exitCode, stderr: item.stderr, error: item.error,
      ...(item.skipped !== undefined ? { skipped: item.skipped } : {}), raw, parsed,
    };
  }
  await write('items.json', captureJson(meta));
  await write('provenance.json', captureJson(capture.provenance));
  if (capture.iptablesBackend) await write('iptables-backend.json', captureJson(capture.iptablesBackend));
  return written;
}

/** Read back a capture written by saveCapture; `dir` is the node's directory. */
export async function loadCapture(dir: string): Promise<NodeCapture> {
  const read = (name: string) => readFile(join(dir, name), 'utf8');
  const prov = parseCaptureJson(await read('provenance.json')) as Provenance;
  const meta = parseCaptureJson(await read('items.json')) as ItemsFile;
  if (meta?.format !== FORMAT) throw new Error(`${join(dir, 'items.json')} is not a ${FORMAT} file`);
  const items: CaptureItems = {};
  for (const kind of CAPTURE_KINDS) {
    const m = meta.items[kind];
    if (!m) continue;
    const item: CaptureItem = {
      kind, command: m.command,
      stdout: m.raw ? await read(`${kind}.txt`) : '',
      stderr: m.stderr, exitCode: m.exitCode,
      parsed: m.parsed ? (parseCaptureJson(await read(`${kind}.json`)) as CaptureItem['parsed']) : null,
      error: m.error,
      ...(m.skipped !== undefined ? { skipped: m.skipped } : {}),
    };
    (items as Record<CaptureKind, CaptureItem>)[kind] = item;
  }
  return { provenance: prov, items };
}

/** Every node capture saved under runDir, sorted by node name. */
export async function loadRun(runDir: string): Promise<NodeCapture[]> {
  const out: NodeCapture[] = [];
  for (const entry of (await readdir(runDir)).sort()) {
    const dir = join(runDir, entry);
    const isCapture = await stat(join(dir, 'items.json')).then((s) => s.isFile(), () => false);
    if (isCapture) out.push(await loadCapture(dir));
  }
  return out;
}
