/**
 * What only a real process shows: a reader that goes away (`| head`), stdout and stderr on one
 * pipe (`2>&1 | head`), exit codes, and standard input over the size limit.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_TEXT_BYTES } from '../scripts/io.ts';
import { cli } from './helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'kube-netlab-process-'));
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const BIN = ['scripts/kube-netlab.mjs'];
/** Signs of a crash rather than a quiet end. */
const CRASH = /EPIPE|Error|\n\s+at |node:internal|Unhandled/;

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What was read before the reader went away. */
  head: string;
  stderr: string;
}

/**
 * Run the CLI, read stdout up to the first newline (or `bytes`), then close the reading end as
 * `head` does and wait for the process to end.
 */
function runAndCloseEarly(args: string[], opts: { bytes?: number; closeAtOnce?: boolean } = {}): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let head = '';
    let stderr = '';
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      child.stdout.destroy();
    };
    if (opts.closeAtOnce) close();
    child.stdout.on('data', (d: Buffer) => {
      if (closed) return;
      head += d.toString();
      const enough = opts.bytes !== undefined ? head.length >= opts.bytes : head.includes('\n');
      if (enough) close();
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, head, stderr }));
  });
}

/** `bash -o pipefail -c 'CLI 2>&1 | head -c N'`: stdout and stderr on one pipe that closes. */
function runMergedIntoHead(args: string[], bytes: number): Promise<{ out: string; status: number }> {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = `${process.execPath} ${BIN[0]} ${quoted} 2>&1 | head -c ${bytes}; echo; echo "status=\${PIPESTATUS[0]}"`;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('close', () => {
      const m = /\nstatus=(\d+)\n$/.exec(out);
      resolve({ out: m ? out.slice(0, m.index) : out, status: m ? Number(m[1]) : -1 });
    });
  });
}

describe('a closed stdout ends the command quietly', () => {
  it('rules | head -1: exit 0, the first line, no stack trace', async () => {
    const r = await runAndCloseEarly(['rules', '--mode', 'iptables', '--services', '2000', '--endpoints', '10']);
    expect(r.head.split('\n')[0]).toBe('*filter');
    expect(r.stderr).toBe('# without the jumps from PREROUTING/OUTPUT/POSTROUTING (add --with-jumps, load with iptables-restore --noflush)\n');
    expect(r).toMatchObject({ code: 0, signal: null });
  });

  it('rules 2>&1 | head -1: stdout and stderr on the closed pipe, still exit 0 and nothing more', async () => {
    const r = await runMergedIntoHead(['rules', '--mode', 'iptables', '--services', '2000', '--endpoints', '10'], 40);
    expect(r.out).toBe('# without the jumps from PREROUTING/OUTP');
    expect(r.status).toBe(0);
  });

  it('parse --json of a large dump | head -c 100: stops at once, exit 0', async () => {
    const rules = await cli('rules', '--mode', 'iptables', '--services', '2000', '--endpoints', '10', '--with-jumps');
    const dump = join(dir, 'dump.txt');
    await writeFile(dump, rules.out);
    const r = await runAndCloseEarly(['parse', '--format', 'iptables-save', dump, '--json'], { bytes: 100 });
    expect(r.head.startsWith('{\n  "tables": [\n')).toBe(true);
    expect(r.stderr).not.toMatch(CRASH);
    expect(r).toMatchObject({ code: 0, signal: null });
    const merged = await runMergedIntoHead(['parse', '--format', 'iptables-save', dump, '--json'], 10);
    expect(merged).toEqual({ out: '{\n  "table', status: 0 });
  });

  it('predict and help with the reader gone before they write', async () => {
    for (const args of [['predict', '--services', '10', '--endpoints', '3', '--requests', '3000'], ['--help'], ['trace', '--help']]) {
      const r = await runAndCloseEarly(args, { closeAtOnce: true });
      expect(r.stderr, args.join(' ')).toBe('');
      expect(r.code, args.join(' ')).toBe(0);
    }
  });

  it('a command that is not read-only drops its output and finishes with its own exit code', async () => {
    const r = await runAndCloseEarly(['status', '--json'], { closeAtOnce: true });
    expect(r.stderr).not.toMatch(CRASH);
    expect(r).toMatchObject({ code: 0, signal: null });
    const merged = await runMergedIntoHead(['status'], 0);
    expect(merged).toEqual({ out: '', status: 0 });
  });

  it('errors still reach stderr while stdout is closed, with their exit codes', async () => {
    const usage = await runAndCloseEarly(['predict', '--services', '1e3', '--endpoints', '1'], { closeAtOnce: true });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^kube-netlab predict: --services must be a whole number .* got "1e3"\nUsage: /);
    const bad = join(dir, 'bad.txt');
    await writeFile(bad, 'hello\n');
    const parse = await runAndCloseEarly(['parse', '--format', 'ip-route', bad], { closeAtOnce: true });
    expect(parse.code).toBe(1);
    expect(parse.stderr).toMatch(/^kube-netlab parse: ip route: line 1: expected a destination/);
    expect(parse.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('standard input over the size limit', () => {
  it('is refused with the limit and why, without reading the rest', async () => {
    const child = spawn(process.execPath, [...BIN, 'parse', '--format', 'iptables-save', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    // The CLI stops reading once past the limit; our writes then fail, which is expected.
    child.stdin.on('error', () => {});
    const line = Buffer.from(`${'# '.padEnd(1023, 'x')}\n`);
    const ended = new Promise<number | null>((resolve) => child.on('close', resolve));
    let sent = 0;
    let stopped = false;
    child.on('close', () => { stopped = true; });
    while (!stopped && sent <= MAX_TEXT_BYTES + line.length * 64) {
      const chunk = Buffer.concat(Array.from({ length: 64 }, () => line));
      sent += chunk.length;
      if (!child.stdin.write(chunk)) await new Promise((r) => { child.stdin.once('drain', r); child.once('close', r); });
    }
    child.stdin.end();
    expect(await ended).toBe(1);
    expect(stderr).toBe('kube-netlab parse: standard input is larger than 64 MiB, the most kube-netlab reads as text: a node with 10,000 Services × 10 endpoints dumps about 32 MB, and parsing needs about 15 times the size in memory\n');
    expect(stdout).toBe('');
  });
});
