/**
 * IPVS mode in a notebook, with or without the kernel's IP_VS. The ipsets and iptables rules are
 * read off the client's node; the IPVS table is read where the kernel has IP_VS and predicted by
 * the generator where it has not. On kind without IP_VS there is no lab at all, and everything is
 * predicted for the model's workshop cluster. Each result says which it is.
 */
import { captureNode, parsedOf, type NodeCapture } from '../capture/index.ts';
import { runner } from '../exec/index.ts';
import { resolveServicePorts } from '../k8s/resolve.ts';
import { kindNodeName } from '../k8s/synthetic.ts';
import type { ServicePortInfo } from '../k8s/types.ts';
import { workshopCluster } from '../k8s/workshop.ts';
import { kubectlGetKubeProxyPod, parsePodsJson } from '../lab/kind/commands.ts';
import { BackendUnavailableError } from '../lab/kind/index.ts';
import { generatorOptions } from '../lab/scale-diff.ts';
import type { Lab } from '../lab/types.ts';
import { findTable, parseIpsetSave, parseIptablesRestoreInput, type IpsetState, type IptTable, type IpvsState } from '../parse/index.ts';
import { ruleCountsFigure, type Figure } from '../plot/index.ts';
import { provenance, type Backend, type Provenance } from '../provenance/index.ts';
import { generateIpvs, type IpvsRules } from '../proxy/ipvs.ts';
import type { SplitPrediction } from '../sim/split.ts';
import { captured, found, servicePorts } from './node.ts';
import { onNode } from './run-on.ts';
import { servicePortNamed } from './scaling.ts';
import type { NotebookLab } from './setup.ts';

/**
 * setup()'s catch for IPVS mode: on kind without IP_VS in the Docker host's kernel, kube-proxy
 * cannot run in IPVS mode and no lab is made; say so and return null. Any other error is rethrown.
 */
export function withoutIpvs(e: unknown): null {
  if (!(e instanceof BackendUnavailableError && e.cause === 'kernel has no IP_VS')) throw e;
  console.log(`NO LAB: ${e.message}`);
  return null;
}

/** What the rest of an IPVS notebook can show, in one line: captured and measured, or predicted. */
export function ipvsVerdict(lab: Lab | null, kernelHasIpvs: boolean): string {
  if (kernelHasIpvs) return 'IP_VS present: the virtual servers below are CAPTURED from the node and the split is MEASURED';
  if (lab) {
    return 'no IP_VS (/proc/net/ip_vs is absent): the lab holds the ipsets and iptables rules, but no virtual servers;\n'
      + "every IPVS table and figure below is PREDICTED by the kit's model, not captured, and no traffic is sent";
  }
  return "no IP_VS on the Docker host, so there is no lab: every ipset, iptables rule, IPVS table and figure below is\n"
    + "PREDICTED by the kit's model (lib/proxy on the workshop's Services), not captured, and no traffic is sent";
}

/** kube-proxy's IPVS-mode state on the client's node, as far as it could be read. */
export interface IpvsNode {
  /** Of the ipsets and iptables rules: read off the node (captured), or the generator's (predicted: no lab). */
  source: 'captured' | 'predicted';
  provenance: Provenance;
  lab: Lab | null;
  backend: Backend | null;
  node: { name: string; ip: string };
  /** Every Service port as the node sees it. */
  ports: ServicePortInfo[];
  httpbin: ServicePortInfo;
  sets: IpsetState;
  nat: IptTable;
  /** What the generator (lib/proxy) makes of the same Services on the same node. */
  generated: IpvsRules;
  /** The kernel can hold virtual servers (/proc/net/ip_vs exists); false without a lab. */
  kernelHasIpvs: boolean;
  /** How to type a command on the node, and ipset (kind's node image has none: kube-proxy's pod). */
  on: string;
  ipsetOn: string;
}

/**
 * Read `ipset list` and `iptables-save` off the client's node of an IPVS-mode lab; with no lab
 * (`nb` null), predict them for the workshop's cluster (`replicas` httpbin pods) seen from its
 * first worker at the address the netns lab gives it.
 */
export async function readIpvsNode(nb: Pick<NotebookLab, 'lab' | 'clientNode'> | null, name: string, replicas = 3): Promise<IpvsNode> {
  if (!nb) {
    const node = { name: kindNodeName(name, 1), ip: '172.18.0.3' };
    const ports = resolveServicePorts(workshopCluster({ clusterName: name, replicas }), { nodeName: node.name });
    const generated = generateIpvs(ports, generatorOptions(node));
    const nat = found(findTable(parseIptablesRestoreInput(generated.iptablesRestore), 'nat'), 'nat table');
    return {
      source: 'predicted', provenance: provenance({ source: 'predicted', backend: null, mode: 'ipvs' }), lab: null, backend: null,
      node, ports, httpbin: servicePortNamed(ports), sets: parseIpsetSave(generated.ipsetRestore), nat, generated,
      kernelHasIpvs: false, on: onNode({ name, backend: 'kind' }, node.name), ipsetOn: kubeProxyPodExec(name, '<kube-proxy pod on that node>'),
    };
  }
  const { lab, clientNode: node } = nb;
  const ports = await servicePorts(lab, node.name);
  const cap = await captureNode((argv, o) => lab.exec(node.name, argv, o), { backend: lab.backend, mode: 'ipvs', node: node.name, lab: lab.name }, ['ipset', 'iptables-save']);
  const sets = captured(cap, 'ipset');
  const save = captured(cap, 'iptables-save');
  const on = onNode(lab, node.name);
  return {
    source: 'captured', provenance: cap.provenance, lab, backend: lab.backend, node, ports, httpbin: servicePortNamed(ports), sets,
    nat: found(findTable(save, 'nat'), 'nat table in the capture'), generated: generateIpvs(ports, generatorOptions(node)),
    kernelHasIpvs: (await lab.capabilities()).ipvs, on, ipsetOn: lab.backend === 'kind' ? await kubeProxyExec(lab.name, node.name) : on,
  };
}

/** kind's node image ships no ipset: the command runs in kube-proxy's pod on the node. */
async function kubeProxyExec(cluster: string, node: string): Promise<string> {
  const res = await runner.run(kubectlGetKubeProxyPod(cluster, node), { allowFailure: true });
  const pod = res.exitCode === 0 ? parsePodsJson(res.stdout)[0]?.name : undefined;
  return kubeProxyPodExec(cluster, pod ?? '<kube-proxy pod on that node>');
}

const kubeProxyPodExec = (cluster: string, pod: string) => `kubectl --context kind-${cluster} -n kube-system exec ${pod} --`;

/** The IPVS table of the node: read off it where the kernel has IP_VS, else the generator's. */
export interface IpvsTable {
  source: 'captured' | 'predicted';
  /** Says where the table comes from, for captions. */
  label: string;
  state: IpvsState;
  /** The command that printed `text`: /proc/net/ip_vs or ipvsadm on the node, or the generator's `ipvsadm -R` input. */
  command: string;
  text: string;
}

/**
 * The IPVS table: /proc/net/ip_vs on the node (kind's node image has no ipvsadm, and unlike
 * `ipvsadm -Ln --stats` it carries the scheduler, forwarding method and weights), else
 * `ipvsadm -Ln --stats`; without IP_VS, the generator's table, labelled as a prediction.
 */
export async function readIpvsTable(view: IpvsNode): Promise<IpvsTable> {
  const { lab, node } = view;
  if (lab && view.kernelHasIpvs) {
    const c: NodeCapture = await captureNode((argv, o) => lab.exec(node.name, argv, o), { backend: lab.backend, mode: 'ipvs', node: node.name, lab: lab.name }, ['ipvsadm', 'proc-ip-vs']);
    const proc = parsedOf(c, 'proc-ip-vs');
    const item = proc ? c.items['proc-ip-vs'] : c.items.ipvsadm;
    const state = proc ?? captured(c, 'ipvsadm');
    return { source: 'captured', label: `CAPTURED from ${node.name} (${item?.command})`, state, command: item?.command ?? '', text: item?.stdout ?? '' };
  }
  const why = lab ? 'this kernel has no IP_VS, so nothing can be captured' : 'no lab: the Docker host has no IP_VS';
  return {
    source: 'predicted', label: `PREDICTED by lib/proxy (${why})`, state: view.generated.ipvs,
    command: 'ipvsadm -R input from lib/proxy', text: view.generated.ipvsadmRestore,
  };
}

/** An IPVS table as rows: each virtual server, then its real servers. */
export function ipvsRows(state: IpvsState): string[][] {
  return state.services.flatMap((s) => [
    [`${s.protocol} ${s.address}:${s.port}`, s.scheduler, '', '', ''],
    ...s.destinations.map((d) => ['', '', `-> ${d.address}:${d.port}`, d.forward, String(d.weight)]),
  ]);
}

/** A split predicted but not measured (no IP_VS to carry traffic): the prediction per endpoint, as ticks. */
export function predictedSplitFigure(split: SplitPrediction, endpoints: readonly string[], title: string): Figure {
  return ruleCountsFigure(split.shares.map((s, i) => ({ mode: split.mode, label: endpoints[i] ?? `endpoint ${i}`, predicted: s.expected })),
    { predicted: provenance({ source: 'predicted', backend: null, mode: split.mode }), title });
}
