/**
 * How to type a command where a cell runs one, for the shell lines a notebook prints: on a node
 * (`docker exec` into a kind node, `ip netns exec` into a netns node) or in a pod.
 */
import { nodeNs, podNs } from '../lab/netns/names.ts';
import type { Lab } from '../lab/types.ts';

/** The prefix that runs a command on a node of the lab. */
export function onNode(lab: Pick<Lab, 'name' | 'backend'>, node: string): string {
  return lab.backend === 'kind' ? `docker exec ${node}` : `ip netns exec ${nodeNs(lab.name, node)}`;
}

/** The prefix that runs a command in a pod of the lab (netns pods run the host's tools). */
export function inPod(lab: Pick<Lab, 'name' | 'backend'>, pod: string): string {
  return lab.backend === 'kind' ? `kubectl --context kind-${lab.name} exec ${pod} --` : `ip netns exec ${podNs(lab.name, pod)}`;
}
