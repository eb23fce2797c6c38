/**
 * One call sets a notebook up: leftovers of dead kernels cleared, a lab held by this kernel,
 * httpbin and curl deployed, the pods found. The lab goes when the kernel exits or restarts, even
 * when a cell failed before the last one: a small watcher process runs `kube-netlab gc` once the
 * kernel is gone, and gc removes labs whose holder has died.
 */
import { processRef, runner as defaultRunner, stillRuns, type Runner } from '../exec/index.ts';
import { chooseBackend, createLab, gcLabs, removeLab, type BackendChoice } from '../lab/create.ts';
import { loadManifest } from '../lab/manifests.ts';
import { checkLabName, type Lab, type LabNode, type Pod } from '../lab/types.ts';
import { knownKeys, oneOf, wholeNumber } from '../options/index.ts';
import { projectPath } from '../project/index.ts';
import { PROXY_MODES, type ProxyMode } from '../proxy/modes.ts';
import { shell } from './show.ts';

/** What a notebook's parameters cell may set; the runner replaces that cell to try other values. */
export interface NotebookParams {
  /** kube-proxy's mode (default iptables). */
  mode?: ProxyMode;
  /** httpbin's replicas (default 3). */
  replicas?: number;
  /** netns, kind, or auto: netns where it can run, else kind (default auto; KUBE_NETLAB_BACKEND overrides). */
  backend?: BackendChoice;
  /** How many requests the notebook's traffic cells send (default 300). */
  requests?: number;
  /** Worker nodes beside the control plane (default 2, as kind's workshop config). */
  workers?: number;
}

export interface NotebookLab {
  lab: Lab;
  backend: Lab['backend'];
  mode: ProxyMode;
  replicas: number;
  requests: number;
  nodes: LabNode[];
  /** The curl pod requests start from, and its node, whose kernel picks each backend. */
  client: Pod;
  clientNode: LabNode;
  /** httpbin's pods, by name. */
  httpbin: Pod[];
  /** Remove the lab now (the last cell); otherwise it goes with the kernel. */
  down(): Promise<void>;
}

const PARAM_KEYS = ['mode', 'replicas', 'backend', 'requests', 'workers'] as const;

/** Labs this process made, by name: running the setup cell again replaces its own lab. */
const made = new Map<string, Lab>();
let watcher: number | null = null;

/** Parameters checked before anything runs; a wrong one says what it received. */
export function checkParams(params: unknown): Required<NotebookParams> {
  const where = 'setup';
  const p = knownKeys(where, params ?? {}, PARAM_KEYS);
  return {
    mode: oneOf(where, 'mode', p.mode, PROXY_MODES, 'iptables'),
    replicas: wholeNumber(where, 'replicas', p.replicas, 1, 20, 3),
    backend: oneOf(where, 'backend', p.backend, ['auto', 'netns', 'kind'] as const, 'auto'),
    requests: wholeNumber(where, 'requests', p.requests, 1, 100_000, 300),
    workers: wholeNumber(where, 'workers', p.workers, 1, 5, 2),
  };
}

/**
 * Start, once per process, the watcher that removes this kernel's labs after it has gone:
 * `kube-netlab gc --when-gone PID:START`, detached, so a kernel killed or restarted leaves nothing.
 */
function watchThisProcess(r: Runner, backend: Lab['backend']): Promise<number> | number {
  if (watcher !== null && stillRuns({ pid: watcher, start: null })) return watcher;
  const me = processRef(process.pid);
  return r.spawnDetached(
    [process.execPath, projectPath('scripts', 'kube-netlab.mjs'), 'gc', '--backend', backend, '--when-gone', `${me.pid}:${me.start ?? ''}`],
    null,
  ).then((pid) => (watcher = pid));
}

/**
 * Bring up lab `name` for a notebook: `kube-netlab gc`, then `kube-netlab up` held by this kernel,
 * with httpbin (`replicas`) and the curl client, printing the equivalent commands and each step.
 */
export async function setup(name: string, params: NotebookParams = {}, opts: { runner?: Runner } = {}): Promise<NotebookLab> {
  checkLabName(name);
  const p = checkParams(params);
  const r = opts.runner ?? defaultRunner;
  const backend = await chooseBackend(p.backend, r);

  shell(`npx kube-netlab gc --backend ${backend}`);
  const gc = await gcLabs(r, backend);
  const removed = [
    ...('labs' in gc.netns ? gc.netns.labs.map((l) => `netns lab ${l}`) : []),
    ...gc.kind.deleted.map((c) => `kind cluster ${c}`),
  ];
  const mine = made.get(name);
  if (mine) {
    // This kernel's own lab from an earlier run of the cell: nobody else's is ever touched.
    await mine.destroy().catch(() => removeLab(name, backend, r, { force: true }));
    made.delete(name);
    removed.push(`${mine.backend} lab ${name} (made by this kernel before)`);
  }
  console.log(removed.length ? `removed ${removed.join(', ')}` : 'nothing left over from earlier runs');

  shell(`npx kube-netlab up --name ${name} --backend ${backend} --mode ${p.mode} --workers ${p.workers} --replicas ${p.replicas}`);
  const t0 = performance.now();
  const httpbin = (await loadManifest('httpbin')).map((o) => (o.kind === 'Deployment' ? { ...o, spec: { ...(o.spec as object), replicas: p.replicas } } : o));
  const lab = await createLab({
    backend, mode: p.mode, workers: p.workers, name, runner: r, heldBy: process.pid,
    workloads: [...httpbin, ...(await loadManifest('curl'))],
    onProgress: (step) => console.log(`  ${step}`),
  });
  made.set(name, lab);
  await watchThisProcess(r, backend);

  const nodes = await lab.nodes();
  const pods = await lab.pods();
  const client = pods.find((x) => x.labels.app === 'curl' && x.ready);
  const httpbinPods = pods.filter((x) => x.labels.app === 'httpbin' && x.ready).sort((a, b) => (a.name < b.name ? -1 : 1));
  if (!client) throw new Error(`lab ${name}: the curl pod is not ready`);
  if (httpbinPods.length !== p.replicas) throw new Error(`lab ${name}: ${httpbinPods.length} of ${p.replicas} httpbin pods are ready`);
  const clientNode = nodes.find((n) => n.name === client.node) as LabNode;
  console.log(`lab ${name} is up on ${lab.backend} in ${((performance.now() - t0) / 1000).toFixed(1)} s: kube-proxy ${lab.mode}, ${nodes.length} nodes, httpbin × ${httpbinPods.length}, curl on ${client.node}`);
  return {
    lab, backend: lab.backend, mode: p.mode, replicas: p.replicas, requests: p.requests, nodes, client, clientNode, httpbin: httpbinPods,
    async down() {
      shell(`npx kube-netlab down --name ${name}`);
      await lab.destroy();
      made.delete(name);
      console.log(`lab ${name} removed`);
    },
  };
}
