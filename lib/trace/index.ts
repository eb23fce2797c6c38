export * from './iptables.ts';
