/**
 * `npm run notebooks`: registers the project's tslab kernel (under out/jupyter/, nothing global),
 * executes every notebooks/*.ipynb headless in order, renders each to HTML in out/notebooks/, and
 * fails on any cell error, naming the notebook and the cell.
 *
 * With `--register` it only registers the kernel (`npm run jupyter` does that first).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { MissingToolError, installHint, runner as defaultRunner, type Runner } from '../lib/exec/index.ts';
import { PROJECT_ROOT as ROOT } from '../lib/project/index.ts';

/** Jupyter comes from Debian's packages, which run on the system Python, not whatever is on PATH. */
export const JUPYTER = process.env.JUPYTER ?? '/usr/bin/jupyter';
export const JUPYTER_PYTHON = process.env.JUPYTER_PYTHON ?? '/usr/bin/python3';
export const KERNEL_NAME = 'tslab';
/** `tslab install --prefix` puts the kernelspec in {prefix}/share/jupyter/kernels/tslab. */
export const KERNEL_PREFIX = join(ROOT, 'out', 'jupyter');
export const JUPYTER_DATA = join(KERNEL_PREFIX, 'share', 'jupyter');

export interface CellFailure {
  /** 1-based, counting every cell (markdown too), as Jupyter shows them. */
  cell: number;
  source: string;
  /** What the cell printed on stderr: tslab writes compile and runtime errors there. */
  stderr: string;
}

export interface NotebookResult {
  notebook: string;
  executed: string;
  html: string;
  seconds: number;
  failures: CellFailure[];
}

export interface NotebookRun {
  ok: boolean;
  results: NotebookResult[];
  /** A one-paragraph reason when !ok. */
  message?: string;
}

export interface NotebookOptions {
  runner?: Runner;
  /** Parameters to set in each notebook's parameters cell (`--replicas 5`). */
  params?: ParamOverrides;
  notebooksDir?: string;
  outDir?: string;
  /** Run only notebooks whose file names start with one of these (e.g. `03`). */
  only?: string[];
  /** Progress and the commands run (default: stderr). */
  log?: (line: string) => void;
}

/** Env that makes /usr/bin/jupyter find the project's kernelspec before any other. */
export function jupyterEnv(): Record<string, string> {
  const existing = process.env.JUPYTER_PATH;
  return {
    JUPYTER_PATH: existing ? `${JUPYTER_DATA}:${existing}` : JUPYTER_DATA,
    // Debian's Python 3.11 debugger warns about frozen modules on every start; it's noise here.
    PYDEVD_DISABLE_FILE_VALIDATION: '1',
  };
}

function missingJupyter(detail?: string): Error {
  const e = new MissingToolError('jupyter');
  if (detail) e.message += ` (${detail})`;
  return e;
}

/** Fail early, with the apt packages, when Jupyter or nbconvert is missing. */
export async function checkJupyter(r: Runner = defaultRunner): Promise<void> {
  if (JUPYTER.includes('/') && !existsSync(JUPYTER)) throw missingJupyter(`${JUPYTER} does not exist`);
  let res;
  try {
    res = await r.run([JUPYTER, 'nbconvert', '--version'], { allowFailure: true, timeoutMs: 60_000, env: jupyterEnv() });
  } catch (e) {
    if (e instanceof MissingToolError) throw missingJupyter();
    throw e;
  }
  if (res.exitCode !== 0) throw missingJupyter(`\`${res.command}\` failed: ${res.stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
}

/**
 * Register tslab as a kernel under out/jupyter/ (idempotent). The kernelspec's argv names this
 * checkout's node_modules/.bin/tslab, so it is rewritten when the checkout moves.
 */
export async function registerKernel(r: Runner = defaultRunner): Promise<string> {
  const tslab = join(ROOT, 'node_modules', '.bin', 'tslab');
  if (!existsSync(tslab)) throw new Error(`${relative(ROOT, tslab)} is missing: run \`npm ci\` first`);
  const spec = join(JUPYTER_DATA, 'kernels', KERNEL_NAME, 'kernel.json');
  const current = existsSync(spec) ? (JSON.parse(readFileSync(spec, 'utf8')) as { argv?: string[] }).argv?.[0] : undefined;
  if (current !== tslab) {
    if (JUPYTER_PYTHON.includes('/') && !existsSync(JUPYTER_PYTHON)) {
      throw new Error(`${JUPYTER_PYTHON} is missing (Jupyter's Python): ${installHint('jupyter')}`);
    }
    await r.run([tslab, 'install', `--python=${JUPYTER_PYTHON}`, `--prefix=${KERNEL_PREFIX}`, `--binary=${tslab}`], { timeoutMs: 60_000, cwd: ROOT });
  }
  // Check that Jupyter itself sees it, with the env every later call uses.
  const list = await r.run([JUPYTER, 'kernelspec', 'list', '--json'], { timeoutMs: 60_000, env: jupyterEnv() });
  const found = (JSON.parse(list.stdout) as { kernelspecs: Record<string, { resource_dir: string }> }).kernelspecs[KERNEL_NAME];
  if (!found) throw new Error(`jupyter does not list the ${KERNEL_NAME} kernel after \`tslab install --prefix=${KERNEL_PREFIX}\``);
  return spec;
}

/**
 * nbconvert's config for executing: keep going after a failed cell (so a notebook's last cell,
 * which removes its lab, still runs) and mark the cell. tslab reports a failure only in its
 * execute_reply and on stderr, never as an error output, so without the mark it would be lost.
 */
const NBCONVERT_CONFIG = `# Written by scripts/notebooks.ts on every run.
import asyncio
from nbformat.v4 import new_output

async def _mark_failed_cell(cell, cell_index, execute_reply, **_):
    content = execute_reply.get("content", {})
    ename = content.get("ename") or "CellError"
    evalue = content.get("evalue") or "this cell failed; its stderr above says why"
    cell.metadata["kube_netlab_failed"] = True
    cell.outputs.append(new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]))
    # After a failed cell tslab aborts whatever arrives in the next 200 ms; wait it out so the
    # cells below, above all the one that removes the lab, still run.
    await asyncio.sleep(0.5)

async def _keep_execution_count(cell, cell_index, execute_reply, **_):
    # tslab sends no execute_input, so its count reaches the notebook only through the reply.
    count = execute_reply.get("content", {}).get("execution_count")
    if isinstance(count, int):
        cell.execution_count = count

c.ExecutePreprocessor.allow_errors = True
c.ExecutePreprocessor.on_cell_error = _mark_failed_cell
c.ExecutePreprocessor.on_cell_executed = _keep_execution_count
`;

/**
 * Injected into every rendered page: long code and output lines wrap at spaces (a rule of
 * iptables-save is wider than a stream at 1280×720) instead of running off the side.
 */
const HTML_STYLE = `<style id="kube-netlab">
pre, .highlight pre, .jp-OutputArea-output pre { white-space: pre-wrap; overflow-wrap: break-word; }
.jp-RenderedHTMLCommon table { margin: .5em 0; }
</style>`;

/** The keys a notebook's parameters cell sets, which `npm run notebooks -- --replicas 5` overrides. */
export const PARAM_KEYS = ['mode', 'replicas', 'backend', 'requests', 'workers'] as const;
export type ParamOverrides = Partial<Record<(typeof PARAM_KEYS)[number], string | number>>;

/**
 * The notebook with its parameters cell (the code cell tagged `parameters`) set to `overrides`:
 * `const params = { mode: 'iptables', replicas: 3, … } as const;` keeps its other values.
 */
export function withParameters(notebookJson: string, overrides: ParamOverrides): string {
  const nb = JSON.parse(notebookJson) as { cells: NbCell[] };
  const cell = nb.cells.find((c) => c.cell_type === 'code' && ((c.metadata?.tags as string[] | undefined) ?? []).includes('parameters'));
  if (!cell) throw new Error('the notebook has no cell tagged "parameters"');
  let source = text(cell.source);
  for (const [key, value] of Object.entries(overrides)) {
    const literal = typeof value === 'number' ? String(value) : `'${value}'`;
    const re = new RegExp(`(\\b${key}:\\s*)('[^']*'|\\d+)`);
    source = re.test(source) ? source.replace(re, `$1${literal}`) : source.replace(/\{\s*/, `{ ${key}: ${literal}, `);
  }
  cell.source = source;
  return `${JSON.stringify(nb, null, 1)}\n`;
}

interface NbCell {
  cell_type: string;
  source: string | string[];
  metadata?: Record<string, unknown>;
  outputs?: { output_type: string; name?: string; text?: string | string[] }[];
}

const text = (s: string | string[] | undefined) => (Array.isArray(s) ? s.join('') : (s ?? ''));

/** The cells of an executed notebook that failed. */
export function failedCells(notebookJson: string): CellFailure[] {
  const nb = JSON.parse(notebookJson) as { cells: NbCell[] };
  const out: CellFailure[] = [];
  nb.cells.forEach((c, i) => {
    const outputs = c.outputs ?? [];
    if (c.metadata?.kube_netlab_failed !== true && !outputs.some((o) => o.output_type === 'error')) return;
    const stderr = outputs.filter((o) => o.output_type === 'stream' && o.name === 'stderr').map((o) => text(o.text)).join('');
    out.push({ cell: i + 1, source: text(c.source), stderr });
  });
  return out;
}

export async function runNotebooks(opts: NotebookOptions = {}): Promise<NotebookRun> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const r = (opts.runner ?? defaultRunner).withEcho((cmd) => log(`$ ${cmd}`));
  // Absolute, because nbconvert runs in the notebooks' folder (the kernel's cwd).
  const notebooksDir = resolve(opts.notebooksDir ?? join(ROOT, 'notebooks'));
  const outDir = resolve(opts.outDir ?? join(ROOT, 'out', 'notebooks'));

  await checkJupyter(r);
  await registerKernel(r);
  mkdirSync(KERNEL_PREFIX, { recursive: true });
  const config = join(KERNEL_PREFIX, 'nbconvert_config.py');
  writeFileSync(config, NBCONVERT_CONFIG);
  mkdirSync(outDir, { recursive: true });

  // `npm run notebooks -- 03 05` runs only the notebooks whose names start with those prefixes.
  const only = opts.only ?? [];
  const notebooks = readdirSync(notebooksDir)
    .filter((f) => f.endsWith('.ipynb') && (only.length === 0 || only.some((p) => f.startsWith(p))))
    .sort();
  if (notebooks.length === 0) return { ok: false, results: [], message: `no notebooks in ${relative(ROOT, notebooksDir)}` };
  const results: NotebookResult[] = [];
  for (const file of notebooks) {
    const source = join(notebooksDir, file);
    const executed = join(outDir, file);
    const html = join(outDir, file.replace(/\.ipynb$/, '.html'));
    // A stale copy from an earlier run must not pass for this one.
    rmSync(executed, { force: true });
    rmSync(html, { force: true });
    const params = opts.params ?? {};
    log(`==> ${relative(ROOT, source)}${Object.keys(params).length ? ` with ${Object.entries(params).map(([k, v]) => `${k}=${v}`).join(', ')}` : ''}`);
    // Other parameters: a copy beside the original (the kernel's folder is the notebook's), run and removed.
    const input = Object.keys(params).length === 0 ? source : join(notebooksDir, `.params-${process.pid}-${file}`);
    if (input !== source) writeFileSync(input, withParameters(readFileSync(source, 'utf8'), params));
    const t0 = performance.now();
    let exec;
    try {
      exec = await r.run(
        [JUPYTER, 'nbconvert', '--to', 'notebook', '--execute', `--config=${config}`,
          `--ExecutePreprocessor.kernel_name=${KERNEL_NAME}`, '--ExecutePreprocessor.timeout=600',
          '--output-dir', outDir, '--output', file, input],
        { allowFailure: true, timeoutMs: 60 * 60_000, env: jupyterEnv(), cwd: notebooksDir },
      );
    } finally {
      if (input !== source) rmSync(input, { force: true });
    }
    const seconds = (performance.now() - t0) / 1000;
    if (exec.exitCode !== 0 || !existsSync(executed)) {
      // A cell timeout or a dead kernel: nbconvert stops and writes nothing.
      const tail = exec.stderr.trim().split('\n').slice(-15).join('\n');
      writeIndex(outDir, results);
      return { ok: false, results, message: `${file}: \`jupyter nbconvert --execute\` exited ${exec.exitCode} after ${seconds.toFixed(0)}s:\n${tail}` };
    }
    const failures = failedCells(readFileSync(executed, 'utf8'));
    // HTML even for a failed run: it is the easiest place to read what went wrong.
    await r.run([JUPYTER, 'nbconvert', '--to', 'html', '--output-dir', outDir, executed], { timeoutMs: 5 * 60_000, env: jupyterEnv() });
    writeFileSync(html, readFileSync(html, 'utf8').replace('</head>', `${HTML_STYLE}\n</head>`));
    results.push({ notebook: source, executed, html, seconds, failures });
    log(`    ${failures.length === 0 ? 'ok' : `${failures.length} failed cell(s)`} in ${seconds.toFixed(1)}s; HTML: ${relative(ROOT, html)}`);
    if (failures.length > 0) {
      const f = failures[0];
      const firstLine = f.source.split('\n').find((l) => l.trim() && !l.trim().startsWith('//')) ?? '';
      writeIndex(outDir, results);
      return {
        ok: false, results,
        message: `${file}: cell ${f.cell} failed (${firstLine.trim()}):\n${f.stderr.trim() || '(no stderr)'}\nsee ${relative(ROOT, html)}`,
      };
    }
  }
  writeIndex(outDir, results);
  return { ok: true, results };
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/**
 * out/notebooks/index.html: one page that links every executed notebook, for the audience. A run
 * of some notebooks (`npm run notebooks -- 03`) updates their rows and keeps the others' rows
 * whose HTML is still there.
 */
export function writeIndex(outDir: string, results: readonly NotebookResult[]): string {
  const file = join(outDir, 'index.html');
  // The rows live in index.json beside the page, so a partial run can keep the others'.
  const data = join(outDir, 'index.json');
  type Row = { name: string; href: string; status: string; time: string; at: string };
  const rows = new Map<string, Row>();
  if (existsSync(data)) {
    for (const r of JSON.parse(readFileSync(data, 'utf8')) as Row[]) {
      if (existsSync(join(outDir, decodeURI(r.href)))) rows.set(r.name, r);
    }
  }
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  for (const r of results) {
    const name = r.notebook.split('/').at(-1)!.replace(/\.ipynb$/, '');
    rows.set(name, {
      name,
      href: encodeURI(r.html.split('/').at(-1)!),
      status: r.failures.length === 0 ? 'ok' : `${r.failures.length} failed cell(s)`,
      time: `${r.seconds.toFixed(1)} s`,
      at: now,
    });
  }
  const sorted = [...rows.values()].sort((a, b) => a.name.localeCompare(b.name));
  writeFileSync(data, `${JSON.stringify(sorted, null, 1)}\n`);
  const body = sorted.map((r) =>
    `<tr data-notebook="${escapeHtml(r.name)}"><td><a href="${r.href}">${escapeHtml(r.name)}</a></td><td>${r.status}</td><td>${r.time}</td><td>${r.at}</td></tr>`);
  writeFileSync(file, `<!doctype html>
<meta charset="utf-8"><title>kube-netlab notebooks</title>
<style>body{font-family:DejaVu Sans,sans-serif;margin:2em}td,th{padding:.2em 1em;text-align:left}</style>
<h1>kube-netlab notebooks</h1>
<p>Executed headless with <code>npm run notebooks</code>; each row says when.</p>
<table><tr><th>notebook</th><th>status</th><th>time</th><th>executed (UTC)</th></tr>
${body.join('\n')}
</table>
`);
  return file;
}

/**
 * `npm run jupyter`: the classic notebook server on notebooks/, with a token of our own, so the
 * one line it prints first opens the first notebook directly (JUPYTER_IP, JUPYTER_PORT change
 * where it listens; a port in use is an error rather than another port the line does not name).
 */
export async function serve(r: Runner = defaultRunner): Promise<number> {
  await registerKernel(r);
  const ip = process.env.JUPYTER_IP ?? '127.0.0.1';
  const port = process.env.JUPYTER_PORT ?? '8888';
  const token = randomBytes(24).toString('hex');
  const first = readdirSync(join(ROOT, 'notebooks')).filter((f) => f.endsWith('.ipynb')).sort()[0] ?? '';
  const host = ip === '0.0.0.0' ? '127.0.0.1' : ip;
  console.log(`\nOpen http://${host}:${port}/notebooks/${encodeURI(first)}?token=${token}\n(all notebooks: http://${host}:${port}/tree?token=${token}; kernel "TypeScript" is tslab; Ctrl-C stops the server)\n`);
  const res = await r.run(
    [JUPYTER, 'notebook', '--no-browser', '--allow-root', `--ip=${ip}`, `--port=${port}`, '--NotebookApp.port_retries=0',
      `--NotebookApp.token=${token}`, '--notebook-dir', join(ROOT, 'notebooks')],
    { inherit: true, allowFailure: true, timeoutMs: 0, env: jupyterEnv() },
  );
  return res.exitCode === 0 ? 0 : 1;
}

async function main(): Promise<number> {
  if (process.argv.includes('--serve')) return serve();
  if (process.argv.includes('--register')) {
    const spec = await registerKernel();
    console.log(`tslab kernel registered: ${relative(ROOT, spec)}; Jupyter finds it with JUPYTER_PATH=${relative(ROOT, JUPYTER_DATA)}`);
    return 0;
  }
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: Object.fromEntries(PARAM_KEYS.map((k) => [k, { type: 'string' as const }])),
    allowPositionals: true,
  });
  const params: ParamOverrides = {};
  for (const k of PARAM_KEYS) {
    const v = values[k];
    if (v === undefined) continue;
    params[k] = /^\d+$/.test(v) ? Number(v) : /^[a-z]+$/.test(v) ? v : (() => { throw new Error(`--${k} must be a number or a word, got ${JSON.stringify(v)}`); })();
  }
  const run = await runNotebooks({ only: positionals, params });
  if (!run.ok) {
    console.error(`notebooks FAILED: ${run.message}`);
    return 1;
  }
  for (const res of run.results) console.log(`${relative(ROOT, res.notebook)}: ok in ${res.seconds.toFixed(1)}s → ${relative(ROOT, res.html)}`);
  console.log(`${run.results.length} notebook(s) ran without a cell error. Open ${relative(ROOT, join(run.results[0] ? dirname(run.results[0].html) : ROOT, 'index.html'))} in a browser.`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => process.exit(code), (e: unknown) => {
    console.error(`notebooks FAILED: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
