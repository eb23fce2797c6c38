export * from './modes.ts';
export * from './names.ts';
export * from './options.ts';
export { generateIptables, builtinJumpsRestore, type IptablesRules, type BuiltinJump } from './iptables.ts';
export { generateIpvs, type IpvsRules } from './ipvs.ts';
export { generateNftables, type NftablesRules } from './nftables.ts';
export { GeneratorInputError, safeServicePorts } from './tokens.ts';
