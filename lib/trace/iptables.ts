import { cidrContains, parseIpv4Cidr } from '../k8s/addresses.ts';
import type { IptChain, IptMatch, IptOption, IptRule, IptTable } from '../parse/iptables-types.ts';
import type { IpsetSet, IpsetState } from '../parse/ipset-types.ts';
import type { IpvsService, IpvsState } from '../parse/ipvs-types.ts';
import type { Hook, Outcome, Packet, Step, TraceResult } from './types.ts';

export type { Hook, Outcome, Packet, Step, TraceResult } from './types.ts';

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

interface State {
  probability: number;
  mark: number;
  dnat: string | null;
  snat: string | null;
  path: string[];
  steps: Step[];
}

type Flow =
  | { kind: 'return'; state: State }
  | { kind: 'final'; verdict: Outcome['verdict']; state: State };

/**
 * Follow one packet through a nat table, exploring every statistic branch. Each outcome carries
 * its exact probability; the probabilities sum to 1.
 */
export function traceNat(input: TraceInput): TraceResult {
  const ctx = new Context(input);
  if (!ctx.chains.has(input.hook)) {
    throw new TraceError(0, `the nat table has no ${input.hook} chain, so nothing leads into kube-proxy's chains; trace iptables-save output, or restore input with the built-in jumps (rules --with-jumps)`);
  }
  const start: State = { probability: 1, mark: input.packet.mark ?? 0, dnat: null, snat: null, path: [], steps: [] };
  let outcomes = ctx.runBuiltin(input.hook, start, input.packet);
  if (input.ipvs) outcomes = outcomes.flatMap((o) => ctx.handToIpvs(o, input.packet));
  const post = input.postrouting ?? ctx.chains.has('POSTROUTING');
  if (post) outcomes = outcomes.flatMap((o) => (o.verdict === 'ACCEPT' ? ctx.postrouting(o, input.packet) : [o]));
  return { packet: input.packet, hook: input.hook, outcomes: merge(outcomes) };
}

class Context {
  readonly chains = new Map<string, IptChain>();
  private readonly sets = new Map<string, IpsetSet>();
  private readonly local: string[];
  private evaluations = 0;

  constructor(private readonly input: TraceInput) {
    for (const c of input.nat.chains) this.chains.set(c.name, c);
    for (const s of input.ipsets?.sets ?? []) this.sets.set(s.name, s);
    this.local = input.localAddresses ?? [];
  }

  runBuiltin(name: string, state: State, packet: Packet): Outcome[] {
    const chain = this.chains.get(name);
    const entered = { ...state, path: [...state.path, name] };
    if (!chain) return [toOutcome({ kind: 'final', verdict: 'ACCEPT', state: entered })];
    return this.runChain(chain, entered, packet, 0).map((f) => {
      if (f.kind === 'final') return toOutcome(f);
      // Falling off a built-in chain applies its policy.
      const policy = (chain.policy ?? 'ACCEPT') as Outcome['verdict'];
      const s = { ...f.state, steps: [...f.state.steps, { chain: name, index: -1, line: 0, text: `policy ${policy}` }] };
      return toOutcome({ kind: 'final', verdict: policy, state: s });
    });
  }

  postrouting(o: Outcome, packet: Packet): Outcome[] {
    const routed: Packet = { ...packet };
    if (o.dnat) {
      const colon = o.dnat.lastIndexOf(':');
      routed.dst = o.dnat.slice(0, colon);
      routed.dport = Number(o.dnat.slice(colon + 1));
    }
    const state: State = { probability: o.probability, mark: o.mark, dnat: o.dnat, snat: null, path: o.path, steps: o.steps };
    return this.runBuiltin('POSTROUTING', state, routed).map((p) => ({
      ...p,
      ipvs: o.ipvs,
      // A drop in POSTROUTING wins; otherwise the earlier verdict stands.
      verdict: p.verdict === 'ACCEPT' ? o.verdict : p.verdict,
    }));
  }

  handToIpvs(o: Outcome, packet: Packet): Outcome[] {
    if (o.verdict !== 'ACCEPT' || o.dnat !== null) return [o];
    const svc = this.input.ipvs?.services.find(
      (s) => s.protocol.toLowerCase() === packet.protocol && s.address === packet.dst && s.port === packet.dport,
    );
    if (!svc) return [o];
    const live = svc.destinations.filter((d) => d.weight > 0);
    const label = `${svc.protocol} ${svc.address}:${svc.port} ${svc.scheduler}`;
    const ipvs = { service: label, scheduler: svc.scheduler, destinations: live.length };
    if (live.length === 0) return [{ ...o, verdict: 'DROP', path: [...o.path, `IPVS ${label}`], ipvs }];
    const total = live.reduce((a, d) => a + d.weight, 0);
    return live.map((d) => ({
      ...o,
      probability: o.probability * ipvsShare(svc, d.weight, total),
      dnat: `${d.address}:${d.port}`,
      path: [...o.path, `IPVS ${label}`],
      ipvs,
    }));
  }

  private runChain(chain: IptChain, state: State, packet: Packet, depth: number): Flow[] {
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
        const p = this.matchProbability(rule, packet, s.mark);
        if (p < 1) next.push({ at: at + 1, state: { ...s, probability: s.probability * (1 - p) } });
        if (p > 0) {
          const hit: State = {
            ...s,
            probability: s.probability * p,
            steps: [...s.steps, { chain: chain.name, index: at, line: rule.line, text: rule.text }],
          };
          for (const f of this.applyTarget(rule, hit, packet, depth)) {
            if (f.kind === 'final') done.push(f);
            else if (f.kind === 'return' && f.returnFrom === 'rule') next.push({ at: at + 1, state: f.state });
            else done.push({ kind: 'return', state: f.state });
          }
        }
      }
      pending = next;
    }
    return done;
  }

  private applyTarget(
    rule: IptRule,
    state: State,
    packet: Packet,
    depth: number,
  ): ({ kind: 'final'; verdict: Outcome['verdict']; state: State } | { kind: 'return'; returnFrom: 'rule' | 'chain'; state: State })[] {
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
    const chain = this.chains.get(t.name);
    if (!chain) throw new TraceError(rule.line, `target ${t.name} is neither a chain in this table nor a target the tracer knows`);
    const entered = { ...state, path: [...state.path, chain.name] };
    return this.runChain(chain, entered, packet, depth + 1).map((f) =>
      f.kind === 'final' ? f : { kind: 'return' as const, returnFrom: t.goto ? ('chain' as const) : ('rule' as const), state: f.state },
    );
  }

  /** Probability that the rule matches: 0 or 1, or p for a statistic match. */
  private matchProbability(rule: IptRule, pkt: Packet, mark: number): number {
    let p = 1;
    if (rule.protocol && !negate(rule.protocol.negated, protocolIs(rule.protocol.value, pkt.protocol))) return 0;
    if (rule.source && !negate(rule.source.negated, inCidr(rule.source.value, pkt.src, rule))) return 0;
    if (rule.destination && !negate(rule.destination.negated, inCidr(rule.destination.value, pkt.dst, rule))) return 0;
    if (rule.inInterface && !negate(rule.inInterface.negated, ifaceIs(rule.inInterface.value, pkt.inInterface))) return 0;
    if (rule.outInterface && !negate(rule.outInterface.negated, ifaceIs(rule.outInterface.value, pkt.outInterface))) return 0;
    for (const m of rule.matches) {
      const q = this.moduleProbability(m, rule, pkt, mark);
      if (q === 0) return 0;
      p *= q;
    }
    return p;
  }

  private moduleProbability(m: IptMatch, rule: IptRule, pkt: Packet, mark: number): number {
    switch (m.module) {
      case 'comment':
        return 1;
      case 'tcp':
      case 'udp':
      case 'sctp': {
        if (m.module !== pkt.protocol) return 0;
        for (const o of m.options) {
          if (o.name === 'dport' || o.name === 'destination-port') {
            if (!negate(o.negated, portIn(o.args[0], pkt.dport, rule))) return 0;
          } else if (o.name === 'sport' || o.name === 'source-port') {
            if (pkt.sport === undefined) throw new TraceError(rule.line, 'rule matches a source port; give the packet one (--sport)');
            if (!negate(o.negated, portIn(o.args[0], pkt.sport, rule))) return 0;
          } else {
            throw new TraceError(rule.line, `unsupported ${m.module} option --${o.name}`);
          }
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
        return negate(o.negated, (mark & mask) >>> 0 === value) ? 1 : 0;
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
        // A traced packet opens a new connection.
        const o = m.options.find((x) => x.name === 'ctstate' || x.name === 'state');
        if (!o) throw new TraceError(rule.line, `${m.module} match without a state`);
        return negate(o.negated, o.args[0].split(',').includes('NEW')) ? 1 : 0;
      }
      default:
        throw new TraceError(rule.line, `match -m ${m.module} is not traced`);
    }
  }

  private isLocal(addr: string): boolean {
    return this.local.includes(addr) || cidrContains(parseIpv4Cidr('127.0.0.0/8'), addr);
  }
}

function ipvsShare(svc: IpvsService, weight: number, total: number): number {
  // rr/wrr/lc/… over many new connections converge to weight/total; for one packet of unknown
  // scheduler state that is also its chance. sh/dh/mh hash the address: still weight-proportional.
  void svc;
  return weight / total;
}

function negate(negated: boolean, v: boolean): boolean {
  return negated ? !v : v;
}

function protocolIs(value: string, proto: string): boolean {
  return value === 'all' || value === '0' || value.toLowerCase() === proto;
}

function ifaceIs(pattern: string, iface: string | undefined): boolean {
  if (iface === undefined) return false;
  return pattern.endsWith('+') ? iface.startsWith(pattern.slice(0, -1)) : iface === pattern;
}

function inCidr(value: string, ip: string, rule: IptRule): boolean {
  try {
    return cidrContains(parseIpv4Cidr(value.includes('/') ? value : `${value}/32`), ip);
  } catch {
    throw new TraceError(rule.line, `address ${value} is not an IPv4 address or CIDR`);
  }
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

function dnatTarget(rule: IptRule, pkt: Packet): string {
  const to = optionArg(rule.target?.options ?? [], 'to-destination', rule);
  return to.includes(':') ? to : `${to}:${pkt.dport}`;
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
      const colon = f.indexOf(':');
      const proto = colon < 0 ? (method === 'bitmap' ? pkt.protocol : 'tcp') : f.slice(0, colon);
      const port = Number(colon < 0 ? f : f.slice(colon + 1));
      return proto === pkt.protocol && port === part.value;
    }
    if (typeof part.value !== 'string') return false;
    return part.kind === 'net' || f.includes('/') ? cidrContains(parseIpv4Cidr(f.includes('/') ? f : `${f}/32`), part.value) : f === part.value;
  });
}

function toOutcome(f: { kind: 'final'; verdict: Outcome['verdict']; state: State }): Outcome {
  const s = f.state;
  return { probability: s.probability, verdict: f.verdict, dnat: s.dnat, snat: s.snat, mark: s.mark, path: s.path, steps: s.steps };
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
