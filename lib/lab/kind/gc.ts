/**
 * `kube-netlab gc` for kind: delete the clusters kube-netlab began to create and whose creator
 * died before `kind create` returned (half-made, or finished by a kind that outlived it), and
 * forget records of clusters that are gone. The rules are decideGc's (state.ts); this runs them.
 */
import { runner as defaultRunner, type Runner } from '../../exec/index.ts';
import { kindGetClusters, parseKindClusters } from './commands.ts';
import { deleteUntilGone, kindClustersUnavailable, readMarkers } from './index.ts';
import {
  creatorLiveness, decideGc, listKindRecords, removeKindRecord, thisHost, type GcDecision, type HostProbe,
} from './state.ts';

export interface KindGcReport {
  /** Why kind clusters were not looked at (docker or kind can't run here), or null. */
  skipped: string | null;
  /** Clusters deleted. */
  deleted: string[];
  /** One per kind cluster and per record, in name order. */
  decisions: GcDecision[];
}

export async function gcKind(r: Runner = defaultRunner, probe: HostProbe = thisHost): Promise<KindGcReport> {
  const records = await listKindRecords();
  const why = await kindClustersUnavailable(r);
  if (why !== null) {
    const held = records.length ? ` (${records.length} kube-netlab kind lab record${records.length === 1 ? '' : 's'} left unchecked: ${records.map((x) => x.name).join(', ')})` : '';
    return { skipped: `${why}${held}`, deleted: [], decisions: [] };
  }
  const clusters = parseKindClusters((await r.run(kindGetClusters(), { timeoutMs: 10_000 })).stdout);
  const names = [...new Set([...clusters, ...records.map((x) => x.name)])].sort();
  const report: KindGcReport = { skipped: null, deleted: [], decisions: [] };
  for (const name of names) {
    const record = records.find((x) => x.name === name) ?? null;
    const exists = clusters.includes(name);
    // Only clusters with a record are looked into; the user's own are not even read.
    const markers = record && exists ? await readMarkers(r, name) : [];
    const ageMs = record ? Date.now() - Date.parse(record.createdAt) : undefined;
    let d = decideGc({
      name, exists, record, creator: record ? creatorLiveness(record.creator, probe) : null, holder: record?.heldBy ? creatorLiveness(record.heldBy, probe) : null, markers,
      ageMs: Number.isFinite(ageMs) ? ageMs : undefined,
    });
    if (d.action === 'delete') {
      // Its creator died, but the kind it ran may still be adding nodes: delete until none come back.
      if (await deleteUntilGone(r, name, record?.owner)) {
        await removeKindRecord(name);
        report.deleted.push(name);
      } else {
        d = { name, action: 'keep', why: `${d.why}, but \`kind delete cluster --name ${name}\` failed or its nodes kept coming back: \`kube-netlab gc\` retries` };
      }
    } else if (d.action === 'forget') {
      await removeKindRecord(name);
    }
    report.decisions.push(d);
  }
  return report;
}
