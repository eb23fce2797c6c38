/**
 * The pure half of the scale lab: option checks, the clusters of each step, the inputs each sync
 * and change loads, and what to count. No I/O here, so every input a step feeds the kernel can be
 * tested as text.
 */
import type { ScaleOptions } from './types.ts';
import { KIND_DEFAULTS, addressAt, cidrSize, parseIpv4Cidr, resolveServicePorts, syntheticCluster } from '../k8s/index.ts';
import type { EndpointInfo, ServicePortInfo } from '../k8s/types.ts';
import type { IptablesSave } from '../parse/iptables-types.ts';
import type { IpsetState } from '../parse/ipset-types.ts';
import type { NftRuleset } from '../parse/nft-types.ts';
import { generateIptables, type IptablesRules } from '../proxy/iptables.ts';
import { generateIpvs, type IpvsRules } from '../proxy/ipvs.ts';
import { PROXY_MODES, isProxyMode, type ProxyMode } from '../proxy/modes.ts';
import { IPTABLES_BACKENDS, isIptablesBackend, iptablesVariant, type IptablesBackend } from '../proxy/iptables-backend.ts';
import { generateNftables, KUBE_PROXY_TABLE, type NftablesRules } from '../proxy/nftables.ts';
import { iptablesPartialRestore, iptablesServiceChains, nftFullSyncTx, nftIncrementalTx } from '../proxy/sync.ts';
import type { ModeCounts } from '../sim/counts.ts';
import type { KernelCounts } from './types.ts';

/** The node the rules are generated for, as in `kube-netlab rules` and the tour. */
export const SCALE_NODE = 'kind-worker';
export const SCALE_NODE_IP = '172.18.0.3';
/** Where every endpoint listens (the synthetic cluster's targetPort). */
export const TARGET_PORT = 8080;
/** A pod subnet big enough for 10,000 services × 100 endpoints that leaves 10.96.0.0/16 alone. */
export const LARGE_POD_SUBNET = '10.128.0.0/9';

/** An option the sweep cannot run with; the CLI prints it as a usage error (exit 2). */
export class ScaleOptionError extends Error {
  override readonly name = 'ScaleOptionError';
}

/** `iptables,nftables` → modes, each known and listed once. */
export function parseModeList(text: string): ProxyMode[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.some((p) => p === '')) throw new ScaleOptionError(`--modes must be a comma-separated list of ${PROXY_MODES.join(', ')}, got ${JSON.stringify(text)}`);
  const out: ProxyMode[] = [];
  for (const p of parts) {
    if (!isProxyMode(p)) throw new ScaleOptionError(`--modes: unknown mode ${JSON.stringify(p)} (expected ${PROXY_MODES.join(', ')})`);
    if (out.includes(p)) throw new ScaleOptionError(`--modes lists ${p} twice`);
    out.push(p);
  }
  return out;
}

/** `legacy,nft` → backends, each known and listed once. */
export function parseBackendList(text: string): IptablesBackend[] {
  const parts = text.split(',').map((s) => s.trim());
  const out: IptablesBackend[] = [];
  for (const p of parts) {
    if (!isIptablesBackend(p)) throw new ScaleOptionError(`--iptables-backends: unknown backend ${JSON.stringify(p)} (expected ${IPTABLES_BACKENDS.join(', ')}, as in iptables-legacy and iptables-nft)`);
    if (out.includes(p)) throw new ScaleOptionError(`--iptables-backends lists ${p} twice`);
    out.push(p);
  }
  return out;
}

/** One sweep of the scale lab: a mode, on an iptables backend where the mode uses iptables. */
export interface ScaleVariant {
  mode: ProxyMode;
  iptablesBackend: IptablesBackend | null;
  /** `iptables-legacy`, `nftables`, `ipvs-nft`. */
  name: string;
}

/** Every mode on every backend it runs on, in the order given: modes first, then backends. */
export function scaleVariants(modes: readonly ProxyMode[], backends: readonly IptablesBackend[]): ScaleVariant[] {
  return modes.flatMap((mode): ScaleVariant[] => mode === 'nftables'
    ? [{ mode, iptablesBackend: null, name: mode }]
    : backends.map((b) => ({ mode, iptablesBackend: b, name: mode === 'iptables' ? iptablesVariant(b) : `${mode}-${b}` })));
}

function checkVariantLimits(limits: Record<string, number>, variants: string[]): Record<string, number> {
  for (const [v, ms] of Object.entries(limits)) {
    if (!variants.includes(v)) throw new ScaleOptionError(`--max-sync-seconds names ${JSON.stringify(v)}, which this sweep does not run (it runs ${variants.join(', ')})`);
    whole(`max sync (ms) of ${v}`, ms, 1);
  }
  return { ...limits };
}

/**
 * `--max-sync-seconds 300,iptables-nft=60`: a limit for every variant, then some of their own.
 * Returns ms.
 */
export function parseSyncLimits(text: string): { maxSyncMs: number; maxSyncMsByVariant: Record<string, number> } {
  let maxSyncMs = 60_000;
  const byVariant: Record<string, number> = {};
  const bad = () => new ScaleOptionError(`--max-sync-seconds must be SECONDS or SECONDS,VARIANT=SECONDS,… (e.g. 300,iptables-nft=60), got ${JSON.stringify(text)}`);
  for (const part of text.split(',').map((s) => s.trim())) {
    const m = /^(?:([a-z-]+)=)?(\d+)$/.exec(part);
    if (!m || Number(m[2]) < 1) throw bad();
    if (m[1] === undefined) maxSyncMs = Number(m[2]) * 1000;
    else byVariant[m[1]] = Number(m[2]) * 1000;
  }
  return { maxSyncMs, maxSyncMsByVariant: byVariant };
}

/** `10,100,1000` → sizes, whole numbers ≥ 1, each listed once, sorted ascending. */
export function parseSizeList(text: string, flag = '--services'): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d+$/.test(p) || Number(p) < 1) throw new ScaleOptionError(`${flag} must be a comma-separated list of whole numbers ≥ 1, got ${JSON.stringify(text)}`);
    const n = Number(p);
    if (out.includes(n)) throw new ScaleOptionError(`${flag} lists ${n} twice`);
    out.push(n);
  }
  return out.sort((a, b) => a - b);
}

export interface ResolvedScaleOptions {
  modes: ProxyMode[];
  iptablesBackends: IptablesBackend[];
  services: number[];
  endpoints: number;
  samples: number;
  repeats: number;
  repeatBudgetMs: number;
  maxSyncMs: number;
  maxSyncMsByVariant: Record<string, number>;
  fitMaxServices: number;
  podSubnet: string;
  netnsPrefix: string;
}

function whole(name: string, v: number, min: number): number {
  if (!Number.isInteger(v) || v < min) throw new ScaleOptionError(`${name} must be a whole number ≥ ${min}, got ${v}`);
  return v;
}

/** Fill in defaults and refuse what cannot run, before any namespace exists. */
export function resolveScaleOptions(o: Omit<ScaleOptions, 'signal' | 'onProgress' | 'echo'>): ResolvedScaleOptions {
  if (o.modes.length === 0) throw new ScaleOptionError('give at least one mode');
  for (const m of o.modes) if (!isProxyMode(m)) throw new ScaleOptionError(`unknown mode ${JSON.stringify(m)} (expected ${PROXY_MODES.join(', ')})`);
  if (new Set(o.modes).size !== o.modes.length) throw new ScaleOptionError('a mode is listed twice');
  const backends = o.iptablesBackends ?? ['nft'];
  if (backends.length === 0) throw new ScaleOptionError('give at least one iptables backend');
  for (const b of backends) if (!isIptablesBackend(b)) throw new ScaleOptionError(`unknown iptables backend ${JSON.stringify(b)} (expected ${IPTABLES_BACKENDS.join(', ')})`);
  if (new Set(backends).size !== backends.length) throw new ScaleOptionError('an iptables backend is listed twice');
  if (o.services.length === 0) throw new ScaleOptionError('give at least one service count');
  for (const s of o.services) whole('services', s, 1);
  if (new Set(o.services).size !== o.services.length) throw new ScaleOptionError('a service count is listed twice');
  const endpoints = whole('endpoints', o.endpoints, 1);
  const services = [...o.services].sort((a, b) => a - b);
  const largest = services[services.length - 1];
  let podSubnet = o.podSubnet;
  if (podSubnet === undefined) {
    podSubnet = KIND_DEFAULTS.podSubnet;
    try {
      syntheticCluster({ services: largest, endpoints, podSubnet });
    } catch {
      podSubnet = LARGE_POD_SUBNET;
    }
  } else {
    try {
      parseIpv4Cidr(podSubnet);
    } catch (e) {
      throw new ScaleOptionError(`--pod-subnet: ${(e as Error).message}`);
    }
  }
  // lib/k8s refuses what does not fit and says what to pass instead.
  try {
    syntheticCluster({ services: largest, endpoints, podSubnet });
  } catch (e) {
    throw new ScaleOptionError((e as Error).message.replace('pass a larger pod subnet', 'pass a larger --pod-subnet'));
  }
  const prefix = o.netnsPrefix ?? 'kn-scale';
  if (!/^kn-[a-z0-9-]{1,30}$/.test(prefix)) throw new ScaleOptionError(`namespace prefix ${JSON.stringify(prefix)} must start with kn- (so gc finds leftovers) and hold only a-z, 0-9 and -`);
  return {
    modes: [...o.modes],
    iptablesBackends: [...backends],
    services,
    endpoints,
    samples: whole('samples', o.samples ?? 200, 1),
    repeats: whole('repeats', o.repeats ?? 3, 1),
    repeatBudgetMs: whole('repeat budget (ms)', o.repeatBudgetMs ?? 60_000, 0),
    maxSyncMs: whole('max sync (ms)', o.maxSyncMs ?? 60_000, 1),
    maxSyncMsByVariant: checkVariantLimits(o.maxSyncMsByVariant ?? {}, scaleVariants(o.modes, backends).map((v) => v.name)),
    fitMaxServices: whole('fit-max', o.fitMaxServices ?? 1000, 1),
    podSubnet,
    netnsPrefix: prefix,
  };
}

/**
 * The address the latency client connects from: the pod subnet's last host, like a pod on the
 * node (inside the cluster CIDR, so kube-proxy does not masquerade it). Never an endpoint.
 */
export function clientAddress(podSubnet: string, ports: readonly ServicePortInfo[]): string {
  const net = parseIpv4Cidr(podSubnet);
  const ip = addressAt(net, cidrSize(net) - 2);
  if (ports.some((p) => p.endpoints.some((e) => e.ip === ip))) throw new Error(`client address ${ip} is an endpoint; choose another pod subnet`);
  return ip;
}

/** One step's service ports: S services × E endpoints of a kind-shaped cluster, seen from SCALE_NODE. */
export function stepPorts(services: number, endpoints: number, podSubnet: string): ServicePortInfo[] {
  return resolveServicePorts(syntheticCluster({ services, endpoints, podSubnet }), { nodeName: SCALE_NODE });
}

/** The service a step changes: the middle one, so neither end of KUBE-SERVICES is special. */
export function changedIndex(ports: readonly ServicePortInfo[]): number {
  return Math.floor((ports.length - 1) / 2);
}

/** The same ports with the last endpoint of ports[index] gone (a pod deleted). */
export function withoutLastEndpoint(ports: readonly ServicePortInfo[], index: number): ServicePortInfo[] {
  const p = ports[index];
  if (!p || p.endpoints.length < 2) throw new Error('the changed service needs at least 2 endpoints');
  return ports.map((q, i) => (i === index ? { ...q, endpoints: q.endpoints.slice(0, -1) } : q));
}

export function proxyOptions(podSubnet: string) {
  return { nodeName: SCALE_NODE, nodeIPs: [SCALE_NODE_IP], clusterCIDR: podSubnet };
}

// ---------------------------------------------------------------------------------------------
// IPVS: the same change, as kube-proxy's IPVS proxier applies it

/**
 * A one-endpoint change in IPVS mode: ipset entries that differ (`ipset restore -exist`), the
 * proxier's fixed iptables input (rewritten on every sync) and the real servers that differ
 * (`ipvsadm -R` of -d/-a lines).
 */
export function ipvsChange(before: IpvsRules, after: IpvsRules): { ipset: string; iptables: string; ipvsadm: string } {
  const ipset: string[] = [];
  for (const set of new Set([...Object.keys(before.ipsets), ...Object.keys(after.ipsets)])) {
    const a = new Set(before.ipsets[set] ?? []);
    const b = new Set(after.ipsets[set] ?? []);
    for (const m of a) if (!b.has(m)) ipset.push(`del ${set} ${m}`);
    for (const m of b) if (!a.has(m)) ipset.push(`add ${set} ${m}`);
  }
  const aLines = before.ipvsadmRestore.split('\n').filter(Boolean);
  const bLines = after.ipvsadmRestore.split('\n').filter(Boolean);
  const bSet = new Set(bLines);
  const aSet = new Set(aLines);
  const ipvsadm: string[] = [];
  for (const l of aLines) {
    if (bSet.has(l)) continue;
    // `-a -t VIP -r RS -m -w 1` → `-d -t VIP -r RS`; `-A -t VIP -s rr` → `-D -t VIP`.
    const f = l.split(' ');
    if (f[0] === '-a') ipvsadm.push(['-d', ...f.slice(1, 5)].join(' '));
    else if (f[0] === '-A') ipvsadm.push(['-D', ...f.slice(1, 3)].join(' '));
  }
  for (const l of bLines) if (!aSet.has(l)) ipvsadm.push(l);
  return { ipset: ipset.length ? `${ipset.join('\n')}\n` : '', iptables: after.iptablesRestore, ipvsadm: ipvsadm.length ? `${ipvsadm.join('\n')}\n` : '' };
}

// ---------------------------------------------------------------------------------------------
// The generated inputs of one step

export interface StepInputs {
  ports: ServicePortInfo[];
  changed: { index: number; service: string; removed: EndpointInfo };
  iptables?: { full: IptablesRules; change: string; revert: string };
  /**
   * `first`: kube-proxy's first full sync, into an empty namespace; `resync`: its periodic full
   * sync over the rules the first wrote. Neither deletes the table.
   */
  nftables?: { full: NftablesRules; first: string; resync: string; change: { tx: string; followUp: string }; revert: { tx: string; followUp: string } };
  ipvs?: { full: IpvsRules; change: ReturnType<typeof ipvsChange>; revert: ReturnType<typeof ipvsChange> };
}

/** Everything a step loads: the full sync, a one-endpoint change and the change that undoes it. */
export function stepInputs(mode: ProxyMode, services: number, endpoints: number, podSubnet: string): StepInputs {
  const ports = stepPorts(services, endpoints, podSubnet);
  const index = changedIndex(ports);
  const before = ports[index];
  const changedPorts = withoutLastEndpoint(ports, index);
  const after = changedPorts[index];
  const opts = proxyOptions(podSubnet);
  const base = { ports, changed: { index, service: before.servicePortName, removed: before.endpoints[before.endpoints.length - 1] } };
  if (mode === 'iptables') {
    const full = generateIptables(ports, opts);
    const next = generateIptables(changedPorts, opts);
    const a = iptablesServiceChains(before);
    const b = iptablesServiceChains(after);
    return {
      ...base,
      iptables: {
        full,
        change: iptablesPartialRestore(next.restore, b, a.filter((c) => !b.includes(c))),
        revert: iptablesPartialRestore(full.restore, a, b.filter((c) => !a.includes(c))),
      },
    };
  }
  if (mode === 'nftables') {
    const full = generateNftables(ports, opts);
    const next = generateNftables(changedPorts, opts);
    return {
      ...base,
      nftables: {
        full,
        first: nftFullSyncTx(full, { first: true }),
        resync: nftFullSyncTx(full, { first: false }),
        change: nftIncrementalTx(next.nft, before, after),
        revert: nftIncrementalTx(full.nft, after, before),
      },
    };
  }
  const full = generateIpvs(ports, opts);
  const next = generateIpvs(changedPorts, opts);
  return { ...base, ipvs: { full, change: ipvsChange(full, next), revert: ipvsChange(next, full) } };
}

/** Endpoints on SCALE_NODE (IPVS mode's KUBE-LOOP-BACK members): an input of lib/sim's ipvs counts. */
export function localEndpoints(ports: readonly ServicePortInfo[]): number {
  return ports.reduce((n, p) => n + p.endpoints.filter((e) => e.isLocal).length, 0);
}

// ---------------------------------------------------------------------------------------------
// Counting what the kernel holds

/** KUBE-* chains and their rules per table; the built-in chains' jumps are not kube-proxy's restore. */
export function countIptables(save: IptablesSave): { nat: { chains: number; rules: number }; filter: { chains: number; rules: number } } {
  const of = (name: string) => {
    const t = save.tables.find((x) => x.name === name);
    const chains = (t?.chains ?? []).filter((c) => c.name.startsWith('KUBE-'));
    return { chains: chains.length, rules: chains.reduce((n, c) => n + c.rules.length, 0) };
  };
  return { nat: of('nat'), filter: of('filter') };
}

/** Table ip kube-proxy: chains, rules, sets, maps, and elements over every set and map. */
export function countNftables(rs: NftRuleset): { chains: number; rules: number; sets: number; maps: number; elements: number } {
  const t = rs.tables.find((x) => x.family === 'ip' && x.name === KUBE_PROXY_TABLE);
  if (!t) return { chains: 0, rules: 0, sets: 0, maps: 0, elements: 0 };
  return {
    chains: t.chains.length,
    rules: t.chains.reduce((n, c) => n + c.rules.length, 0),
    sets: t.sets.filter((s) => s.kind === 'set').length,
    maps: t.sets.filter((s) => s.kind === 'map').length,
    elements: t.sets.reduce((n, s) => n + s.elements.length, 0),
  };
}

/** Members per KUBE-* ipset. */
export function countIpsets(state: IpsetState): Record<string, number> {
  return Object.fromEntries(state.sets.filter((s) => s.name.startsWith('KUBE-')).map((s) => [s.name, s.members.length]));
}

/**
 * The kernel's counts against lib/sim's, field by field. Virtual and real servers are compared
 * only where the kernel could hold them (null means no IP_VS).
 */
export function countsMatch(mode: ProxyMode, kernel: KernelCounts, predicted: ModeCounts): boolean {
  const same = (a: unknown, b: unknown) => canonical(a) === canonical(b);
  if (mode === 'iptables') return same(kernel.iptables, predicted.iptables);
  if (mode === 'nftables') return same(kernel.nftables, predicted.nftables);
  const k = kernel.ipvs;
  const p = predicted.ipvs;
  if (!k || !p) return false;
  const members = Object.fromEntries(Object.keys(p.ipsetMembers).map((s) => [s, k.ipsetMembers[s] ?? -1]));
  return same(members, p.ipsetMembers)
    && same(k.iptables, p.iptables)
    && (k.virtualServers === null || k.virtualServers === p.virtualServers)
    && (k.realServers === null || k.realServers === p.realServers);
}

/** JSON with object keys sorted, so field order does not decide equality. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'undefined';
}

// ---------------------------------------------------------------------------------------------
// Latency targets and the DNAT check

export interface LatencyTarget {
  position: number;
  port: ServicePortInfo;
}

/**
 * The first and the last service in KUBE-SERVICES as the kernel holds it (iptables: the order
 * the packet is matched in), found by each rule's destination and port.
 */
export function iptablesTargets(save: IptablesSave, ports: readonly ServicePortInfo[]): [LatencyTarget, LatencyTarget] {
  const nat = save.tables.find((t) => t.name === 'nat');
  const chain = nat?.chains.find((c) => c.name === 'KUBE-SERVICES');
  const byVip = new Map(ports.map((p) => [`${p.clusterIP}:${p.port}`, p]));
  const found: LatencyTarget[] = [];
  let position = 0;
  for (const r of chain?.rules ?? []) {
    if (!r.target?.name.startsWith('KUBE-SVC-') || !r.destination) continue;
    position++;
    const dport = r.matches.flatMap((m) => m.options).find((o) => o.name === 'dport')?.args[0];
    const p = byVip.get(`${r.destination.value.replace(/\/32$/, '')}:${dport}`);
    if (!p) throw new Error(`KUBE-SERVICES rule ${JSON.stringify(r.text)} matches no generated service`);
    found.push({ position, port: p });
  }
  if (found.length !== ports.length) throw new Error(`the kernel's KUBE-SERVICES holds ${found.length} service rules, expected ${ports.length}`);
  return [found[0], found[found.length - 1]];
}

/** nftables and IPVS look services up in a hash: the first and last in the order kube-proxy adds them. */
export function orderTargets(ports: readonly ServicePortInfo[]): [LatencyTarget, LatencyTarget] {
  return [{ position: 1, port: ports[0] }, { position: ports.length, port: ports[ports.length - 1] }];
}

/** What the probe client reports for one target. */
export interface ProbeTargetOutput {
  target: string;
  samplesUs: number[];
  reached: Record<string, number>;
  remotes: Record<string, number>;
  errors: number;
  errorSamples: string[];
}

/** A measurement that cannot be reported: a connection failed, or was not DNATed to an endpoint. */
export class LatencyCheckError extends Error {
  override readonly name = 'LatencyCheckError';
}

/**
 * Check every connection to a service reached one of its endpoints (never the ClusterIP, never
 * anything else) from the client's own address (no masquerade), and that none failed.
 * Returns the number of distinct endpoints reached.
 */
export function verifyDnat(out: ProbeTargetOutput, port: ServicePortInfo, clientIP: string): number {
  const where = `${port.servicePortName} (${port.clusterIP}:${port.port})`;
  if (out.errors > 0) throw new LatencyCheckError(`${out.errors} connections to ${where} failed: ${out.errorSamples.join('; ')}`);
  if (out.samplesUs.length === 0) throw new LatencyCheckError(`no connection to ${where} was timed`);
  const endpoints = new Set(port.endpoints.map((e) => `${e.ip}:${e.port}`));
  for (const [addr, n] of Object.entries(out.reached)) {
    if (!endpoints.has(addr)) {
      const why = addr.startsWith(`${port.clusterIP}:`) ? 'the ClusterIP itself: the rules were bypassed' : 'not one of its endpoints';
      throw new LatencyCheckError(`${n} connections to ${where} reached ${addr}, ${why}`);
    }
  }
  for (const [addr, n] of Object.entries(out.remotes)) {
    if (addr !== clientIP) throw new LatencyCheckError(`${n} connections to ${where} arrived from ${addr}, not the client's ${clientIP}`);
  }
  return Object.keys(out.reached).length;
}

export interface SyncEstimate {
  ms: number;
  /** How it was extrapolated, in words. */
  basis: string;
}

/**
 * How long a full sync of `services` would take, extrapolated from the two largest sizes measured
 * so far with their own growth exponent (never below linear). A straight line fitted on small
 * sizes badly underestimates a cost that grows faster than linear, as iptables-nft's restore does
 * on some kernels; this estimate only decides whether a step is worth starting.
 */
export function estimateSyncMs(done: readonly { services: number; syncMs: number }[], services: number): SyncEstimate | null {
  const pts = [...done].filter((p) => p.services < services && p.syncMs > 0).sort((a, b) => a.services - b.services);
  if (pts.length === 0) return null;
  const b = pts[pts.length - 1];
  if (pts.length === 1) {
    return { ms: b.syncMs * (services / b.services), basis: `linear from ${b.services} services (${Math.round(b.syncMs)} ms)` };
  }
  const a = pts[pts.length - 2];
  const k = Math.max(1, Math.log(b.syncMs / a.syncMs) / Math.log(b.services / a.services));
  return {
    ms: b.syncMs * (services / b.services) ** k,
    basis: `${Math.round(b.syncMs)} ms at ${b.services} services × (${services}/${b.services})^${k.toFixed(2)}, the growth from ${a.services} to ${b.services}`,
  };
}
