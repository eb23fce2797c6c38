/**
 * Syncs shaped as kube-proxy shapes them, cut from the generators' full output:
 * - iptables: the partial restore of MinimizeIPTablesRestore (KEP-3453, GA in 1.28).
 * - nftables: the full and the incremental transaction of pkg/proxy/nftables/proxier.go, line by
 *   line as sigs.k8s.io/knftables writes them for `nft -f -`. Neither deletes the table: a full
 *   sync adds and flushes every chain, set and map it owns, then refills them.
 */
import type { ServicePortInfo } from '../k8s/types.ts';
import { sepChain, svcChain } from './names.ts';
import { KUBE_PROXY_TABLE, nftEndpointChain, nftServiceChain, type NftablesRules } from './nftables.ts';

// ---------------------------------------------------------------------------------------------
// iptables: kube-proxy's partial sync

const SERVICE_CHAIN = /^KUBE-(SVC|SVL|EXT|FW|SEP)-/;

/** The nat chains kube-proxy writes for one service port: its SVC chain and one SEP chain per endpoint. */
export function iptablesServiceChains(p: ServicePortInfo): string[] {
  const proto = p.protocol.toLowerCase();
  return [svcChain(p.servicePortName, proto), ...p.endpoints.map((e) => sepChain(p.servicePortName, proto, `${e.ip}:${e.port}`))];
}

/**
 * The restore input of kube-proxy's partial sync (MinimizeIPTablesRestore, GA in 1.28), cut from
 * a full restore: the filter table and nat's fixed chains (KUBE-SERVICES with every service's
 * rule, KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-MARK-MASQ) in full; of the per-service chains only
 * `write` (the changed service's); `stale` chains are declared (which flushes them) and deleted
 * with -X, as kube-proxy deletes chains it no longer writes.
 */
export function iptablesPartialRestore(fullRestore: string, write: readonly string[], stale: readonly string[]): string {
  const keep = new Set(write);
  const wanted = (chain: string, table: string) => table !== 'nat' || !SERVICE_CHAIN.test(chain) || keep.has(chain);
  const out: string[] = [];
  let table = '';
  for (const line of fullRestore.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    if (line.startsWith(':')) {
      if (!wanted(line.slice(1, line.indexOf(' ')), table)) continue;
    } else if (line.startsWith('-A ')) {
      if (!wanted(line.slice(3, line.indexOf(' ', 3)), table)) continue;
    } else if (line === 'COMMIT' && table === 'nat') {
      for (const c of stale) out.push(`:${c} - [0:0]`);
      for (const c of stale) out.push(`-X ${c}`);
    }
    out.push(line);
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// nftables: knftables transactions

/** The per-service chains (upstream's isServiceChainName): the ones a sync may find stale. */
const NFT_SERVICE_CHAIN = /^(service|local|external|endpoint|firewall)-/;

export function isNftServiceChain(name: string): boolean {
  return NFT_SERVICE_CHAIN.test(name);
}

/** The chains a table holds, from `nft list chains` (`chain NAME {` lines) or a generator's `add chain` lines. */
export function nftChainNames(text: string, table = KUBE_PROXY_TABLE): string[] {
  const out: string[] = [];
  let inTable = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const added = /^add chain \S+ (\S+) (\S+)/.exec(line);
    if (added) {
      if (added[1] === table) out.push(added[2]);
      continue;
    }
    const t = /^table \S+ (\S+) \{/.exec(line);
    if (t) inTable = t[1] === table;
    const c = /^chain (\S+) \{/.exec(line);
    if (c && inTable) out.push(c[1]);
  }
  return out;
}

export interface NftFullSyncOptions {
  /**
   * kube-proxy's first sync since it started: every base chain is added and deleted once before
   * it is created, so one whose type or priority changed is recreated (upstream's `flushed`).
   */
  first: boolean;
  /** Chains the table holds now (`nft list chains`); service chains no longer written are flushed. */
  existingChains?: readonly string[];
}

/**
 * kube-proxy's full nftables sync: `add table` (never delete), then for every chain it writes
 * `add chain` + `flush chain`, for every set and map `add` + `flush` (the element caches reset),
 * then every rule and element; service chains the table holds but no longer needs are flushed
 * (kube-proxy deletes them a second later, in a transaction of their own: nftStaleChainDeletion).
 */
export function nftFullSyncTx(gen: Pick<NftablesRules, 'nft' | 'family'>, opts: NftFullSyncOptions): string {
  const prefix = `${gen.family} ${KUBE_PROXY_TABLE}`;
  const out: string[] = [];
  const baseChains: string[] = [];
  for (const line of gen.nft.split('\n')) {
    if (line === '' || line === `add table ${prefix}` || line === `delete table ${prefix}`) continue;
    const chain = line.startsWith(`add chain ${prefix} `) ? line.slice(`add chain ${prefix} `.length).split(' ')[0] : null;
    if (chain !== null && line.includes(' hook ')) baseChains.push(chain);
    out.push(line);
    if (chain !== null) out.push(`flush chain ${prefix} ${chain}`);
    const container = /^add (set|map) \S+ \S+ (\S+) /.exec(line);
    if (container) out.push(`flush ${container[1]} ${prefix} ${container[2]}`);
  }
  // upstream: `if !proxier.flushed { for each base chain: tx.Add(chain); tx.Delete(chain) }`, right after the table.
  if (opts.first) out.splice(1, 0, ...baseChains.flatMap((c) => [`add chain ${prefix} ${c}`, `delete chain ${prefix} ${c}`]));
  for (const c of staleNftChains(gen, opts.existingChains ?? [])) out.push(`flush chain ${prefix} ${c}`);
  return `${out.join('\n')}\n`;
}

/** Service chains of `existing` that `gen` no longer writes: a full sync flushes them, a later one deletes them. */
export function staleNftChains(gen: Pick<NftablesRules, 'nft'>, existing: readonly string[]): string[] {
  const written = new Set(nftChainNames(gen.nft));
  return existing.filter((c) => isNftServiceChain(c) && !written.has(c));
}

/** The transaction kube-proxy runs at the start of a later sync, a second after chains went stale. */
export function nftStaleChainDeletion(family: string, stale: readonly string[]): string {
  return stale.map((c) => `delete chain ${family} ${KUBE_PROXY_TABLE} ${c}\n`).join('');
}

/** A service port's nftables chains: its service chain and one endpoint chain per endpoint. */
export function nftServiceChains(p: ServicePortInfo): string[] {
  return [nftServiceChain(p), ...p.endpoints.map((e) => nftEndpointChain(p, e))];
}

/**
 * kube-proxy's incremental (partial) nftables transaction after one service's endpoints changed:
 * no table setup; each chain of that service `add` + `flush` (ensureChain) and all its rules
 * re-added; chains it no longer uses flushed (deleted a second later: `followUp`); nothing for
 * the other services. Its map elements name its service chain, which an endpoint change keeps,
 * so ensureElem (which compares with its cache) writes none. Cut from the full `nft -f` input of
 * the new state.
 */
export function nftIncrementalTx(fullNew: string, before: ServicePortInfo, after: ServicePortInfo, family = 'ip'): { tx: string; followUp: string } {
  if (before.endpoints.length === 0 || after.endpoints.length === 0) {
    throw new Error(`${after.servicePortName}: an incremental transaction is shaped here for endpoint changes that keep at least one endpoint (its elements would move between maps)`);
  }
  const prefix = `${family} ${KUBE_PROXY_TABLE}`;
  const old = new Set(nftServiceChains(before));
  const now = nftServiceChains(after);
  const nowSet = new Set(now);
  const lines: string[] = [];
  for (const c of now) lines.push(`add chain ${prefix} ${c}`, `flush chain ${prefix} ${c}`);
  const rulePrefix = `add rule ${prefix} `;
  for (const line of fullNew.split('\n')) {
    if (!line.startsWith(rulePrefix)) continue;
    const chain = line.slice(rulePrefix.length, line.indexOf(' ', rulePrefix.length));
    if (nowSet.has(chain)) lines.push(line);
  }
  const stale = [...old].filter((c) => !nowSet.has(c));
  for (const c of stale) lines.push(`flush chain ${prefix} ${c}`);
  return { tx: `${lines.join('\n')}\n`, followUp: nftStaleChainDeletion(family, stale) };
}
