// kube-netlab's public API, one namespace per concern (see each folder's index.ts).
export * as k8s from './k8s/index.ts';
export * as proxy from './proxy/index.ts';
export * as parse from './parse/index.ts';
export * as trace from './trace/index.ts';
export * as sim from './sim/index.ts';
export * as exec from './exec/index.ts';
export * as lab from './lab/index.ts';
export * as capture from './capture/index.ts';
export * as traffic from './traffic/index.ts';
export * as provenance from './provenance/index.ts';
export * as plot from './plot/index.ts';
export * as scale from './scale/index.ts';
export * as project from './project/index.ts';
export * as container from './container/index.ts';
