/**
 * The prefix a shell command needs to run where a notebook's step runs: on a node (its network
 * namespace on netns, its container on kind) or in a pod. Cells print it with `shell(…)` so the
 * audience can repeat the step in a terminal.
 */
import { nodeNs, podNs } from '../lab/netns/names.ts';
import type { Lab } from '../lab/types.ts';

type Where = Pick<Lab, 'name' | 'backend'>;

/** `ip netns exec kn-<lab>.<node>` on netns, `docker exec <node>` on kind. */
export function onNode(lab: Where, node: string): string {
  return lab.backend === 'kind' ? `docker exec ${node}` : `ip netns exec ${nodeNs(lab.name, node)}`;
}

/**
 * `ip netns exec kn-<lab>.pod.<pod>` on netns (a pod is a namespace, and the command runs from
 * the host's filesystem), `kubectl --context kind-<lab> exec <pod> [-c <container>] --` on kind.
 */
export function inPod(lab: Where, pod: string, container?: string): string {
  return lab.backend === 'kind' ? `kubectl --context kind-${lab.name} exec ${pod}${container ? ` -c ${container}` : ''} --` : `ip netns exec ${podNs(lab.name, pod)}`;
}
