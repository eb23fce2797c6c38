/**
 * The kernel as judge of generated rules: load them into a test namespace, read back what the
 * kernel holds, and list everything kube-proxy would not have written. Each `…Problems`
 * function returns human-readable problems (empty when clean) so a property failure says what
 * leaked. The checks are allowlists: only kube-proxy's fixed chain, set and table names and its
 * hashed name patterns; only its jumps in the built-in chains; per chain exactly the rules the
 * generator says it wrote; only the verdicts kube-proxy writes in each chain.
 */
import { builtinJumpsRestore, type IptablesRules } from '../../lib/proxy/iptables.ts';
import { IPVS_IPSETS, IPVS_JUMPS, type IpvsRules } from '../../lib/proxy/ipvs.ts';
import type { NftablesRules } from '../../lib/proxy/nftables.ts';
import { parseIptablesSave } from '../../lib/parse/iptables-save.ts';
import type { IptablesSave } from '../../lib/parse/iptables-types.ts';
import { ipvsSkipReason, type TestNetns } from './netns.ts';

/** What kube-proxy meant, from the input alone (not from the generator). */
export interface Meaning {
  clusterIPs: ReadonlySet<string>;
  /** DNAT targets `ip:port` must be among these. */
  endpoints?: ReadonlySet<string>;
}

/** Kube-proxy's comments: fixed English and service port names, nothing that ends a token. */
const SAFE_COMMENT = /^[A-Za-z0-9 .\/:;,>_'()+=-]*$/;
const IPV4_CIDR = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;
const IPV4_PORT = /^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$/;

/** Empty every table and set the kernel holds in the namespace, whatever made them. */
export async function resetNetns(ns: TestNetns): Promise<void> {
  await ns.run(['nft', 'flush', 'ruleset']);
  await ns.run(['ipset', 'destroy']);
}

// ---- iptables (iptables mode, and the iptables half of IPVS mode) ----

type Table = 'filter' | 'nat';
type TargetRule = string | RegExp | null;
type Jump = { table: Table; chain: string; args: readonly string[] };

interface IptablesIntent {
  jumps: readonly Jump[];
  userChains: Record<Table, number>;
  rulesPerChain: Record<Table, Record<string, number>>;
  chainAllowed: (name: string) => boolean;
  /** Allowed targets per chain (name or pattern); null stands for "no target". */
  targets: (table: Table, chain: string) => readonly TargetRule[];
  /** A chain whose last rule must have this target (kube-proxy's drop or fall-through). */
  lastRule?: (table: Table, chain: string) => TargetRule | undefined;
}

const BUILTIN: Record<Table, readonly string[]> = { filter: ['INPUT', 'FORWARD', 'OUTPUT'], nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'] };

/** Load the built-in jumps (a fresh table), then the restore input with --noflush, as kube-proxy does. */
export async function loadIptables(ns: TestNetns, jumps: readonly Jump[], restore: string): Promise<IptablesSave> {
  await ns.run(['iptables-restore'], { input: builtinJumpsRestore(jumps.map((j) => ({ ...j, args: [...j.args] }))) });
  await ns.run(['iptables-restore', '--noflush'], { input: restore });
  return parseIptablesSave((await ns.run(['iptables-save'])).stdout);
}

function matches(rule: TargetRule, target: string | null): boolean {
  if (rule === null) return target === null;
  if (target === null) return false;
  return typeof rule === 'string' ? rule === target : rule.test(target);
}

function iptablesProblems(save: IptablesSave, intent: IptablesIntent): string[] {
  const problems: string[] = [];
  for (const t of save.tables) {
    if (t.name !== 'filter' && t.name !== 'nat') {
      problems.push(`foreign table *${t.name}`);
      continue;
    }
    const table = t.name as Table;
    let userChains = 0;
    for (const c of t.chains) {
      if (BUILTIN[table].includes(c.name)) {
        const want = intent.jumps.filter((j) => j.table === table && j.chain === c.name).map((j) => j.args[j.args.length - 1]).sort();
        const got = c.rules.map((r) => r.target?.name ?? '(none)').sort();
        if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`${table} ${c.name} holds ${JSON.stringify(got)}, kube-proxy's jumps are ${JSON.stringify(want)}`);
        if (c.policy !== 'ACCEPT') problems.push(`${table} ${c.name} policy ${c.policy}`);
        continue;
      }
      userChains++;
      if (!intent.chainAllowed(c.name)) problems.push(`foreign chain ${table} ${JSON.stringify(c.name)}`);
      const meant = intent.rulesPerChain[table][c.name] ?? 0;
      if (c.rules.length !== meant) problems.push(`${table} ${c.name} holds ${c.rules.length} rules, the generator wrote ${meant}`);
      const allowed = intent.targets(table, c.name);
      c.rules.forEach((r, i) => {
        const target = r.target?.name ?? null;
        if (!allowed.some((a) => matches(a, target))) problems.push(`${table} ${c.name} rule ${i + 1} targets ${target}: ${r.text}`);
        if (r.comment !== null && !SAFE_COMMENT.test(r.comment)) problems.push(`${table} ${c.name} rule ${i + 1} comment ${JSON.stringify(r.comment)}`);
        for (const a of [r.source, r.destination]) if (a && !IPV4_CIDR.test(a.value)) problems.push(`${table} ${c.name} rule ${i + 1} address ${JSON.stringify(a.value)}`);
      });
      const last = intent.lastRule?.(table, c.name);
      if (last !== undefined && c.rules.length > 0 && !matches(last, c.rules[c.rules.length - 1].target?.name ?? null)) {
        problems.push(`${table} ${c.name} ends in ${c.rules[c.rules.length - 1].target?.name ?? 'no target'}, kube-proxy ends it in ${String(last)}`);
      }
    }
    if (userChains !== intent.userChains[table]) problems.push(`${table} holds ${userChains} chains, the generator declared ${intent.userChains[table]}`);
  }
  return problems;
}

const HASHED = /^KUBE-(SVC|SVL|EXT|FW|SEP)-[A-Z2-7]{16}$/;
const IPTABLES_FIXED = new Set(['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL', 'KUBE-FIREWALL', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ']);

function iptablesModeTargets(table: Table, chain: string): readonly TargetRule[] {
  if (table === 'filter') {
    return ({
      'KUBE-SERVICES': ['REJECT', 'DROP'], 'KUBE-EXTERNAL-SERVICES': ['REJECT', 'DROP'], 'KUBE-FORWARD': ['DROP', 'ACCEPT'],
      'KUBE-NODEPORTS': ['ACCEPT'], 'KUBE-PROXY-FIREWALL': ['DROP'], 'KUBE-FIREWALL': ['DROP'],
    } as Record<string, TargetRule[]>)[chain] ?? [];
  }
  if (chain === 'KUBE-SERVICES') return [/^KUBE-(SVC|SVL|EXT|FW)-/, 'KUBE-NODEPORTS'];
  if (chain === 'KUBE-NODEPORTS') return [/^KUBE-EXT-/];
  if (chain === 'KUBE-POSTROUTING') return ['RETURN', 'MARK', 'MASQUERADE'];
  if (chain === 'KUBE-MARK-MASQ') return ['MARK'];
  if (chain.startsWith('KUBE-EXT-')) return ['KUBE-MARK-MASQ', /^KUBE-(SVC|SVL)-/];
  if (chain.startsWith('KUBE-FW-')) return [/^KUBE-EXT-/, null];
  // The cluster IP's masquerade rule sits in the policy chain too.
  if (chain.startsWith('KUBE-SVC-') || chain.startsWith('KUBE-SVL-')) return [/^KUBE-SEP-/, 'KUBE-MARK-MASQ'];
  if (chain.startsWith('KUBE-SEP-')) return ['KUBE-MARK-MASQ', 'DNAT'];
  return [];
}

/** Cluster IPs the kernel holds rules for: "… cluster IP" in nat KUBE-SERVICES, and filter KUBE-SERVICES (no endpoints). */
function iptablesClusterIPs(save: IptablesSave): Set<string> {
  const out = new Set<string>();
  for (const t of save.tables) {
    const chain = t.chains.find((c) => c.name === 'KUBE-SERVICES');
    for (const r of chain?.rules ?? []) {
      if (t.name === 'nat' && !(r.comment ?? '').endsWith(' cluster IP')) continue;
      if (r.destination) out.add(r.destination.value.replace(/\/32$/, ''));
    }
  }
  return out;
}

function meaningProblems(got: Set<string>, meaning: Meaning, what: string, dnat: string[]): string[] {
  const problems: string[] = [];
  const want = [...meaning.clusterIPs].sort();
  const have = [...got].sort();
  if (JSON.stringify(have) !== JSON.stringify(want)) problems.push(`${what} hold cluster IPs ${JSON.stringify(have)}, the input means ${JSON.stringify(want)}`);
  for (const d of dnat) {
    if (!IPV4_PORT.test(d)) problems.push(`DNAT to ${JSON.stringify(d)}`);
    else if (meaning.endpoints && !meaning.endpoints.has(d)) problems.push(`DNAT to ${d}, which no endpoint of the input means`);
  }
  return problems;
}

export async function iptablesModeProblems(ns: TestNetns, r: IptablesRules, meaning: Meaning): Promise<string[]> {
  const save = await loadIptables(ns, r.builtinJumps, r.restore);
  const dnat = save.tables.flatMap((t) => t.chains.flatMap((c) => c.rules.filter((x) => x.target?.name === 'DNAT')
    .map((x) => x.target?.options.find((o) => o.name === 'to-destination')?.args[0] ?? '')));
  return [
    ...iptablesProblems(save, {
      jumps: r.builtinJumps,
      userChains: { filter: r.counts.filter.chains, nat: r.counts.nat.chains },
      rulesPerChain: r.rulesPerChain,
      chainAllowed: (c) => IPTABLES_FIXED.has(c) || HASHED.test(c),
      targets: iptablesModeTargets,
      // A KUBE-FW chain ends in a rule without target: what falls off is dropped by KUBE-PROXY-FIREWALL.
      lastRule: (table, c) => (table === 'nat' && c.startsWith('KUBE-FW-') ? null : undefined),
    }),
    ...meaningProblems(iptablesClusterIPs(save), meaning, 'iptables rules', dnat),
  ];
}

// ---- IPVS mode: ipset, then iptables (virtual servers need IP_VS, which test kernels may lack) ----

const IPVS_FIXED = new Set(['KUBE-SERVICES', 'KUBE-POSTROUTING', 'KUBE-NODE-PORT', 'KUBE-LOAD-BALANCER', 'KUBE-MARK-MASQ', 'KUBE-FORWARD',
  'KUBE-PROXY-FIREWALL', 'KUBE-SOURCE-RANGES-FIREWALL', 'KUBE-IPVS-FILTER', 'KUBE-IPVS-OUT-FILTER']);

function ipvsTargets(table: Table, chain: string): readonly TargetRule[] {
  const nat: Record<string, TargetRule[]> = {
    'KUBE-SERVICES': ['RETURN', 'KUBE-LOAD-BALANCER', 'KUBE-MARK-MASQ', 'ACCEPT', 'KUBE-NODE-PORT'],
    'KUBE-POSTROUTING': ['MASQUERADE', 'RETURN', 'MARK'], 'KUBE-NODE-PORT': ['RETURN', 'KUBE-MARK-MASQ'],
    'KUBE-LOAD-BALANCER': ['RETURN', 'KUBE-MARK-MASQ'], 'KUBE-MARK-MASQ': ['MARK'],
  };
  const filter: Record<string, TargetRule[]> = {
    'KUBE-FORWARD': ['ACCEPT'], 'KUBE-NODE-PORT': ['ACCEPT'], 'KUBE-PROXY-FIREWALL': ['KUBE-SOURCE-RANGES-FIREWALL'],
    'KUBE-SOURCE-RANGES-FIREWALL': ['RETURN', 'DROP'], 'KUBE-IPVS-FILTER': ['RETURN', 'REJECT'], 'KUBE-IPVS-OUT-FILTER': ['DROP'],
  };
  return (table === 'nat' ? nat : filter)[chain] ?? [];
}

const IPSET_MEMBER: Record<string, RegExp> = {
  'hash:ip': /^\d{1,3}(\.\d{1,3}){3}$/,
  'hash:ip,port': /^\d{1,3}(\.\d{1,3}){3},(tcp|udp|sctp):\d{1,5}$/,
  'hash:ip,port,ip': /^\d{1,3}(\.\d{1,3}){3},(tcp|udp|sctp):\d{1,5},\d{1,3}(\.\d{1,3}){3}$/,
  'hash:ip,port,net': /^\d{1,3}(\.\d{1,3}){3},(tcp|udp|sctp):\d{1,5},\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/,
  'bitmap:port': /^\d{1,5}$/,
};

/** `ipset save` read plainly: create and add lines only. */
function ipsetSaved(text: string): { problems: string[]; sets: Map<string, { type: string; members: string[] }> } {
  const sets = new Map<string, { type: string; members: string[] }>();
  const problems: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const [verb, name, rest] = [line.split(' ')[0], line.split(' ')[1], line.split(' ').slice(2)];
    if (verb === 'create') sets.set(name, { type: rest[0], members: [] });
    else if (verb === 'add' && sets.has(name)) sets.get(name)!.members.push(rest[0]);
    else problems.push(`ipset save line ${JSON.stringify(line)}`);
  }
  return { problems, sets };
}

const IPV4 = String.raw`\d{1,3}(\.\d{1,3}){3}`;
/** kube-proxy's one `-m ipvs` rule (KUBE-IPVS-OUT-FILTER), whose match needs IP_VS in the kernel. */
const IPVS_MATCH_RULE = new RegExp(`^-A KUBE-IPVS-OUT-FILTER -s ${IPV4} -m ipvs --vaddr ${IPV4} --vproto (tcp|udp|sctp) --vport \\d{1,5} -j DROP$`);

/**
 * Without IP_VS the kernel cannot load `-m ipvs` rules: those lines are held to kube-proxy's
 * exact template instead and left out of the load (and of the counts the kernel must match).
 */
function withoutIpvsMatches(r: IpvsRules, problems: string[]): { restore: string; perChain: IpvsRules['iptablesRulesPerChain'] } {
  if (ipvsSkipReason() === null) return { restore: r.iptablesRestore, perChain: r.iptablesRulesPerChain };
  const perChain = { nat: { ...r.iptablesRulesPerChain.nat }, filter: { ...r.iptablesRulesPerChain.filter } };
  const kept = r.iptablesRestore.split('\n').filter((line) => {
    if (!line.includes('-m ipvs')) return true;
    if (!IPVS_MATCH_RULE.test(line)) problems.push(`not kube-proxy's -m ipvs rule: ${JSON.stringify(line)}`);
    perChain.filter['KUBE-IPVS-OUT-FILTER']--;
    return false;
  });
  return { restore: kept.join('\n'), perChain };
}

export async function ipvsModeProblems(ns: TestNetns, r: IpvsRules, meaning: Meaning): Promise<string[]> {
  await ns.run(['ipset', 'restore'], { input: r.ipsetRestore });
  const { problems, sets } = ipsetSaved((await ns.run(['ipset', 'save'])).stdout);
  const known = new Map(IPVS_IPSETS.map((s) => [s.name, s.type]));
  for (const [name, set] of sets) {
    if (known.get(name) !== set.type) problems.push(`foreign ipset ${JSON.stringify(name)} ${set.type}`);
    if (set.members.length !== r.counts.ipsetMembers[name]) problems.push(`ipset ${name} holds ${set.members.length} members, the generator wrote ${r.counts.ipsetMembers[name]}`);
    const syntax = IPSET_MEMBER[set.type];
    for (const m of set.members) if (!syntax?.test(m)) problems.push(`ipset ${name} member ${JSON.stringify(m)}`);
  }
  if (sets.size !== IPVS_IPSETS.length) problems.push(`${sets.size} ipsets, kube-proxy creates ${IPVS_IPSETS.length}`);
  const clusterIPs = new Set((sets.get('KUBE-CLUSTER-IP')?.members ?? []).map((m) => m.split(',')[0]));
  const { restore, perChain } = withoutIpvsMatches(r, problems);
  const save = await loadIptables(ns, IPVS_JUMPS, restore);
  return [
    ...problems,
    ...iptablesProblems(save, {
      jumps: IPVS_JUMPS,
      userChains: { filter: r.counts.iptables.filter.chains, nat: r.counts.iptables.nat.chains },
      rulesPerChain: perChain,
      chainAllowed: (c) => IPVS_FIXED.has(c),
      targets: ipvsTargets,
      lastRule: (table, c) => (table === 'filter' && c === 'KUBE-SOURCE-RANGES-FIREWALL' ? 'DROP' : undefined),
    }),
    ...meaningProblems(clusterIPs, meaning, 'ipset KUBE-CLUSTER-IP', []),
  ];
}

// ---- nftables mode ----

const NFT_FIXED_CHAINS = new Set([
  'filter-prerouting-pre-dnat', 'filter-output-pre-dnat', 'filter-input', 'filter-forward', 'filter-output', 'nat-prerouting', 'nat-output',
  'nat-postrouting', 'nodeport-endpoints-check', 'service-endpoints-check', 'firewall-check', 'services', 'masquerading',
  'cluster-ips-check', 'mark-for-masquerade', 'reject-chain',
]);
const NFT_JUMP_TARGETS = new Set(['nodeport-endpoints-check', 'service-endpoints-check', 'firewall-check', 'services', 'masquerading', 'cluster-ips-check']);
const NFT_HASHED_CHAIN = /^(service|local|external|firewall|endpoint)-[A-Z2-7]{8}-[a-z0-9./_-]+$/;
const NFT_FIXED_SETS = new Set(['cluster-ips', 'nodeport-ips', 'no-endpoint-services', 'no-endpoint-nodeports', 'firewall-ips', 'service-ips', 'service-nodeports']);
const NFT_HASHED_SET = /^affinity-[A-Z2-7]{8}-[a-z0-9./_-]+$/;

type NftObject = Record<string, Record<string, unknown>>;

const verdictOf = (expr: unknown[]): Record<string, unknown> => (expr[expr.length - 1] ?? {}) as Record<string, unknown>;

/** A verdict a map element may carry: drop, or goto one of kube-proxy's chains. */
function elementVerdictProblem(v: unknown): string | null {
  const o = v as Record<string, { target?: string } | null>;
  if ('drop' in o && o.drop === null) return null;
  const target = o.goto?.target;
  if (target === 'reject-chain' || (typeof target === 'string' && NFT_HASHED_CHAIN.test(target))) return null;
  return `element verdict ${JSON.stringify(v)}`;
}

export async function nftablesModeProblems(ns: TestNetns, r: NftablesRules, meaning: Meaning): Promise<string[]> {
  await ns.run(['nft', '-f', '-'], { input: r.nft });
  const listing = JSON.parse((await ns.run(['nft', '-j', 'list', 'ruleset'])).stdout) as { nftables: NftObject[] };
  const problems: string[] = [];
  const rulesIn = new Map<string, Record<string, unknown>[]>();
  let chains = 0;
  let sets = 0;
  let maps = 0;
  const clusterIPs = new Set<string>();
  const dnat: string[] = [];
  for (const obj of listing.nftables) {
    const [kind] = Object.keys(obj);
    const o = obj[kind];
    if (kind === 'metainfo') continue;
    if (kind !== 'table' && (o.family !== 'ip' || o.table !== 'kube-proxy')) {
      problems.push(`${kind} outside table ip kube-proxy: ${JSON.stringify(o).slice(0, 200)}`);
      continue;
    }
    switch (kind) {
      case 'table':
        if (o.family !== 'ip' || o.name !== 'kube-proxy') problems.push(`foreign table ${o.family} ${JSON.stringify(o.name)}`);
        break;
      case 'chain':
        chains++;
        if (!NFT_FIXED_CHAINS.has(o.name as string) && !NFT_HASHED_CHAIN.test(o.name as string)) problems.push(`foreign chain ${JSON.stringify(o.name)}`);
        rulesIn.set(o.name as string, rulesIn.get(o.name as string) ?? []);
        break;
      case 'rule': {
        const list = rulesIn.get(o.chain as string) ?? [];
        list.push(o);
        rulesIn.set(o.chain as string, list);
        const text = JSON.stringify(o.expr);
        if (text.includes('"accept"')) problems.push(`accept in ${o.chain}: ${text.slice(0, 200)}`);
        if (o.comment !== undefined && !SAFE_COMMENT.test(o.comment as string)) problems.push(`comment ${JSON.stringify(o.comment)} in ${o.chain}`);
        for (const e of o.expr as Record<string, { addr?: string; port?: number }>[]) if (e.dnat) dnat.push(`${e.dnat.addr}:${e.dnat.port}`);
        break;
      }
      case 'set':
      case 'map': {
        if (kind === 'set') sets++;
        else maps++;
        const name = o.name as string;
        if (!NFT_FIXED_SETS.has(name) && !NFT_HASHED_SET.test(name)) problems.push(`foreign ${kind} ${JSON.stringify(name)}`);
        const elems = (o.elem ?? []) as unknown[];
        if (elems.length !== (r.elementsPerSet[name] ?? 0)) problems.push(`${kind} ${name} holds ${elems.length} elements, the generator wrote ${r.elementsPerSet[name] ?? 0}`);
        for (const el of elems) {
          const text = JSON.stringify(el);
          if (text.includes('"accept"')) problems.push(`accept in ${name}: ${text.slice(0, 200)}`);
          for (const c of text.matchAll(/"comment":("(?:[^"\\]|\\.)*")/g)) {
            const comment = JSON.parse(c[1]) as string;
            if (!SAFE_COMMENT.test(comment) || comment.length > 128) problems.push(`element comment ${c[1]} in ${name}`);
          }
          if (kind === 'map') {
            const why = elementVerdictProblem((el as unknown[])[1]);
            if (why) problems.push(`${name}: ${why}`);
          }
          if (name === 'cluster-ips') clusterIPs.add(String(el));
        }
        break;
      }
      default:
        problems.push(`foreign object ${kind}: ${JSON.stringify(o).slice(0, 200)}`);
    }
  }
  if (chains !== r.counts.chains) problems.push(`${chains} chains, the generator wrote ${r.counts.chains}`);
  if (sets !== r.counts.sets || maps !== r.counts.maps) problems.push(`${sets} sets and ${maps} maps, the generator wrote ${r.counts.sets} and ${r.counts.maps}`);
  for (const [chain, rules] of rulesIn) {
    const meant = r.rulesPerChain[chain] ?? 0;
    if (rules.length !== meant) problems.push(`chain ${chain} holds ${rules.length} rules, the generator wrote ${meant}`);
    if (/^(filter|nat)-/.test(chain)) {
      for (const rule of rules) {
        const jump = (verdictOf(rule.expr as unknown[]).jump as { target?: string } | undefined)?.target;
        if (!jump || !NFT_JUMP_TARGETS.has(jump)) problems.push(`base chain ${chain} rule ${JSON.stringify(rule.expr).slice(0, 200)}`);
      }
    }
    // kube-proxy's firewall chain is one rule: drop what no source range allows.
    if (chain.startsWith('firewall-') && chain !== 'firewall-check') {
      const last = rules[rules.length - 1];
      if (rules.length !== 1 || !('drop' in verdictOf(last.expr as unknown[]))) problems.push(`firewall chain ${chain} does not end in its one drop rule`);
    }
  }
  return [...problems, ...meaningProblems(clusterIPs, meaning, 'set cluster-ips', dnat)];
}
