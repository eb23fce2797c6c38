import type { Runner } from '../../exec/index.ts';
import { diffLines } from '../diff.ts';
import type { ServicePortInfo } from '../../k8s/types.ts';
import { builtinJumpsRestore, generateIptables } from '../../proxy/iptables.ts';
import { IPVS_JUMPS, generateIpvs } from '../../proxy/ipvs.ts';
import { generateNftables } from '../../proxy/nftables.ts';
import type { IptablesTools } from '../../proxy/iptables-backend.ts';
import { nftChainNames, nftFullSyncTx, nftStaleChainDeletion, staleNftChains } from '../../proxy/sync.ts';
import type { ProxyMode } from '../../proxy/modes.ts';
import type { LabNode, SyncReport } from '../types.ts';
import { nodeNs } from './names.ts';

export interface SyncOptions {
  mode: ProxyMode;
  podSubnet: string;
  /** First sync on this node: kube-proxy ensures its jumps from the built-in chains. */
  first: boolean;
  /** The kernel runs IPVS; without it only the ipsets and iptables rules are loaded. */
  ipvsKernel: boolean;
  /** The iptables backend's tools (iptables and ipvs modes). */
  iptables: IptablesTools;
}

const execIn = (ns: string, ...argv: string[]) => ['ip', 'netns', 'exec', ns, ...argv];

/**
 * One kube-proxy sync on one node: generate the node's rules with lib/proxy, load them with the
 * tools kube-proxy uses, and report what the kernel holds afterwards that it did not before.
 */
export async function syncNode(r: Runner, lab: string, node: LabNode, ports: ServicePortInfo[], opts: SyncOptions): Promise<SyncReport> {
  const ns = nodeNs(lab, node.name);
  const ipt = opts.iptables;
  const before = await snapshot(r, ns, opts.mode, ipt);
  const proxyOpts = { nodeName: node.name, nodeIPs: [node.ip], clusterCIDR: opts.podSubnet };
  if (opts.mode === 'iptables') {
    const gen = generateIptables(ports, proxyOpts);
    if (opts.first) await r.run(execIn(ns, ipt.restore, '--noflush'), { input: builtinJumpsRestore(gen.builtinJumps) });
    await r.run(execIn(ns, ipt.restore, '--noflush'), { input: deleteStaleChains(gen.restore, before.chains) });
  } else if (opts.mode === 'ipvs') {
    const gen = generateIpvs(ports, proxyOpts);
    await r.run(execIn(ns, 'ipset', 'restore', '-exist'), { input: replaceSetMembers(gen.ipsetRestore) });
    if (opts.first) await r.run(execIn(ns, ipt.restore, '--noflush'), { input: builtinJumpsRestore(IPVS_JUMPS.map((j) => ({ ...j, args: [...j.args] }))) });
    await r.run(execIn(ns, ipt.restore, '--noflush'), { input: deleteStaleChains(gen.iptablesRestore, before.chains) });
    await syncDummyAddresses(r, ns, gen.dummyInterface, gen.dummyAddresses, opts.ipvsKernel);
    if (opts.ipvsKernel) {
      await r.run(execIn(ns, 'ipvsadm', '-C'));
      await r.run(execIn(ns, 'ipvsadm', '-R'), { input: gen.ipvsadmRestore });
    }
  } else {
    // kube-proxy's full sync: add and flush, never delete the table. It deletes the chains it
    // flushed as stale a second later; the lab does it at once, for the same end state.
    const gen = generateNftables(ports, proxyOpts);
    await r.run(execIn(ns, 'nft', '-f', '-'), { input: nftFullSyncTx(gen, { first: opts.first, existingChains: before.nftChains }) });
    const stale = staleNftChains(gen, before.nftChains);
    if (stale.length > 0) await r.run(execIn(ns, 'nft', '-f', '-'), { input: nftStaleChainDeletion(gen.family, stale) });
  }
  const after = await snapshot(r, ns, opts.mode, ipt);
  return { node: node.name, mode: opts.mode, ...diffLines(before.lines, after.lines) };
}

/**
 * kube-proxy binds every ClusterIP to a dummy interface it leaves down, so the node takes the
 * packets as its own (the kernel adds local routes for them all the same) and IPVS can grab them
 * in INPUT. Done in every IPVS lab, as kube-proxy does; without IP_VS nothing then answers there.
 */
async function syncDummyAddresses(r: Runner, ns: string, dummy: string, want: readonly string[], ipvsKernel: boolean): Promise<void> {
  let dev = dummy;
  let shown = await r.run(execIn(ns, 'ip', '-j', 'addr', 'show', 'dev', dev), { allowFailure: true });
  if (shown.exitCode !== 0) {
    const made = await r.run(execIn(ns, 'ip', 'link', 'add', dev, 'type', 'dummy'), { allowFailure: true });
    if (made.exitCode !== 0) {
      if (ipvsKernel || !/Unknown device type/.test(made.stderr)) {
        throw new Error(`cannot create ${dev}, which IPVS needs to take ClusterIP traffic as local: \`${made.command}\` said ${made.stderr.trim()} (the kernel needs the dummy module: CONFIG_DUMMY)`);
      }
      // Some kernels ship without the dummy driver (and then, here, without IP_VS): the addresses
      // go on lo, so the node still takes ClusterIP packets as its own and the iptables part of
      // their path is the one a real IPVS node runs (nothing answers there).
      dev = 'lo';
      shown = await r.run(execIn(ns, 'ip', '-j', 'addr', 'show', 'dev', dev));
    }
  }
  const have = shown.exitCode === 0
    ? (JSON.parse(shown.stdout) as { addr_info?: { family: string; local: string; prefixlen: number }[] }[])
      .flatMap((l) => l.addr_info ?? []).filter((a) => a.family === 'inet' && !(dev === 'lo' && a.local.startsWith('127.'))).map((a) => `${a.local}/${a.prefixlen}`)
    : [];
  const wanted = new Set(want);
  const batch = [
    ...have.filter((a) => !wanted.has(a)).map((a) => `addr del ${a} dev ${dev}`),
    ...want.filter((a) => !have.includes(a)).map((a) => `addr add ${a} dev ${dev}`),
  ];
  if (batch.length > 0) await r.run(execIn(ns, 'ip', '-batch', '-'), { input: `${batch.join('\n')}\n` });
}

interface Snapshot {
  /** Rules (and set members, nft statements) the kernel holds, one string each. */
  lines: string[];
  /** KUBE-* chains per table, for deleting the ones a sync no longer writes. */
  chains: Map<string, Set<string>>;
  /** The chains of table ip kube-proxy (nftables mode). */
  nftChains: string[];
}

async function snapshot(r: Runner, ns: string, mode: ProxyMode, ipt: IptablesTools): Promise<Snapshot> {
  const lines: string[] = [];
  const chains = new Map<string, Set<string>>();
  if (mode === 'nftables') {
    const out = await r.run(execIn(ns, 'nft', 'list', 'table', 'ip', 'kube-proxy'), { allowFailure: true });
    if (out.exitCode === 0) {
      for (const l of out.stdout.split('\n')) {
        const t = l.trim();
        if (t && t !== '}' && t !== '{') lines.push(t);
      }
    }
    return { lines, chains, nftChains: out.exitCode === 0 ? nftChainNames(out.stdout) : [] };
  }
  const saved = await r.run(execIn(ns, ipt.save));
  let table = '';
  for (const l of saved.stdout.split('\n')) {
    if (l.startsWith('*')) {
      table = l.slice(1);
      chains.set(table, new Set());
    } else if (l.startsWith(':KUBE-')) chains.get(table)?.add(l.slice(1, l.indexOf(' ')));
    else if (l.startsWith('-A ')) lines.push(`${table} ${l}`);
  }
  if (mode === 'ipvs') {
    const sets = await r.run(execIn(ns, 'ipset', 'save'));
    for (const l of sets.stdout.split('\n')) if (l.startsWith('add ')) lines.push(`ipset ${l}`);
  }
  return { lines, chains, nftChains: [] };
}

/**
 * kube-proxy flushes and deletes the per-service chains it no longer writes (`:CHAIN` then
 * `-X CHAIN` in the same restore); fixed chains are never deleted.
 */
export function deleteStaleChains(restore: string, existing: Map<string, Set<string>>): string {
  const out: string[] = [];
  let table = '';
  let declared = new Set<string>();
  for (const line of restore.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1);
      declared = new Set();
    } else if (line.startsWith(':')) declared.add(line.slice(1, line.indexOf(' ')));
    if (line === 'COMMIT') {
      const stale = [...(existing.get(table) ?? [])].filter((c) => !declared.has(c) && /^KUBE-(SVC|SVL|SEP|EXT|FW)-/.test(c)).sort();
      for (const c of stale) out.push(`:${c} - [0:0]`);
      for (const c of stale) out.push(`-X ${c}`);
    }
    out.push(line);
  }
  return out.join('\n');
}

/** Make `ipset restore -exist` replace members: keep the creates, flush each set, then add. */
export function replaceSetMembers(ipsetRestore: string): string {
  const lines = ipsetRestore.split('\n').filter(Boolean);
  const creates = lines.filter((l) => l.startsWith('create '));
  const flushes = creates.map((l) => `flush ${l.split(' ')[1]}`);
  return [...creates, ...flushes, ...lines.filter((l) => !l.startsWith('create '))].join('\n') + '\n';
}
