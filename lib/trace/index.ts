export * from './iptables.ts';
export { ipvsShares, type IpvsPick, type IpvsShare } from './ipvs.ts';
export { traceNftables, type NftTraceInput } from './nftables.ts';
export { detectDump, type DumpKind } from './detect.ts';
export * from './live.ts';
