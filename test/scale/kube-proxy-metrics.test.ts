import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { projectPath } from '../../lib/project/index.ts';
import {
  MetricsFormatError, bulkServices, histogramDelta, histogramQuantile, kindSyncSweep, kubeProxySyncDurations, parseMetricsText,
  readKubeProxySyncDurations, type Histogram,
} from '../../lib/scale/kube-proxy-metrics.ts';

// Written in kube-proxy's format: see the fixture's header for where names and buckets come from.
const fixture = () => readFile(projectPath('test', 'fixtures', 'kube-proxy-metrics.txt'), 'utf8');

describe('kube-proxy\'s sync-duration histograms, read from its metrics page', () => {
  it('reads every histogram, and full plus partial syncs add up to all of them', async () => {
    const d = kubeProxySyncDurations(await fixture());
    expect(d.all).toMatchObject({ count: 42, sum: 1.6380000000000001 });
    expect(d.all.buckets).toHaveLength(16);
    expect(d.all.buckets.at(-1)).toEqual({ le: Infinity, count: 42 });
    expect(d.full!.count + d.partial!.count).toBe(d.all.count);
    expect(d.full!.sum + d.partial!.sum).toBeCloseTo(d.all.sum, 12);
  });

  it('estimates quantiles as histogram_quantile does: linear inside the bucket', async () => {
    const d = kubeProxySyncDurations(await fixture());
    // rank 21 of 42 falls in (0.016, 0.032], which holds counts 10..30: 0.016 + 0.016 × 11/20.
    expect(histogramQuantile(d.all, 0.5)).toBeCloseTo(0.0248, 10);
    // Both full syncs lie in (0.256, 1.024]: the median is the first bucket's top.
    expect(histogramQuantile(d.full!, 0.5)).toBeCloseTo(0.512, 10);
    expect(histogramQuantile({ buckets: [{ le: Infinity, count: 0 }], sum: 0, count: 0 }, 0.5)).toBeNull();
    expect(() => histogramQuantile(d.all, 1.5)).toThrow(RangeError);
  });

  it('takes the difference of two readings, and refuses one taken across a restart', async () => {
    const text = await fixture();
    const before = kubeProxySyncDurations(text).partial!;
    const after = kubeProxySyncDurations(text.replace(/(partial_proxy_rules_duration_seconds_bucket\{ip_family="IPv4",le="(?:0\.064|0\.128|0\.256|0\.512|1\.024|2\.048|4\.096|8\.192|16\.384|\+Inf)"\}) 40/g, '$1 41')
      .replace('partial_proxy_rules_duration_seconds_sum{ip_family="IPv4"} 0.538', 'partial_proxy_rules_duration_seconds_sum{ip_family="IPv4"} 0.588')
      .replace('partial_proxy_rules_duration_seconds_count{ip_family="IPv4"} 40', 'partial_proxy_rules_duration_seconds_count{ip_family="IPv4"} 41')).partial!;
    const d = histogramDelta(after, before);
    expect(d.count).toBe(1);
    expect(d.sum).toBeCloseTo(0.05, 10);
    expect(histogramQuantile(d, 0.5)).toBeCloseTo(0.048, 10);
    expect(() => histogramDelta(before, after)).toThrow(/kube-proxy restarted/);
  });

  it('says what is wrong with a page that is not kube-proxy\'s, or not the format', async () => {
    expect(() => kubeProxySyncDurations('# HELP go_goroutines x\ngo_goroutines 12\n')).toThrow(/no kubeproxy_sync_proxy_rules_duration_seconds on this page/);
    expect(() => parseMetricsText('kubeproxy_x{le="1" 3\n')).toThrow(MetricsFormatError);
    expect(() => parseMetricsText('kubeproxy_x 3 4 5\n')).toThrow(/metrics line 1/);
    const noInf = (await fixture()).split('\n').filter((l) => !l.includes('sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="+Inf"}')).join('\n');
    expect(() => kubeProxySyncDurations(noInf)).toThrow(/up to le="\+Inf"/);
    // Unlabelled, as before 1.33.
    const old = (await fixture()).replaceAll('ip_family="IPv4",', '').replaceAll('{ip_family="IPv4"}', '');
    expect(kubeProxySyncDurations(old).all.count).toBe(42);
  });

  it('reads the page through a node\'s exec, and builds the Services the kind sweep applies', async () => {
    const text = await fixture();
    const seen: string[][] = [];
    const d = await readKubeProxySyncDurations({ exec: async (_node, argv) => { seen.push(argv); return { stdout: text }; } }, 'kind-worker');
    expect(seen).toEqual([['curl', '-sf', 'http://127.0.0.1:10249/metrics']]);
    expect(d.all.count).toBe(42);
    expect(bulkServices(3, 'httpbin').map((s) => s.metadata.name)).toEqual(['bulk-1', 'bulk-2', 'bulk-3']);
  });
});

/** A metrics page holding the three sync histograms, in kube-proxy's format. */
function page(h: { all: Histogram; full: Histogram; partial: Histogram }): string {
  const lines: string[] = [];
  for (const [key, name] of [['all', 'kubeproxy_sync_proxy_rules_duration_seconds'], ['full', 'kubeproxy_sync_full_proxy_rules_duration_seconds'], ['partial', 'kubeproxy_sync_partial_proxy_rules_duration_seconds']] as const) {
    lines.push(`# TYPE ${name} histogram`);
    for (const b of h[key].buckets) lines.push(`${name}_bucket{ip_family="IPv4",le="${b.le === Infinity ? '+Inf' : b.le}"} ${b.count}`);
    lines.push(`${name}_sum{ip_family="IPv4"} ${h[key].sum}`, `${name}_count{ip_family="IPv4"} ${h[key].count}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `n` more syncs of `s` seconds each. */
function more(h: Histogram, n: number, s: number): Histogram {
  return { buckets: h.buckets.map((b) => ({ le: b.le, count: b.count + (s <= b.le ? n : 0) })), sum: h.sum + n * s, count: h.count + n };
}

describe('the kind sweep\'s loop, on scripted metrics pages (kind cannot run here)', () => {
  it('creates Services up to each size, waits until kube-proxy stops syncing, and keeps what it timed in between', async () => {
    let h = kubeProxySyncDurations(await fixture()) as { all: Histogram; full: Histogram; partial: Histogram };
    const applied: number[] = [];
    let clock = 0;
    // After an apply of N Services kube-proxy runs two partial syncs of N/1000 s, one per read.
    let pending = 0;
    let each = 0;
    const deleted: Record<string, string>[] = [];
    const labels = new Set<string>();
    const lab = {
      name: 'kn-sweep',
      deleteServices: async (selector: Record<string, string>) => { deleted.push(selector); },
      exec: async () => {
        if (pending > 0) {
          pending--;
          h = { ...h, all: more(h.all, 1, each), partial: more(h.partial, 1, each) };
        }
        return { stdout: page(h) };
      },
      apply: async (objects: { metadata: { name: string; labels?: Record<string, string> } }[]) => {
        applied.push(objects.length);
        for (const o of objects) labels.add(JSON.stringify(o.metadata.labels));
        pending = 2;
        each = objects.length / 1000;
      },
    };
    const realNow = Date.now;
    Date.now = () => clock;
    try {
      const steps = await kindSyncSweep(lab, 'kind-worker', [100, 10], { quietMs: 1000, timeoutMs: 60_000, sleep: async (ms) => { clock += ms; } });
      expect(applied).toEqual([10, 100]);
      expect(steps.map((s) => [s.services, s.all.syncs, s.partial!.syncs, s.full!.syncs, s.settled])).toEqual([[10, 2, 2, 0, true], [100, 2, 2, 0, true]]);
      expect(steps[1].all.meanS).toBeCloseTo(0.1, 10);
      // Both of the 100-Service syncs (0.1 s) fall in the (0.064, 0.128] bucket.
      expect(steps[1].all.p50S).toBeCloseTo(0.096, 10);
      // Every Service carries the kit's label for this lab, and exactly those are deleted at the end.
      expect([...labels]).toEqual([JSON.stringify({ 'kube-netlab.io/scale-sweep': 'kn-sweep' })]);
      expect(deleted).toEqual([{ 'kube-netlab.io/scale-sweep': 'kn-sweep' }]);
    } finally {
      Date.now = realNow;
    }
  });
});

describe('on kind: real kube-proxy\'s histogram for N Services created through kubectl', async () => {
  const { kindUnavailable } = await import('../../lib/lab/kind/index.ts');
  const why = await kindUnavailable();
  it.skipIf(why !== null)(`counts the syncs kube-proxy timed for them${why ? ` (skipped: ${why})` : ''}`, async () => {
    const { createLab } = await import('../../lib/lab/create.ts');
    const { loadManifest } = await import('../../lib/lab/manifests.ts');
    const lab = await createLab({ backend: 'kind', mode: 'iptables', name: 'kn-metrics', workloads: await loadManifest('httpbin') }) as import('../../lib/lab/kind/index.ts').KindLab;
    try {
      const node = (await lab.nodes())[1].name;
      const steps = await kindSyncSweep(lab, node, [10, 100]);
      for (const s of steps) {
        expect(s.settled).toBe(true);
        expect(s.all.syncs).toBeGreaterThan(0);
        expect(s.all.p50S).toBeGreaterThan(0);
      }
    } finally {
      await lab.destroy();
    }
  }, 600_000);
});
