/**
 * kube-proxy's own account of its syncs: the sync-duration histograms on its metrics endpoint
 * (127.0.0.1:10249/metrics on a kind node), in Prometheus' text exposition format. On kind the
 * scale sweep reads them before and after creating N Services through kubectl; the difference is
 * what those syncs took, as kube-proxy timed them (iptables-restore or nft included).
 */
import { setTimeout as delay } from 'node:timers/promises';

/** One sample line: `name{label="value",…} value`. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A line that is neither a comment nor a sample, with its number. */
export class MetricsFormatError extends Error {
  override readonly name = 'MetricsFormatError';
}

/** The sweep failed or was aborted, and deleting its Services afterwards failed too; `cause` is the sweep's error. */
export class SweepCleanupError extends Error {
  override readonly name = 'SweepCleanupError';
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/y;

function parseValue(text: string, where: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const v = Number(text);
  if (text === '' || Number.isNaN(v)) throw new MetricsFormatError(`${where}: ${JSON.stringify(text)} is not a number`);
  return v;
}

function parseLabels(text: string, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const at = LABEL.lastIndex;
    const m = LABEL.exec(text);
    if (!m) throw new MetricsFormatError(`${where}: cannot read the labels from ${JSON.stringify(text.slice(at))}`);
    out[m[1]] = m[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  return out;
}

/** Every sample of a metrics page; `# HELP`, `# TYPE` and other comments are skipped. */
export function parseMetricsText(text: string): MetricSample[] {
  const out: MetricSample[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `metrics line ${i + 1}`;
    const m = SAMPLE.exec(line);
    if (!m) throw new MetricsFormatError(`${where}: not a sample line: ${JSON.stringify(line.slice(0, 120))}`);
    out.push({ name: m[1], labels: m[2] ? parseLabels(m[2], where) : {}, value: parseValue(m[3], where) });
  });
  return out;
}

export interface Histogram {
  /** Cumulative counts per upper bound, ascending, +Inf last. */
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

/**
 * One histogram (`<name>_bucket`, `_sum`, `_count`) among the samples whose labels include
 * `match`; null when there is none.
 */
export function histogramOf(samples: readonly MetricSample[], name: string, match: Record<string, string> = {}): Histogram | null {
  const mine = samples.filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v));
  const buckets = mine.filter((s) => s.name === `${name}_bucket`).map((s) => {
    const le = s.labels.le;
    if (le === undefined) throw new MetricsFormatError(`${name}_bucket without an le label`);
    return { le: parseValue(le, `${name}_bucket le`), count: s.value };
  }).sort((a, b) => a.le - b.le);
  const sum = mine.find((s) => s.name === `${name}_sum`)?.value;
  const count = mine.find((s) => s.name === `${name}_count`)?.value;
  if (buckets.length === 0 && sum === undefined && count === undefined) return null;
  if (sum === undefined || count === undefined || buckets.at(-1)?.le !== Infinity) {
    throw new MetricsFormatError(`${name}: a histogram needs its _bucket lines up to le="+Inf", _sum and _count`);
  }
  for (let i = 1; i < buckets.length; i++) {
    if (buckets[i].count < buckets[i - 1].count) throw new MetricsFormatError(`${name}: bucket counts must not fall (le=${buckets[i].le})`);
  }
  if (buckets.at(-1)!.count !== count) throw new MetricsFormatError(`${name}: the +Inf bucket holds ${buckets.at(-1)!.count}, _count says ${count}`);
  return { buckets, sum, count };
}

/** What happened between two readings of a histogram (counters only grow while kube-proxy runs). */
export function histogramDelta(after: Histogram, before: Histogram | null): Histogram {
  if (!before) return after;
  const at = new Map(before.buckets.map((b) => [b.le, b.count]));
  const buckets = after.buckets.map((b) => ({ le: b.le, count: b.count - (at.get(b.le) ?? 0) }));
  if (buckets.some((b) => b.count < 0) || after.count < before.count) {
    throw new MetricsFormatError('the histogram went down between the readings: kube-proxy restarted, read both again');
  }
  return { buckets, sum: after.sum - before.sum, count: after.count - before.count };
}

/**
 * The q-quantile as Prometheus' histogram_quantile estimates it: linear within the bucket it
 * falls in, the lowest bucket starting at 0; in the +Inf bucket, the highest finite bound.
 * null for an empty histogram.
 */
export function histogramQuantile(h: Histogram, q: number): number | null {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile must be from 0 to 1, got ${q}`);
  if (h.count === 0) return null;
  const rank = q * h.count;
  let lower = 0;
  let below = 0;
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lower;
      const inBucket = b.count - below;
      return inBucket === 0 ? b.le : lower + (b.le - lower) * ((rank - below) / inBucket);
    }
    lower = b.le;
    below = b.count;
  }
  return lower;
}

export interface KubeProxySyncDurations {
  /** Every sync (kubeproxy_sync_proxy_rules_duration_seconds). */
  all: Histogram;
  /** Full and partial syncs apart, where this kube-proxy reports them (1.28+). */
  full: Histogram | null;
  partial: Histogram | null;
}

export const SYNC_HISTOGRAMS = {
  all: 'kubeproxy_sync_proxy_rules_duration_seconds',
  full: 'kubeproxy_sync_full_proxy_rules_duration_seconds',
  partial: 'kubeproxy_sync_partial_proxy_rules_duration_seconds',
} as const;

/** kube-proxy's sync-duration histograms for one IP family, from its metrics page. */
export function kubeProxySyncDurations(text: string, ipFamily: 'IPv4' | 'IPv6' = 'IPv4'): KubeProxySyncDurations {
  const samples = parseMetricsText(text);
  // Before 1.33 the histograms carry no ip_family label.
  const labelled = samples.some((s) => s.name.startsWith(SYNC_HISTOGRAMS.all) && s.labels.ip_family !== undefined);
  const match: Record<string, string> = labelled ? { ip_family: ipFamily } : {};
  const all = histogramOf(samples, SYNC_HISTOGRAMS.all, match);
  if (!all) throw new MetricsFormatError(`no ${SYNC_HISTOGRAMS.all} on this page: is it kube-proxy's /metrics (port 10249)?`);
  return { all, full: histogramOf(samples, SYNC_HISTOGRAMS.full, match), partial: histogramOf(samples, SYNC_HISTOGRAMS.partial, match) };
}

/** The argv that reads kube-proxy's metrics on a kind node (run through `docker exec`). */
export const KUBE_PROXY_METRICS_ARGV = ['curl', '-sf', 'http://127.0.0.1:10249/metrics'] as const;

/** What `run` needs of a lab: a command on one of its nodes. */
export interface NodeRunner {
  exec(node: string, argv: string[]): Promise<{ stdout: string }>;
}

/** kube-proxy's sync histograms read off a node of a kind lab. */
export async function readKubeProxySyncDurations(lab: NodeRunner, node: string, ipFamily: 'IPv4' | 'IPv6' = 'IPv4'): Promise<KubeProxySyncDurations> {
  return kubeProxySyncDurations((await lab.exec(node, [...KUBE_PROXY_METRICS_ARGV])).stdout, ipFamily);
}

/** The kit's label on the Services the kind sweep creates; its value is the lab's name. */
export const SCALE_SWEEP_LABEL = 'kube-netlab.io/scale-sweep';

/** N ClusterIP Services selecting `app`, as kubectl applies them: what the kind sweep creates. */
export function bulkServices(n: number, app: string, namespace = 'default', labels: Record<string, string> = {}): { kind: string; apiVersion: string; metadata: { name: string; namespace: string; labels: Record<string, string> }; spec: unknown }[] {
  return Array.from({ length: n }, (_, i) => ({
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: `bulk-${i + 1}`, namespace, labels: { ...labels } },
    spec: { selector: { app }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
  }));
}

/** What kube-proxy timed while one step's Services were created. */
export interface KindSyncStep {
  services: number;
  /** The syncs kube-proxy ran for them, and its own timings (seconds), as the histograms say. */
  all: { syncs: number; meanS: number | null; p50S: number | null; p99S: number | null };
  full: { syncs: number; meanS: number | null } | null;
  partial: { syncs: number; meanS: number | null } | null;
  /** Whether the histogram stopped growing before the wait ran out. */
  settled: boolean;
}

export interface KindSyncSweepOptions {
  /** The Services select this app's pods (httpbin's, which the lab deploys). */
  app?: string;
  /** The histogram counts as settled once it has not grown for this long (kube-proxy's minSyncPeriod is 1 s). */
  quietMs?: number;
  /** At most this long per step. */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Stops the sweep between reads (its Services are deleted all the same). */
  signal?: AbortSignal;
  /** Each step as soon as it is measured. */
  onStep?: (step: KindSyncStep) => void;
}

/** A kind lab as the sweep uses it. */
export interface KindSweepLab extends NodeRunner {
  readonly name: string;
  apply(objects: { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } }[]): Promise<unknown>;
  /** Delete the Services carrying these labels (KindLab.deleteServices), and nothing else. */
  deleteServices(selector: Record<string, string>): Promise<unknown>;
}

/** The selector of the Services the sweep creates on `lab`. */
export const sweepSelector = (lab: string): Record<string, string> => ({ [SCALE_SWEEP_LABEL]: lab });

const summary = (h: Histogram) => ({ syncs: h.count, meanS: h.count > 0 ? h.sum / h.count : null });

/**
 * On kind, for each size: create Services up to that many through kubectl (bulk-1 … bulk-N, so
 * each step adds the difference), wait until kube-proxy's sync histogram stops growing, and keep
 * what it timed in between: real kube-proxy's own account, iptables-restore or nft included.
 * The Services carry SCALE_SWEEP_LABEL and are deleted at the end, after an error or abort too.
 */
export async function kindSyncSweep(lab: KindSweepLab, node: string, sizes: readonly number[], opts: KindSyncSweepOptions = {}): Promise<KindSyncStep[]> {
  const { signal } = opts;
  // An abort rejects with the signal's reason, as the rest of the sweep does, not node's AbortError.
  const sleep = opts.sleep ?? ((ms: number) => delay(ms, undefined, { signal }).catch((e: unknown) => {
    throw signal?.aborted ? signal.reason : e;
  }));
  const quietMs = opts.quietMs ?? 3_000;
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const selector = sweepSelector(lab.name);
  const out: KindSyncStep[] = [];
  const removeServices = () => Promise.resolve(lab.deleteServices(selector)).then(() => null, (e: unknown) => e as Error);
  try {
    for (const n of [...sizes].sort((a, b) => a - b)) {
      signal?.throwIfAborted();
      const before = await readKubeProxySyncDurations(lab, node);
      await lab.apply(bulkServices(n, opts.app ?? 'httpbin', 'default', selector));
      const started = Date.now();
      let after = await readKubeProxySyncDurations(lab, node);
      let quietSince = after.all.count > before.all.count ? Date.now() : Infinity;
      let settled = false;
      while (Date.now() - started < timeoutMs) {
        signal?.throwIfAborted();
        await sleep(500);
        signal?.throwIfAborted();
        const now = await readKubeProxySyncDurations(lab, node);
        if (now.all.count !== after.all.count) quietSince = Date.now();
        after = now;
        if (after.all.count > before.all.count && Date.now() - quietSince >= quietMs) {
          settled = true;
          break;
        }
      }
      const all = histogramDelta(after.all, before.all);
      const step: KindSyncStep = {
        services: n,
        all: { ...summary(all), p50S: histogramQuantile(all, 0.5), p99S: histogramQuantile(all, 0.99) },
        full: after.full ? summary(histogramDelta(after.full, before.full)) : null,
        partial: after.partial ? summary(histogramDelta(after.partial, before.partial)) : null,
        settled,
      };
      out.push(step);
      opts.onStep?.(step);
    }
  } catch (e) {
    const failed = await removeServices();
    // The sweep's own error comes first; a clean-up that failed too is named beside it.
    if (failed) throw new SweepCleanupError(`${(e as Error).message}; deleting its Services failed too: ${failed.message}`, { cause: e });
    throw e;
  }
  const failed = await removeServices();
  if (failed) throw failed;
  return out;
}
