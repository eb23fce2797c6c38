/**
 * The kit as a notebook imports it: `import { setup, expect, … } from './kit'` (notebooks/kit.js
 * loads this module from the build; notebooks/kit.d.ts gives tslab its types). One import for the
 * lesson's cells, with completion and type checks on every call.
 */
export * from './setup.ts';
export * from './expect.ts';
export * from './show.ts';
export * from './run-on.ts';
export * from './pod-path.ts';
export * from './ipvs.ts';
export * from './scaling.ts';
export * from './node.ts';
export * from './rules.ts';
export * from './tally.ts';
export * from './published.ts';
export * from '../options/index.ts';
export * from '../exec/index.ts';
export * from '../k8s/index.ts';
export * from '../lab/index.ts';
export { diffLines } from '../lab/diff.ts';
export * from '../lab/podnet.ts';
export * from '../lab/scale-diff.ts';
export { netnsUnavailable } from '../lab/netns/index.ts';
export { doctor } from '../lab/kind/doctor.ts';
export { kubectlGetKubeProxyPod, parsePodsJson } from '../lab/kind/commands.ts';
export * from '../capture/index.ts';
export * from '../capture/iptables.ts';
export * from '../capture/conntrack-watch.ts';
export * from '../lab/network.ts';
export * from '../parse/index.ts';
export * from '../plot/index.ts';
export * from '../provenance/index.ts';
export * from '../proxy/index.ts';
export { formatProbability, savedProbability } from '../proxy/iptables.ts';
export * from '../proxy/read.ts';
export { nftServiceChain, nftEndpointChain } from '../proxy/nftables.ts';
export * from '../proxy/read-back.ts';
export * from '../scale/index.ts';
export * from '../scale/scratch-load.ts';
export * from '../scale/live.ts';
export * from '../scale/recorded.ts';
export * from '../sim/index.ts';
export * from '../trace/index.ts';
export * from '../traffic/index.ts';
export * from '../traffic/cross-check.ts';
