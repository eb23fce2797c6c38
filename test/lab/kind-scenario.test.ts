import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureNode, parsedOf } from '../../lib/capture/index.ts';
import { runner } from '../../lib/exec/index.ts';
import { cidrContains, parseIpv4Cidr } from '../../lib/k8s/addresses.ts';
import { createLab, openLab, removeLab } from '../../lib/lab/create.ts';
import { kindUnavailable } from '../../lib/lab/kind/index.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { netnsUnavailable } from '../../lib/lab/netns/index.ts';
import type { Backend, Lab } from '../../lib/lab/types.ts';
import { findChain, findTable, type IptablesSave } from '../../lib/parse/index.ts';
import { measureTraffic } from '../../lib/traffic/index.ts';
import { testRunTag } from '../helpers/netns.ts';

// One scenario, written once against the Lab interface, run on every backend this machine can
// run: the netns half runs here; the kind half needs Docker and kind, and skips, saying why, where
// a real probe finds them missing.

const POD_NET = parseIpv4Cidr('10.244.0.0/16');
const SERVICE_NET = parseIpv4Cidr('10.96.0.0/16');

/** Why the kind half can't run here, found by asking docker and kind themselves. */
async function kindSkipReason(): Promise<string | null> {
  const why = await kindUnavailable(runner);
  if (why !== null) return why;
  // kind creates the docker network `kind` with its first cluster and keeps it: a first cluster
  // made by this test would change the host's links and rules for good, failing host-invariance.
  const net = await runner.run(['docker', 'network', 'inspect', 'kind'], { allowFailure: true, timeoutMs: 10_000 });
  if (net.exitCode !== 0) return 'the docker network "kind" does not exist yet; create and delete any kind cluster once, then rerun';
  return null;
}

const BACKENDS: { backend: Backend; skip: string | null }[] = [
  { backend: 'netns', skip: await netnsUnavailable(runner) },
  { backend: 'kind', skip: await kindSkipReason() },
];
for (const b of BACKENDS) if (b.skip !== null) console.log(`skipped the workshop scenario on ${b.backend}: ${b.skip}`);

describe.each(BACKENDS)('the workshop scenario through the Lab interface, on $backend', ({ backend, skip }) => {
  // kind boots real nodes and pulls images: minutes, not seconds.
  const slow = backend === 'kind' ? 15 * 60_000 : 60_000;
  const name = `ks${backend.slice(0, 1)}-${testRunTag()}`.slice(0, 15);
  let lab: Lab;

  beforeAll(async () => {
    if (skip !== null) return;
    lab = await createLab({ backend, mode: 'iptables', name, runner });
  }, slow);
  afterAll(async () => {
    if (skip === null) await removeLab(name, backend, runner);
  }, slow);

  it.skipIf(skip !== null)('has a control plane and two workers, each with its own /24 of the pod network', async () => {
    const nodes = await lab.nodes();
    expect(nodes.map((n) => n.role)).toEqual(['control-plane', 'worker', 'worker']);
    expect(new Set(nodes.map((n) => n.ip)).size).toBe(3);
    expect(new Set(nodes.map((n) => n.podCIDR)).size).toBe(3);
    for (const n of nodes) {
      expect(n.podCIDR).toMatch(/\/24$/);
      expect(cidrContains(POD_NET, n.podCIDR.split('/')[0])).toBe(true);
    }
  });

  it.skipIf(skip !== null)('deploys httpbin and curl, and every node\'s kube-proxy programs httpbin', async () => {
    const reports = await lab.apply([...(await loadManifest('httpbin')), ...(await loadManifest('curl'))]);
    expect(reports.map((r) => r.node).sort()).toEqual((await lab.nodes()).map((n) => n.name).sort());
    for (const r of reports) {
      expect(r.mode).toBe('iptables');
      expect(r.added.some((l) => l.includes('KUBE-SVC-FREKB6WNWYJLKTHC'))).toBe(true);
    }
  }, slow);

  it.skipIf(skip !== null)('lists pods on the pod network only, each inside its node\'s CIDR, httpbin on the workers', async () => {
    const nodes = await lab.nodes();
    const pods = await lab.pods();
    for (const p of pods) {
      const node = nodes.find((n) => n.name === p.node)!;
      expect(cidrContains(parseIpv4Cidr(node.podCIDR), p.ip), `${p.namespace}/${p.name} ${p.ip} on ${p.node}`).toBe(true);
    }
    const httpbin = await lab.pods({ app: 'httpbin' });
    expect(httpbin.filter((p) => p.ready)).toHaveLength(3);
    const workers = new Set(nodes.filter((n) => n.role === 'worker').map((n) => n.name));
    expect(httpbin.every((p) => workers.has(p.node))).toBe(true);
    expect((await lab.pods({ app: 'curl' })).filter((p) => p.ready)).toHaveLength(1);
  });

  it.skipIf(skip !== null)('reads back Services (whatever ClusterIP each got) and httpbin\'s endpoints', async () => {
    const services = await lab.services();
    const svc = (ns: string, n: string) => services.find((s) => s.namespace === ns && s.name === n)!;
    expect(svc('default', 'kubernetes').clusterIP).toBe('10.96.0.1');
    expect(svc('kube-system', 'kube-dns').clusterIP).toBe('10.96.0.10');
    const httpbin = svc('default', 'httpbin');
    expect(cidrContains(SERVICE_NET, httpbin.clusterIP)).toBe(true);
    expect(httpbin.ports.map((p) => [p.name, p.protocol, p.port, p.targetPort])).toEqual([['http', 'TCP', 8000, 8080]]);
    const slices = (await lab.endpointSlices()).filter((s) => s.serviceName === 'httpbin' && s.namespace === 'default');
    const ips = slices.flatMap((s) => s.endpoints.flatMap((e) => e.addresses)).sort();
    expect(ips).toEqual((await lab.pods({ app: 'httpbin' })).map((p) => p.ip).sort());
  });

  it.skipIf(skip !== null)('holds httpbin\'s chains in the client node\'s kernel, captured with provenance', async () => {
    const client = (await lab.pods({ app: 'curl' }))[0];
    const cap = await captureNode((argv, o) => lab.exec(client.node, argv, o), { backend, mode: 'iptables', node: client.node, lab: name }, ['iptables-save']);
    expect(cap.provenance).toMatchObject({ source: 'captured', backend, mode: 'iptables', node: client.node });
    const nat = findTable(parsedOf(cap, 'iptables-save') as IptablesSave, 'nat')!;
    expect(findChain(nat, 'KUBE-SVC-FREKB6WNWYJLKTHC')?.rules).toHaveLength(4); // masquerade + 3 endpoints
  });

  it.skipIf(skip !== null)('splits requests over the three pods as predicted, and the kernel counted the same', async () => {
    const m = await measureTraffic(lab, { requests: 300, concurrency: 10 });
    expect(m.provenance).toMatchObject({ source: 'measured', backend, mode: 'iptables' });
    expect(m.ok).toBe(300);
    expect(m.byPod).toHaveLength(3);
    // A correct prediction fails this 1 time in 1000.
    expect(m.chiSquare!.pValue).toBeGreaterThan(0.001);
    for (const p of m.byPod) {
      expect(p.answers).toBeGreaterThan(0);
      expect(p.sepPackets).toBe(p.answers);
      expect(p.conntrack).toBeLessThanOrEqual(p.answers + 3);
      expect(p.conntrack).toBeGreaterThan(p.answers * 0.9);
    }
  }, slow);

  it.skipIf(skip !== null)('scales to four, re-syncs every node, and the new pod takes traffic', async () => {
    const reports = await lab.scale('httpbin', 4);
    expect(reports).toHaveLength(3);
    for (const r of reports) expect(r.added.length).toBeGreaterThan(0);
    expect((await lab.pods({ app: 'httpbin' })).filter((p) => p.ready)).toHaveLength(4);
    const m = await measureTraffic(lab, { requests: 200, concurrency: 10 });
    expect(m.byPod).toHaveLength(4);
    expect(m.byPod.every((p) => p.answers > 0)).toBe(true);
  }, slow);

  it.skipIf(skip !== null)('goes away completely', async () => {
    await lab.destroy();
    await expect(openLab(name, backend, runner)).rejects.toThrow(/no (netns lab|kind cluster) named/);
    // Found by name: nothing left to remove.
    expect(await removeLab(name, backend, runner)).toEqual([]);
  }, slow);
});
