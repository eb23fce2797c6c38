import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  MissingToolError, ownerEnv, processRef, processesMarked, runner as defaultRunner, stopProcesses,
  type ExecResult, type RunOptions, type Runner,
} from '../../exec/index.ts';
import { missingContainerFlags } from '../../container/index.ts';
import { formatCidr, parseIpv4Cidr, subnetAt } from '../../k8s/addresses.ts';
import { resolveServicePorts } from '../../k8s/resolve.ts';
import { KIND_DEFAULTS, kindNodeName, service } from '../../k8s/synthetic.ts';
import type { EndpointSlice, Service } from '../../k8s/types.ts';
import { deploymentPodName } from '../../k8s/workshop.ts';
import type { ProxyMode } from '../../proxy/modes.ts';
import { iptablesTools, type IptablesBackend } from '../../proxy/iptables-backend.ts';
import type { Capabilities, K8sObject, Lab, LabNode, LoadResult, LoadSpec, Pod, SyncReport } from '../types.ts';
import { checkLabName } from '../types.ts';
import { describeWorkloads } from '../create.ts';
import { removeNetnsLab } from './cleanup.ts';
import { allocatePodIP, assignExternalAccess, clusterOf, endpointSlicesFor, pickNode, readDeployment, readServiceManifest } from './controllers.ts';
import { syncNode } from './kube-proxy.ts';
import { labPrefix, networkNs, nodeNs, podNs } from './names.ts';
import { HTTPBIN_SCRIPT, LOAD_SCRIPT, parseLoadOutput } from './pod/index.ts';
import {
  LOCK_WAIT_MS, claimLabDir, ensureStateDir, labMarker, listStates, lockLab, podsDir, readState, stateId, writeState,
  type DeploymentState, type LabState, type PodState,
} from './state.ts';
import { createNode, createNodeNetwork, createPod, deleteNamespace, listNamespaces, routePodCidrs } from './topology.ts';
import { ensurePrivateSubdir } from '../../files/index.ts';

export { gcNetns, inspectNetnsLabs, removeNetnsLab, type GcReport, type LabHealth, type RemoveReport } from './cleanup.ts';

export interface NetnsLabOptions {
  name: string;
  mode: ProxyMode;
  /**
   * Program the nodes with iptables-legacy or iptables-nft (default nft, what Debian's `iptables`
   * is): kube-proxy uses whichever its node uses.
   */
  iptablesBackend?: IptablesBackend;
  /** Worker nodes besides the control plane (kind's workshop config has 2). */
  workers?: number;
  runner?: Runner;
  /** Long steps report here (the CLI prints them). */
  onProgress?: (step: string) => void;
  /**
   * The process whose life this lab shares (a notebook kernel): once it has died, `gc` removes the
   * lab, so a notebook never has to delete a lab by name that someone else may be using.
   */
  heldBy?: number;
  /**
   * Deployed before the lab counts as up (phase `deploying`), so a crash while they roll out
   * leaves a lab `gc` removes, not one that looks up and is not.
   */
  workloads?: K8sObject[];
  /** Aborting terminates the running command and removes what was made. */
  signal?: AbortSignal;
}

/** The tools a netns lab drives, each checked before anything is created. */
const REQUIRED_TOOLS = ['ip', 'iptables-restore', 'iptables-save', 'ipset', 'nft', 'sysctl', 'flock'];
const NODE_IP_BASE = 2; // 172.18.0.1 is the gateway, nodes count up from .2 as in kind

export function ipvsKernelAvailable(): boolean {
  return existsSync('/proc/net/ip_vs');
}

/** Why the netns backend cannot run here, or null when it can. */
export async function netnsUnavailable(r: Runner = defaultRunner): Promise<string | null> {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root (run with sudo)';
  // In a container started without the options labs need, name the options, not the sysctl or
  // mount that would fail halfway through `up`.
  const flags = missingContainerFlags();
  if (flags) return flags;
  for (const tool of REQUIRED_TOOLS) {
    if (!(await r.has(tool))) return new MissingToolError(tool).message;
  }
  return null;
}

/**
 * Bring up a kind-shaped cluster of network namespaces: a control plane and N workers on a
 * bridged node network, the default services, and kube-proxy's rules in each node's kernel.
 * All of it under the lab's lock, in recorded phases (creating, deploying, up), each namespace
 * and process marked as this lab's: whatever kills this process, `gc` finds what it made.
 */
export async function createNetnsLab(opts: NetnsLabOptions): Promise<NetnsLab> {
  const name = checkLabName(opts.name);
  const base = opts.runner ?? defaultRunner;
  const r = opts.signal ? base.withSignal(opts.signal) : base;
  const progress = opts.onProgress ?? (() => undefined);
  const workers = opts.workers ?? 2;
  if (!Number.isInteger(workers) || workers < 1 || workers > 50) throw new Error(`workers must be 1..50, got ${workers}`);
  const why = await netnsUnavailable(base);
  if (why) throw new Error(`the netns backend cannot run here: ${why}`);
  const iptablesBackend = opts.iptablesBackend ?? 'nft';
  const ipt = iptablesTools(iptablesBackend);
  for (const tool of [ipt.restore, ipt.save]) {
    if (!(await base.has(tool))) throw new Error(`the netns backend cannot program nodes with iptables-${iptablesBackend}: ${tool} is not installed (Debian package: iptables)`);
  }
  await ensureStateDir();
  const lock = await lockLab(name, 'up', 0, base);
  try {
    if ((await listStates()).includes(name) || (await listNamespaces(base)).some((ns) => ns.startsWith(labPrefix(name)))) {
      throw new Error(`lab ${name} already exists: use it, or remove it with \`kube-netlab down --name ${name}\``);
    }
    opts.signal?.throwIfAborted();
    const owner = await claimLabDir(name);
    const podNet = parseIpv4Cidr(KIND_DEFAULTS.podSubnet);
    const nodes: LabNode[] = Array.from({ length: workers + 1 }, (_, i) => ({
      name: kindNodeName(name, i),
      role: i === 0 ? 'control-plane' : 'worker',
      ip: `172.18.0.${NODE_IP_BASE + i}`,
      podCIDR: formatCidr(subnetAt(podNet, KIND_DEFAULTS.nodeMaskSize, i)),
    }));
    const state: LabState = {
      version: 2, name, backend: 'netns', mode: opts.mode, iptablesBackend, status: 'creating', creator: processRef(process.pid), owner,
      ...(opts.heldBy !== undefined ? { heldBy: processRef(opts.heldBy) } : {}),
      createdAt: new Date().toISOString(), nodes, services: [], deployments: [], pods: [],
    };
    // Written before any namespace exists, so a crash from here on leaves a record `gc` acts on.
    await writeState(state);
    const marker = labMarker(await stateId(), name, owner);
    const lab = new NetnsLab(state, r, marker);
    try {
      progress(`node network ${networkNs(name)} (bridge kind, 172.18.0.0/16)`);
      await createNodeNetwork(r, name, marker);
      progress(`${nodes.length} nodes: ${nodes.map((n) => `${n.name} ${n.ip} pods ${n.podCIDR}`).join(', ')}`);
      await Promise.all(nodes.map((n, i) => createNode(r, name, n, i, KIND_DEFAULTS.podSubnet, marker, ipt)));
      await routePodCidrs(r, name, nodes);
      progress('default services: default/kubernetes, kube-system/kube-dns');
      await lab.addDefaultServices();
      progress(`kube-proxy (${opts.mode}${opts.mode === 'nftables' ? '' : `, iptables-${iptablesBackend}`}) sync on every node`);
      await lab.syncAll(true);
      if (opts.workloads && opts.workloads.length > 0) {
        progress(describeWorkloads(opts.workloads));
        state.status = 'deploying';
        await writeState(state);
        await lab.apply(opts.workloads);
      }
      state.status = 'up';
      await writeState(state);
      lab.useRunner(base);
      return lab;
    } catch (e) {
      progress(`remove lab ${name} (${opts.signal?.aborted ? 'interrupted' : 'creation failed'})`);
      const removal = await removeNetnsLab(name, base, { force: true }).catch((err: unknown) => err as Error);
      const after = removal instanceof Error ? `removing it failed (${removal.message}); \`kube-netlab gc\` retries` : `lab ${name} removed`;
      if (opts.signal?.aborted) throw new Error(`interrupted; ${after}`, { cause: e });
      throw new Error(`${(e as Error).message}; ${after}`, { cause: e });
    }
  } finally {
    lock.release();
  }
}

/** A lab brought up earlier (by this process or another), from its state file. */
export async function openNetnsLab(name: string, r: Runner = defaultRunner): Promise<NetnsLab> {
  checkLabName(name);
  await ensureStateDir();
  const state = await readState(name);
  if (!state) throw new Error(`no netns lab named ${name}: \`kube-netlab up --backend netns --name ${name}\` creates one`);
  if (state.status !== 'up') throw new Error(`lab ${name} is ${state.status === 'deleting' ? 'being removed' : 'still being created'}, or the process doing it died; \`kube-netlab status\` says which (\`kube-netlab gc\` removes a crashed one)`);
  return new NetnsLab(state, r, labMarker(await stateId(), name, state.owner));
}

export class NetnsLab implements Lab {
  readonly backend = 'netns' as const;
  readonly name: string;
  readonly mode: ProxyMode;
  readonly iptablesBackend: IptablesBackend;
  private removed = false;

  constructor(private readonly state: LabState, private r: Runner, private readonly marker: string) {
    this.name = state.name;
    this.mode = state.mode;
    this.iptablesBackend = state.iptablesBackend ?? 'nft';
  }

  /** After creation: later commands must not be cancelled by the signal that guarded `up`. */
  useRunner(r: Runner): void {
    this.r = r;
  }

  /** Every command the lab runs in its namespaces carries its marker, so clean-up can prove it. */
  private run(argv: string[], opts: RunOptions = {}): Promise<ExecResult> {
    return this.r.run(argv, { ...opts, env: { ...opts.env, ...ownerEnv(this.marker) } });
  }

  private alive(): void {
    if (this.removed) throw new Error(`lab ${this.name} was removed`);
  }

  async capabilities(): Promise<Capabilities> {
    this.alive();
    return { ipvs: ipvsKernelAvailable() };
  }

  async nodes(): Promise<LabNode[]> {
    this.alive();
    return this.state.nodes.map((n) => ({ ...n }));
  }

  exec(node: string, argv: string[], opts?: RunOptions): Promise<ExecResult> {
    this.alive();
    return this.run(['ip', 'netns', 'exec', nodeNs(this.name, this.node(node).name), ...argv], opts);
  }

  async apply(objects: K8sObject[]): Promise<SyncReport[]> {
    this.alive();
    return this.locked('apply', async () => {
      for (const o of objects) {
        if (o.kind === 'Service') {
          const taken = new Set(this.state.services.map((s) => s.clusterIP));
          const prev = this.state.services.find((s) => s.namespace === (o.metadata.namespace ?? 'default') && s.name === o.metadata.name);
          if (prev) taken.delete(prev.clusterIP);
          const others = this.state.services.filter((s) => s !== prev);
          const read = readServiceManifest(prev ? { ...o, spec: { clusterIP: prev.clusterIP, ...(o.spec as object) } } : o, taken);
          this.state.services = [...others, assignExternalAccess(read, prev, others)];
        } else if (o.kind === 'Deployment') {
          const d = readDeployment(o);
          const prev = this.state.deployments.find((x) => x.namespace === d.namespace && x.name === d.name);
          if (prev) Object.assign(prev, d);
          else this.state.deployments.push({ ...d, created: 0 });
          await this.reconcile(d.namespace, d.name);
        } else if (o.kind !== 'ServiceAccount') {
          throw new Error(`${o.kind} ${o.metadata.name}: the netns backend applies Deployments, Services and ServiceAccounts only`);
        }
      }
      await writeState(this.state);
      const reports = await this.syncAll(false);
      await writeState(this.state);
      return reports;
    });
  }

  async scale(deployment: string, replicas: number, namespace = 'default'): Promise<SyncReport[]> {
    this.alive();
    if (!Number.isInteger(replicas) || replicas < 0 || replicas > 250) throw new Error(`replicas must be 0..250, got ${replicas}`);
    return this.locked('scale', async () => {
      const d = this.deployment(namespace, deployment);
      d.replicas = replicas;
      await this.reconcile(namespace, deployment);
      await writeState(this.state);
      return this.syncAll(false);
    });
  }

  async pods(selector: Record<string, string> = {}): Promise<Pod[]> {
    this.alive();
    return this.state.pods
      .filter((p) => Object.entries(selector).every(([k, v]) => p.labels[k] === v))
      .map(({ namespace, name, ip, node, labels, ready }) => ({ namespace, name, ip, node, labels, ready }));
  }

  async services(): Promise<Service[]> {
    this.alive();
    return structuredClone(this.state.services);
  }

  async endpointSlices(): Promise<EndpointSlice[]> {
    this.alive();
    return endpointSlicesFor(this.state);
  }

  async load(spec: LoadSpec): Promise<LoadResult> {
    this.alive();
    if (this.mode === 'ipvs' && !ipvsKernelAvailable() && !spec.unanswered) {
      throw new Error('this kernel has no IP_VS: in IPVS mode the netns lab loads the ipsets and iptables rules but no virtual servers, so Service traffic cannot flow here; the IPVS figures are predictions');
    }
    const from = spec.from ?? { pod: this.clientPod().name };
    const ns = 'pod' in from ? podNs(this.name, this.pod(from.pod).name) : nodeNs(this.name, this.node(from.node).name);
    const argv = ['ip', 'netns', 'exec', ns, process.execPath, LOAD_SCRIPT, '--url', spec.url, '--requests', String(spec.requests),
      '--concurrency', String(spec.concurrency ?? 10), '--timeout-ms', String(spec.timeoutMs ?? 5000)];
    // `ip netns exec` execs the generator, so this process is its parent: it stops once we are gone.
    const out = await this.run(argv, { timeoutMs: 60_000 + spec.requests * 50, env: { KUBE_NETLAB_LOAD_PARENT: String(process.pid) } });
    return parseLoadOutput(out.stdout);
  }

  async destroy(): Promise<void> {
    if (this.removed) return;
    await removeNetnsLab(this.name, this.r);
    this.removed = true;
  }

  /** Work that changes the lab, under its lock (re-entrant: `up` deploys while holding it). */
  private async locked<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    const lock = await lockLab(this.name, doing, LOCK_WAIT_MS, this.r);
    try {
      return await fn();
    } finally {
      lock.release();
    }
  }

  /** Re-run kube-proxy on every node, as it does after any Service or endpoint change. */
  async syncAll(first: boolean): Promise<SyncReport[]> {
    const ipvsKernel = ipvsKernelAvailable();
    return Promise.all(this.state.nodes.map((node) => {
      const ports = resolveServicePorts(clusterOf(this.state), { nodeName: node.name });
      return syncNode(this.r, this.name, node, ports, { mode: this.mode, podSubnet: KIND_DEFAULTS.podSubnet, first, ipvsKernel, iptables: iptablesTools(this.iptablesBackend) });
    }));
  }

  /** kind's two default services; coredns's pods hold their addresses but run no DNS server. */
  async addDefaultServices(): Promise<void> {
    const controlPlane = this.state.nodes[0];
    this.state.services.push(service({
      namespace: 'default', name: 'kubernetes', clusterIP: '10.96.0.1',
      ports: [{ name: 'https', protocol: 'TCP', port: 443, targetPort: 6443, nodePort: null }],
    }));
    this.state.services.push(service({
      namespace: 'kube-system', name: 'kube-dns', clusterIP: '10.96.0.10',
      ports: [
        { name: 'dns', protocol: 'UDP', port: 53, targetPort: 53, nodePort: null },
        { name: 'dns-tcp', protocol: 'TCP', port: 53, targetPort: 53, nodePort: null },
        { name: 'metrics', protocol: 'TCP', port: 9153, targetPort: 9153, nodePort: null },
      ],
      selector: { 'k8s-app': 'kube-dns' },
    }));
    const coredns: PodState[] = [];
    for (let i = 0; i < 2; i++) {
      const name = deploymentPodName('coredns', i);
      const ip = allocatePodIP(controlPlane, [...this.state.pods, ...coredns]);
      coredns.push({ namespace: 'kube-system', name, ip, node: controlPlane.name, labels: { 'k8s-app': 'kube-dns' }, ready: true, deployment: 'coredns', veth: '', process: null });
    }
    this.state.pods.push(...coredns);
    await writeState(this.state);
    await Promise.all(coredns.map(async (p) => { p.veth = await createPod(this.r, this.name, controlPlane, p.name, p.ip, this.marker); }));
  }

  /** The Deployment controller: create or delete pods until the count matches. */
  private async reconcile(namespace: string, name: string): Promise<void> {
    const d = this.deployment(namespace, name);
    const mine = () => this.state.pods.filter((p) => p.namespace === namespace && p.deployment === name);
    const surplus = mine().slice(d.replicas);
    for (const p of surplus.reverse()) {
      // Only the pod's own server, proven by its start time and marker, is stopped.
      if (p.process) {
        const marked = await processesMarked(this.marker);
        await stopProcesses(marked.filter((m) => m.pid === p.process?.pid && m.start === p.process.start));
      }
      await deleteNamespace(this.r, podNs(this.name, p.name));
      this.state.pods = this.state.pods.filter((x) => x !== p);
    }
    const toCreate: PodState[] = [];
    while (mine().length + toCreate.length < d.replicas) {
      const node = pickNode(this.state.nodes, [...this.state.pods, ...toCreate], name);
      const pod: PodState = {
        namespace, name: deploymentPodName(name, d.created++), ip: allocatePodIP(node, [...this.state.pods, ...toCreate]),
        node: node.name, labels: { ...d.labels }, ready: false, deployment: name, veth: '', process: null,
      };
      toCreate.push(pod);
    }
    if (toCreate.length === 0) return;
    this.state.pods.push(...toCreate);
    await writeState(this.state); // before the namespaces exist, so a crash leaves them findable
    await Promise.all(toCreate.map((p) => this.startPod(d, p)));
  }

  private async startPod(d: DeploymentState, pod: PodState): Promise<void> {
    pod.veth = await createPod(this.r, this.name, this.node(pod.node), pod.name, pod.ip, this.marker);
    if (d.runs === 'httpbin') {
      const dir = podsDir(this.name);
      await ensurePrivateSubdir(dir);
      const ready = join(dir, `${pod.name}.ready`);
      const log = join(dir, `${pod.name}.log`);
      const pid = await this.r.spawnDetached(
        ['ip', 'netns', 'exec', podNs(this.name, pod.name), process.execPath, HTTPBIN_SCRIPT,
          '--port', String(d.containerPort), '--hostname', pod.name, '--ready-file', ready],
        log,
        { env: ownerEnv(this.marker) },
      );
      pod.process = processRef(pid);
      await waitForFile(ready, 10_000, `pod ${pod.name}: httpbin did not start (see ${log})`, this.r.defaults.signal);
    }
    pod.ready = true;
  }

  private node(name: string): LabNode {
    const n = this.state.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`lab ${this.name} has no node ${JSON.stringify(name)}; nodes: ${this.state.nodes.map((x) => x.name).join(', ')}`);
    return n;
  }

  private pod(name: string): PodState {
    const p = this.state.pods.find((x) => x.name === name);
    if (!p) throw new Error(`lab ${this.name} has no pod ${JSON.stringify(name)}`);
    return p;
  }

  private clientPod(): PodState {
    const p = this.state.pods.find((x) => x.deployment === 'curl' && x.ready);
    if (!p) throw new Error(`lab ${this.name} has no client pod: apply labs/manifests/curl.yaml first`);
    return p;
  }

  private deployment(namespace: string, name: string): DeploymentState {
    const d = this.state.deployments.find((x) => x.namespace === namespace && x.name === name);
    if (!d) throw new Error(`lab ${this.name} has no deployment ${namespace}/${name}`);
    return d;
  }
}

async function waitForFile(path: string, timeoutMs: number, message: string, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    signal?.throwIfAborted();
    if (Date.now() > deadline) throw new Error(message);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Remove lab `name`: what it can prove the lab made (see cleanup.ts). Returns the namespaces removed. */
export async function destroyNetnsLab(name: string, r: Runner = defaultRunner, opts: { force?: boolean } = {}): Promise<string[]> {
  return (await removeNetnsLab(name, r, opts)).namespaces;
}
