import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { createLab, removeLab } from '../../lib/lab/create.ts';
import { netnsUnavailable } from '../../lib/lab/netns/index.ts';
import { runCli, startCli } from '../helpers/cli-process.ts';
import { testRunTag } from '../helpers/netns.ts';
import { fakeToolchain, type FakeToolchain } from './kind-fakes.ts';

// `kube-netlab scale --kind NAME` as a user runs it: the real CLI in its own process, on a kind
// lab brought up with `up --backend kind` through the fake kind/kubectl/docker (no kind here).
// The fake kube-proxy's metrics page grows by two 0.1 s partial syncs after each apply.

const netnsSkip = await netnsUnavailable(runner);
let tmp: string;
let fake: FakeToolchain;
const FIX = new URL('../fixtures/', import.meta.url);
const LABEL = 'kube-netlab.io/scale-sweep';
// Services that are not this lab's sweep's: httpbin, and another lab's sweep (a label value that
// only starts like ours).
const OTHERS = ['httpbin {"app":"httpbin"}', `other-1 {"${LABEL}":"netlab2"}`];

const env = () => ({ PATH: fake.path, XDG_STATE_HOME: join(tmp, 'state') });
const cli = (args: string[]) => runCli(args, env());

const read = (f: string) => readFile(join(fake.dir, f), 'utf8').catch(() => '');
const lines = async (f: string) => (await read(f)).split('\n').filter(Boolean);
const bulk = (n: number) => Array.from({ length: n }, (_, i) => `bulk-${i + 1}`);

const SETTLED = ['*nat', ...['172.18.0.2:6443', '10.244.0.2:53', '10.244.0.3:53', '10.244.0.2:9153', '10.244.0.3:9153', '10.244.1.2:8080', '10.244.2.2:8080', '10.244.2.3:8080']
  .map((ip) => `-A KUBE-SEP-X -p tcp -m tcp -j DNAT --to-destination ${ip}`), 'COMMIT', ''].join('\n');

/** A fresh metrics page and Service store, the log emptied. */
async function fresh(): Promise<void> {
  for (const f of ['syncs', 'syncs-pending', 'deleted', 'applies', 'apply-fails']) await rm(join(fake.dir, f), { force: true });
  await fake.set('services', `${OTHERS.join('\n')}\n`);
  await fake.set('log', '');
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kn-kind-scale-test-'));
  fake = await fakeToolchain(join(tmp, 'fake'), undefined, {
    'nodes.json': await readFile(new URL('kind/kubectl-get-nodes.json', FIX), 'utf8'),
    'pods.json': await readFile(new URL('kind/kubectl-get-pods.json', FIX), 'utf8'),
    'cluster.json': await readFile(new URL('kind-httpbin.kubectl.json', FIX), 'utf8'),
    // Every endpoint of kind-httpbin.kubectl.json programmed, so each apply's sync report settles at once.
    rules: SETTLED, 'rules.after': SETTLED,
  });
  await fake.reset('ok');
  const up = await cli(['up', '--backend', 'kind', '--name', 'netlab']);
  expect(up.code, up.err).toBe(0);
  // kube-proxy's ConfigMap as kind's kubeadm writes it (set to iptables mode), and its metrics page.
  await fake.set('kube-proxy-cm.json', (await readFile(new URL('kind/kube-proxy-configmap.json', FIX), 'utf8')).replace('mode: nftables', 'mode: iptables'));
  await fake.set('kube-proxy-metrics.txt', await readFile(new URL('kube-proxy-metrics.txt', FIX), 'utf8'));
}, 60_000);

afterAll(async () => {
  await cli(['down', '--backend', 'kind', '--name', 'netlab']);
  await rm(tmp, { recursive: true, force: true });
}, 60_000);

describe('kube-netlab scale --kind: real kube-proxy\'s own sync timings on a kind lab', () => {
  it('prints a row per size from kube-proxy\'s histograms, and deletes exactly the Services it made', async () => {
    await fresh();
    const r = await cli(['scale', '--kind', 'netlab', '--services', '100,10']);
    expect(r.code, r.err).toBe(0);
    const out = r.out.split('\n');
    expect(out[0]).toMatch(/^measured · kind\/iptables · netlab-worker: kube-proxy's sync-proxy-rules duration histograms \(kubeproxy_sync_proxy_rules_duration_seconds, .*\) from its metrics endpoint, http:\/\/127\.0\.0\.1:10249\/metrics$/);
    // Two syncs of 0.1 s per step, both in the (0.064, 0.128] bucket: p50 0.096, p99 0.12736.
    expect(out.slice(1, 4).map((l) => l.trim().split(/\s+/))).toEqual([
      ['services', 'syncs', 'mean', 's', 'p50', 's', 'p99', 's', 'full', 'partial', 'settled'],
      ['10', '2', '0.1000', '0.0960', '0.1274', '0', '2', 'yes'],
      ['100', '2', '0.1000', '0.0960', '0.1274', '0', '2', 'yes'],
    ]);
    // Read on the first worker, through docker exec, as the provenance says.
    const reads = (await fake.log()).filter((l) => l.includes('10249'));
    expect(reads.length).toBeGreaterThanOrEqual(1);
    expect(reads.every((l) => l === 'docker exec netlab-worker curl -sf http://127.0.0.1:10249/metrics')).toBe(true);
    const applied = JSON.parse(await read('applied.json')) as { items: { metadata: { name: string; labels: Record<string, string> } }[] };
    expect(applied.items.map((o) => o.metadata.name)).toEqual(bulk(100));
    expect(applied.items.every((o) => o.metadata.labels[LABEL] === 'netlab')).toBe(true);
    expect((await fake.log()).at(-1)).toBe(`kubectl --context kind-netlab -n default delete services -l ${LABEL}=netlab --ignore-not-found`);
    expect((await lines('deleted')).sort()).toEqual(bulk(100).sort());
    expect(await lines('services')).toEqual(OTHERS);
    expect(r.err).toContain(`deleted the Services labelled ${LABEL}=netlab`);
  }, 60_000);

  it('--json: the steps with provenance (measured, kind, the lab\'s mode, the source)', async () => {
    await fresh();
    const r = await cli(['scale', '--kind', 'netlab', '--services', '10', '--node', 'netlab-worker2', '--json']);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.provenance).toMatchObject({
      source: 'measured', backend: 'kind', mode: 'iptables', node: 'netlab-worker2', lab: 'netlab',
      command: 'docker exec netlab-worker2 curl -sf http://127.0.0.1:10249/metrics',
    });
    expect(j.source).toMatch(/^kube-proxy's sync-proxy-rules duration histograms .*kubeproxy_sync_partial_proxy_rules_duration_seconds.*10249\/metrics$/);
    expect(j.steps).toEqual([{
      services: 10, settled: true, full: { syncs: 0, meanS: null }, partial: { syncs: 2, meanS: expect.closeTo(0.1, 9) },
      all: { syncs: 2, meanS: expect.closeTo(0.1, 9), p50S: expect.closeTo(0.096, 9), p99S: expect.closeTo(0.12736, 9) },
    }]);
    expect((await lines('deleted')).sort()).toEqual(bulk(10).sort());
    expect(await lines('services')).toEqual(OTHERS);
  }, 60_000);

  it('a sweep that fails half-way still deletes its Services, and says why it failed', async () => {
    await fresh();
    // The second apply creates its Services, then fails (a quota reached).
    await fake.set('apply-fails', '2\n');
    const r = await cli(['scale', '--kind', 'netlab', '--services', '10,20']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/kube-netlab scale: `kubectl --context kind-netlab apply -f -` exited 1: Error from server \(Forbidden\): .*exceeded quota/);
    expect(r.out).toBe('');
    expect((await lines('deleted')).sort()).toEqual(bulk(20).sort());
    expect(await lines('services')).toEqual(OTHERS);
  }, 60_000);

  it('Ctrl-C mid-sweep: its commands stop, its Services are deleted, exit 130', async () => {
    await fresh();
    const run = startCli(['scale', '--kind', 'netlab', '--services', '10,100'], env());
    const deadline = Date.now() + 20_000;
    // Once the first step's Services are all there (the fake writes them one by one).
    while (!(await lines('services')).includes(`bulk-10 {"${LABEL}":"netlab"}`)) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the first apply');
      await new Promise((res) => setTimeout(res, 50));
    }
    process.kill(run.pid, 'SIGINT');
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(r.err).toMatch(/kube-netlab scale: interrupted by SIGINT; the sweep's Services were deleted, nothing was reported\n$/);
    expect(r.out).toBe('');
    // Stopped in the first step: the second never applied.
    expect(await read('applies')).toBe('1\n');
    expect((await lines('deleted')).sort()).toEqual(bulk(10).sort());
    expect(await lines('services')).toEqual(OTHERS);
  }, 60_000);
});

describe('kube-netlab scale --kind: what it refuses, before running anything', () => {
  it('a lab that does not exist: names the command that brings one up', async () => {
    await fresh();
    const r = await cli(['scale', '--kind', 'nosuch']);
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toBe('kube-netlab scale: no kind cluster named nosuch (there are: netlab): `kube-netlab up --backend kind --name nosuch` creates one');
    expect((await fake.log()).some((l) => l.includes(' apply ') || l.includes(' delete '))).toBe(false);
  });

  it('netns-only options, and --node without --kind', async () => {
    await fresh();
    for (const extra of [['--modes', 'iptables'], ['--iptables-backends', 'legacy'], ['--max-sync-seconds', '5'], ['--pod-subnet', '10.0.0.0/8']]) {
      const r = await cli(['scale', '--kind', 'netlab', ...extra]);
      expect(r.code, extra[0]).toBe(2);
      expect(r.err.split('\n')[0]).toBe(`kube-netlab scale: ${extra[0]} is an option of the netns sweep; --kind reads what real kube-proxy timed, for --services only (leave out ${extra[0]}, or --kind)`);
    }
    const r = await cli(['scale', '--node', 'netlab-worker']);
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toBe('kube-netlab scale: --node goes with --kind NAME: it picks the kind node whose kube-proxy is read');
    expect(await fake.log()).toEqual([]);
  });

  it('a node that is not the lab\'s', async () => {
    await fresh();
    const r = await cli(['scale', '--kind', 'netlab', '--node', 'netlab-worker9']);
    expect(r.code).toBe(2);
    expect(r.err.split('\n')[0]).toBe('kube-netlab scale: lab netlab has no node netlab-worker9 (it has netlab-control-plane, netlab-worker, netlab-worker2)');
    expect((await fake.log()).some((l) => l.includes(' apply '))).toBe(false);
  });

  it.skipIf(netnsSkip !== null)(`a netns lab: says it runs no kube-proxy, and what to run instead${netnsSkip ? ` (skipped: ${netnsSkip})` : ''}`, async () => {
    await fresh();
    const name = `sk-${testRunTag()}`.slice(0, 15);
    await createLab({ backend: 'netns', mode: 'iptables', name, runner });
    try {
      const r = await cli(['scale', '--kind', name]);
      expect(r.code).toBe(2);
      expect(r.err.split('\n')[0]).toBe(`kube-netlab scale: lab ${name} is on the netns backend, which runs no kube-proxy: \`kube-netlab scale\` (without --kind) sweeps the kit's rules in namespaces; for real kube-proxy bring up a kind lab (\`kube-netlab up --backend kind --name NAME\`) and pass --kind NAME`);
      expect(await fake.log()).toEqual([]);
    } finally {
      await removeLab(name, 'netns', runner);
    }
  }, 60_000);
});
