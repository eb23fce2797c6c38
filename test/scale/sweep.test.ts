import { beforeAll, describe, expect, it } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { runScaleSweep, type ScaleProgress, type ScaleResult } from '../../lib/scale/index.ts';
import { ipvsSkipReason, testRunTag } from '../helpers/netns.ts';

const PREFIX = `kn-test-${testRunTag()}-scale`;

async function myNamespaces(): Promise<string[]> {
  const out = await runner.run(['ip', 'netns', 'list']);
  return out.stdout.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(`${PREFIX}-${process.pid}-`));
}

/** Processes whose command line names the namespace (the probe server's ready file does). */
async function processesNaming(ns: string): Promise<string> {
  const r = await runner.run(['pgrep', '-af', ns], { allowFailure: true });
  return r.stdout.split('\n').filter((l) => l && !l.includes('pgrep')).join('\n');
}

describe('the scale sweep, for real in the kernel', () => {
  let result: ScaleResult;
  const events: ScaleProgress[] = [];

  beforeAll(async () => {
    result = await runScaleSweep({
      modes: ['iptables', 'nftables', 'ipvs'], iptablesBackends: ['legacy', 'nft'], services: [10, 50], endpoints: 4, samples: 30, repeats: 2,
      netnsPrefix: PREFIX, onProgress: (e) => events.push(e),
    });
  }, 180_000);

  it('has the JSON shape: points of mode, backend, variant, services, endpoints, measured, predicted', () => {
    // iptables and ipvs on each backend, nftables on none: 5 variants × 2 sizes.
    expect(result.points.map((p) => `${p.variant} ${p.services}`)).toEqual([
      'iptables-legacy 10', 'iptables-legacy 50', 'iptables-nft 10', 'iptables-nft 50', 'nftables 10', 'nftables 50', 'ipvs-legacy 10', 'ipvs-legacy 50', 'ipvs-nft 10', 'ipvs-nft 50',
    ]);
    for (const p of result.points) expect(Object.keys(p)).toEqual(['mode', 'iptablesBackend', 'variant', 'services', 'endpoints', 'measured', 'predicted']);
    expect(result.points.map((p) => p.iptablesBackend)).toEqual(['legacy', 'legacy', 'nft', 'nft', null, null, 'legacy', 'legacy', 'nft', 'nft']);
    const json = JSON.parse(JSON.stringify(result));
    expect(json.points[0].measured).toHaveProperty('syncMs');
    expect(json.points[0].measured).toHaveProperty('changeMs');
    expect(json.points[0].measured.firstServiceLatencyUs).toHaveProperty('p50');
    expect(json.points[0].measured.lastServiceLatencyUs).toHaveProperty('p99');
    expect(json.points[0].predicted).toHaveProperty('counts');
    expect(result.kernel).toMatch(/^\d+\.\d+/);
    expect(result.tools['iptables-legacy']).toMatch(/iptables v.* \(legacy\)/);
    expect(result.tools['iptables-nft']).toMatch(/iptables v.* \(nf_tables\)/);
    expect(result.tools.nft).toMatch(/nftables v/);
  });

  it('counts in the kernel equal lib/sim\'s prediction exactly', () => {
    for (const p of result.points) {
      expect(p.measured.countsMatch, `${p.mode} ${p.services}`).toBe(true);
      if (p.mode === 'iptables') expect(p.measured.kernel.iptables).toEqual(p.predicted.counts.iptables);
      if (p.mode === 'nftables') expect(p.measured.kernel.nftables).toEqual(p.predicted.counts.nftables);
      if (p.mode === 'ipvs') {
        expect(p.measured.kernel.ipvs!.ipsetMembers).toEqual(p.predicted.counts.ipvs!.ipsetMembers);
        expect(p.measured.kernel.ipvs!.iptables).toEqual(p.predicted.counts.ipvs!.iptables);
      }
    }
    const ipt = result.points.find((p) => p.mode === 'iptables' && p.services === 50)!;
    expect(ipt.measured.kernel.iptables!.nat.rules).toBe(5 + 50 * (2 + 3 * 4));
  });

  it('times syncs and changes, median of the repeats', () => {
    for (const p of result.points) {
      expect(p.measured.syncSamplesMs).toHaveLength(2);
      expect(p.measured.changeSamplesMs).toHaveLength(2);
      expect(p.measured.syncMs).toBeGreaterThan(0);
      expect(p.measured.firstSyncMs).toBeGreaterThan(0);
      expect(p.measured.changeMs).toBeGreaterThan(0);
      expect(p.measured.toolStartMs).toBeGreaterThan(0);
      expect(p.measured.changeMethod.length).toBeGreaterThan(20);
      expect(p.measured.provenance).toMatchObject({ source: 'measured', backend: 'netns', mode: p.mode, node: 'kind-worker' });
      expect(p.predicted.provenance).toMatchObject({ source: 'predicted', backend: null, mode: p.mode });
    }
  });

  it('measures first-packet latency through a verified DNAT, to the first and the last service', () => {
    for (const p of result.points.filter((x) => x.mode !== 'ipvs')) {
      const { firstServiceLatencyUs: f, lastServiceLatencyUs: l } = p.measured;
      for (const x of [f!, l!]) {
        expect(x.p50).toBeGreaterThan(0);
        expect(x.p99).toBeGreaterThanOrEqual(x.p50);
        expect(x.samples).toBe(30);
        expect(x.dnatVerified).toBe(true);
        expect(x.endpointsReached).toBeGreaterThanOrEqual(2);
        expect(x.endpointsReached).toBeLessThanOrEqual(4);
      }
      expect([f!.position, l!.position]).toEqual([1, p.services]);
      expect([f!.service, l!.service]).toEqual(['default/svc-01:http', `default/svc-${p.services}:http`]);
      expect(l!.clusterIP).not.toBe(f!.clusterIP);
    }
  });

  it.skipIf(ipvsSkipReason() === null)('IPVS: without IP_VS the latency and ipvsadm parts are skipped, with the reason', () => {
    const reason = ipvsSkipReason();
    console.log(`IPVS latency and virtual servers skipped: ${reason}`);
    for (const p of result.points.filter((x) => x.mode === 'ipvs')) {
      expect(p.measured.firstServiceLatencyUs).toBeNull();
      expect(p.measured.lastServiceLatencyUs).toBeNull();
      expect(p.measured.kernel.ipvs!.virtualServers).toBeNull();
      expect(p.measured.skipped.map((s) => s.what)).toEqual(['ipvsadm -R (virtual and real servers)', 'first-packet latency']);
      for (const s of p.measured.skipped) expect(s.reason).toContain('/proc/net/ip_vs is absent');
      expect(p.predicted.firstServiceLatencyUs).toBeNull();
    }
  });

  it.skipIf(ipvsSkipReason() !== null)('IPVS: virtual servers are counted and latency measured where the kernel has IP_VS', () => {
    for (const p of result.points.filter((x) => x.mode === 'ipvs')) {
      expect(p.measured.kernel.ipvs!.virtualServers).toBe(p.predicted.counts.ipvs!.virtualServers);
      expect(p.measured.kernel.ipvs!.realServers).toBe(p.predicted.counts.ipvs!.realServers);
      expect(p.measured.lastServiceLatencyUs!.dnatVerified).toBe(true);
    }
  });
  if (ipvsSkipReason()) console.log(`skipping the IP_VS-kernel check: ${ipvsSkipReason()}`);

  it('fits the model on the sizes it measured: with two sizes the line passes through both', () => {
    for (const p of result.points) {
      expect(p.predicted.inFit).toBe(true);
      expect(p.predicted.syncMs).toBeCloseTo(p.measured.syncMs, 6);
      expect(p.predicted.changeMs).toBeCloseTo(p.measured.changeMs!, 6);
    }
    expect(Object.keys(result.model.modes)).toEqual(['iptables-legacy', 'iptables-nft', 'nftables', 'ipvs-legacy', 'ipvs-nft']);
    const m = result.model.modes['iptables-legacy']!;
    expect(m.fittedOn).toEqual([10, 50]);
    expect(m.latencyP50Us!.n).toBe(4);
    expect(result.model.modes.nftables!.latencyP50Us!.slope).toBe(0);
  });

  it('reports progress per step and phase, and leaves no namespace behind', async () => {
    expect(events.filter((e) => e.phase === 'step').map((e) => `${e.step}/${e.steps} ${e.variant} ${e.services}`)).toEqual([
      '1/10 iptables-legacy 10', '2/10 iptables-legacy 50', '3/10 iptables-nft 10', '4/10 iptables-nft 50', '5/10 nftables 10', '6/10 nftables 50',
      '7/10 ipvs-legacy 10', '8/10 ipvs-legacy 50', '9/10 ipvs-nft 10', '10/10 ipvs-nft 50',
    ]);
    expect(new Set(events.map((e) => e.phase))).toEqual(new Set(['step', 'sync', 'counts', 'change', 'latency', 'done']));
    for (const p of result.points) expect(p.measured.netns.startsWith(`${PREFIX}-${process.pid}-`)).toBe(true);
    expect(await myNamespaces()).toEqual([]);
    for (const p of result.points) expect(await processesNaming(p.measured.netns)).toBe('');
  });
});

describe('repetitions', () => {
  it('stop once a measurement has used its budget, keeping one', async () => {
    const r = await runScaleSweep({ modes: ['nftables'], services: [5], endpoints: 2, samples: 5, repeats: 5, repeatBudgetMs: 0, netnsPrefix: PREFIX });
    expect(r.points[0].measured.syncSamplesMs).toHaveLength(1);
    expect(r.points[0].measured.changeSamplesMs).toHaveLength(1);
    expect(r.options.repeatBudgetMs).toBe(0);
  }, 60_000);
});

describe('aborting the sweep', () => {
  it('between commands: rejects with the reason and deletes the step\'s namespace', async () => {
    const ac = new AbortController();
    const steps: number[] = [];
    const run = runScaleSweep({
      modes: ['iptables'], services: [10, 20, 30], endpoints: 3, samples: 10, repeats: 1, netnsPrefix: PREFIX, signal: ac.signal,
      onProgress: (e) => {
        if (e.phase === 'step') steps.push(e.step);
        if (e.step === 2 && e.phase === 'change') ac.abort(new Error('stop at step 2'));
      },
    });
    await expect(run).rejects.toThrow('stop at step 2');
    expect(steps).toEqual([1, 2]);
    expect(await myNamespaces()).toEqual([]);
  }, 60_000);

  it('in the middle of the latency run: kills the client and the server, deletes the namespace', async () => {
    const ac = new AbortController();
    let ns = '';
    const run = runScaleSweep({
      modes: ['nftables'], services: [10], endpoints: 3, samples: 5000, repeats: 1, netnsPrefix: PREFIX, signal: ac.signal,
      onProgress: (e) => {
        if (e.phase === 'latency') {
          ns = e.netns!;
          setTimeout(() => ac.abort(new Error('stop mid-latency')), 700);
        }
      },
    });
    await expect(run).rejects.toThrow('stop mid-latency');
    expect(ns).not.toBe('');
    expect(await myNamespaces()).toEqual([]);
    expect(await processesNaming(ns)).toBe('');
  }, 60_000);

  it('before it starts: no namespace is made', async () => {
    const ac = new AbortController();
    ac.abort(new Error('never mind'));
    await expect(runScaleSweep({ modes: ['iptables'], services: [10], endpoints: 3, netnsPrefix: PREFIX, signal: ac.signal })).rejects.toThrow('never mind');
    expect(await myNamespaces()).toEqual([]);
  });
});

describe('each step empties its tables before its namespace goes', () => {
  it('flushes iptables (through the step\'s backend) and nftables, so the kernel\'s teardown does not spill into the next step', async () => {
    const echoed: string[] = [];
    await runScaleSweep({
      modes: ['iptables', 'nftables'], iptablesBackends: ['legacy'], services: [5], endpoints: 2, samples: 5, repeats: 1,
      netnsPrefix: PREFIX, echo: (c) => echoed.push(c),
    });
    const inStep = (tool: string) => echoed.filter((c) => new RegExp(` ${tool}( |$)`).test(c));
    // The last legacy restore of the iptables step is the bare one (no --noflush): it empties the tables.
    expect(inStep('iptables-legacy-restore').at(-1)).toMatch(/ iptables-legacy-restore( <.*)?$/);
    expect(inStep('iptables-legacy-restore').at(-1)).not.toContain('--noflush');
    expect(echoed.some((c) => c.endsWith(' nft flush ruleset'))).toBe(true);
    expect(await myNamespaces()).toEqual([]);
  }, 60_000);
});
