import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect as vexpect, it } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { CheckFailed, checkParams, expect, tableHtml } from '../../lib/notebook/index.ts';
import { projectPath } from '../../lib/project/index.ts';
import { checkTrafficOptions } from '../../lib/traffic/index.ts';
import { JUPYTER_PYTHON, jupyterEnv, registerKernel } from '../../scripts/notebooks.ts';
import { namespacesOfLab, until } from '../helpers/cli-process.ts';
import { testRunTag } from '../helpers/netns.ts';

// The kit as a notebook uses it, in a real tslab kernel driven as Jupyter drives it
// (test/helpers/tslab_driver.py over jupyter_client): types, completion, checks, and the lab's
// life tied to the kernel's.

interface Step { outputs?: [string, string][]; status?: string; matches?: string[] }

async function kernel(steps: ({ run: string } | { complete: string })[]): Promise<Step[]> {
  const r = await runner.run([JUPYTER_PYTHON, projectPath('test', 'helpers', 'tslab_driver.py')], {
    input: JSON.stringify({ cwd: projectPath('notebooks'), steps }),
    env: jupyterEnv(),
    timeoutMs: 180_000,
  });
  return (JSON.parse(r.stdout) as { steps: Step[] }).steps;
}

const said = (s: Step, stream: string) => (s.outputs ?? []).filter(([k]) => k === stream).map(([, t]) => t).join('');
const name = `nk${testRunTag().slice(0, 4)}`;

beforeAll(async () => {
  vexpect(existsSync(projectPath('notebooks', '.kit', 'lib', 'notebook', 'index.d.ts')), 'npm run build copies the kit\'s types into notebooks/.kit').toBe(true);
  await registerKernel();
}, 120_000);
afterAll(async () => {
  await runner.run(['node', projectPath('scripts', 'kube-netlab.mjs'), 'down', '--name', name, '--force'], { allowFailure: true });
});

describe('the kit in a tslab kernel', () => {
  let steps: Step[];
  let kernelPid = 0;
  beforeAll(async () => {
    steps = await kernel([
      { run: "const params = { mode: 'iptables', replicas: 2, workers: 1, requests: 60 } as const;" },
      { run: "import { setup, expect, measureTraffic } from './kit';" },
      { run: `const nb = await setup('${name}', params);\nconst lab = nb.lab;\nconsole.log('pid', process.pid);` },
      { complete: 'lab.' },
      { complete: 'nb.' },
      { run: "lab.nodez();\nconsole.log('ran');" },
      { run: "await measureTraffic(lab, { requests: 'ten' });\nconsole.log('ran');" },
      { run: 'const m = await measureTraffic(lab, { requests: params.requests });\nexpect(m.ok, \'every request answered\').toBe(m.total);' },
      { run: 'await measureTraffic(lab, { requests: 10, frm: 1 } as never);' },
      { run: "expect(m.byPod.length, 'one row per httpbin pod').toBe(3);" },
    ]);
    kernelPid = Number(/pid (\d+)/.exec(said(steps[2], 'stdout'))?.[1]);
  }, 240_000);

  it('sets a notebook up in one call: gc, a lab held by the kernel, httpbin and curl, each command shown', () => {
    const out = said(steps[2], 'stdout');
    vexpect(out).toContain('$ npx kube-netlab gc --backend netns');
    vexpect(out).toContain(`$ npx kube-netlab up --name ${name} --backend netns --mode iptables --workers 1 --replicas 2`);
    vexpect(out).toMatch(new RegExp(`lab ${name} is up on netns in [\\d.]+ s: kube-proxy iptables, 2 nodes, httpbin × 2, curl on ${name}-worker`));
    vexpect(kernelPid).toBeGreaterThan(0);
  });

  it("completes the Lab's members and the notebook lab's", () => {
    vexpect(steps[3].matches).toEqual(vexpect.arrayContaining(['apply', 'destroy', 'exec', 'load', 'nodes', 'pods', 'scale', 'services']));
    vexpect(steps[4].matches).toEqual(vexpect.arrayContaining(['client', 'clientNode', 'down', 'httpbin', 'lab']));
  });

  it('reports a mistyped call as a TypeScript error before anything runs', () => {
    vexpect(said(steps[5], 'stderr')).toContain("Property 'nodez' does not exist on type 'Lab'. Did you mean 'nodes'?");
    vexpect(said(steps[5], 'stdout')).not.toContain('ran');
    vexpect(said(steps[6], 'stderr')).toContain("Type 'string' is not assignable to type 'number'.");
    vexpect(said(steps[6], 'stdout')).not.toContain('ran');
  });

  it('runs a one-line check, and says what an unknown option was', () => {
    vexpect(said(steps[7], 'stdout')).toBe('✓ every request answered\n');
    vexpect(said(steps[8], 'stderr')).toContain('measureTraffic: unknown option "frm"; known: namespace, service, portName, path, requests, concurrency, from');
    vexpect(said(steps[9], 'stderr')).toContain('CheckFailed: one row per httpbin pod: expected 3 (number), got 2 (number)');
  });

  it('removes the lab once the kernel has gone, though no cell took it down', async () => {
    await until(`lab ${name} to go with its kernel`, async () => (await namespacesOfLab(name)).length === 0, 30_000);
    vexpect(existsSync(`/proc/${kernelPid}`)).toBe(false);
  });
});

describe('the kit outside a kernel', () => {
  it('checks parameters and says what it received', () => {
    vexpect(checkParams({})).toEqual({ mode: 'iptables', replicas: 3, backend: 'auto', requests: 300, workers: 2 });
    vexpect(() => checkParams({ replicas: '5' })).toThrow('setup: replicas: expected a whole number from 1 to 20, got "5" (string)');
    vexpect(() => checkParams({ mode: 'ipvs2' })).toThrow('setup: mode: expected iptables, ipvs, nftables, got "ipvs2" (string)');
    vexpect(() => checkParams({ replica: 5 })).toThrow('setup: unknown option "replica"; known: mode, replicas, backend, requests, workers');
  });

  it('checks traffic options before anything runs', () => {
    vexpect(checkTrafficOptions({ requests: 10, from: { node: 'lab-worker' } })).toMatchObject({ requests: 10, concurrency: 10, path: '/hostname', from: { node: 'lab-worker' } });
    vexpect(() => checkTrafficOptions({ requests: '2000' })).toThrow('measureTraffic: requests: expected a whole number from 1 to 1,000,000, got "2000" (string)');
    vexpect(() => checkTrafficOptions({ requests: 1, from: { node: 'a', pod: 'b' } })).toThrow('measureTraffic: from: expected { pod: NAME } or { node: NAME }');
    vexpect(() => checkTrafficOptions({ requests: 1, path: 'get' })).toThrow('measureTraffic: path: expected a path starting with /, got "get" (string)');
  });

  it('expect: one line per claim, a clear message when the lab does not bear it out', () => {
    expect(3, 'three').toBe(3);
    expect([1, 2], 'has 2').toContain(2);
    expect(0.3334, 'a third').toBeCloseTo(1 / 3, 3);
    vexpect(() => expect(2, 'replicas').toBe(3)).toThrow(CheckFailed);
    vexpect(() => expect(2, 'replicas').toBe(3)).toThrow('replicas: expected 3 (number), got 2 (number)');
    vexpect(() => expect('10.96.0.1', 'a pod IP').toMatch(/^10\.244\./)).toThrow('a pod IP: expected text matching /^10\\.244\\./, got "10.96.0.1" (string)');
    vexpect(() => expect({ a: 1 }).toEqual({ a: 2 })).toThrow('expected {"a":2} (object), got {"a":1} (object)');
  });

  it('tables escape what they show', () => {
    vexpect(tableHtml('a <b>', ['x'], [['<script>']])).toBe('<table><caption>a &lt;b&gt;</caption><thead><tr><th>x</th></tr></thead><tbody><tr><td>&lt;script&gt;</td></tr></tbody></table>');
  });
});
