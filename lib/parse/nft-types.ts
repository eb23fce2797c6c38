/**
 * Typed form of `nft list ruleset` and `nft -j list ruleset`. Both parsers produce this one
 * shape, so a test can check that the two views of a kernel agree.
 */

export interface NftCounters {
  packets: number;
  bytes: number;
}

export type NftVerdictKind =
  | 'accept' | 'drop' | 'continue' | 'return' | 'jump' | 'goto' | 'reject' | 'queue'
  | 'masquerade' | 'dnat' | 'snat' | 'redirect' | 'vmap';

/** The last terminal statement of a rule. */
export interface NftVerdict {
  kind: NftVerdictKind;
  /**
   * jump/goto: the chain; dnat/snat/redirect: what follows `to` (e.g. `10.244.1.2:8080`);
   * vmap: the map reference (`@service-ips`), or null for an anonymous map (see numgen).
   * Otherwise null.
   */
  target: string | null;
}

/** One entry of `numgen … vmap { 0 : goto a, 1 : goto b }`; `first`-`last` for ranges. */
export interface NftNumgenEntry {
  index: number;
  last: number;
  verdict: NftVerdict;
}

export interface NftNumgen {
  mode: string;
  mod: number;
  offset: number;
  entries: NftNumgenEntry[];
}

export interface NftRule {
  /** Text: 1-based line. JSON: 1-based index in the `nftables` array. */
  line: number;
  /** The rule as nft prints it, without ` # handle N` (JSON: rendered in the same syntax). */
  text: string;
  handle: number | null;
  comment: string | null;
  counter: NftCounters | null;
  verdict: NftVerdict | null;
  numgen: NftNumgen | null;
}

export interface NftChain {
  name: string;
  line: number;
  handle: number | null;
  /** Base chains only: filter/nat/route, the hook, the numeric priority and the policy. */
  type: string | null;
  hook: string | null;
  priority: number | null;
  policy: string | null;
  comment: string | null;
  rules: NftRule[];
}

/** A set or map element in nft syntax: key `10.96.0.1 . tcp . 443`, value `goto service-…`. */
export interface NftElement {
  key: string;
  value: string | null;
  comment: string | null;
}

export interface NftSet {
  kind: 'set' | 'map';
  name: string;
  line: number;
  handle: number | null;
  /** e.g. `ipv4_addr . inet_proto . inet_service : verdict` (maps include the data type). */
  type: string;
  /** As printed. nft 1.0.6's JSON omits `dynamic`, which its text output shows. */
  flags: string[];
  timeoutSeconds: number | null;
  size: number | null;
  comment: string | null;
  elements: NftElement[];
}

/** Objects the parsers recognise but do not model (flowtables, named counters, quotas…). */
export interface NftOtherObject {
  kind: string;
  name: string;
  line: number;
}

export interface NftTable {
  family: string;
  name: string;
  line: number;
  handle: number | null;
  comment: string | null;
  chains: NftChain[];
  /** Sets and maps, in the order printed. */
  sets: NftSet[];
  others: NftOtherObject[];
}

/** Something nft wrote to stderr, merged into the listing (`2>&1`), and where it was. */
export interface NftWarning {
  line: number;
  /** As printed: `# Warning: table ip filter is managed by iptables-nft, do not touch!`, `XT match comment not found`. */
  text: string;
}

export interface NftRuleset {
  tables: NftTable[];
  /** Present when the listing holds nft's warnings; a rule cut by one is read whole. */
  warnings?: NftWarning[];
}

export function findNftTable(rs: NftRuleset, family: string, name: string): NftTable | undefined {
  return rs.tables.find((t) => t.family === family && t.name === name);
}

export function findNftChain(table: NftTable, name: string): NftChain | undefined {
  return table.chains.find((c) => c.name === name);
}

export function findNftSet(table: NftTable, name: string): NftSet | undefined {
  return table.sets.find((s) => s.name === name);
}
