/**
 * The rules that make the kernel trace packets, marked as the kit's so that a trace killed half-way
 * leaves nothing `gc` cannot find and prove its own:
 *
 * - iptables: a chain `KUBE-NETLAB-TRACE-<hex>` in the raw table holding the one `-j TRACE` rule,
 *   and the jump to it at the top of raw PREROUTING (or OUTPUT), both with the comment
 *   `kube-netlab-trace/<owner pid>/<its start time>`; added and removed by one iptables-restore
 *   each, so neither half exists alone.
 * - nftables: a table of the kit's own, `ip kube-netlab-trace-<owner pid>-<start time>-<hex>`,
 *   whose one chain runs at priority -300 (before conntrack) and sets `meta nftrace`.
 *
 * Both match only the chosen client's new connections to the chosen address and port (a TCP SYN).
 * They live inside a lab node's namespace (or kind node); nothing here runs on the host.
 */
import { randomBytes } from 'node:crypto';
import { processStart, processesWithEnv, stillRuns, stopProcesses, type ProcessRef } from '../exec/index.ts';
import { isIpv4 } from '../parse/addr.ts';
import type { NodeExec } from './capture.ts';

export const TRACE_COMMENT_PREFIX = 'kube-netlab-trace';
export const TRACE_CHAIN_PREFIX = 'KUBE-NETLAB-TRACE-';
export const TRACE_TABLE_PREFIX = 'kube-netlab-trace-';

export interface TraceMatch {
  protocol: 'tcp' | 'udp' | 'sctp';
  src: string;
  dst: string;
  dport: number;
  /** PREROUTING: the packet arrives from a pod or the network; OUTPUT: the node sends it. */
  hook: 'PREROUTING' | 'OUTPUT';
}

/** Tracing rules on one node, as installed or as found there. */
export type TraceRules =
  | { kind: 'iptables'; chain: string; hook: 'PREROUTING' | 'OUTPUT' | null; owner: ProcessRef | null; comment: string }
  | { kind: 'nftables'; table: string; owner: ProcessRef | null };

function checkMatch(m: TraceMatch): void {
  for (const a of [m.src, m.dst]) if (!isIpv4(a)) throw new Error(`live trace: ${JSON.stringify(a)} is not an IPv4 address (IPv6 is not traced live yet)`);
  if (!Number.isInteger(m.dport) || m.dport < 1 || m.dport > 65535) throw new Error(`live trace: port ${m.dport} is not 1-65535`);
}

export function traceOwnerComment(owner: ProcessRef): string {
  return `${TRACE_COMMENT_PREFIX}/${owner.pid}/${owner.start ?? 'unknown'}`;
}

function parseOwner(pid: string, start: string): ProcessRef | null {
  const n = Number(pid);
  if (!/^\d{1,10}$/.test(pid) || n <= 0) return null;
  return { pid: n, start: start === 'unknown' ? null : start };
}

/** The owner a comment `kube-netlab-trace/PID/START` names, or null when it is not the kit's. */
export function parseTraceComment(comment: string): ProcessRef | null {
  const m = /^kube-netlab-trace\/(\d{1,10})\/(\d{1,20}|unknown)$/.exec(comment);
  return m ? parseOwner(m[1], m[2]) : null;
}

/** The owner a table name `kube-netlab-trace-PID-START-HEX` names, or null. */
export function parseTraceTable(name: string): ProcessRef | null {
  const m = /^kube-netlab-trace-(\d{1,10})-(\d{1,20}|unknown)-[0-9a-f]{4,16}$/.exec(name);
  return m ? parseOwner(m[1], m[2]) : null;
}

/** `iptables-restore --noflush` input that adds the chain, its TRACE rule and the jump, at once. */
export function iptablesTraceInput(m: TraceMatch, chain: string, comment: string): string {
  checkMatch(m);
  const flags = m.protocol === 'tcp' ? ' --tcp-flags FIN,SYN,RST,ACK SYN' : '';
  return [
    '*raw',
    `:${chain} - [0:0]`,
    `-A ${chain} -s ${m.src}/32 -d ${m.dst}/32 -p ${m.protocol} -m ${m.protocol} --dport ${m.dport}${flags} -m comment --comment ${comment} -j TRACE`,
    `-I ${m.hook} 1 -m comment --comment ${comment} -j ${chain}`,
    'COMMIT',
    '',
  ].join('\n');
}

/** `iptables-restore --noflush` input that removes them, jump first. */
export function iptablesUntraceInput(chain: string, hook: 'PREROUTING' | 'OUTPUT' | null, comment: string): string {
  return ['*raw', ...(hook ? [`-D ${hook} -m comment --comment ${comment} -j ${chain}`] : []), `-F ${chain}`, `-X ${chain}`, 'COMMIT', ''].join('\n');
}

/** `nft -f -` input for the kit's own table: one chain at priority -300 that sets nftrace. */
export function nftTraceInput(m: TraceMatch, table: string): string {
  checkMatch(m);
  const hook = m.hook === 'OUTPUT' ? 'output' : 'prerouting';
  const syn = m.protocol === 'tcp' ? ' tcp flags & (fin|syn|rst|ack) == syn' : '';
  return [
    `table ip ${table} {`,
    `  chain trace-${hook} {`,
    `    type filter hook ${hook} priority -300; policy accept;`,
    `    ip saddr ${m.src} ip daddr ${m.dst} ${m.protocol} dport ${m.dport}${syn} meta nftrace set 1`,
    '  }',
    '}',
    '',
  ].join('\n');
}

const hex = () => randomBytes(4).toString('hex');

/** Add the tracing rules on a node; returns what to remove. */
export async function installTraceRules(exec: NodeExec, kind: 'iptables' | 'nftables', m: TraceMatch, owner: ProcessRef = { pid: process.pid, start: processStart(process.pid) }): Promise<TraceRules> {
  if (kind === 'iptables') {
    const chain = `${TRACE_CHAIN_PREFIX}${hex()}`;
    const comment = traceOwnerComment(owner);
    await exec(['iptables-restore', '--noflush'], { input: iptablesTraceInput(m, chain, comment), timeoutMs: 15_000 });
    return { kind, chain, hook: m.hook, owner, comment };
  }
  const table = `${TRACE_TABLE_PREFIX}${owner.pid}-${owner.start ?? 'unknown'}-${hex()}`;
  await exec(['nft', '-f', '-'], { input: nftTraceInput(m, table), timeoutMs: 15_000 });
  return { kind, table, owner };
}

/** Remove tracing rules; true when they were there. */
export async function removeTraceRules(exec: NodeExec, rules: TraceRules): Promise<boolean> {
  if (rules.kind === 'iptables') {
    const r = await exec(['iptables-restore', '--noflush'], { input: iptablesUntraceInput(rules.chain, rules.hook, rules.comment), allowFailure: true, timeoutMs: 15_000 });
    return r.exitCode === 0;
  }
  const r = await exec(['nft', 'delete', 'table', 'ip', rules.table], { allowFailure: true, timeoutMs: 15_000 });
  return r.exitCode === 0;
}

/**
 * The kit's tracing rules on a node, from `iptables-save -t raw` and `nft list tables` (each read
 * only where its tool is there). A chain is the kit's when it carries the kit's comment.
 */
export async function findTraceRules(exec: NodeExec): Promise<TraceRules[]> {
  const out: TraceRules[] = [];
  const saved = await exec(['iptables-save', '-t', 'raw'], { allowFailure: true, timeoutMs: 15_000 }).catch(() => null);
  if (saved && saved.exitCode === 0) {
    const chains = new Map<string, { hook: 'PREROUTING' | 'OUTPUT' | null; comment: string | null }>();
    for (const line of saved.stdout.split('\n')) {
      const decl = /^:(KUBE-NETLAB-TRACE-[0-9a-f]{8}) /.exec(line);
      if (decl) chains.set(decl[1], chains.get(decl[1]) ?? { hook: null, comment: null });
      const rule = /^-A (\S+) .*--comment "?(kube-netlab-trace\/[0-9a-z/]+)"? .*-j (\S+)$/.exec(line);
      if (!rule) continue;
      const [, chain, comment, target] = rule;
      if ((chain === 'PREROUTING' || chain === 'OUTPUT') && target.startsWith(TRACE_CHAIN_PREFIX)) {
        chains.set(target, { ...(chains.get(target) ?? { comment: null }), hook: chain, comment });
      } else if (chain.startsWith(TRACE_CHAIN_PREFIX)) {
        const c = chains.get(chain) ?? { hook: null, comment: null };
        chains.set(chain, { ...c, comment: c.comment ?? comment });
      }
    }
    for (const [chain, c] of chains) {
      const owner = c.comment ? parseTraceComment(c.comment) : null;
      out.push({ kind: 'iptables', chain, hook: c.hook, owner, comment: c.comment ?? '' });
    }
  }
  const tables = await exec(['nft', 'list', 'tables'], { allowFailure: true, timeoutMs: 15_000 }).catch(() => null);
  if (tables && tables.exitCode === 0) {
    for (const line of tables.stdout.split('\n')) {
      const m = /^table ip (kube-netlab-trace-\S+)$/.exec(line.trim());
      if (m) out.push({ kind: 'nftables', table: m[1], owner: parseTraceTable(m[1]) });
    }
  }
  return out;
}

export interface TraceGcDecision {
  what: string;
  action: 'removed' | 'kept';
  why: string;
}

/**
 * Remove the tracing rules on a node whose owner process has died (a trace killed half-way); keep
 * those of a trace still running, and anything not provably the kit's.
 */
export async function gcTraceRules(exec: NodeExec, where: string): Promise<TraceGcDecision[]> {
  const decisions: TraceGcDecision[] = [];
  for (const rules of await findTraceRules(exec)) {
    const what = rules.kind === 'iptables' ? `raw chain ${rules.chain} on ${where}` : `nft table ip ${rules.table} on ${where}`;
    if (rules.owner === null) {
      decisions.push({ what, action: 'kept', why: `it carries no ${TRACE_COMMENT_PREFIX}/PID/START mark, so it is not provably the kit's` });
    } else if (stillRuns(rules.owner)) {
      decisions.push({ what, action: 'kept', why: `the trace of pid ${rules.owner.pid} still runs` });
    } else {
      const ok = await removeTraceRules(exec, rules);
      decisions.push({ what, action: ok ? 'removed' : 'kept', why: ok ? `left by a live trace whose process (pid ${rules.owner.pid}) is gone` : 'removing it failed' });
    }
  }
  return decisions;
}

/**
 * The monitor a trace starts carries its owner in this variable, so that `gc` can end the monitor
 * of a trace that was killed (it would otherwise wait out its time bound, printing nothing).
 */
export const TRACE_MONITOR_ENV = 'KUBE_NETLAB_TRACE';

export function traceMonitorEnv(owner: ProcessRef): Record<string, string> {
  return { [TRACE_MONITOR_ENV]: traceOwnerComment(owner) };
}

/**
 * End the monitors left by traces whose owner has died: processes on this machine whose
 * environment names a trace owner that no longer runs (netns labs run them as processes here; a
 * kind node's runs in its container, and the docker exec that started it is ended here). Returns
 * the pids ended.
 */
export async function gcTraceMonitors(): Promise<number[]> {
  const orphans: ProcessRef[] = [];
  for (const { ref, value } of await processesWithEnv(TRACE_MONITOR_ENV)) {
    const owner = parseTraceComment(value);
    if (owner && !stillRuns(owner)) orphans.push(ref);
  }
  return stopProcesses(orphans);
}
