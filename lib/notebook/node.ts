/**
 * A lab node as a notebook reads it: the prefix that runs a command there from a root shell, a
 * capture that prints the commands it runs, and the Service ports as that node's kube-proxy sees
 * them.
 */
import { captureNode, type NodeCapture } from '../capture/capture.ts';
import { CAPTURE_SPECS, type CaptureKind, type CaptureParsed } from '../capture/commands.ts';
import { shellQuote } from '../exec/index.ts';
import { resolveServicePorts } from '../k8s/resolve.ts';
import type { ServicePortInfo } from '../k8s/types.ts';
import type { Lab } from '../lab/types.ts';
import { CheckFailed } from './expect.ts';
import { onNode } from './run-on.ts';
import { shell } from './show.ts';

/** Capture `kinds` off one node of the lab, printing each command as typed on the host. */
export async function captureLabNode(lab: Lab, node: string, kinds: readonly CaptureKind[]): Promise<NodeCapture> {
  for (const kind of kinds) shell(`${onNode(lab, node)} ${shellQuote(CAPTURE_SPECS[kind].argv)}`);
  return captureNode((argv, opts) => lab.exec(node, argv, opts), { backend: lab.backend, mode: lab.mode, node, lab: lab.name }, kinds);
}

/** Why a capture has no parsed `kind` (not captured, the tool or kernel feature it lacks, or the error); null when it has. */
export function whyNotParsed(capture: NodeCapture, kind: CaptureKind): string | null {
  const item = capture.items[kind];
  if (!item) return 'not captured';
  return item.parsed ? null : (item.skipped ?? item.error ?? 'no output');
}

/** The parsed data of one kind in a capture; a check that fails with the reason when there is none. */
export function captured<K extends CaptureKind>(from: NodeCapture | { cap: NodeCapture }, kind: K): CaptureParsed[K] {
  const capture = 'cap' in from ? from.cap : from;
  const why = whyNotParsed(capture, kind);
  if (why === null) return capture.items[kind]?.parsed as CaptureParsed[K];
  throw new CheckFailed(`no parsed ${kind} from ${capture.provenance.node ?? 'the node'}: ${why}`);
}

/** The lab's Service ports with their endpoints, as kube-proxy on `node` resolves them. */
export async function servicePorts(lab: Lab, node: string): Promise<ServicePortInfo[]> {
  return resolveServicePorts({ services: await lab.services(), endpointSlices: await lab.endpointSlices() }, { nodeName: node });
}

/** The value a lookup found; a failed check naming what is missing when it found nothing. */
export function found<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new CheckFailed(`not found: ${what}`);
  return value;
}
