/**
 * One packet through what iptables-save (or ip6tables-save) shows, in the kernel's order:
 *
 *   from a pod or the network: nat PREROUTING → routing → local: filter INPUT, nat INPUT
 *                                                       → else:  filter FORWARD, nat POSTROUTING
 *   from the node itself:      nat OUTPUT → filter OUTPUT → nat POSTROUTING
 *                                                       → local: filter INPUT (back in through lo)
 *
 * Every statistic branch is followed, so each outcome carries its exact probability. In IPVS mode
 * the virtual server takes the packet where the kernel's IPVS hooks sit: after filter INPUT for
 * packets from outside, right after nat OUTPUT for the node's own.
 */
import type { IptChain, IptMatch, IptOption, IptRule, IptTable, IptablesSave } from '../parse/iptables-types.ts';
import type { IpsetSet, IpsetState } from '../parse/ipset-types.ts';
import type { IpvsState } from '../parse/ipvs-types.ts';
import { cidrHas, isLoopback, joinHostPort, parseAddr, parseCidr, splitHostPort, type Addr } from './addr.ts';
import { ipvsShares } from './ipvs.ts';
import type { Hook, Outcome, Packet, Step, TraceResult } from './types.ts';

export type { Hook, Outcome, Packet, Step, TraceResult } from './types.ts';

/** Input of the nat-only tracer (kept for notebooks): one nat table, nothing of filter. */
export interface TraceInput {
  /** The parsed nat table (from `iptables-save`). */
  nat: IptTable;
  packet: Packet;
  /** PREROUTING for traffic arriving from a pod or the network, OUTPUT for traffic from the node. */
  hook: Hook;
  /** The node's own addresses: what `-m addrtype --dst-type LOCAL` matches (127.0.0.0/8 always does). */
  localAddresses?: string[];
  /** Sets referenced by `-m set --match-set`. */
  ipsets?: IpsetState;
  /** In IPVS mode, the virtual servers the packet is handed to after the nat hook accepts it. */
  ipvs?: IpvsState;
  /** Also run nat POSTROUTING after routing, to decide source NAT (default: when the table has it). */
  postrouting?: boolean;
}

/** Input of the full tracer: every table of the dump, in the kernel's hook order. */
export interface IptablesTraceInput {
  /** From `iptables-save` or `ip6tables-save`: nat and filter are traced, other tables ignored. */
  dump: IptablesSave;
  packet: Packet;
  hook: Hook;
  /** The node's own addresses: `addrtype LOCAL` and the routing decision (loopback always counts). */
  localAddresses?: string[];
  ipsets?: IpsetState;
  /** IPVS mode: the virtual servers (their addresses count as local, as kube-ipvs0 holds them). */
  ipvs?: IpvsState;
  /** Run nat POSTROUTING, where source NAT is decided (default true). */
  postrouting?: boolean;
}

/** The dump holds something the tracer cannot evaluate faithfully; names the rule's line. */
export class TraceError extends Error {
  override readonly name = 'TraceError';
  constructor(readonly line: number, message: string) {
    super(line > 0 ? `line ${line}: ${message}` : message);
  }
}

const MAX_DEPTH = 64;
/**
 * Rule evaluations one trace may make. A 10,000-Service dump takes about 10,000; a dump whose
 * statistic branches multiply (2^n paths through n of them) would otherwise never finish.
 */
export const MAX_EVALUATIONS = 200_000;
const TWO_31 = 2 ** 31;

/** The probability the kernel really uses: xt_statistic stores round(p·2^31). */
export function kernelProbability(p: number): number {
  return Math.round(p * TWO_31) / TWO_31;
}

type Verdict = Outcome['verdict'];

interface State {
  probability: number;
  mark: number;
  dnat: string | null;
  snat: string | null;
  path: string[];
  steps: Step[];
  ipvs?: Outcome['ipvs'];
}

type Flow =
  | { kind: 'return'; state: State }
  | { kind: 'final'; verdict: Verdict; state: State };

type TargetFlow =
  | { kind: 'final'; verdict: Verdict; state: State }
  | { kind: 'return'; returnFrom: 'rule' | 'chain'; state: State };

/** Chains kube-proxy jumps to from each built-in chain it hooks (a table holding them is kube-proxy's). */
const KUBE_HOOKED: Record<string, Record<string, true>> = {
  nat: { PREROUTING: true, OUTPUT: true, POSTROUTING: true },
  filter: { INPUT: true, FORWARD: true, OUTPUT: true },
};

/**
 * Follow one packet through a nat table, exploring every statistic branch: the hook's chain,
 * then IPVS when given, then nat POSTROUTING. Filter verdicts are not seen; traceIptables does.
 */
export function traceNat(input: TraceInput): TraceResult {
  const e = new Engine([input.nat], input.localAddresses ?? [], input.ipsets, input.ipvs);
  if (!e.has('nat', input.hook)) {
    throw new TraceError(0, `the nat table has no ${input.hook} chain, so nothing leads into kube-proxy's chains; trace iptables-save output, or restore input with the built-in jumps (rules --with-jumps)`);
  }
  const packet = input.packet;
  let outcomes = e.runBuiltin('nat', input.hook, e.start(packet), packet).map((f) => ({ ...f }));
  if (input.ipvs) {
    outcomes = outcomes.flatMap((o) => (o.verdict === 'ACCEPT' && o.state.dnat === null ? e.handToIpvs(o.state, packet) : [o]));
  }
  const post = input.postrouting ?? e.has('nat', 'POSTROUTING');
  if (post) outcomes = outcomes.flatMap((o) => (o.verdict === 'ACCEPT' ? e.runBuiltin('nat', 'POSTROUTING', o.state, packet) : [o]));
  return { packet, hook: input.hook, outcomes: merge(outcomes.map(toOutcome)) };
}

/**
 * Follow one packet through the nat and filter tables kube-proxy programs, in the kernel's order
 * (see the top of this file). Outcomes carry exact probabilities that sum to 1; `warnings` says
 * what the trace could not see, such as built-in chains that never reach kube-proxy's.
 */
export function traceIptables(input: IptablesTraceInput): TraceResult {
  const tables = input.dump.tables.filter((t) => t.name === 'nat' || t.name === 'filter');
  const e = new Engine(tables, input.localAddresses ?? [], input.ipsets, input.ipvs);
  const packet = input.packet;
  const family = familyOf(packet, 0);
  const start = e.start(packet);
  const post = input.postrouting ?? true;
  type Branch = { verdict: Verdict; state: State };
  let live: Branch[] = [{ verdict: 'ACCEPT', state: start }];
  const done: Branch[] = [];
  const stage = (table: string, chain: string, when: (s: State) => boolean = () => true) => {
    const next: Branch[] = [];
    for (const b of live) {
      if (!when(b.state)) {
        next.push(b);
        continue;
      }
      for (const r of e.runBuiltin(table, chain, b.state, packet)) (r.verdict === 'ACCEPT' ? next : done).push(r);
    }
    live = next;
  };
  const dstIsLocal = (s: State) => e.isLocal(currentDst(packet, s));
  const ipvsStage = (when: (s: State) => boolean) => {
    if (!input.ipvs) return;
    live = live.flatMap((b) => {
      if (!when(b.state) || b.state.dnat !== null) return [b];
      const out = e.handToIpvs(b.state, packet);
      for (const o of out) if (o.verdict !== 'ACCEPT') done.push(o);
      return out.filter((o) => o.verdict === 'ACCEPT');
    });
  };

  if (input.hook === 'PREROUTING') {
    stage('nat', 'PREROUTING');
    const local = live.filter((b) => dstIsLocal(b.state));
    const forward = live.filter((b) => !dstIsLocal(b.state));
    live = local;
    stage('filter', 'INPUT');
    const beforeIpvs = new Set(live);
    ipvsStage(() => true);
    // What IPVS scheduled leaves for its real server; the rest is delivered here.
    const scheduled = live.filter((b) => !beforeIpvs.has(b));
    live = live.filter((b) => beforeIpvs.has(b));
    stage('nat', 'INPUT');
    done.push(...live);
    live = [...forward, ...scheduled];
    stage('filter', 'FORWARD', (s) => !s.ipvs);
    if (post) stage('nat', 'POSTROUTING');
    done.push(...live);
  } else {
    stage('nat', 'OUTPUT');
    ipvsStage(() => true);
    stage('filter', 'OUTPUT');
    if (post) stage('nat', 'POSTROUTING');
    // A packet for one of the node's own addresses comes back in through lo.
    stage('filter', 'INPUT', dstIsLocal);
    done.push(...live);
  }
  const warnings = [...e.warnings];
  for (const w of reachWarnings(tables, input.hook, family)) warnings.push(w);
  return {
    packet,
    hook: input.hook,
    outcomes: merge(done.map(toOutcome)),
    mode: input.ipvs ? 'ipvs' : 'iptables',
    warnings,
  };
}

/**
 * A built-in chain kube-proxy hooks that holds no jump to any KUBE-* chain, in a table where
 * kube-proxy's chains exist: restore text loaded without its jumps (`rules --with-jumps` restored
 * without --noflush flushes them again), so the packet never meets kube-proxy's rules.
 */
function reachWarnings(tables: readonly IptTable[], hook: Hook, family: 4 | 6): string[] {
  const tool = family === 6 ? 'ip6tables-restore' : 'iptables-restore';
  const hooked: [string, string[]][] = hook === 'PREROUTING'
    ? [['nat', ['PREROUTING', 'POSTROUTING']], ['filter', ['INPUT', 'FORWARD']]]
    : [['nat', ['OUTPUT', 'POSTROUTING']], ['filter', ['OUTPUT', 'INPUT']]];
  const out: string[] = [];
  const cut: string[] = [];
  for (const [name, chains] of hooked) {
    const table = tables.find((t) => t.name === name);
    if (!table) {
      if (name === 'filter' && tables.some((t) => t.name === 'nat')) {
        out.push('the dump has no *filter table: REJECT for Services without endpoints and DROP by source ranges or Local policies are not traced (capture it with iptables-save, not iptables-save -t nat)');
      }
      continue;
    }
    const kube = table.chains.some((c) => !c.builtin && c.name.startsWith('KUBE-') && c.rules.length > 0);
    if (!kube) continue;
    for (const chain of chains) {
      if (!KUBE_HOOKED[name]?.[chain]) continue;
      const c = table.chains.find((x) => x.name === chain);
      if (!c?.rules.some((r) => r.target?.name.startsWith('KUBE-'))) cut.push(`${name} ${chain}`);
    }
  }
  if (cut.length > 0) {
    out.unshift(`${cut.join(', ')} ${cut.length === 1 ? 'has' : 'have'} no jump into kube-proxy's chains, so the packet never meets them: restore text loaded without its built-in jumps looks like this (rules --with-jumps restored without --noflush flushes the jumps again; use ${tool} --noflush)`);
  }
  return out;
}

function familyOf(p: Packet, line: number): 4 | 6 {
  const a = parseAddr(p.dst);
  if (!a) throw new TraceError(line, `destination ${p.dst} is not an IPv4 or IPv6 address`);
  return a.family;
}

function currentDst(p: Packet, s: State): string {
  if (!s.dnat) return p.dst;
  return splitHostPort(s.dnat)?.host ?? p.dst;
}

/** The packet as the next hook sees it: destination rewritten by DNAT or IPVS. */
function rewritten(p: Packet, s: State): Packet {
  if (!s.dnat) return p;
  const hp = splitHostPort(s.dnat);
  return hp ? { ...p, dst: hp.host, dport: hp.port } : p;
}

class Engine {
  private readonly tables = new Map<string, Map<string, IptChain>>();
  private readonly sets = new Map<string, IpsetSet>();
  private readonly local: Addr[] = [];
  private evaluations = 0;
  readonly warnings = new Set<string>();

  constructor(
    tables: readonly IptTable[],
    localAddresses: readonly string[],
    ipsets: IpsetState | undefined,
    private readonly ipvs: IpvsState | undefined,
  ) {
    for (const t of tables) this.tables.set(t.name, new Map(t.chains.map((c) => [c.name, c])));
    for (const s of ipsets?.sets ?? []) this.sets.set(s.name, s);
    for (const ip of localAddresses) {
      const a = parseAddr(ip);
      if (!a) throw new TraceError(0, `local address ${ip} is not an IPv4 or IPv6 address`);
      this.local.push(a);
    }
    // kube-proxy binds every IPVS virtual address to kube-ipvs0: they are the node's own.
    for (const s of ipvs?.services ?? []) {
      const a = s.address ? parseAddr(s.address) : null;
      if (a) this.local.push(a);
    }
  }

  has(table: string, chain: string): boolean {
    return this.tables.get(table)?.has(chain) ?? false;
  }

  start(p: Packet): State {
    return { probability: 1, mark: p.mark ?? 0, dnat: null, snat: null, path: [], steps: [] };
  }

  isLocal(ip: string): boolean {
    const a = parseAddr(ip);
    if (!a) return false;
    return isLoopback(a) || this.local.some((l) => l.family === a.family && l.value === a.value);
  }

  runBuiltin(table: string, name: string, state: State, original: Packet): { verdict: Verdict; state: State }[] {
    const chain = this.tables.get(table)?.get(name);
    // Paths name chains only; steps carry the table (OUTPUT and INPUT appear in both).
    const entered = { ...state, path: [...state.path, name] };
    // An absent built-in chain is the kernel's empty one with policy ACCEPT.
    if (!chain) return [{ verdict: 'ACCEPT', state: entered }];
    const packet = rewritten(original, state);
    return this.runChain(table, chain, entered, packet, 0).map((f) => {
      if (f.kind === 'final') return { verdict: f.verdict, state: f.state };
      // Falling off a built-in chain applies its policy.
      const policy = (chain.policy ?? 'ACCEPT') as Verdict;
      const s = { ...f.state, steps: [...f.state.steps, { chain: name, table, index: -1, line: 0, text: `policy ${policy}` }] };
      return { verdict: policy, state: s };
    });
  }

  handToIpvs(state: State, packet: Packet): { verdict: Verdict; state: State }[] {
    const p = rewritten(packet, state);
    const dst = parseAddr(p.dst);
    const svc = this.ipvs?.services.find((s) => {
      if (s.protocol.toLowerCase() !== p.protocol || s.port !== p.dport) return false;
      const a = parseAddr(s.address);
      return a !== null && dst !== null && a.family === dst.family && a.value === dst.value;
    });
    if (!svc) return [{ verdict: 'ACCEPT', state }];
    const label = `${svc.protocol} ${joinHostPort(svc.address, svc.port)} ${svc.scheduler}`;
    const pick = ipvsShares(svc);
    if (pick.warning) this.warnings.add(`IPVS ${label}: ${pick.warning}`);
    const ipvs = { service: label, scheduler: svc.scheduler, destinations: pick.shares.length };
    const path = [...state.path, `IPVS ${label}`];
    if (pick.shares.length === 0) return [{ verdict: 'DROP', state: { ...state, path, ipvs } }];
    return pick.shares.map((sh) => ({
      verdict: 'ACCEPT' as const,
      state: { ...state, probability: state.probability * sh.probability, dnat: joinHostPort(sh.destination.address, sh.destination.port), path, ipvs },
    }));
  }

  private runChain(table: string, chain: IptChain, state: State, packet: Packet, depth: number): Flow[] {
    if (depth > MAX_DEPTH) throw new TraceError(0, `chains nest deeper than ${MAX_DEPTH} (a loop through ${chain.name}?)`);
    const done: Flow[] = [];
    // Each pending entry is a branch still walking this chain at rule index `at`.
    let pending: { at: number; state: State }[] = [{ at: 0, state }];
    while (pending.length > 0) {
      const next: { at: number; state: State }[] = [];
      for (const { at, state: s } of pending) {
        if (at >= chain.rules.length) {
          done.push({ kind: 'return', state: s });
          continue;
        }
        const rule = chain.rules[at];
        if (++this.evaluations > MAX_EVALUATIONS) {
          throw new TraceError(rule.line, `the trace needs more than ${MAX_EVALUATIONS.toLocaleString('en-US')} rule evaluations: its random branches multiply (through ${chain.name}) instead of ending`);
        }
        const p = this.matchProbability(rule, packet, s);
        if (p < 1) next.push({ at: at + 1, state: { ...s, probability: s.probability * (1 - p) } });
        if (p > 0) {
          const hit: State = {
            ...s,
            probability: s.probability * p,
            steps: [...s.steps, { chain: chain.name, table, index: at, line: rule.line, text: rule.text }],
          };
          for (const f of this.applyTarget(table, rule, hit, packet, depth)) {
            if (f.kind === 'final') done.push(f);
            else if (f.returnFrom === 'rule') next.push({ at: at + 1, state: f.state });
            else done.push({ kind: 'return', state: f.state });
          }
        }
      }
      pending = next;
    }
    return done;
  }

  private applyTarget(table: string, rule: IptRule, state: State, packet: Packet, depth: number): TargetFlow[] {
    const t = rule.target;
    if (!t) return [{ kind: 'return', returnFrom: 'rule', state }]; // a rule without target only counts
    switch (t.name) {
      case 'ACCEPT':
      case 'DROP':
      case 'REJECT':
        return [{ kind: 'final', verdict: t.name, state }];
      case 'RETURN':
        return [{ kind: 'return', returnFrom: 'chain', state }];
      case 'DNAT':
        return [{ kind: 'final', verdict: 'ACCEPT', state: { ...state, dnat: dnatTarget(rule, packet) } }];
      case 'MASQUERADE':
        return [{ kind: 'final', verdict: 'ACCEPT', state: { ...state, snat: 'MASQUERADE' } }];
      case 'SNAT':
        return [{ kind: 'final', verdict: 'ACCEPT', state: { ...state, snat: `SNAT to ${optionArg(t.options, 'to-source', rule)}` } }];
      case 'MARK':
        return [{ kind: 'return', returnFrom: 'rule', state: { ...state, mark: applyMark(state.mark, t.options, rule) } }];
      case 'LOG':
      case 'NFLOG':
      case 'CONNMARK':
        return [{ kind: 'return', returnFrom: 'rule', state }];
    }
    const chain = this.tables.get(table)?.get(t.name);
    if (!chain) throw new TraceError(rule.line, `target ${t.name} is neither a chain in the ${table} table nor a target the tracer knows`);
    const entered = { ...state, path: [...state.path, chain.name] };
    return this.runChain(table, chain, entered, packet, depth + 1).map((f) =>
      f.kind === 'final' ? f : { kind: 'return' as const, returnFrom: t.goto ? ('chain' as const) : ('rule' as const), state: f.state },
    );
  }

  /** Probability that the rule matches: 0 or 1, or p for a statistic match. */
  private matchProbability(rule: IptRule, pkt: Packet, s: State): number {
    let p = 1;
    if (rule.protocol && !negate(rule.protocol.negated, protocolIs(rule.protocol.value, pkt.protocol))) return 0;
    if (rule.source && !negate(rule.source.negated, inCidr(rule.source.value, pkt.src, rule))) return 0;
    if (rule.destination && !negate(rule.destination.negated, inCidr(rule.destination.value, pkt.dst, rule))) return 0;
    if (rule.inInterface && !negate(rule.inInterface.negated, ifaceIs(rule.inInterface.value, pkt.inInterface))) return 0;
    if (rule.outInterface && !negate(rule.outInterface.negated, ifaceIs(rule.outInterface.value, pkt.outInterface))) return 0;
    // A traced packet is whole: `-f` (later fragments) never matches it.
    if (rule.fragment && !rule.fragment.negated) return 0;
    for (const m of rule.matches) {
      const q = this.moduleProbability(m, rule, pkt, s);
      if (q === 0) return 0;
      p *= q;
    }
    return p;
  }

  private moduleProbability(m: IptMatch, rule: IptRule, pkt: Packet, s: State): number {
    switch (m.module) {
      case 'comment':
      case 'nfacct': // counts what passes, matches everything
        return 1;
      case 'tcp':
      case 'udp':
      case 'sctp': {
        if (m.module !== pkt.protocol) return 0;
        for (const o of m.options) {
          if (o.name === 'dport' || o.name === 'destination-port') {
            if (!negate(o.negated, portIn(o.args[0], pkt.dport, rule))) return 0;
          } else if (o.name === 'sport' || o.name === 'source-port') {
            if (!negate(o.negated, portIn(o.args[0], sourcePort(pkt, rule), rule))) return 0;
          } else {
            throw new TraceError(rule.line, `unsupported ${m.module} option --${o.name}`);
          }
        }
        return 1;
      }
      case 'multiport': {
        for (const o of m.options) {
          const list = (o.args[0] ?? '').split(',');
          const ports = o.name === 'dports' || o.name === 'destination-ports' ? [pkt.dport]
            : o.name === 'sports' || o.name === 'source-ports' ? [sourcePort(pkt, rule)]
              : o.name === 'ports' ? [pkt.dport, sourcePort(pkt, rule)] : null;
          if (!ports) throw new TraceError(rule.line, `unsupported multiport option --${o.name}`);
          if (!negate(o.negated, list.some((spec) => ports.some((port) => portIn(spec, port, rule))))) return 0;
        }
        return 1;
      }
      case 'statistic': {
        const mode = optionArg(m.options, 'mode', rule);
        if (mode !== 'random') throw new TraceError(rule.line, `statistic mode ${mode} is not traced (only random)`);
        const raw = Number(optionArg(m.options, 'probability', rule));
        if (!(raw >= 0 && raw <= 1)) throw new TraceError(rule.line, `statistic probability ${raw} is not in [0, 1]`);
        const p = kernelProbability(raw);
        return m.options.find((o) => o.name === 'probability')?.negated ? 1 - p : p;
      }
      case 'mark': {
        const o = m.options.find((x) => x.name === 'mark');
        if (!o) throw new TraceError(rule.line, 'mark match without --mark');
        const [value, mask] = parseMarkMask(o.args[0], rule);
        return negate(o.negated, (s.mark & mask) >>> 0 === value) ? 1 : 0;
      }
      case 'addrtype': {
        let ok = true;
        for (const o of m.options) {
          if (o.name === 'limit-iface-in' || o.name === 'limit-iface-out') continue;
          const addr = o.name === 'dst-type' ? pkt.dst : o.name === 'src-type' ? pkt.src : null;
          if (addr === null) throw new TraceError(rule.line, `unsupported addrtype option --${o.name}`);
          const types = o.args[0].split(',');
          if (types.some((ty) => ty !== 'LOCAL')) throw new TraceError(rule.line, `addrtype ${o.args[0]} is not traced (only LOCAL)`);
          ok &&= negate(o.negated, this.isLocal(addr));
        }
        return ok ? 1 : 0;
      }
      case 'set': {
        const o = m.options.find((x) => x.name === 'match-set');
        if (!o || o.args.length < 2) throw new TraceError(rule.line, 'set match needs --match-set NAME FLAGS');
        const set = this.sets.get(o.args[0]);
        if (!set) throw new TraceError(rule.line, `ipset ${o.args[0]} is referenced but was not given (pass the ipset dump)`);
        return negate(o.negated, setContains(set, o.args[1].split(','), pkt, rule)) ? 1 : 0;
      }
      case 'recent': {
        // The traced packet is a client's first: --rcheck/--update find no entry; --set always matches.
        if (m.options.some((o) => o.name === 'set')) return 1;
        const check = m.options.find((o) => o.name === 'rcheck' || o.name === 'update');
        if (!check) throw new TraceError(rule.line, 'recent match without --set, --rcheck or --update');
        return check.negated ? 1 : 0;
      }
      case 'conntrack':
      case 'state': {
        // A traced packet opens a connection: NEW, plus the NAT it has been given so far.
        const states = ['NEW'];
        if (s.dnat) states.push('DNAT');
        if (s.snat) states.push('SNAT');
        let ok = true;
        for (const o of m.options) {
          if (o.name !== 'ctstate' && o.name !== 'state') throw new TraceError(rule.line, `${m.module} --${o.name} is not traced (only the connection state)`);
          ok &&= negate(o.negated, (o.args[0] ?? '').split(',').some((x) => states.includes(x)));
        }
        if (m.options.length === 0) throw new TraceError(rule.line, `${m.module} match without a state`);
        return ok ? 1 : 0;
      }
      default:
        throw new TraceError(rule.line, `match -m ${m.module} is not traced`);
    }
  }
}

function sourcePort(pkt: Packet, rule: IptRule): number {
  if (pkt.sport === undefined) throw new TraceError(rule.line, 'rule matches a source port; give the packet one (--sport)');
  return pkt.sport;
}

function negate(negated: boolean, v: boolean): boolean {
  return negated ? !v : v;
}

const PROTOCOL_NUMBERS: Record<string, string> = { '6': 'tcp', '17': 'udp', '132': 'sctp' };

function protocolIs(value: string, proto: string): boolean {
  const v = value.toLowerCase();
  return v === 'all' || v === '0' || v === proto || PROTOCOL_NUMBERS[v] === proto;
}

function ifaceIs(pattern: string, iface: string | undefined): boolean {
  if (iface === undefined) return false;
  return pattern.endsWith('+') ? iface.startsWith(pattern.slice(0, -1)) : iface === pattern;
}

function inCidr(value: string, ip: string, rule: IptRule): boolean {
  const c = parseCidr(value);
  if (!c) throw new TraceError(rule.line, `address ${value} is not an IPv4 or IPv6 address or CIDR`);
  const a = parseAddr(ip);
  return a !== null && cidrHas(c, a);
}

function portIn(spec: string | undefined, port: number, rule: IptRule): boolean {
  if (spec === undefined) throw new TraceError(rule.line, 'port option without a value');
  const colon = spec.indexOf(':');
  const lo = Number(colon < 0 ? spec : spec.slice(0, colon) || '0');
  const hi = Number(colon < 0 ? spec : spec.slice(colon + 1) || '65535');
  if (!Number.isInteger(lo) || !Number.isInteger(hi)) throw new TraceError(rule.line, `port ${spec} is not numeric (use iptables-save output, which prints numbers)`);
  return port >= lo && port <= hi;
}

function optionArg(options: IptOption[], name: string, rule: IptRule): string {
  const o = options.find((x) => x.name === name);
  if (!o || o.args.length === 0) throw new TraceError(rule.line, `expected --${name} with a value`);
  return o.args[0];
}

function parseMarkMask(spec: string | undefined, rule: IptRule): [number, number] {
  if (!spec) throw new TraceError(rule.line, 'mark without a value');
  const slash = spec.indexOf('/');
  const value = Number(slash < 0 ? spec : spec.slice(0, slash));
  const mask = slash < 0 ? 0xffffffff : Number(spec.slice(slash + 1));
  if (!Number.isInteger(value) || !Number.isInteger(mask)) throw new TraceError(rule.line, `mark ${spec} is not value[/mask]`);
  return [value >>> 0, mask >>> 0];
}

/** The MARK target's arithmetic, as xt_MARK does it. */
function applyMark(mark: number, options: IptOption[], rule: IptRule): number {
  const o = options[0];
  if (!o) throw new TraceError(rule.line, 'MARK target without an option');
  const [v, m] = parseMarkMask(o.args[0], rule);
  switch (o.name) {
    case 'set-xmark':
      return ((mark & ~m) ^ v) >>> 0;
    case 'set-mark':
      return ((mark & ~m) | v) >>> 0;
    case 'or-mark':
      return (mark | v) >>> 0;
    case 'and-mark':
      return (mark & v) >>> 0;
    case 'xor-mark':
      return (mark ^ v) >>> 0;
    default:
      throw new TraceError(rule.line, `MARK --${o.name} is not traced`);
  }
}

/** `--to-destination ADDR[:PORT]`, IPv6 as `[ADDR]:PORT`; a missing port keeps the packet's. */
function dnatTarget(rule: IptRule, pkt: Packet): string {
  const to = optionArg(rule.target?.options ?? [], 'to-destination', rule);
  if (to.startsWith('[')) {
    const hp = splitHostPort(to);
    if (hp) return joinHostPort(hp.host, hp.port);
    return joinHostPort(to.slice(1, to.indexOf(']')), pkt.dport);
  }
  if (to.includes(':') && to.indexOf(':') === to.lastIndexOf(':')) return to;
  return joinHostPort(to, pkt.dport);
}

/** Membership as the kernel tests it: each dimension of the set type takes src or dst per flag. */
function setContains(set: IpsetSet, flags: string[], pkt: Packet, rule: IptRule): boolean {
  const [method, dims] = set.type.split(':');
  const kinds = dims?.split(',') ?? [];
  if (flags.length < kinds.length) throw new TraceError(rule.line, `set ${set.name} (${set.type}) needs ${kinds.length} flags, got ${flags.join(',')}`);
  const parts = kinds.map((kind, i) => {
    const side = flags[i];
    if (side !== 'src' && side !== 'dst') throw new TraceError(rule.line, `set flag ${side} is not src or dst`);
    if (kind === 'port') return { kind, value: side === 'dst' ? pkt.dport : pkt.sport };
    return { kind, value: side === 'dst' ? pkt.dst : pkt.src };
  });
  return set.members.some((member) => memberMatches(member, parts, pkt, method ?? ''));
}

function memberMatches(member: string, parts: { kind: string; value: string | number | undefined }[], pkt: Packet, method: string): boolean {
  // Strip per-member extensions such as `timeout 3`, `comment "…"`.
  const space = member.indexOf(' ');
  const fields = (space < 0 ? member : member.slice(0, space)).split(',');
  if (fields.length !== parts.length) return false;
  return parts.every((part, i) => {
    const f = fields[i];
    if (part.kind === 'port') {
      // `tcp:80`, or a bare port for bitmap sets; IPv6 never reaches here (its colons sit in ip fields).
      const colon = f.indexOf(':');
      const proto = colon < 0 ? (method === 'bitmap' ? pkt.protocol : 'tcp') : f.slice(0, colon);
      const port = Number(colon < 0 ? f : f.slice(colon + 1));
      return proto === pkt.protocol && port === part.value;
    }
    if (typeof part.value !== 'string') return false;
    const c = parseCidr(f);
    const a = parseAddr(part.value);
    return c !== null && a !== null && cidrHas(c, a);
  });
}

function toOutcome(f: { verdict: Verdict; state: State }): Outcome {
  const s = f.state;
  const o: Outcome = { probability: s.probability, verdict: f.verdict, dnat: s.dnat, snat: s.snat, mark: s.mark, path: s.path, steps: s.steps };
  if (s.ipvs) o.ipvs = s.ipvs;
  return o;
}

/** Branches that end identically (same verdict, NAT and path) are one outcome. */
function merge(outcomes: Outcome[]): Outcome[] {
  const byKey = new Map<string, Outcome>();
  for (const o of outcomes) {
    const key = JSON.stringify([o.verdict, o.dnat, o.snat, o.mark, o.path]);
    const prev = byKey.get(key);
    if (prev) prev.probability += o.probability;
    else byKey.set(key, { ...o });
  }
  return [...byKey.values()];
}
