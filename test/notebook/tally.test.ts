import { describe, expect, it } from 'vitest';
import { inPod, onNode } from '../../lib/notebook/run-on.ts';
import { tallyHeader, tallyRows } from '../../lib/notebook/tally.ts';
import { trafficMeasurement } from '../plot/data.ts';

describe('shell prefixes for the commands a notebook prints', () => {
  it('runs on a node or in a pod the way each backend does', () => {
    const netns = { name: 'nb07', backend: 'netns' as const };
    const kind = { name: 'nb07', backend: 'kind' as const };
    expect(onNode(netns, 'nb07-worker')).toBe('ip netns exec kn-nb07.nb07-worker');
    expect(inPod(netns, 'curl-abc')).toBe('ip netns exec kn-nb07.pod.curl-abc');
    expect(onNode(kind, 'nb07-worker')).toBe('docker exec nb07-worker');
    expect(inPod(kind, 'curl-abc')).toBe('kubectl --context kind-nb07 exec curl-abc --');
  });
});

describe('a traffic measurement as a table', () => {
  it('has one row per pod: answers, kernel counts, prediction and its interval', () => {
    const m = trafficMeasurement(300);
    const rows = tallyRows(m);
    expect(tallyHeader(m)).toEqual(['pod', 'node', 'measured', 'KUBE-SEP packets', 'conntrack', 'predicted', '95% interval']);
    expect(rows).toHaveLength(m.byPod.length);
    const s = m.prediction.split.shares[0];
    expect(rows[0]).toEqual([m.byPod[0].pod, m.byPod[0].node, m.byPod[0].answers, m.byPod[0].sepPackets, m.byPod[0].conntrack, '100', `${s.low}–${s.high}`]);
  });

  it('leaves a count it could not read empty, and says when counters were summed over nodes', () => {
    const m = { ...trafficMeasurement(300), countedOn: ['a', 'b', 'c'] };
    m.byPod = m.byPod.map((p) => ({ ...p, conntrack: null }));
    expect(tallyHeader(m)[3]).toBe('KUBE-SEP packets (sum of 3 nodes)');
    expect(tallyRows(m).every((r) => r[4] === '')).toBe(true);
  });
});
