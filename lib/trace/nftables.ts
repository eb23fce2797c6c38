/**
 * One packet through what `nft list ruleset` (or `nft -j list ruleset`) shows: the base chains of
 * every hook it crosses, by priority, with the exact probability of every outcome.
 *
 * The kernel's order is modelled: a packet from a pod or the network crosses prerouting, then the
 * routing decision sends it to input (its destination, after DNAT, is the node's) or forward, and
 * a forwarded one crosses postrouting. A packet the node sends crosses output and postrouting; when
 * it is addressed to the node itself it comes back through prerouting and input, where conntrack
 * has already set up its NAT. Within a hook base chains run by priority, all nat chains of a hook
 * at the NAT hook's own priority (dstnat -100 in prerouting and output, srcnat 100 in input and
 * postrouting), and once one of them has NATed the connection the later ones are skipped.
 */
import type { NftChain, NftRule, NftRuleset, NftSet, NftTable } from '../parse/nft-types.ts';
import { MAX_EVALUATIONS, TraceError } from './iptables.ts';
import {
  compileRule, kindOf, parseVerdict, RuleError, setsUpdatedBy, type CmpOp, type Expr, type MapRef, type Rhs, type Selector,
  type Stmt, type Verdict,
} from './nft-rules.ts';
import {
  addressValue, concatParts, CT_STATE, exactKey, familyOf, numgenShare, parsePart, partMatches, valueKey, ValueError,
  type Part, type Value,
} from './nft-values.ts';
import type { Hook, Outcome, Packet, Step, TraceResult } from './types.ts';

export interface NftTraceInput {
  ruleset: NftRuleset;
  packet: Packet;
  /** PREROUTING from a pod or the network (default), OUTPUT when the node sends it. */
  hook: Hook;
  /** The node's own addresses: what `fib daddr type local` matches (127.0.0.0/8 and ::1 always do). */
  localAddresses?: string[];
  /** Trace only the base chains of these tables (`ip kube-proxy`); default: every table of the packet's family. */
  tables?: string[];
}

const MAX_DEPTH = 64;
const PROTO_NUMBERS: Record<Packet['protocol'], bigint> = { tcp: 6n, udp: 17n, sctp: 132n };
/** Priority of conntrack in prerouting and output: chains before it see no connection. */
const CONNTRACK_PRIORITY = -200;
const NAT_PRIORITY: Record<string, number> = { prerouting: -100, output: -100, input: 100, postrouting: 100 };
const DST_NAT_HOOKS = new Set(['prerouting', 'output']);
const MASK32 = 0xffffffffn;

interface TableCtx {
  id: string;
  table: NftTable;
  chains: Map<string, NftChain>;
  sets: Map<string, NftSet>;
  /** Sets the rules add to: the traced client is not in them until this trace adds it. */
  remembering: Set<string>;
}

interface BaseChain {
  t: TableCtx;
  chain: NftChain;
  nat: boolean;
  /** Where the chain runs among the hook's base chains: nat chains run inside the NAT hook. */
  effective: number;
  own: number;
}

interface State {
  probability: number;
  src: string;
  dst: string;
  dport: number;
  mark: bigint;
  ctmark: bigint;
  dnat: string | null;
  snat: string | null;
  /** The connection's NAT for this direction is set up: later nat chains are skipped. */
  natDst: boolean;
  natSrc: boolean;
  path: string[];
  steps: Step[];
  hooks: string[];
  /** Keys this trace added to remembering sets, per `table set`. */
  added: ReadonlyMap<string, readonly string[]>;
}

/** What a rule sees besides the packet: where it runs. */
interface Env {
  hook: string;
  /** Conntrack has seen the packet (false in prerouting/output before priority -200). */
  tracked: boolean;
  iif: string | undefined;
  oif: string | undefined;
}

type Flow = { kind: 'return'; state: State } | { kind: 'final'; verdict: 'accept' | 'drop' | 'reject'; state: State };

type End = { k: 'nomatch' } | { k: 'next' } | { k: 'verdict'; verdict: Verdict };

interface Alt {
  st: State;
  end?: End;
  chose?: string;
}

interface SetIndex {
  exact: Map<string, number>;
  ranges: { parts: Part[]; i: number }[];
}

export function traceNftables(input: NftTraceInput): TraceResult {
  return new NftTracer(input).run();
}

class NftTracer {
  private readonly family: 4 | 6;
  private readonly tables: TableCtx[] = [];
  private readonly local: bigint[] = [];
  private readonly warnings: string[] = [];
  private readonly compiled = new Map<NftRule, Stmt[]>();
  private readonly indexes = new Map<NftSet, Map<string, SetIndex>>();
  private readonly warnedSets = new Set<string>();
  private evaluations = 0;

  constructor(private readonly input: NftTraceInput) {
    const { packet } = input;
    const fs = familyOf(packet.src);
    const fd = familyOf(packet.dst);
    if (fs === null || fd === null || fs !== fd) throw new TraceError(0, `the packet's source ${packet.src} and destination ${packet.dst} must be addresses of one family`);
    if (!Number.isInteger(packet.dport) || packet.dport < 0 || packet.dport > 65535) throw new TraceError(0, `destination port ${packet.dport} is not 0…65535`);
    this.family = fs;
    for (const a of [...(input.localAddresses ?? []), fs === 4 ? '127.0.0.1' : '::1']) {
      const f = familyOf(a);
      if (f === null) throw new TraceError(0, `local address ${JSON.stringify(a)} is not an IP address`);
      if (f === fs) this.local.push(addressValue(a, f)!);
    }
    const wanted = input.tables ? new Set(input.tables) : null;
    const families = fs === 4 ? ['ip', 'inet'] : ['ip6', 'inet'];
    const skipped: string[] = [];
    for (const table of input.ruleset.tables) {
      const id = `${table.family} ${table.name}`;
      if (!families.includes(table.family)) continue;
      if (wanted && !wanted.has(id)) {
        if (table.chains.some((c) => c.hook !== null)) skipped.push(id);
        continue;
      }
      const ctx: TableCtx = { id, table, chains: new Map(), sets: new Map(), remembering: new Set() };
      for (const c of table.chains) ctx.chains.set(c.name, c);
      for (const s of table.sets) ctx.sets.set(s.name, s);
      for (const c of table.chains) for (const r of c.rules) for (const name of setsUpdatedBy(r.text)) ctx.remembering.add(name);
      this.tables.push(ctx);
      if (table.chains.length > 0 && !table.chains.some((c) => c.hook !== null)) {
        this.warnings.push(`table ${id} has no base chains: nothing leads into its ${table.chains.length} chains`);
      }
    }
    if (skipped.length > 0) this.warnings.push(`base chains of ${skipped.join(', ')} were not traced (only ${[...wanted!].join(', ')})`);
  }

  run(): TraceResult {
    const { packet } = this.input;
    const start: State = {
      probability: 1, src: packet.src, dst: packet.dst, dport: packet.dport, mark: BigInt((packet.mark ?? 0) >>> 0), ctmark: 0n,
      dnat: null, snat: null, natDst: false, natSrc: false, path: [], steps: [], hooks: [], added: new Map(),
    };
    const entry = this.input.hook === 'OUTPUT' ? 'output' : 'prerouting';
    const entryChains = this.baseChains(entry);
    if (entryChains.length === 0) {
      this.warnings.push(`no base chain hooks ${entry} for IPv${this.family} packets: no rule sees this packet`);
    }
    for (const t of this.tables) {
      if (t.table.name === 'kube-proxy' && t.table.chains.some((c) => c.hook !== null) && !entryChains.some((bc) => bc.t === t)) {
        this.warnings.push(`no base chain of ${t.id} hooks ${entry}: kube-proxy's chains are not reached from there`);
      }
    }
    const ended: Outcome[] = [];
    const done: State[] = [];
    if (entry === 'prerouting') {
      const routed = this.hook('prerouting', [start], ended, false);
      const toLocal = routed.filter((s) => this.isLocal(s.dst));
      done.push(...this.hook('input', toLocal, ended, false));
      const forwarded = this.hook('forward', routed.filter((s) => !this.isLocal(s.dst)), ended, false);
      done.push(...this.hook('postrouting', forwarded, ended, false));
    } else {
      const sent = this.hook('postrouting', this.hook('output', [start], ended, false), ended, false);
      done.push(...sent.filter((s) => !this.isLocal(s.dst)));
      // Back in through loopback: conntrack already holds the connection and its NAT.
      const back = this.hook('prerouting', sent.filter((s) => this.isLocal(s.dst)), ended, true);
      done.push(...this.hook('input', back, ended, true));
    }
    const outcomes = [...ended, ...done.map((s) => outcome(s, 'ACCEPT'))];
    return { packet, hook: this.input.hook, outcomes: merge(outcomes), mode: 'nftables', ...(this.warnings.length > 0 ? { warnings: this.warnings } : {}) };
  }

  private baseChains(hook: string): BaseChain[] {
    const out: BaseChain[] = [];
    for (const t of this.tables) {
      for (const chain of t.table.chains) {
        if (chain.hook !== hook || chain.priority === null) continue;
        const nat = chain.type === 'nat';
        if (chain.type !== 'filter' && chain.type !== 'nat' && chain.type !== 'route') {
          throw new TraceError(chain.line, `base chain ${chain.name} has type ${chain.type}, which the tracer does not know`);
        }
        out.push({ t, chain, nat, effective: nat ? NAT_PRIORITY[hook] : chain.priority, own: chain.priority });
      }
    }
    out.sort((a, b) => a.effective - b.effective || a.own - b.own);
    for (let i = 1; i < out.length; i++) {
      const [a, b] = [out[i - 1], out[i]];
      if (a.effective === b.effective && (a.nat !== b.nat || a.own === b.own)) {
        const w = `${a.t.id} ${a.chain.name} and ${b.t.id} ${b.chain.name} run at the same priority in ${hook}: their order is the order the kernel registered them, which a listing does not show; traced in listing order`;
        if (!this.warnings.includes(w)) this.warnings.push(w);
      }
    }
    return out;
  }

  /** Run the states through one hook's base chains; returns the states that pass it. */
  private hook(hook: string, states: State[], ended: Outcome[], reentry: boolean): State[] {
    if (states.length === 0) return [];
    const { packet } = this.input;
    // A packet the node sends has no input device until loopback hands it back; prerouting and
    // input have no output device. A forwarded packet keeps its input device in postrouting.
    const sent = this.input.hook === 'OUTPUT' && !reentry;
    const env = (bc: BaseChain): Env => ({
      hook,
      tracked: reentry || !DST_NAT_HOOKS.has(hook) || bc.effective >= CONNTRACK_PRIORITY,
      iif: sent ? '' : reentry ? 'lo' : packet.inInterface,
      oif: hook === 'prerouting' || hook === 'input' ? '' : packet.outInterface,
    });
    const dstHook = DST_NAT_HOOKS.has(hook);
    let going = states.map((s) => ({ ...s, hooks: [...s.hooks, hook] }));
    for (const bc of this.baseChains(hook)) {
      const next: State[] = [];
      for (const s of going) {
        if (bc.nat && (reentry || (dstHook ? s.natDst : s.natSrc))) {
          next.push(s);
          continue;
        }
        const entered = { ...s, path: [...s.path, bc.chain.name] };
        for (const f of this.runChain(bc.t, bc.chain, entered, env(bc), 0)) {
          if (f.kind === 'final' && f.verdict !== 'accept') ended.push(outcome(f.state, f.verdict === 'drop' ? 'DROP' : 'REJECT'));
          else if (f.kind === 'final' || (bc.chain.policy ?? 'accept') === 'accept') next.push(f.state);
          else {
            const step: Step = { chain: bc.chain.name, index: -1, line: bc.chain.line, text: `policy ${bc.chain.policy}`, table: bc.t.id };
            ended.push(outcome({ ...f.state, steps: [...f.state.steps, step] }, 'DROP'));
          }
        }
      }
      going = next;
    }
    // Past its NAT hook a connection's NAT is fixed, even when no rule set one.
    return going.map((s) => (dstHook ? { ...s, natDst: true } : hook === 'forward' ? s : { ...s, natSrc: true }));
  }

  private runChain(t: TableCtx, chain: NftChain, state: State, env: Env, depth: number): Flow[] {
    if (depth > MAX_DEPTH) throw new TraceError(chain.line, `chains nest deeper than ${MAX_DEPTH} (a loop through ${chain.name}?)`);
    const done: Flow[] = [];
    let pending: { at: number; state: State }[] = [{ at: 0, state }];
    while (pending.length > 0) {
      const next: { at: number; state: State }[] = [];
      for (const { at, state: s } of pending) {
        if (at >= chain.rules.length) {
          done.push({ kind: 'return', state: s });
          continue;
        }
        const rule = chain.rules[at];
        for (const alt of this.evalRule(t, chain, at, rule, s, env)) {
          const end = alt.end!;
          if (end.k !== 'verdict') {
            next.push({ at: at + 1, state: alt.st });
            continue;
          }
          const v = end.verdict;
          if (v.v !== 'jump' && v.v !== 'goto') {
            if (v.v === 'continue') next.push({ at: at + 1, state: alt.st });
            else if (v.v === 'return') done.push({ kind: 'return', state: alt.st });
            else done.push({ kind: 'final', verdict: v.v, state: alt.st });
          } else {
            const target = t.chains.get(v.chain);
            if (!target) throw new TraceError(rule.line, `${v.v} ${v.chain}: no such chain in table ${t.id}`);
            if (target.hook !== null) throw new TraceError(rule.line, `${v.v} ${v.chain}: a base chain cannot be jumped to`);
            const entered = { ...alt.st, path: [...alt.st.path, target.name] };
            for (const f of this.runChain(t, target, entered, env, depth + 1)) {
              if (f.kind === 'final') done.push(f);
              else if (v.v === 'jump') next.push({ at: at + 1, state: f.state });
              // After a goto the chain that went there is done too.
              else done.push(f);
            }
          }
        }
      }
      pending = next;
    }
    return done;
  }

  private compile(rule: NftRule, chain: NftChain): Stmt[] {
    let stmts = this.compiled.get(rule);
    if (!stmts) {
      try {
        stmts = compileRule(rule.text);
      } catch (e) {
        throw this.ruleError(e, rule, chain);
      }
      this.compiled.set(rule, stmts);
    }
    return stmts;
  }

  private ruleError(e: unknown, rule: NftRule, chain: NftChain): unknown {
    if (e instanceof RuleError || e instanceof ValueError) {
      const text = rule.text.length > 160 ? `${rule.text.slice(0, 157)}...` : rule.text;
      return new TraceError(rule.line, `chain ${chain.name}: ${e.message} (in \`${text}\`)`);
    }
    return e;
  }

  /** Every way the rule can go for this state, each with its share of the state's probability. */
  private evalRule(t: TableCtx, chain: NftChain, index: number, rule: NftRule, state: State, env: Env): Alt[] {
    if (++this.evaluations > MAX_EVALUATIONS) {
      throw new TraceError(rule.line, `the trace needs more than ${MAX_EVALUATIONS.toLocaleString('en-US')} rule evaluations: its random branches multiply (through ${chain.name}) instead of ending`);
    }
    const stmts = this.compile(rule, chain);
    let alts: Alt[] = [{ st: state }];
    try {
      for (const stmt of stmts) alts = alts.flatMap((a) => (a.end ? [a] : this.evalStmt(t, stmt, a, env)));
    } catch (e) {
      throw this.ruleError(e, rule, chain);
    }
    return alts.filter((a) => a.st.probability > 0).map((a) => {
      const end = a.end ?? { k: 'next' };
      if (end.k === 'nomatch') return { st: a.st, end };
      const step: Step = { chain: chain.name, index, line: rule.line, text: rule.text, table: t.id, ...(a.chose ? { verdict: a.chose } : {}) };
      return { st: { ...a.st, steps: [...a.st.steps, step] }, end };
    });
  }

  private evalStmt(t: TableCtx, stmt: Stmt, alt: Alt, env: Env): Alt[] {
    const st = alt.st;
    switch (stmt.k) {
      case 'cmp': {
        const p = this.cmpProbability(t, stmt.expr, stmt.op, stmt.rhs, st, env);
        return split(alt, p, { k: 'nomatch' });
      }
      case 'vmap': {
        const out: Alt[] = [];
        let covered = 0;
        for (const { p, value } of this.lookupMap(t, stmt.expr, stmt.map, st, env, 'verdict')) {
          covered += p;
          out.push({ st: scale(st, p), end: { k: 'verdict', verdict: parseVerdict(value.split(' ')) }, chose: value });
        }
        if (covered < 1) out.push({ st: scale(st, 1 - covered), end: { k: 'nomatch' } });
        return out;
      }
      case 'mangle': {
        let v = typeof stmt.base === 'bigint' ? stmt.base : stmt.base.s === 'ctmark' ? st.ctmark : st.mark;
        v = applyOps(v, stmt.ops);
        return [{ ...alt, st: stmt.target === 'mark' ? { ...st, mark: v } : { ...st, ctmark: v } }];
      }
      case 'setadd': {
        const values = this.exprValues(stmt.expr, st, env);
        if (values === 'numgen') throw new RuleError('adding a random number to a set is not traced');
        if (values === null) return [alt];
        if (!t.sets.has(stmt.set)) throw new RuleError(`set @${stmt.set} is not in table ${t.id}`);
        const key = `${t.id} ${stmt.set}`;
        const added = new Map(st.added);
        added.set(key, [...(added.get(key) ?? []), valueKey(values)]);
        return [{ ...alt, st: { ...st, added } }];
      }
      case 'verdict':
        return [{ ...alt, end: { k: 'verdict', verdict: stmt.verdict } }];
      case 'unsupported':
        throw new RuleError(stmt.why);
      case 'masquerade':
        this.needNatHook(env, 'masquerade');
        return [{ ...alt, st: { ...st, snat: 'MASQUERADE', natSrc: true }, end: { k: 'verdict', verdict: { v: 'accept' } } }];
      case 'snat':
        this.needNatHook(env, 'snat');
        return [{ ...alt, st: { ...st, snat: `SNAT to ${stmt.text}`, natSrc: true }, end: { k: 'verdict', verdict: { v: 'accept' } } }];
      case 'dnat': {
        this.needNatHook(env, 'dnat');
        const targets = stmt.to.k === 'literal' ? [{ p: 1, value: stmt.to.text }] : this.lookupMap(t, stmt.to.expr, stmt.to.map, st, env, 'data');
        const out: Alt[] = [];
        let covered = 0;
        for (const { p, value } of targets) {
          covered += p;
          const to = this.natTarget(value, st.dport);
          out.push({ st: { ...scale(st, p), dst: to.addr, dport: to.port, dnat: to.text, natDst: true }, end: { k: 'verdict', verdict: { v: 'accept' } }, chose: stmt.to.k === 'map' ? value : undefined });
        }
        // A map without an element for the value fails the rule, like any lookup.
        if (covered < 1) out.push({ st: scale(st, 1 - covered), end: { k: 'nomatch' } });
        return out;
      }
    }
  }

  private needNatHook(env: Env, what: string): void {
    const dst = what === 'dnat';
    if (dst ? !DST_NAT_HOOKS.has(env.hook) : DST_NAT_HOOKS.has(env.hook) || env.hook === 'forward') {
      throw new RuleError(`${what} in the ${env.hook} hook: the kernel does not allow it there`);
    }
  }

  /** `addr`, `addr:port`, `[v6]:port` or `addr . port`: the new destination. */
  private natTarget(text: string, dport: number): { addr: string; port: number; text: string } {
    let addr = text;
    let port: string | null = null;
    const parts = concatParts(text);
    if (parts.length === 2) [addr, port] = parts;
    else if (parts.length !== 1) throw new RuleError(`dnat to ${JSON.stringify(text)} is not an address and port`);
    else if (text.startsWith('[')) {
      const close = text.indexOf(']');
      if (close < 0) throw new RuleError(`dnat to ${JSON.stringify(text)} is not an address and port`);
      addr = text.slice(1, close);
      if (text.length > close + 1) {
        if (text[close + 1] !== ':') throw new RuleError(`dnat to ${JSON.stringify(text)} is not an address and port`);
        port = text.slice(close + 2);
      }
    } else if (this.family === 4 && text.includes(':')) {
      addr = text.slice(0, text.indexOf(':'));
      port = text.slice(text.indexOf(':') + 1);
    }
    if (addressValue(addr, this.family) === null) {
      throw new RuleError(`dnat to ${JSON.stringify(text)}: ${JSON.stringify(addr)} is not one IPv${this.family} address (a range lets the kernel pick)`);
    }
    let p = dport;
    if (port !== null) {
      if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) throw new RuleError(`dnat to ${JSON.stringify(text)}: ${JSON.stringify(port)} is not one port (a range lets the kernel pick)`);
      p = Number(port);
    }
    return { addr, port: p, text: this.family === 4 ? `${addr}:${p}` : `[${addr}]:${p}` };
  }

  private isLocal(addr: string): boolean {
    const v = addressValue(addr, this.family);
    if (v === null) return false;
    if (this.family === 4 && v >> 24n === 127n) return true;
    return this.local.includes(v);
  }

  private selectorValue(sel: Selector, st: State, env: Env): Value | null {
    const { packet } = this.input;
    switch (sel.s) {
      case 'addr':
        if (sel.family !== this.family) return null;
        return addressValue(sel.field === 'saddr' ? st.src : st.dst, this.family);
      case 'l4proto':
        if (sel.family !== null && sel.family !== this.family) return null;
        return PROTO_NUMBERS[packet.protocol];
      case 'port':
        if (sel.proto !== null && sel.proto !== packet.protocol) return null;
        if (sel.field === 'dport') return BigInt(st.dport);
        if (packet.sport === undefined) throw new RuleError('the rule matches a source port: give the packet one');
        return BigInt(packet.sport);
      case 'mark':
        return st.mark;
      case 'ctmark':
        return st.ctmark;
      case 'ctstate':
        return env.tracked ? CT_STATE.new : CT_STATE.invalid;
      case 'fib':
        return this.isLocal(sel.field === 'saddr' ? st.src : st.dst) ? 'local' : 'not local';
      case 'iifname':
      case 'oifname': {
        const name = sel.s === 'iifname' ? env.iif : env.oif;
        if (name === undefined) throw new RuleError(`the rule matches the ${sel.s === 'iifname' ? 'input' : 'output'} interface: give the packet one`);
        return name;
      }
      case 'nfproto':
        return this.family === 4 ? 2n : 10n;
      case 'numgen':
        throw new RuleError('numgen is traced in a comparison, a verdict map or a dnat map');
    }
  }

  /** The expression's values, null when the packet lacks what it reads, 'numgen' for a random one. */
  private exprValues(expr: Expr, st: State, env: Env): Value[] | null | 'numgen' {
    if (expr.terms[0].sel.s === 'numgen') return 'numgen';
    const out: Value[] = [];
    for (const term of expr.terms) {
      let v = this.selectorValue(term.sel, st, env);
      if (v === null) return null;
      if (term.ops.length > 0) v = applyOps(v as bigint, term.ops);
      out.push(v);
    }
    return out;
  }

  private cmpProbability(t: TableCtx, expr: Expr, op: CmpOp | 'implicit', rhs: Rhs, st: State, env: Env): number {
    const values = this.exprValues(expr, st, env);
    if (values === null) return 0;
    if (values === 'numgen') {
      const ng = expr.terms[0].sel as Extract<Selector, { s: 'numgen' }>;
      const items = rhs.k === 'literal' ? [rhs.parts] : rhs.k === 'anon' ? rhs.items : null;
      if (!items) throw new RuleError('numgen compared with a named set is not traced');
      let p = 0;
      for (const [part] of items) p += rangeShare(ng, relational(part, op));
      if (p > 1) throw new RuleError('numgen values overlap');
      return op === '!=' ? 1 - p : p;
    }
    let hit: boolean;
    if (rhs.k === 'literal') {
      if (op === '<' || op === '>' || op === '<=' || op === '>=') {
        const part = rhs.parts[0];
        if (rhs.parts.length !== 1 || part.t !== 'range' || part.lo !== part.hi || typeof values[0] !== 'bigint') throw new RuleError(`${op} compares one number`);
        const v = values[0];
        return (op === '<' ? v < part.lo : op === '>' ? v > part.lo : op === '<=' ? v <= part.lo : v >= part.lo) ? 1 : 0;
      }
      hit = rhs.parts.every((p, i) => partMatches(p, values[i]));
    } else if (rhs.k === 'anon') {
      hit = rhs.items.some((parts) => parts.every((p, i) => partMatches(p, values[i])));
    } else {
      hit = this.setHas(t, rhs.name, expr, values, st, 'set') !== null;
    }
    if (op !== 'implicit' && op !== '==' && op !== '!=') throw new RuleError(`${op} compares one number, not a set`);
    return (op === '!=' ? !hit : hit) ? 1 : 0;
  }

  /** The map element values the packet can meet, each with its probability. */
  private lookupMap(t: TableCtx, expr: Expr, map: MapRef, st: State, env: Env, want: 'verdict' | 'data'): { p: number; value: string }[] {
    const values = this.exprValues(expr, st, env);
    if (values === null) return [];
    if (values === 'numgen') {
      const ng = expr.terms[0].sel as Extract<Selector, { s: 'numgen' }>;
      let items = map.k === 'anon' ? map.items : null;
      if (map.k === 'named') {
        const set = this.namedMap(t, map.name, want);
        items = set.elements.map((e) => ({ key: this.elementParts(set, e.key, expr), value: e.value ?? '' }));
      }
      const out = items!.map((item) => ({ p: rangeShare(ng, item.key[0]), value: item.value })).filter((x) => x.p > 0);
      if (out.reduce((a, x) => a + x.p, 0) > 1) throw new RuleError('numgen map keys overlap');
      return out;
    }
    if (map.k === 'anon') {
      const item = map.items.find((it) => it.key.every((p, i) => partMatches(p, values[i])));
      return item ? [{ p: 1, value: item.value }] : [];
    }
    const found = this.setHas(t, map.name, expr, values, st, want);
    return found === null ? [] : [{ p: 1, value: found }];
  }

  private namedMap(t: TableCtx, name: string, want: 'verdict' | 'data'): NftSet {
    const set = t.sets.get(name);
    if (!set) throw new RuleError(`map @${name} is not in table ${t.id}`);
    if (set.kind !== 'map') throw new RuleError(`@${name} is a set, not a map`);
    const isVerdict = set.type.endsWith(': verdict');
    if (isVerdict !== (want === 'verdict')) throw new RuleError(`map @${name} holds ${isVerdict ? 'verdicts' : 'data'}, the rule wants ${want === 'verdict' ? 'verdicts' : 'data'}`);
    return set;
  }

  private elementParts(set: NftSet, key: string, expr: Expr): Part[] {
    const parts = concatParts(key);
    if (parts.length !== expr.terms.length) throw new RuleError(`${set.kind} @${set.name} has elements of ${parts.length} parts, the rule looks up ${expr.terms.length}`);
    try {
      return parts.map((p, i) => parsePart(kindOf(expr.terms[i].sel), p));
    } catch (e) {
      if (e instanceof ValueError) throw new RuleError(`${set.kind} @${set.name} (line ${set.line}): element ${JSON.stringify(key)}: ${e.message}`);
      throw e;
    }
  }

  /**
   * Look the values up in a named set or map: null when absent; the element's value (or '' for
   * a set) when present. A remembering set holds only what this trace added.
   */
  private setHas(t: TableCtx, name: string, expr: Expr, values: Value[], st: State, want: 'set' | 'verdict' | 'data'): string | null {
    const set = want === 'set' ? t.sets.get(name) : this.namedMap(t, name, want);
    if (!set) throw new RuleError(`set @${name} is not in table ${t.id}`);
    if (want === 'set' && set.kind !== 'set') throw new RuleError(`@${name} is a map, not a set`);
    const key = valueKey(values);
    if (t.remembering.has(name)) {
      const id = `${t.id} ${name}`;
      if (set.elements.length > 0 && !this.warnedSets.has(id)) {
        this.warnedSets.add(id);
        this.warnings.push(`set ${name} of ${t.id} remembers ${set.elements.length} clients; the trace is of a client it has not seen, so they are left out`);
      }
      return (st.added.get(id) ?? []).includes(key) ? '' : null;
    }
    const index = this.index(set, expr);
    const at = index.exact.get(key) ?? index.ranges.find((r) => r.parts.every((p, i) => partMatches(p, values[i])))?.i;
    if (at === undefined) return null;
    return set.elements[at].value ?? '';
  }

  /** Elements read once per set and key type: exact keys hashed, ranges and prefixes listed. */
  private index(set: NftSet, expr: Expr): SetIndex {
    const sig = expr.terms.map((term) => kindOf(term.sel)).join(' ');
    let bySig = this.indexes.get(set);
    if (!bySig) this.indexes.set(set, (bySig = new Map()));
    let index = bySig.get(sig);
    if (!index) {
      index = { exact: new Map(), ranges: [] };
      for (let i = 0; i < set.elements.length; i++) {
        const parts = this.elementParts(set, set.elements[i].key, expr);
        const key = exactKey(parts);
        if (key === null) index.ranges.push({ parts, i });
        else if (!index.exact.has(key)) index.exact.set(key, i);
      }
      bySig.set(sig, index);
    }
    return index;
  }
}

/** The part as the interval of numbers the relation accepts. */
function relational(part: Part, op: CmpOp | 'implicit'): Part {
  if (part.t !== 'range') throw new RuleError('numgen compares with numbers');
  if (op === '<') return { t: 'range', lo: 0n, hi: part.lo - 1n };
  if (op === '<=') return { t: 'range', lo: 0n, hi: part.lo };
  if (op === '>') return { t: 'range', lo: part.lo + 1n, hi: MASK32 };
  if (op === '>=') return { t: 'range', lo: part.lo, hi: MASK32 };
  return part;
}

/** Probability that `numgen random mod n offset k` falls in the part. */
function rangeShare(ng: { mod: number; offset: number }, part: Part): number {
  if (part.t !== 'range') throw new RuleError('numgen compares with numbers');
  const off = BigInt(ng.offset);
  const lo = part.lo - off;
  const hi = part.hi - off;
  if (hi < 0n || lo > BigInt(ng.mod - 1)) return 0;
  return numgenShare(ng.mod, Number(lo < 0n ? 0n : lo), Number(hi > BigInt(ng.mod - 1) ? BigInt(ng.mod - 1) : hi));
}

function applyOps(v: bigint, ops: readonly { op: '&' | '|' | '^'; v: bigint }[]): bigint {
  for (const o of ops) v = (o.op === '&' ? v & o.v : o.op === '|' ? v | o.v : v ^ o.v) & MASK32;
  return v;
}

function scale(st: State, p: number): State {
  return p === 1 ? st : { ...st, probability: st.probability * p };
}

function split(alt: Alt, p: number, miss: End): Alt[] {
  const out: Alt[] = [];
  if (p < 1) out.push({ st: scale(alt.st, 1 - p), end: miss });
  if (p > 0) out.push({ ...alt, st: scale(alt.st, p) });
  return out;
}

function outcome(s: State, verdict: Outcome['verdict']): Outcome {
  return {
    probability: s.probability, verdict, dnat: s.dnat, snat: s.snat, mark: Number(s.mark), path: s.path, steps: s.steps, hooks: s.hooks,
  };
}

/** Branches that end identically (same verdict, NAT, mark and path) are one outcome. */
function merge(outcomes: Outcome[]): Outcome[] {
  const byKey = new Map<string, Outcome>();
  for (const o of outcomes) {
    const key = JSON.stringify([o.verdict, o.dnat, o.snat, o.mark, o.path, o.hooks]);
    const prev = byKey.get(key);
    if (prev) prev.probability += o.probability;
    else byKey.set(key, { ...o });
  }
  return [...byKey.values()];
}

