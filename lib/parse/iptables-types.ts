/** Typed form of `iptables-save [-c]` output. Shared by lib/parse (producer) and lib/trace (consumer). */

export interface Counters {
  packets: number;
  bytes: number;
}

/** One option such as `--dport 80` or `! --mark 0x4000/0x4000`; name has no leading dashes. */
export interface IptOption {
  name: string;
  args: string[];
  negated: boolean;
}

/** A `-m module …` match with its options, in written order. */
export interface IptMatch {
  module: string;
  options: IptOption[];
  /**
   * true when no `-m` was written: the protocol's match (`-p tcp --dport 80`) that iptables
   * loads implicitly. iptables-save always writes it out as `-p tcp -m tcp --dport 80`.
   */
  implicit?: boolean;
  /** iptables-save printed `[unsupported revision]`: the kernel's match is newer than iptables, its options unknown. */
  unsupportedRevision?: boolean;
}

export interface IptTarget {
  /** e.g. `DNAT`, `KUBE-SVC-…`, `RETURN`. */
  name: string;
  /** true for `-g` (goto), false for `-j`. */
  goto: boolean;
  options: IptOption[];
  /** As for a match: `-j NFLOG [unsupported revision]`. */
  unsupportedRevision?: boolean;
}

export interface IptAddrMatch {
  value: string;
  negated: boolean;
}

export interface IptRule {
  /** 1-based line number in the parsed text. */
  line: number;
  /** The rule as written after `-A CHAIN ` (counters stripped). */
  text: string;
  chain: string;
  counters: Counters | null;
  protocol: IptAddrMatch | null;
  source: IptAddrMatch | null;
  destination: IptAddrMatch | null;
  inInterface: IptAddrMatch | null;
  outInterface: IptAddrMatch | null;
  matches: IptMatch[];
  target: IptTarget | null;
  /** The text of the first `-m comment --comment`, unquoted, or null. */
  comment: string | null;
  /** `-f` (second and later fragments only), `! -f` negated; absent when not written. */
  fragment?: { negated: boolean };
}

export interface IptChain {
  name: string;
  builtin: boolean;
  /** `ACCEPT`/`DROP` for built-in chains, null for user chains (`-`). */
  policy: string | null;
  counters: Counters | null;
  rules: IptRule[];
}

export interface IptTable {
  name: string;
  /** In the order the dump declares them. */
  chains: IptChain[];
}

export interface IptablesSave {
  tables: IptTable[];
}

export function findTable(dump: IptablesSave, name: string): IptTable | undefined {
  return dump.tables.find((t) => t.name === name);
}

export function findChain(table: IptTable, name: string): IptChain | undefined {
  return table.chains.find((c) => c.name === name);
}
