import {
  chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync,
  symlinkSync, utimesSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runner } from '../lib/exec/index.ts';
import { PROJECT_ROOT, findProjectRoot, projectPath } from '../lib/project/index.ts';

// The bin, the notebooks and the labs run the JavaScript build in out/build/ (npm test builds it
// first), never TypeScript compiled at run time in $TMPDIR, and refuse a build another user could
// have changed.
const BIN = projectPath('scripts', 'kube-netlab.mjs');
const BUILD = projectPath('out', 'build');
const NOBODY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'];

const node = (args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}) =>
  runner.run([process.execPath, ...args], { allowFailure: true, timeoutMs: 60_000, cwd: opts.cwd ?? PROJECT_ROOT, env: opts.env });

/** Every entry under dir with what a write would change; the folder's own times included. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    const st = lstatSync(d);
    out.push(`${relative(dir, d) || '.'} ${st.mode.toString(8)} ${st.uid} ${st.size} ${st.mtimeMs} ${st.ctimeMs}`);
    if (st.isDirectory()) for (const e of readdirSync(d).sort()) walk(join(d, e));
  };
  walk(dir);
  return out;
}

describe('the build', () => {
  it('is the one npm test built: the bin runs it without a stale-build warning', async () => {
    const r = await node([BIN, '--help']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('Usage: kube-netlab <command>');
    expect(r.stderr).toBe('');
  });

  it('has a declaration beside every module, for typed use from notebooks', () => {
    const missing: string[] = [];
    let modules = 0;
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.js')) {
          modules++;
          if (!existsSync(p.replace(/\.js$/, '.d.ts'))) missing.push(relative(BUILD, p));
        }
      }
    };
    walk(join(BUILD, 'lib'));
    walk(join(BUILD, 'scripts'));
    expect(modules).toBeGreaterThan(50);
    expect(missing).toEqual([]);
  });

  it('finds the checkout and starts its own copies of the pod and probe programs', async () => {
    const script = `Promise.all(['lib/project/index.js', 'lib/lab/netns/pod/index.js', 'lib/scale/index.js'].map((m) => import(${JSON.stringify(pathToFileURL(BUILD).href)} + '/' + m)))
      .then(([p, pod, scale]) => console.log(JSON.stringify([p.PROJECT_ROOT, pod.HTTPBIN_SCRIPT, pod.LOAD_SCRIPT, scale.PROBE_SCRIPT])))`;
    const r = await node(['-e', script]);
    expect(r.exitCode, r.stderr).toBe(0);
    const [root, ...programs] = JSON.parse(r.stdout) as string[];
    expect(root).toBe(PROJECT_ROOT);
    for (const p of programs) {
      expect(p.startsWith(`${BUILD}/lib/`), p).toBe(true);
      expect(existsSync(p), p).toBe(true);
    }
  });

  it('says where no checkout is found above a module', () => {
    const outside = mkdtempSync(join(tmpdir(), 'kube-netlab-noroot-'));
    try {
      expect(() => findProjectRoot(join(outside, 'index.js'))).toThrow(/no package\.json named "kube-netlab" in .*kube-netlab-noroot-.* or above it/);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });
});

describe('running as root with a $TMPDIR another user owns', () => {
  let base: string;
  let hostile: string;
  let marker: string;
  let before: string[];
  let env: Record<string, string>;

  beforeAll(async () => {
    // base is root's (0711: nobody may pass, not look); hostile, inside it, is nobody's and 0777.
    base = mkdtempSync(join(tmpdir(), 'kube-netlab-build-'));
    chmodSync(base, 0o711);
    hostile = join(base, 'tmp');
    mkdirSync(hostile);
    chownSync(hostile, 65534, 65534);
    chmodSync(hostile, 0o777);
    marker = join(base, 'marker');
    // nobody plants a tsx cache for root (uid 0) whose files write the marker when run.
    const plant = `const fs = require('node:fs'); const [dir, marker] = process.argv.slice(1);
      fs.mkdirSync(dir + '/tsx-0');
      const code = (m) => m + "('node:fs').writeFileSync(process.env.KN_MARKER || " + JSON.stringify(marker) + ", 'ran ' + process.argv[1]);";
      fs.writeFileSync(dir + '/tsx-0/5c1d6f0e4b.mjs', "import { createRequire } from 'node:module'; createRequire(import.meta.url)" + code(''));
      fs.writeFileSync(dir + '/tsx-0/8a2e9b7c31.cjs', code('require'));
      fs.chmodSync(dir + '/tsx-0', 0o777);`;
    await runner.run([...NOBODY, process.execPath, '-e', plant, hostile, marker], { timeoutMs: 30_000 });
    expect(lstatSync(join(hostile, 'tsx-0')).uid).toBe(65534);
    // The trap is live: each planted file, run, writes a marker (a control one, here).
    for (const f of readdirSync(join(hostile, 'tsx-0'))) {
      const control = join(base, `control-${f}`);
      const r = await node([join(hostile, 'tsx-0', f)], { env: { KN_MARKER: control } });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(existsSync(control), `${f} did not write its marker when run`).toBe(true);
    }
    before = snapshot(hostile);
    env = { TMPDIR: hostile, TMP: hostile, TEMP: hostile };
  });
  afterAll(() => { if (base) rmSync(base, { recursive: true, force: true }); });

  it('runs the bin without executing or writing anything there', async () => {
    const predict = await node([BIN, 'predict', '--mode', 'iptables', '--services', '2000', '--endpoints', '10', '--json'], { env });
    expect(predict.exitCode, predict.stderr).toBe(0);
    expect(JSON.parse(predict.stdout).iptables.nat.rules).toBe(64_005);
    const rules = await node([BIN, 'rules', '--mode', 'nftables', '--services', '2', '--endpoints', '1'], { env });
    expect(rules.exitCode, rules.stderr).toBe(0);
    expect(rules.stdout).toContain('table ip kube-proxy');
    const help = await node([BIN, '--help'], { env });
    expect(help.exitCode, help.stderr).toBe(0);
    expect(help.stdout).toContain('Usage: kube-netlab <command>');
    expect(existsSync(marker)).toBe(false);
    expect(snapshot(hostile)).toEqual(before);
  });

  it('loads the notebooks\' kit (notebooks/kit.js) without executing or writing anything there', async () => {
    const script = `const kit = require('./notebooks/kit.js');
      console.log(typeof kit.createLab, kit.iptablesCounts({ services: 2000, endpoints: 10 }).nat.rules);`;
    const r = await node(['-e', script], { env, cwd: PROJECT_ROOT });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('function 64005');
    expect(existsSync(marker)).toBe(false);
    expect(snapshot(hostile)).toEqual(before);
  });
});

describe('a build another user could have changed', () => {
  // A private copy of the checkout's sources and build (the real build is never touched), with
  // the real node_modules linked in.
  let copy: string;
  const copyPath = (...p: string[]) => join(copy, ...p);
  const bin = () => node([copyPath('scripts', 'kube-netlab.mjs'), '--help']);

  beforeAll(() => {
    copy = mkdtempSync(join(tmpdir(), 'kube-netlab-copy-'));
    for (const p of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'lib', 'scripts', 'notebooks/kit.js', 'notebooks/package.json', 'out/build']) {
      cpSync(projectPath(p), copyPath(p), { recursive: true, preserveTimestamps: true });
    }
    chmodSync(copyPath('out'), 0o755);
    symlinkSync(projectPath('node_modules'), copyPath('node_modules'));
  });
  afterAll(() => { if (copy) rmSync(copy, { recursive: true, force: true }); });

  it('runs as it is (the copy is a sound checkout)', async () => {
    const r = await bin();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('Usage: kube-netlab <command>');
    expect(r.stderr).toBe('');
  });

  it.each([
    ['a world-writable file', 'out/build/lib/proxy/iptables.js', 0o646, /is world-writable \(mode 0646\)/],
    ['a group-writable folder', 'out/build/lib/lab', 0o775, /is group-writable \(mode 0775\)/],
    ['a group-writable out/', 'out', 0o775, /is group-writable \(mode 0775\)/],
  ])('refuses %s, naming it and the fix', async (_what, path, mode, why) => {
    const target = copyPath(path);
    const old = statSync(target).mode & 0o7777;
    chmodSync(target, mode);
    try {
      const r = await bin();
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`refusing to run kube-netlab's build: ${target} `);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).toContain(`Fix: chmod -R go-w ${target}`);
    } finally {
      chmodSync(target, old);
    }
  });

  it('refuses a file that belongs to another user', async () => {
    const target = copyPath('out', 'build', 'scripts', 'cli.js');
    chownSync(target, 65534, 65534);
    try {
      const r = await bin();
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`${target} belongs to uid 65534, not to you (uid 0), root or the checkout's owner`);
      expect(r.stderr).toContain(`rm -rf ${copyPath('out', 'build')} && npm run build`);
    } finally {
      chownSync(target, 0, 0);
    }
  });

  it('refuses a symbolic link in the build', async () => {
    const link = copyPath('out', 'build', 'lib', 'planted.js');
    symlinkSync('/dev/null', link);
    try {
      const r = await bin();
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`${link} is a symbolic link`);
    } finally {
      rmSync(link);
    }
  });

  it('refuses through the npm scripts\' preload and through the notebooks\' kit too', async () => {
    const target = copyPath('out', 'build', 'lib', 'sim', 'counts.js');
    chmodSync(target, 0o666);
    try {
      const preload = await node(['--import', copyPath('scripts', 'build-guard.mjs'), copyPath('out', 'build', 'scripts', 'cli.js'), '--help']);
      expect(preload.exitCode).toBe(1);
      expect(preload.stdout).toBe('');
      expect(preload.stderr).toContain(`refusing to run kube-netlab's build: ${target} is world-writable`);
      const load = await node(['-e', `try { require('./notebooks/kit.js'); console.log('loaded'); } catch (e) { console.error(e.message); process.exit(3); }`], { cwd: copy });
      expect(load.exitCode).toBe(3);
      expect(load.stdout).toBe('');
      expect(load.stderr).toContain(`${target} is world-writable`);
    } finally {
      chmodSync(target, 0o644);
    }
  });

  it('warns in one line when a source is newer than the build, and runs it', async () => {
    const source = copyPath('lib', 'sim', 'index.ts');
    const { atime, mtime } = statSync(source);
    utimesSync(source, new Date(), new Date(Date.now() + 60_000));
    try {
      const r = await bin();
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toContain('Usage: kube-netlab <command>');
      expect(r.stderr).toBe('kube-netlab: warning: lib/sim/index.ts changed after the last build, which runs without that change: run `npm run build`\n');
    } finally {
      utimesSync(source, atime, mtime);
    }
  });

  it('says how to build when there is no build', async () => {
    renameSync(copyPath('out', 'build'), copyPath('out', 'build.away'));
    try {
      const r = await bin();
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toBe(`kube-netlab is not built (${copyPath('out', 'build')} is missing or incomplete): run \`npm run build\` in ${copy} once (\`npm ci\` builds too)\n`);
      const load = await node(['-e', `try { require('./notebooks/kit.js'); } catch (e) { console.error(e.message); process.exit(3); }`], { cwd: copy });
      expect(load.exitCode).toBe(3);
      expect(load.stderr).toContain('kube-netlab is not built');
    } finally {
      renameSync(copyPath('out', 'build.away'), copyPath('out', 'build'));
    }
  });
});
