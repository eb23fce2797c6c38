/**
 * Read kube-proxy's state off one node: run each capture command through the exec the caller
 * hands in (a netns lab's, a kind node's `docker exec`, a scratch namespace's), keep the raw text
 * byte for byte, and parse it. Backend-agnostic: this module never knows how the node is reached.
 */
import { CommandError, MissingToolError, packageFor, shellQuote, type ExecResult, type RunOptions } from '../exec/index.ts';
import { provenance, type Backend, type Provenance } from '../provenance/index.ts';
import type { ProxyMode } from '../proxy/modes.ts';
import { IPTABLES_BACKENDS, detectIptablesBackend, iptablesTools, type IptablesBackend, type IptablesBackendReport } from '../proxy/iptables-backend.ts';
import { CAPTURE_KINDS, CAPTURE_SPECS, type CaptureKind, type CaptureParsed, type CaptureSpec, type ParseOptions } from './commands.ts';

/** Runs argv on the node: Lab.exec bound to a node, or a scratch namespace's run. */
export type NodeExec = (argv: string[], opts?: RunOptions) => Promise<ExecResult>;

export interface CaptureItem<K extends CaptureKind = CaptureKind> {
  kind: K;
  /** The shell command anyone can type on the node. */
  command: string;
  /** Raw output, byte for byte. */
  stdout: string;
  stderr: string;
  /** null when the command could not be started at all. */
  exitCode: number | null;
  parsed: CaptureParsed[K] | null;
  /** Why there is no parsed data although there should be: a parse error or a failed command. */
  error: string | null;
  /** Why this kind does not apply to the node: a tool or kernel feature it lacks. */
  skipped?: string;
}

export type CaptureItems = { [K in CaptureKind]?: CaptureItem<K> };

export interface NodeCapture {
  provenance: Provenance;
  /** One item per requested kind. */
  items: CaptureItems;
  /** Which iptables backend the node's rules are in, and how that was decided (see CaptureOptions.iptablesBackend). */
  iptablesBackend?: IptablesBackendReport;
}

export interface CaptureContext {
  backend: Backend;
  mode: ProxyMode;
  node: string;
  lab: string;
}

export interface CaptureOptions extends ParseOptions {
  /** Per command; the exec's own default applies when unset. */
  timeoutMs?: number;
  /**
   * Read iptables through one backend's tools: the one given (a lab that chose it), or, with
   * 'detect', the one the node uses (both saves are read first, as iptables-wrappers decides).
   * Unset: the node's plain `iptables-save`.
   */
  iptablesBackend?: IptablesBackend | 'detect';
}

/** No command reached the node: the capture as a whole failed. */
export class NodeUnreachableError extends Error {
  override readonly name = 'NodeUnreachableError';
  constructor(readonly node: string, readonly reasons: Partial<Record<CaptureKind, string>>) {
    const first = Object.values(reasons)[0];
    super(`cannot capture node ${node}: no command reached it${first ? ` (${first})` : ''}`);
  }
}

/**
 * Capture `kinds` (all of them by default) from one node. Missing tools and kernel features
 * become `skipped`, parse errors keep the raw text; it throws only when the node is unreachable.
 */
export async function captureNode(
  exec: NodeExec,
  ctx: CaptureContext,
  kinds: readonly CaptureKind[] = CAPTURE_KINDS,
  opts: CaptureOptions = {},
): Promise<NodeCapture> {
  const prov = provenance({ source: 'captured', backend: ctx.backend, mode: ctx.mode, node: ctx.node, lab: ctx.lab });
  const items: CaptureItems = {};
  const unique = [...new Set(kinds)];
  const report = opts.iptablesBackend === undefined ? undefined : await iptablesBackendOf(exec, opts.iptablesBackend, opts);
  for (const kind of unique) {
    const item = await captureItem(exec, withBackend(CAPTURE_SPECS[kind] as CaptureSpec, report?.backend ?? null), opts);
    if ('unreachable' in item) throw new NodeUnreachableError(ctx.node, { [kind]: item.unreachable });
    (items as Record<CaptureKind, CaptureItem>)[kind] = item;
  }
  const all = Object.values(items) as CaptureItem[];
  // A node that answered anything (even "not installed") was reached.
  if (all.length > 0 && !all.some((i) => i.exitCode === 0 || i.skipped !== undefined)) {
    throw new NodeUnreachableError(ctx.node, Object.fromEntries(all.map((i) => [i.kind, i.error ?? ''])));
  }
  return { provenance: prov, items, ...(report ? { iptablesBackend: report } : {}) };
}

/** The iptables kinds read through one backend's binaries (`iptables-legacy-save -c`). */
function withBackend(spec: CaptureSpec, backend: IptablesBackend | null): CaptureSpec {
  if (backend === null || !spec.argv[0].startsWith('iptables')) return spec;
  const t = iptablesTools(backend);
  const tool = spec.argv[0] === 'iptables-save' ? t.save : spec.argv[0] === 'iptables' ? t.iptables : spec.argv[0];
  return { ...spec, argv: [tool, ...spec.argv.slice(1)], tool };
}

async function iptablesBackendOf(exec: NodeExec, want: IptablesBackend | 'detect', opts: CaptureOptions): Promise<IptablesBackendReport> {
  if (want !== 'detect') {
    return { backend: want, ruleLines: { legacy: 0, nft: 0 }, errors: {}, evidence: `the lab programs its nodes with iptables-${want}` };
  }
  const saves = { legacy: null, nft: null } as Record<IptablesBackend, string | null>;
  const errors: Partial<Record<IptablesBackend, string>> = {};
  for (const b of IPTABLES_BACKENDS) {
    const tool = iptablesTools(b).save;
    try {
      const res = await exec([tool], { allowFailure: true, ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
      if (res.exitCode === 0) saves[b] = res.stdout;
      else errors[b] = `${tool} exited ${res.exitCode}: ${lastLines(res.stderr)}`;
    } catch (e) {
      errors[b] = messageOf(e);
    }
  }
  return detectIptablesBackend(saves, errors);
}

async function captureItem(exec: NodeExec, spec: CaptureSpec, opts: CaptureOptions): Promise<CaptureItem | { unreachable: string }> {
  const base: CaptureItem = { kind: spec.kind, command: shellQuote(spec.argv), stdout: '', stderr: '', exitCode: null, parsed: null, error: null };
  let res: Pick<ExecResult, 'stdout' | 'stderr' | 'exitCode'>;
  try {
    res = await exec([...spec.argv], { allowFailure: true, ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
  } catch (e) {
    if (e instanceof MissingToolError) {
      // Missing on the node itself (not the way onto it): this one capture is skipped.
      if (e.binary === spec.tool || e.where === 'inside') return { ...base, stderr: e.stderr, skipped: notInstalled(spec) };
      // What is missing is the way onto the node (docker, ip): no other command will fare better.
      return { unreachable: e.message };
    }
    // An exec that ignores allowFailure still tells us how the command ended.
    if (e instanceof CommandError && e.reason === 'exit' && e.exitCode !== null) {
      res = { stdout: '', stderr: e.stderr, exitCode: e.exitCode };
    } else {
      return { ...base, error: messageOf(e) };
    }
  }
  const item: CaptureItem = { ...base, stdout: res.stdout, stderr: res.stderr, exitCode: res.exitCode };
  if (res.exitCode !== 0) {
    const skipped = whySkipped(spec, res.stderr, res.exitCode);
    if (skipped) return { ...item, skipped };
    const detail = lastLines(res.stderr);
    return { ...item, error: `\`${base.command}\` exited ${res.exitCode}${detail ? `: ${detail}` : ''}` };
  }
  try {
    return { ...item, parsed: spec.parse(res.stdout, res.stderr, opts) };
  } catch (e) {
    return { ...item, error: messageOf(e) };
  }
}

function notInstalled(spec: CaptureSpec): string {
  const pkg = packageFor(spec.tool);
  return `${spec.tool} is not installed on this node${pkg ? ` (Debian package: ${pkg})` : ''}${spec.alternative ? `; ${spec.alternative}` : ''}`;
}

/** Errors by which kernels say a subsystem (module) is absent. */
const NO_KERNEL_FEATURE = [
  'Protocol not available', 'Protocol not supported', 'Address family not supported',
  "Can't initialize ipvs", 'Cannot open session to kernel',
];

/**
 * A failed command that says the node lacks the tool or the kernel feature, as the launchers
 * word it: `ip netns exec` ("exec of "X" failed"), docker/kubectl ("executable file not found"),
 * nsenter ("failed to execute X"), a shell (exit 127).
 */
export function whySkipped(spec: Pick<CaptureSpec, 'tool' | 'feature' | 'file' | 'alternative'>, stderr: string, exitCode: number): string | undefined {
  if (spec.file && stderr.includes(spec.file) && stderr.includes('No such file or directory')) {
    return `kernel has no ${spec.feature}: ${spec.file} is absent`;
  }
  const notFound =
    exitCode === 127 ||
    stderr.includes('executable file not found') ||
    (stderr.includes('exec of "') && stderr.includes('" failed: No such file or directory')) ||
    (stderr.includes('failed to execute') && stderr.includes('No such file or directory'));
  if (notFound) return notInstalled(spec as CaptureSpec);
  if (NO_KERNEL_FEATURE.some((m) => stderr.includes(m))) {
    return `kernel has no ${spec.feature}: ${firstLine(stderr)}`;
  }
  return undefined;
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0]?.trim() ?? '';
}

function lastLines(s: string): string {
  return s.trim().split('\n').slice(-3).join('\n');
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** An item's parsed data, typed by kind; null when absent, skipped or unparsable. */
export function parsedOf<K extends CaptureKind>(capture: NodeCapture, kind: K): CaptureParsed[K] | null {
  return (capture.items[kind] as CaptureItem<K> | undefined)?.parsed ?? null;
}
