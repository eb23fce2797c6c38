/**
 * A traffic measurement as a table: per pod what answered, what the kernel counted, and what the
 * model predicted, one row per endpoint in kube-proxy's order.
 */
import type { TrafficMeasurement } from '../traffic/index.ts';
import { showTable } from './show.ts';

/** The columns of tallyRows. */
export function tallyHeader(m: TrafficMeasurement): string[] {
  const sep = m.countedOn.length > 1 ? `KUBE-SEP packets (sum of ${m.countedOn.length} nodes)` : 'KUBE-SEP packets';
  return ['pod', 'node', 'measured', sep, 'conntrack', 'predicted', '95% interval'];
}

/** One row per pod; a count the measurement could not read is empty (its reason is in m.skipped). */
export function tallyRows(m: TrafficMeasurement): (string | number)[][] {
  const shares = m.prediction.split.shares;
  return m.byPod.map((p, i) => [
    p.pod, p.node, p.answers, p.sepPackets ?? '', p.conntrack ?? '',
    shares[i].expected.toFixed(0), `${shares[i].low}–${shares[i].high}`,
  ]);
}

/** Show the tally under `caption`, and say which cross-checks were skipped and why. */
export function showTally(caption: string, m: TrafficMeasurement): void {
  showTable(caption, tallyHeader(m), tallyRows(m));
  for (const why of m.skipped) console.log(`not cross-checked: ${why}`);
}
