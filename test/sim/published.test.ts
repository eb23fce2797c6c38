import { describe, expect, it } from 'vitest';
import { PUBLISHED_CLAIMS, PUBLISHED_FIGURES, PUBLISHED_SOURCES, checkPublishedClaims, type ClaimCheckPoint } from '../../lib/sim/published.ts';

const sweep = (ipt: [number, number, number, number][], nft: [number, number, number][]): ClaimCheckPoint[] => [
  ...ipt.map(([services, firstP50Us, lastP50Us, changeMs]) => ({ mode: 'iptables', services, firstP50Us, lastP50Us, changeMs })),
  ...nft.map(([services, lastP50Us, changeMs]) => ({ mode: 'nftables', services, firstP50Us: lastP50Us, lastP50Us, changeMs })),
];
const verdicts = (points: ClaimCheckPoint[]) => Object.fromEntries(checkPublishedClaims(points).map((c) => [c.claim, c.holds]));

describe('published numbers and claims', () => {
  it('every figure and claim names a known source, and every source says how it was checked', () => {
    const ids = new Set(PUBLISHED_SOURCES.map((s) => s.id));
    for (const f of PUBLISHED_FIGURES) expect(ids.has(f.source)).toBe(true);
    for (const c of PUBLISHED_CLAIMS) expect(ids.has(c.source)).toBe(true);
    for (const s of PUBLISHED_SOURCES) {
      expect(['source-text', 'secondary']).toContain(s.verification);
      expect(s.url).toMatch(/^https:\/\//);
    }
  });

  it('a sweep shaped like the blog says agrees with every checkable claim', () => {
    const v = verdicts(sweep(
      [[100, 20, 25, 5], [5000, 22, 300, 60], [10000, 23, 600, 120]],
      [[100, 21, 3], [5000, 22, 3.5], [10000, 22, 3.6]],
    ));
    expect(v).toEqual({ 'iptables-latency-grows': true, 'nftables-flat': true, 'nftables-p50-vs-iptables-best': true, 'iptables-update-linear': true });
  });

  it('a sweep that contradicts the claims is reported as such, not bent to fit', () => {
    const v = verdicts(sweep(
      [[100, 20, 25, 5], [10000, 20, 24, 5]],
      [[100, 20, 3], [10000, 90, 30]],
    ));
    expect(v['iptables-latency-grows']).toBe(false);
    expect(v['nftables-flat']).toBe(false);
    expect(v['nftables-p50-vs-iptables-best']).toBe(false);
    expect(v['iptables-update-linear']).toBe(false);
  });

  it('differences inside the noise do not count as agreement', () => {
    const v = verdicts(sweep(
      [[100, 300, 310, 50], [1000, 305, 320, 80]],
      [[100, 300, 40], [1000, 300, 60]],
    ));
    expect(v['iptables-latency-grows']).toBe(false);
    expect(v['iptables-update-linear']).toBe(false);
  });

  it('compares update growth only over sizes both modes measured', () => {
    const checks = checkPublishedClaims(sweep(
      [[10, 20, 25, 50], [1000, 22, 300, 100]],
      [[10, 21, 50], [1000, 22, 60], [5000, 22, 400]],
    ));
    expect(checks.find((c) => c.claim === 'iptables-update-linear')!.evidence).toContain('10→1000 Services: iptables ×2.0, nftables ×1.2');
  });

  it('says it cannot tell when the sweep lacks the sizes or modes', () => {
    const checks = checkPublishedClaims(sweep([[100, 20, 25, 5]], []));
    expect(checks.every((c) => c.holds === null)).toBe(true);
    expect(checks.find((c) => c.claim === 'nftables-p50-vs-iptables-best')!.evidence).toContain('5,000 or 10,000');
  });
});
