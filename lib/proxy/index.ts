export * from './modes.ts';
export * from './names.ts';
export * from './options.ts';
export { generateIptables, builtinJumpsRestore, type IptablesOptions, type IptablesRules, type BuiltinJump } from './iptables.ts';
export { generateIpvs, ipvsSetName, type IpvsOptions, type IpvsRules } from './ipvs.ts';
export { generateNftables, type NftablesOptions, type NftablesRules } from './nftables.ts';
export { GeneratorInputError, safeServicePorts } from './tokens.ts';
export * from './iptables-backend.ts';
export * from './sync.ts';
