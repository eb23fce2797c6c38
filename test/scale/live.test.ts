import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { formatScaleTable, scaleLegend, scaleNotes, scaleTable, type ScaleResult } from '../../lib/scale/index.ts';
import {
  claimCheckPoints, countMismatches, namespacesNamed, progressLine, scaleCommandLine, sweepModes, unsoundLatencies,
} from '../../lib/scale/live.ts';
import { RECORDED_RESULTS, readRecordedScale } from '../../lib/scale/recorded.ts';
import { withNetns } from '../helpers/netns.ts';

let dir: string;
let recorded: ScaleResult;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kn-scale-live-'));
  const r = await readRecordedScale();
  if (!r) throw new Error(`${RECORDED_RESULTS} holds no scale sweep: these tests read the recorded one`);
  recorded = r.result;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The recorded sweep with one point changed. */
function withPoint(i: number, change: (p: ScaleResult['points'][number]) => ScaleResult['points'][number]): ScaleResult {
  return { ...recorded, points: recorded.points.map((p, k) => (k === i ? change(structuredClone(p)) : p)) };
}

describe('a live sweep, as a notebook runs it', () => {
  it('times IPVS only where the kernel has IP_VS, and says why it is left out', async () => {
    expect(sweepModes(join(dir, 'no-ip_vs'))).toEqual({
      modes: ['iptables', 'nftables'],
      note: `IPVS is left out: this kernel has no IP_VS (${join(dir, 'no-ip_vs')} is absent), so its virtual servers cannot be loaded or timed`,
    });
    await writeFile(join(dir, 'ip_vs'), '');
    expect(sweepModes(join(dir, 'ip_vs'))).toEqual({ modes: ['iptables', 'ipvs', 'nftables'], note: null });
  });

  it('prints the command line that runs the same sweep', () => {
    expect(scaleCommandLine({ modes: ['iptables', 'nftables'], services: [10, 100, 1000], endpoints: 10, samples: 100, repeats: 2, fitMaxServices: 100 }))
      .toBe('npx kube-netlab scale --modes iptables,nftables --services 10,100,1000 --endpoints 10 --samples 100 --repeats 2 --fit-max 100');
    expect(scaleCommandLine({ modes: ['nftables'], services: [10], endpoints: 3 })).toBe('npx kube-netlab scale --modes nftables --services 10 --endpoints 3');
  });

  it('says a line when a step starts or is skipped, nothing for the phases between', () => {
    const e = { step: 2, steps: 6, mode: 'iptables' as const, variant: 'iptables-legacy', services: 100, endpoints: 10, message: '3,205 nat rules' };
    expect(progressLine({ ...e, phase: 'step' })).toBe('[2/6] iptables-legacy, 100 services × 10 endpoints: 3,205 nat rules');
    expect(progressLine({ ...e, phase: 'sync' })).toBeNull();
    expect(progressLine({ ...e, phase: 'done', message: 'skipped: too slow' })).toBe('[2/6] iptables-legacy, 100 services: skipped: too slow');
    expect(progressLine({ ...e, phase: 'done', message: 'done in 3 s' })).toBeNull();
  });

  it('finds no fault in a sound sweep, and names the step of each fault it finds', () => {
    expect(countMismatches(recorded)).toEqual([]);
    expect(unsoundLatencies(recorded)).toEqual([]);
    const p0 = { ...recorded.points[0], mode: recorded.points[0].variant };
    expect(countMismatches(withPoint(0, (p) => ({ ...p, measured: { ...p.measured, countsMatch: false } })))).toEqual([`${p0.mode} ${p0.services}`]);
    const slow = withPoint(0, (p) => ({ ...p, measured: { ...p.measured, lastServiceLatencyUs: { ...p.measured.lastServiceLatencyUs!, p50: 500, p99: 400 } } }));
    expect(unsoundLatencies(slow)).toEqual([`${p0.mode} ${p0.services}, last service: p99 400 µs is below p50 500 µs`]);
    const zero = withPoint(0, (p) => ({ ...p, measured: { ...p.measured, firstServiceLatencyUs: { ...p.measured.firstServiceLatencyUs!, p50: 0 } } }));
    expect(unsoundLatencies(zero)).toEqual([`${p0.mode} ${p0.services}, first service: p50 0 µs is not positive`]);
  });

  it('hands the published-claim checks what they read of each point, with iptables on the backend asked for', () => {
    expect(() => claimCheckPoints(recorded)).toThrow(/the sweep ran iptables on legacy and nft: say which backend the claims are checked on/);
    const points = claimCheckPoints(recorded, 'legacy');
    expect(points).toHaveLength(recorded.points.filter((p) => p.variant !== 'iptables-nft').length);
    const p = recorded.points[0];
    expect(p.variant).toBe('iptables-legacy');
    expect(points[0]).toEqual({
      mode: p.mode, services: p.services, firstP50Us: p.measured.firstServiceLatencyUs?.p50, lastP50Us: p.measured.lastServiceLatencyUs?.p50,
      syncMs: p.measured.syncMs, changeMs: p.measured.changeMs ?? undefined,
    });
  });

  it('lists the namespaces a sweep left, by prefix', async () => {
    await withNetns(async (ns) => {
      const prefix = ns.name.slice(0, ns.name.lastIndexOf('-'));
      expect(await namespacesNamed(runner, ns.name)).toEqual([ns.name]);
      expect(await namespacesNamed(runner, prefix)).toContain(ns.name);
      expect(await namespacesNamed(runner, `${ns.name}-not-there`)).toEqual([]);
    });
  });
});

describe('the sweep as tables', () => {
  it('has one row per step under a caption, and formatScaleTable is caption, legend, table and notes', () => {
    const t = scaleTable(recorded);
    expect(t.header).toEqual(['mode', 'services', 'fit', 'sync ms', 'change ms', 'first svc p50/p99 µs', 'last svc p50/p99 µs', 'kernel = lib/sim']);
    expect(t.rows).toHaveLength(recorded.points.length);
    expect(t.caption).toBe(`kube-proxy at scale: ${recorded.options.endpoints} endpoints per service, pod subnet ${recorded.options.podSubnet}, kernel ${recorded.kernel}`);
    expect(t.rows[0].slice(0, 3)).toEqual([recorded.points[0].variant, String(recorded.points[0].services), recorded.points[0].predicted.inFit ? 'in' : 'out']);
    const text = formatScaleTable(recorded);
    expect(text.startsWith(`${t.caption}\n${scaleLegend(recorded).join('\n')}\n\nmode  `)).toBe(true);
    expect(text.endsWith(scaleNotes(recorded))).toBe(true);
    expect(scaleNotes(recorded)).toMatch(/^Model, least squares per mode and iptables backend/);
    expect(scaleNotes(recorded)).toContain('\n  iptables-legacy (fitted on 10, 100, 1000 services)\n');
    expect(scaleNotes(recorded)).toContain('every namespace the sweep made is gone.');
  });
});

describe('readRecordedScale', () => {
  it('reads what npm run bench recorded: the command, when, the machine and the sweep', async () => {
    const r = (await readRecordedScale())!;
    expect(r.command).toMatch(/^npx kube-netlab scale /);
    expect(r.at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(r.machine.cores).toBeGreaterThan(0);
    expect(r.result.points.length).toBeGreaterThan(0);
  });

  it('returns null when nothing was recorded, and names a file that is not a benchmark record', async () => {
    expect(await readRecordedScale(join(dir, 'missing.json'))).toBeNull();
    await writeFile(join(dir, 'other.json'), JSON.stringify({ benchmarks: { core: {} } }));
    expect(await readRecordedScale(join(dir, 'other.json'))).toBeNull();
    await writeFile(join(dir, 'bad.json'), '{ not json');
    await expect(readRecordedScale(join(dir, 'bad.json'))).rejects.toThrow(`${join(dir, 'bad.json')}: not JSON`);
    await writeFile(join(dir, 'odd.json'), JSON.stringify({ benchmarks: { scale: { command: 'x', at: 'y', result: { points: 3 } } } }));
    await expect(readRecordedScale(join(dir, 'odd.json'))).rejects.toThrow('benchmarks.scale.result is not a scale sweep (points, options, model); run `npm run bench` to write it again');
  });
});
