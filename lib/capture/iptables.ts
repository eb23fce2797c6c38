/**
 * A node's iptables rules as a lesson reads them: one table with its counters, the rules of a
 * chain as `iptables-save` prints them, and how many packets some rules counted while traffic ran.
 */
import type { Lab } from '../lab/types.ts';
import { findChain, findTable, parseIptablesSave } from '../parse/index.ts';
import type { IptRule, IptTable } from '../parse/iptables-types.ts';

export type IptablesTableName = 'nat' | 'filter' | 'mangle' | 'raw';

/** Which rules of a chain: all of them, or those `pick` keeps. */
export type RulePick = (rule: IptRule) => boolean;

/** `iptables-save -c -t <table>` on a node, parsed: every rule with its packet and byte counters. */
export async function iptablesTable(lab: Pick<Lab, 'exec'>, node: string, table: IptablesTableName): Promise<IptTable> {
  const saved = await lab.exec(node, ['iptables-save', '-c', '-t', table]);
  const t = findTable(parseIptablesSave(saved.stdout), table);
  if (!t) throw new Error(`${node}: iptables-save printed no ${table} table`);
  return t;
}

/** The rules of `chain` that `pick` keeps; none when the table has no such chain. */
export function chainRules(table: IptTable, chain: string, pick: RulePick = () => true): IptRule[] {
  return (findChain(table, chain)?.rules ?? []).filter(pick);
}

/** A rule of `chain` as `iptables-save` prints it: `-A CHAIN …`, without counters. */
export function ruleLine(chain: string, rule: IptRule): string {
  return `-A ${chain} ${rule.text}`;
}

/** Those rules as `iptables-save` prints them (`-A CHAIN …`, without counters), one per line. */
export function chainLines(table: IptTable, chain: string, pick: RulePick = () => true): string[] {
  return chainRules(table, chain, pick).map((r) => ruleLine(chain, r));
}

/** Packets the rules of `chain` that `pick` keeps have counted, summed. */
export function chainPackets(table: IptTable, chain: string, pick: RulePick = () => true): number {
  return chainRules(table, chain, pick).reduce((sum, r) => sum + (r.counters?.packets ?? 0), 0);
}

export interface RuleCounter {
  node: string;
  table: IptablesTableName;
  chain: string;
  /** The rules counted, as they were when the counter started. */
  rules: IptRule[];
  /** Packets they had counted when the counter started. */
  before: number;
  /** Packets they counted since the counter started (reads the node's table again). */
  delta(): Promise<number>;
}

/**
 * Start counting the packets some rules of a node see: read their counters now, and again on
 * `delta()`. One packet per new connection for a nat rule (only a connection's first packet
 * traverses the nat table); every packet for a filter rule.
 */
export async function ruleCounter(
  lab: Pick<Lab, 'exec'>, node: string, table: IptablesTableName, chain: string, pick: RulePick = () => true,
): Promise<RuleCounter> {
  const t = await iptablesTable(lab, node, table);
  const before = chainPackets(t, chain, pick);
  return {
    node, table, chain, before,
    rules: chainRules(t, chain, pick),
    delta: async () => chainPackets(await iptablesTable(lab, node, table), chain, pick) - before,
  };
}
