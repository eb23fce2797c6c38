import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { MissingToolError, runner, type ExecResult } from '../../lib/exec/index.ts';
import {
  BackendUnavailableError, LOAD_SCRIPT, classifyDockerInfoFailure, classifyKindFailure, compareSemver, createKindLab,
  diffLines, dockerExec, dockerImageInspect, dockerInfo, dockerPull, kindCreate, kindDelete, kindErrors, kindGetClusters, kindGetNodes, kindLoadArchive, dockerSave, dockerServerPlatform, parseDockerServerPlatform, saveTakesPlatform, ipvsModules, parseKubeProxyScheduler, dockerInspectMounts, kubectlWaitNodesReady, kubectlRolloutStatusDaemonSet,
  kindUnavailable, kubectlApply, kubectlExec, kubectlGetJson, kubectlGetKubeProxyPod, kubectlRolloutStatus, kubectlScale,
  loadArgv, parseKindClusters, parseKindNodes, parseKindVersion, parseKubeProxyMode, parseKubectlVersion,
  parseLoadOutput, parseNodesJson, parsePodsJson, preflight, programmedDestinations, ruleLines,
} from '../../lib/lab/kind/index.ts';
import { doctor, labImages, prefetch } from '../../lib/lab/kind/doctor.ts';
import { OWNER_LABEL, kindConfigFile, readKindRecord, removeKindRecord, writeKindRecord } from '../../lib/lab/kind/state.ts';
import { EnvRunner, fakeToolchain, type CreateMode, type FakeToolchain } from './kind-fakes.ts';

const FIXTURES = new URL('../fixtures/kind/', import.meta.url);
const fixture = (name: string) => readFile(new URL(name, FIXTURES), 'utf8');

let tmp: string;
const xdg = process.env.XDG_STATE_HOME;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kn-kind-test-'));
  // Lab records go to a directory of this test's own (this file runs in its own process).
  process.env.XDG_STATE_HOME = join(tmp, 'state');
});
afterAll(async () => {
  if (xdg === undefined) delete process.env.XDG_STATE_HOME;
  else process.env.XDG_STATE_HOME = xdg;
  await rm(tmp, { recursive: true, force: true });
});

describe('kind backend: argv', () => {
  it('builds kind commands exactly as kind parses them', () => {
    expect(kindCreate({ name: 'netlab', config: 'labs/kind-ipvs.yaml', wait: '120s' }))
      .toEqual(['kind', 'create', 'cluster', '--name', 'netlab', '--config', 'labs/kind-ipvs.yaml', '--wait', '120s']);
    expect(kindCreate({ name: 'n', config: '-', wait: '60s', retain: true }))
      .toEqual(['kind', 'create', 'cluster', '--name', 'n', '--config', '-', '--wait', '60s', '--retain']);
    expect(kindDelete('netlab')).toEqual(['kind', 'delete', 'cluster', '--name', 'netlab']);
    expect(kindGetClusters()).toEqual(['kind', 'get', 'clusters']);
    expect(kindGetNodes('netlab')).toEqual(['kind', 'get', 'nodes', '--name', 'netlab']);
    expect(kindLoadArchive('netlab', '/tmp/x/images.tar')).toEqual(['kind', 'load', 'image-archive', '/tmp/x/images.tar', '--name', 'netlab']);
  });

  it('pins the kind-N context on every kubectl call', () => {
    expect(kubectlApply('netlab')).toEqual(['kubectl', '--context', 'kind-netlab', 'apply', '-f', '-']);
    expect(kubectlScale('netlab', 'httpbin', 5)).toEqual(['kubectl', '--context', 'kind-netlab', '-n', 'default', 'scale', 'deployment/httpbin', '--replicas=5']);
    expect(() => kubectlScale('netlab', 'httpbin', -1)).toThrow(/replicas/);
    expect(kubectlRolloutStatus('netlab', 'httpbin')).toEqual(['kubectl', '--context', 'kind-netlab', '-n', 'default', 'rollout', 'status', 'deployment/httpbin', '--timeout=120s']);
    expect(kubectlGetJson('netlab', ['services', 'endpointslices'])).toEqual(['kubectl', '--context', 'kind-netlab', 'get', 'services,endpointslices', '-A', '-o', 'json']);
    expect(kubectlGetJson('netlab', ['pods'], { selector: { app: 'httpbin', version: 'v1' } }))
      .toEqual(['kubectl', '--context', 'kind-netlab', 'get', 'pods', '-A', '-l', 'app=httpbin,version=v1', '-o', 'json']);
    expect(() => kubectlGetJson('netlab', ['pods'], { selector: { app: 'x,y=z' } })).toThrow(/label selector/);
    expect(kubectlGetKubeProxyPod('netlab', 'netlab-worker')).toEqual(['kubectl', '--context', 'kind-netlab', 'get', 'pods', '-n', 'kube-system',
      '-l', 'k8s-app=kube-proxy', '--field-selector', 'spec.nodeName=netlab-worker', '-o', 'json']);
    expect(kubectlExec('netlab', 'curl-5b5c7c9c8d-qx7pl', ['curl', '-s', 'http://10.96.0.1'], { container: 'curl' }))
      .toEqual(['kubectl', '--context', 'kind-netlab', '-n', 'default', 'exec', 'curl-5b5c7c9c8d-qx7pl', '-c', 'curl', '--', 'curl', '-s', 'http://10.96.0.1']);
  });

  it('builds docker commands', () => {
    expect(dockerInfo()).toEqual(['docker', 'info', '--format', '{{.ServerVersion}}']);
    expect(dockerExec('netlab-worker', ['iptables-save', '-t', 'nat'])).toEqual(['docker', 'exec', 'netlab-worker', 'iptables-save', '-t', 'nat']);
    expect(() => dockerExec('netlab-worker', [])).toThrow(/empty/);
  });

  it('passes load values as positional arguments to a constant script, never inside it', () => {
    const argv = loadArgv({ url: 'http://10.96.120.15:8000/hostname', requests: 300, concurrency: 10, timeoutSeconds: 5 });
    expect(argv).toEqual(['sh', '-c', LOAD_SCRIPT, 'sh', 'http://10.96.120.15:8000/hostname', '300', '10', '5']);
    expect(LOAD_SCRIPT).not.toContain('10.96.120.15');
    for (const url of ['http://x/$(reboot)', 'http://x/;rm', "http://x/'", 'file:///etc/passwd', 'http://x/ y']) {
      expect(() => loadArgv({ url, requests: 1, concurrency: 1, timeoutSeconds: 1 })).toThrow(/plain http URL/);
    }
    expect(() => loadArgv({ url: 'http://x/', requests: 0, concurrency: 1, timeoutSeconds: 1 })).toThrow(/requests/);
  });
});

describe('kind backend: kind configs in labs/', () => {
  it('have a control plane, two workers, the mode, and one pinned node image', async () => {
    const images = new Set<string>();
    for (const mode of ['iptables', 'ipvs', 'nftables']) {
      const cfg = parseYaml(await readFile(new URL(`../../labs/kind-${mode}.yaml`, import.meta.url), 'utf8'));
      expect(cfg.kind).toBe('Cluster');
      expect(cfg.apiVersion).toBe('kind.x-k8s.io/v1alpha4');
      expect(cfg.networking.kubeProxyMode).toBe(mode);
      expect(cfg.nodes.map((n: { role: string }) => n.role)).toEqual(['control-plane', 'worker', 'worker']);
      for (const n of cfg.nodes) images.add(n.image);
    }
    expect([...images]).toEqual(['kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f']);
    expect(await labImages()).toEqual({
      node: [...images][0], workloads: ['docker.io/mccutchen/go-httpbin:v2.15.0', 'curlimages/curl:8.16.0'],
    });
  });
});

describe('kind backend: parsers', () => {
  it('reads kind get clusters / get nodes / version', async () => {
    expect(parseKindClusters(await fixture('kind-get-clusters.txt'))).toEqual(['netlab', 'workshop']);
    expect(parseKindClusters('No kind clusters found.\n')).toEqual([]);
    expect(parseKindClusters('')).toEqual([]);
    expect(parseKindNodes('netlab-worker2\nnetlab-control-plane\nnetlab-worker\n')).toEqual(['netlab-worker2', 'netlab-control-plane', 'netlab-worker']);
    expect(parseKindNodes('No kind nodes found for cluster "netlab".\n')).toEqual([]);
    expect(parseKindVersion(await fixture('kind-version.txt'))).toEqual({ major: 0, minor: 27, patch: 0, pre: '' });
    expect(parseKindVersion('kind v0.24.0-alpha.12+0a1b2c3d4e5f6a go1.22.5 linux/arm64\n')).toEqual({ major: 0, minor: 24, patch: 0, pre: 'alpha.12' });
    expect(parseKindVersion('0.29.0\n')).toEqual({ major: 0, minor: 29, patch: 0, pre: '' }); // kind version -q
    expect(() => parseKindVersion('kind version unknown')).toThrow(/expected "kind vX.Y.Z/);
    const v = (s: string) => parseKindVersion(`kind ${s} go1 linux/amd64`);
    expect(compareSemver(v('v0.22.0'), v('v0.23.0'))).toBeLessThan(0);
    expect(compareSemver(v('v0.23.0-alpha.1'), v('v0.23.0'))).toBeLessThan(0);
    expect(compareSemver(v('v0.100.0'), v('v0.23.0'))).toBeGreaterThan(0);
    expect(parseKubectlVersion('{"clientVersion":{"major":"1","minor":"33","gitVersion":"v1.33.1"},"kustomizeVersion":"v5.6.0"}')).toBe('v1.33.1');
  });

  it('reads kubectl get nodes -o json into LabNodes, control plane first', async () => {
    expect(parseNodesJson(await fixture('kubectl-get-nodes.json'))).toEqual([
      { name: 'netlab-control-plane', role: 'control-plane', ip: '172.18.0.3', podCIDR: '10.244.0.0/24' },
      { name: 'netlab-worker', role: 'worker', ip: '172.18.0.2', podCIDR: '10.244.1.0/24' },
      { name: 'netlab-worker2', role: 'worker', ip: '172.18.0.4', podCIDR: '10.244.2.0/24' },
    ]);
  });

  it('reads kubectl get pods -o json into Pods: finished pods left out, pending and terminating not ready', async () => {
    const pods = parsePodsJson(await fixture('kubectl-get-pods.json'));
    expect(pods.map((p) => `${p.namespace}/${p.name} ${p.ip || '-'} ${p.node} ${p.ready}`)).toEqual([
      'default/curl-5b5c7c9c8d-qx7pl 10.244.1.3 netlab-worker true',
      'default/httpbin-6d7f8c9b5d-2kq9z 10.244.2.2 netlab-worker2 true',
      'default/httpbin-6d7f8c9b5d-8wjxn 10.244.1.2 netlab-worker true',
      'default/httpbin-6d7f8c9b5d-h4m2t 10.244.2.3 netlab-worker2 false',
      'default/httpbin-6d7f8c9b5d-v5rcs - netlab-worker false',
      'kube-system/coredns-674b8bbfcf-7wz5d 10.244.0.2 netlab-control-plane true',
      'kube-system/kube-proxy-9xq4w 172.18.0.2 netlab-worker true',
    ]);
    expect(pods[1].labels).toEqual({ app: 'httpbin', 'pod-template-hash': '6d7f8c9b5d', version: 'v1' });
    expect(() => parsePodsJson('{"items": [{"metadata": {}}]}')).toThrow(/items\[0\] has no metadata.name/);
    expect(() => parsePodsJson('not json')).toThrow(/not valid JSON/);
  });

  it("reads kube-proxy's mode from its ConfigMap", async () => {
    expect(parseKubeProxyMode(await fixture('kube-proxy-configmap.json'), parseYaml)).toBe('nftables');
    const cm = (mode: string) => JSON.stringify({ data: { 'config.conf': `kind: KubeProxyConfiguration\nmode: ${mode}\n` } });
    expect(parseKubeProxyMode(cm('""'), parseYaml)).toBe('iptables');
    expect(parseKubeProxyMode(cm('ipvs'), parseYaml)).toBe('ipvs');
    expect(() => parseKubeProxyMode(cm('kernelspace'), parseYaml)).toThrow(/unknown mode/);
  });

  it('tells a stopped docker daemon from a permission problem, and reads kind ERROR lines', async () => {
    expect(classifyDockerInfoFailure(await fixture('docker-info-daemon-down.stderr'))).toBe('daemon-unreachable');
    expect(classifyDockerInfoFailure(await fixture('docker-info-permission-denied.stderr'))).toBe('permission-denied');
    expect(classifyDockerInfoFailure('error during connect: Get "http://%2F%2F.%2Fpipe%2FdockerDesktopLinuxEngine/v1.47/info": open //./pipe/dockerDesktopLinuxEngine: The system cannot find the file specified.')).toBe('daemon-unreachable');
    // Docker 29's client words it differently (moby client/request.go at docker-v29.0.0).
    expect(classifyDockerInfoFailure(await fixture('docker29-info-daemon-down.stderr'))).toBe('daemon-unreachable');
    expect(classifyDockerInfoFailure(await fixture('docker29-info-permission-denied.stderr'))).toBe('permission-denied');
    expect(classifyDockerInfoFailure('something else')).toBe('other');
    const exists = await fixture('kind-create-exists.stderr');
    expect(classifyKindFailure(exists)).toBe('cluster-exists');
    expect(kindErrors(exists)).toEqual(['failed to create cluster: node(s) already exist for a cluster with the name "netlab"']);
    expect(classifyKindFailure(await fixture('kind-create-failed.stderr'))).toBe('other');
    expect(classifyKindFailure('ERROR: failed to create cluster: failed to get docker info: command "docker info --format \'{{json .}}\'" failed with error: exec: "docker": executable file not found in $PATH')).toBe('docker-missing');
  });

  it('parses the load script output into a tally', () => {
    const out = [
      'start 100.00',
      '100.02 {  "hostname": "httpbin-a"} 200',
      '100.05  000',
      '100.07 {  "hostname": "httpbin-b"} 200',
      '100.09 {  "hostname": "httpbin-a"} 200',
      '100.10 <html>oops</html> 503',
      '',
    ].join('\n');
    expect(parseLoadOutput(out)).toEqual({ total: 5, ok: 3, errors: 2, byPod: { 'httpbin-a': 2, 'httpbin-b': 1 }, durationMs: 100, firstOkMs: 20 });
    expect(() => parseLoadOutput('100.1 x 200\n')).toThrow(/no "start" line/);
    expect(() => parseLoadOutput('start 1\nabc {} 200\n')).toThrow(/line 2: expected seconds/);
  });

  it('diffs rule text without counters', () => {
    const before = ruleLines('iptables', '*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j KUBE-NODEPORTS\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n');
    const after = ruleLines('iptables', '# Generated by iptables-save\n*nat\n:KUBE-SERVICES - [3:180]\n:KUBE-SVC-FREKB6WNWYJLKTHC - [0:0]\n-A KUBE-SERVICES -j KUBE-NODEPORTS\nCOMMIT\n');
    expect(diffLines(before, after)).toEqual({ added: [':KUBE-SVC-FREKB6WNWYJLKTHC'], removed: [] });
    expect(ruleLines('nftables', '\t\tcounter packets 12 bytes 720 jump mark-for-masquerade\n')).toEqual(['counter jump mark-for-masquerade']);
    expect(ruleLines('ipvs', 'IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\nTCP  0A60000A:0035 rr \n  -> 0AF40002:0035      Masq    1      3          7\n'))
      .toEqual(['TCP  0A60000A:0035 rr', '-> 0AF40002:0035 Masq 1']);
  });

  it('finds the endpoints the rules send traffic to, in each mode', () => {
    expect([...programmedDestinations('iptables', ['-A KUBE-SEP-ABC -p tcp -m comment --comment "default/httpbin:http" -m tcp -j DNAT --to-destination 10.244.1.2:8080'])]).toEqual(['10.244.1.2:8080']);
    expect([...programmedDestinations('nftables', ['meta l4proto tcp dnat to 10.244.2.3:8080'])]).toEqual(['10.244.2.3:8080']);
    expect([...programmedDestinations('ipvs', ruleLines('ipvs', 'TCP  0A60780F:1F40 rr \n  -> 0AF40102:1F90      Masq    1      0          0\n'))]).toEqual(['10.244.1.2:8080']);
  });

  it('asks for ip_vs and the scheduler in use only', async () => {
    expect(ipvsModules()).toEqual(['ip_vs', 'ip_vs_rr']);
    expect(ipvsModules('wrr')).toEqual(['ip_vs', 'ip_vs_wrr']);
    // The scheduler in use, from kube-proxy's ConfigMap (kubeadm's, as kind writes it: empty means rr).
    const cm = await fixture('kube-proxy-configmap.json');
    expect(parseKubeProxyScheduler(cm, parseYaml)).toBe('rr');
    expect(parseKubeProxyScheduler(cm.replace('scheduler: \\"\\"', 'scheduler: sh'), parseYaml)).toBe('sh');
    expect(() => ipvsModules('rr nf_conntrack')).toThrow(/short lower-case name/);
  });

  it('saves only the nodes\' platform when the daemon can (API 1.48, Docker 28), all it has otherwise', () => {
    expect(parseDockerServerPlatform('linux/arm64 1.51\n')).toEqual({ platform: 'linux/arm64', api: '1.51' });
    expect(() => parseDockerServerPlatform('Client: Docker Engine')).toThrow(/expected "<os>\/<arch> <api version>"/);
    expect([saveTakesPlatform('1.47'), saveTakesPlatform('1.48'), saveTakesPlatform('1.52'), saveTakesPlatform('2.0')]).toEqual([false, true, true, true]);
    expect(dockerSave(['a:1', 'b:2'], '/d/images.tar', 'linux/arm64')).toEqual(['docker', 'save', '--platform', 'linux/arm64', '-o', '/d/images.tar', 'a:1', 'b:2']);
    expect(dockerSave(['a:1'], '/d/images.tar', null)).toEqual(['docker', 'save', '-o', '/d/images.tar', 'a:1']);
  });
});

// Real binaries from here on, through the real runner: an empty PATH, the real docker CLI with no
// daemon, and small fake `kind`/`kubectl`/`docker`/`curl` scripts (kind and a Docker engine cannot
// run on this machine, so the fakes stand in for their exit codes and `ERROR: …` stderr).
describe('kind backend: failures through the real runner', () => {
  it('names the package when the binary is missing (empty PATH)', async () => {
    const empty = join(tmp, 'empty');
    await mkdir(empty);
    const r = new EnvRunner({ PATH: empty });
    const err = await r.run(kindGetClusters()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingToolError);
    // Debian ships no kind: the error points at kind's install page instead of a package.
    expect((err as MissingToolError).package).toBeUndefined();
    expect((err as Error).message).toMatch(/kind is not installed: install it from kind\.sigs\.k8s\.io/);
    await expect(r.run(dockerInfo())).rejects.toThrow(/docker is not installed: install it with `apt-get install -y docker.io`/);
    const bue = await preflight(r).catch((e: unknown) => e);
    expect(bue).toBeInstanceOf(BackendUnavailableError);
    expect((bue as BackendUnavailableError).cause).toBe('docker not installed');
    expect((bue as BackendUnavailableError).fix).toMatch(/docker\.io/);
  });

  it('reports an unreachable docker daemon with the real docker CLI', async () => {
    // A socket path where no daemon can be, so the result doesn't depend on the machine.
    const r = new EnvRunner({ DOCKER_HOST: `unix://${join(tmp, 'no-daemon.sock')}` });
    const err = await preflight(r).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).cause).toBe('docker daemon unreachable');
    expect((err as Error).message).toMatch(/Cannot connect to the Docker daemon/);
    expect((err as Error).message).toMatch(/fix: start it/);
    expect(await kindUnavailable(r)).toMatch(/^docker daemon unreachable; start it/);
  });

  it('reports a stopped daemon in Docker 29\'s words as unreachable too, not as "docker info failed"', async () => {
    const fake = await fakeToolchain(join(tmp, 'fake-docker29'), ['docker']);
    await fake.set('docker-down', await fixture('docker29-info-daemon-down.stderr'));
    const err = await preflight(fake.runner).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).cause).toBe('docker daemon unreachable');
    expect((err as Error).message).toMatch(/fix: start it \(`sudo systemctl start docker`, or open Docker Desktop\)/);
    const report = await doctor(fake.runner);
    expect(report.checks[0]).toMatchObject({ name: 'docker daemon', ok: false, detail: 'docker daemon unreachable' });
  });

  it('kubectl accepts every kubectl argv we build (stopping at the missing context)', async () => {
    // The real kubectl, with an empty kubeconfig: flags are parsed before the context is looked up,
    // so a wrong flag would fail with "unknown flag" rather than with the missing context.
    const r = new EnvRunner({ KUBECONFIG: join(tmp, 'no-kubeconfig') });
    const argvs = [
      kubectlApply('kntest'), kubectlScale('kntest', 'httpbin', 3), kubectlRolloutStatus('kntest', 'httpbin'),
      kubectlGetJson('kntest', ['services', 'endpointslices']), kubectlGetJson('kntest', ['pods'], { selector: { app: 'curl' } }),
      kubectlGetKubeProxyPod('kntest', 'kntest-worker'), kubectlExec('kntest', 'curl-x', ['sh', '-c', 'true'], { container: 'curl' }),
      kubectlWaitNodesReady('kntest', '300s'), kubectlRolloutStatusDaemonSet('kntest', 'kube-proxy', 'kube-system', '180s'),
    ];
    for (const argv of argvs) {
      const res = await r.run(argv, { allowFailure: true, input: '', timeoutMs: 15_000 }).catch((e: unknown) => e);
      if (res instanceof MissingToolError) {
        expect(res.message).toMatch(/kubectl is not installed/);
        continue;
      }
      const { exitCode, stderr } = res as ExecResult;
      expect(exitCode).not.toBe(0);
      expect(stderr).not.toMatch(/unknown (flag|shorthand)|unknown command/);
      expect(stderr).toMatch(/context .*kind-kntest/);
    }
  });

  it('the docker CLI accepts every docker argv we build (stopping at the missing daemon)', async () => {
    const r = new EnvRunner({ DOCKER_HOST: `unix://${join(tmp, 'no-daemon.sock')}` });
    for (const argv of [dockerInfo(), dockerExec('kntest-worker', ['test', '-e', '/proc/net/ip_vs']), dockerImageInspect('curlimages/curl:8.16.0'), dockerPull('curlimages/curl:8.16.0'),
      dockerServerPlatform(), dockerSave(['curlimages/curl:8.16.0'], join(tmp, 'images.tar'), 'linux/amd64'), dockerInspectMounts(['kntest-worker', 'kntest-worker2'])]) {
      const { exitCode, stderr } = await r.run(argv, { allowFailure: true, timeoutMs: 15_000 });
      expect(exitCode).not.toBe(0);
      expect(stderr).not.toMatch(/unknown (flag|shorthand)|unknown command/);
      expect(stderr).toMatch(/Cannot connect to the Docker daemon/);
    }
  });

  it('createKindLab fails fast and leaves nothing behind', async () => {
    const r = new EnvRunner({ DOCKER_HOST: `unix://${join(tmp, 'no-daemon.sock')}` });
    // Other test files run alongside and make their own namespaces and temp files: look for ours.
    const ours = (names: string[]) => names.filter((n) => n.includes('kntest')).sort();
    const netns = async () => ours((await runner.run(['ip', 'netns', 'list'], { allowFailure: true })).stdout.split('\n'));
    const netnsBefore = await netns();
    const tmpBefore = ours(readdirSync(tmpdir()));
    const labsBefore = readdirSync(new URL('../../labs/', import.meta.url)).sort();
    const echoed: string[] = [];
    const err = await createKindLab({ name: 'kntest', mode: 'iptables', runner: r, echo: (c) => echoed.push(c) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).cause).toBe('docker daemon unreachable');
    // Nothing past the docker check ran: no kind create, so no delete either.
    expect(echoed).toEqual(['docker -v', "docker info --format '{{.ServerVersion}}'"]);
    expect(await netns()).toEqual(netnsBefore);
    expect(ours(readdirSync(tmpdir()))).toEqual(tmpBefore);
    expect(readdirSync(new URL('../../labs/', import.meta.url)).sort()).toEqual(labsBefore);
  });
});

describe('kind backend: create, use and clean up, with fake kind/kubectl/docker', () => {
  let fake: FakeToolchain;
  let r: EnvRunner;
  const log = () => fake.log();
  const set = (file: string, text: string) => fake.set(file, text);
  const reset = (create: CreateMode, stderr = '') => fake.reset(create, stderr);
  /** A delete that checks, twice after a pause, that no node came back (see deleteUntilGone). */
  const deleted = (name: string) => [`kind delete cluster --name ${name}`, `kind get nodes --name ${name}`, `kind get nodes --name ${name}`];

  beforeAll(async () => {
    fake = await fakeToolchain(join(tmp, 'fake'), undefined, {
      'nodes.json': await fixture('kubectl-get-nodes.json'),
      'pods.json': await fixture('kubectl-get-pods.json'),
      'kube-proxy-pods.json': JSON.stringify({
        kind: 'List',
        items: JSON.parse(await fixture('kubectl-get-pods.json')).items.filter((p: { metadata: { name: string } }) => p.metadata.name.startsWith('kube-proxy-')),
      }),
      'cluster.json': await readFile(new URL('../fixtures/kind-httpbin.kubectl.json', import.meta.url), 'utf8'),
    });
    r = fake.runner;
  });

  it('refuses a kind older than v0.29.0 in every mode: the pinned node image is v0.29\'s', async () => {
    await reset('ok');
    // kind v0.28.0 defaults to kindest/node v1.33.1 too, but with containerd 2.0 (another digest).
    await set('kind-version', 'kind v0.28.0 go1.24.2 darwin/arm64\n');
    try {
      for (const mode of ['iptables', 'ipvs', 'nftables'] as const) {
        const err = await createKindLab({ name: 'kntest', mode, runner: r }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BackendUnavailableError);
        expect((err as BackendUnavailableError).cause).toBe('kind too old');
        expect((err as Error).message).toMatch(/kind v0\.28\.0 is older than v0\.29\.0, the release whose node image labs\/kind-\*\.yaml pin/);
      }
      expect((await log()).some((l) => l.startsWith('kind create'))).toBe(false);
      expect(await kindUnavailable(r)).toMatch(/^kind too old; install kind v0\.29\.0 or later/);
      await set('kind-version', 'kind v0.29.0-alpha.5+abc go1.24.2 linux/arm64\n');
      expect(await kindUnavailable(r)).toMatch(/^kind too old/);
    } finally {
      await set('kind-version', 'kind v0.29.0 go1.24.2 linux/amd64\n');
    }
    expect(await kindUnavailable(r)).toBeNull();
  });

  it('refuses a name that is taken', async () => {
    await reset('ok');
    await set('clusters', 'kntest\n');
    await expect(createKindLab({ name: 'kntest', mode: 'iptables', runner: r })).rejects.toThrow(/kind cluster kntest already exists/);
    expect((await log()).some((l) => l.startsWith('kind create'))).toBe(false);
  });

  it('deletes a half-made cluster when kind create fails, says what kind said, and forgets the lab', async () => {
    await reset('fail', await fixture('kind-create-failed.stderr'));
    const err = await createKindLab({ name: 'kntest', mode: 'ipvs', runner: r }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^kind create cluster kntest failed: failed to create cluster: command "docker run --name netlab-worker/);
    expect((err as Error).message).toMatch(/the half-made cluster was deleted$/);
    const l = await log();
    expect(l.slice(-4)).toEqual([`kind create cluster --name kntest --config ${kindConfigFile('kntest')} --wait 120s`, ...deleted('kntest')]);
    expect(kindConfigFile('kntest').startsWith(join(tmp, 'state', 'kube-netlab', 'kind'))).toBe(true);
    expect(await readKindRecord('kntest')).toBeNull();
    expect(existsSync(kindConfigFile('kntest'))).toBe(false);
  });

  it('keeps the nodes and the record with retain, and never deletes a cluster that was already there', async () => {
    await reset('fail', await fixture('kind-create-failed.stderr'));
    await expect(createKindLab({ name: 'kntest', mode: 'iptables', runner: r, retain: true })).rejects.toThrow(/kept \(--retain\): `kube-netlab down --name kntest`/);
    expect((await log()).at(-1)).toMatch(/^kind create cluster --name kntest .* --wait 120s --retain$/);
    expect(await readKindRecord('kntest')).toMatchObject({ status: 'retained', mode: 'iptables', creator: { pid: process.pid } });
    await reset('fail', await fixture('kind-create-exists.stderr'));
    await expect(createKindLab({ name: 'kntest', mode: 'iptables', runner: r })).rejects.toThrow(/already exist for a cluster with the name/);
    expect((await log()).at(-1)).toMatch(/^kind create cluster/);
    // Not ours: no record of it is kept.
    expect(await readKindRecord('kntest')).toBeNull();
  });

  it('stops a create that is interrupted and deletes what it made', async () => {
    await reset('hang');
    const ac = new AbortController();
    const t0 = performance.now();
    const p = createKindLab({ name: 'kntest', mode: 'iptables', runner: r, workers: 3, signal: ac.signal }).catch((e: unknown) => e);
    // While kind runs, the record and the generated config are on disk, the owner label in it.
    for (let i = 0; i < 100 && !(await log()).some((l) => l.startsWith('kind create')); i++) await new Promise((res) => setTimeout(res, 50));
    expect(await readKindRecord('kntest')).toMatchObject({ status: 'creating', creator: { pid: process.pid } });
    const cfg = parseYaml(await readFile(kindConfigFile('kntest'), 'utf8'));
    const owner = (await readKindRecord('kntest'))!.owner;
    expect(cfg.nodes.map((n: { role: string; labels: Record<string, string> }) => `${n.role} ${n.labels[OWNER_LABEL]}`))
      .toEqual(['control-plane', 'worker', 'worker', 'worker'].map((role) => `${role} ${owner}`));
    // The token is mounted too, so that it is on the containers from `docker run` on.
    for (const n of cfg.nodes) expect(n.extraMounts).toEqual([{ hostPath: '/lib/modules', containerPath: `/kube-netlab/owner/${owner}`, readOnly: true }]);
    ac.abort();
    const err = await p;
    expect((err as Error).message).toMatch(/interrupted .* the half-made cluster was deleted/);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect((await log()).slice(-4)).toEqual([`kind create cluster --name kntest --config ${kindConfigFile('kntest')} --wait 120s`, ...deleted('kntest')]);
    expect(await readKindRecord('kntest')).toBeNull();
    expect(await readFile(join(fake.dir, 'clusters'), 'utf8')).toBe('');
  });

  it('a node that appears after `kind delete` (a docker run kind had started) is deleted too, before the record goes', async () => {
    await reset('late');
    await rm(join(fake.dir, 'create.trapped'), { force: true });
    const ac = new AbortController();
    const p = createKindLab({ name: 'kntest', mode: 'iptables', runner: r, signal: ac.signal }).catch((e: unknown) => e);
    for (let i = 0; i < 100 && !existsSync(join(fake.dir, 'create.trapped')); i++) await new Promise((res) => setTimeout(res, 50));
    ac.abort();
    expect((await p as Error).message).toMatch(/interrupted .* the half-made cluster was deleted/);
    // Deleted once, found again 0.4 s later, deleted again; then two looks found nothing.
    expect((await log()).filter((l) => l.startsWith('kind delete') || l.startsWith('kind get nodes')))
      .toEqual(['kind delete cluster --name kntest', 'kind get nodes --name kntest', ...deleted('kntest')]);
    expect(await readFile(join(fake.dir, 'clusters'), 'utf8')).toBe('');
    expect(await readKindRecord('kntest')).toBeNull();
  });

  it('a node that appears after `kind delete` but is not provably the lab\'s is left alone, and the record kept for gc', async () => {
    await reset('late-other');
    await rm(join(fake.dir, 'create.trapped'), { force: true });
    const ac = new AbortController();
    const p = createKindLab({ name: 'kntest', mode: 'iptables', runner: r, signal: ac.signal }).catch((e: unknown) => e);
    for (let i = 0; i < 100 && !existsSync(join(fake.dir, 'create.trapped')); i++) await new Promise((res) => setTimeout(res, 50));
    ac.abort();
    expect((await p as Error).message).toMatch(/interrupted .* deleting the half-made cluster failed: `kube-netlab gc` retries$/);
    const l = await log();
    // Deleted once; what came back was looked at (no owner mount, no kubeadm.conf) and not deleted.
    expect(l.filter((x) => x.startsWith('kind delete'))).toEqual(['kind delete cluster --name kntest']);
    expect(l.slice(l.lastIndexOf('kind get nodes --name kntest')).sort()).toEqual(['kind get nodes --name kntest',
      'docker inspect --type container --format {{.Name}}{{range .Mounts}} {{.Destination}}{{end}} kntest-control-plane kntest-worker kntest-worker2',
      ...['kntest-control-plane', 'kntest-worker', 'kntest-worker2'].map((n) => `docker exec ${n} cat /kind/kubeadm.conf`)].sort());
    expect(await readKindRecord('kntest')).toMatchObject({ status: 'creating' });
    await removeKindRecord('kntest');
  });

  it('a second create of the same name in this process stops at the record, and leaves the first one\'s alone', async () => {
    // The lab lock is re-entrant within a process; kind still pulls the node image, so no node exists yet.
    await reset('pulling');
    const first = new AbortController();
    const p1 = createKindLab({ name: 'kntest', mode: 'iptables', runner: r, signal: first.signal }).catch((e: unknown) => e);
    for (let i = 0; i < 100 && !(await log()).some((l) => l.startsWith('kind create')); i++) await new Promise((res) => setTimeout(res, 50));
    const owner = (await readKindRecord('kntest'))!.owner;
    const second = new AbortController();
    const p2 = createKindLab({ name: 'kntest', mode: 'iptables', runner: r, signal: second.signal }).catch((e: unknown) => e);
    const quick = await Promise.race([p2, new Promise((res) => setTimeout(() => res('still running'), 5_000))]);
    second.abort();
    try {
      expect((quick as Error).message).toBe(`lab kntest is being created by pid ${process.pid} (this process): wait for that \`up\` to finish, or pick another --name`);
      expect(await readKindRecord('kntest')).toMatchObject({ owner, status: 'creating' });
      expect((await log()).filter((l) => l.startsWith('kind create'))).toHaveLength(1);
    } finally {
      first.abort();
      await p1;
      await p2;
    }
    expect(await readKindRecord('kntest')).toBeNull();
  });

  it('forgets a stale record (its creator died, no cluster) and creates the lab', async () => {
    await reset('ok');
    const dead = spawnSync(process.execPath, ['-e', '']).pid as number;
    await writeKindRecord({
      version: 1, name: 'kntest', backend: 'kind', mode: 'iptables', owner: 'kn0000000000000001', status: 'creating',
      creator: { pid: dead, start: null, host: hostname() }, createdAt: '2026-01-01T00:00:00.000Z',
    });
    const lab = await createKindLab({ name: 'kntest', mode: 'iptables', runner: r });
    expect((await readKindRecord('kntest'))!.owner).not.toBe('kn0000000000000001');
    await lab.destroy();
  });

  it('in IPVS mode, loads ip_vs and ip_vs_rr from inside a node, and removes a cluster whose kernel has none', async () => {
    await reset('ok');
    // The kernel Docker runs on has no ip_vs (kmod's words, as on a Docker Desktop VM without it).
    await set('no-ip-vs', '');
    const err = await createKindLab({ name: 'kntest', mode: 'ipvs', runner: r, ipvsWaitMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).message).toBe([
      'the kind backend cannot run here: kernel has no IP_VS',
      '  `modprobe -a ip_vs ip_vs_rr` in kntest-control-plane failed: modprobe: FATAL: Module ip_vs not found in directory /lib/modules/6.10.14-linuxkit; the half-made cluster was deleted',
      '  fix: use --mode iptables or --mode nftables (they need no extra module); on a Linux host, `sudo modprobe -a ip_vs ip_vs_rr` first (rootless Docker cannot load modules itself), and if modprobe finds none, install them (Ubuntu: `sudo apt-get install linux-modules-extra-$(uname -r)`)',
    ].join('\n'));
    expect((await log()).slice(-4)).toEqual(['docker exec kntest-control-plane modprobe -a ip_vs ip_vs_rr', ...deleted('kntest')]);
    expect(await readKindRecord('kntest')).toBeNull();
    // Loadable: loaded in the node, then /proc/net/ip_vs, then kube-proxy Ready, in that order;
    // the scheduler is the one kube-proxy's ConfigMap names.
    await reset('ok');
    await set('kube-proxy-cm.json', (await fixture('kube-proxy-configmap.json')).replace('scheduler: \\"\\"', 'scheduler: wrr'));
    const lab = await createKindLab({ name: 'kntest', mode: 'ipvs', runner: r });
    expect(await lab.capabilities()).toEqual({ ipvs: true });
    expect(await readKindRecord('kntest')).toMatchObject({ status: 'up', mode: 'ipvs' });
    const l = await log();
    // A missing line would give -1 and pass the order checks below.
    const at = (prefix: string) => {
      const i = l.findIndex((x) => x.startsWith(prefix));
      expect(i, prefix).toBeGreaterThanOrEqual(0);
      return i;
    };
    expect(at('docker exec kntest-control-plane modprobe -a ip_vs ip_vs_wrr')).toBeGreaterThan(at('kubectl --context kind-kntest wait --for=condition=Ready nodes --all'));
    expect(at('docker exec kntest-control-plane test -e /proc/net/ip_vs')).toBeGreaterThan(at('docker exec kntest-control-plane modprobe'));
    expect(at('kubectl --context kind-kntest -n kube-system rollout status daemonset/kube-proxy')).toBeGreaterThan(at('docker exec kntest-control-plane test -e /proc/net/ip_vs'));
    expect(l.some((x) => x.includes('modprobe') && !x.endsWith('modprobe -a ip_vs ip_vs_wrr'))).toBe(false);
    await lab.destroy();
  });

  it('waits for every node to be Ready and keeps a cluster whose nodes are slow; `up` again continues with it', async () => {
    await reset('ok');
    await set('nodes-unready', '');
    const err = await createKindLab({ name: 'kntest', mode: 'iptables', runner: r, nodesReadyMs: 1_000 }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('not every node of kntest is Ready after 1 s: error: timed out waiting for the condition on nodes/kntest-worker2; '
      + 'the cluster is kept: `kube-netlab up --name kntest` again continues with it, `kube-netlab down --name kntest` deletes it');
    expect((await log()).some((l) => l.startsWith('kind delete'))).toBe(false);
    expect(await readFile(join(fake.dir, 'clusters'), 'utf8')).toBe('kntest\n');
    expect(await readKindRecord('kntest')).toMatchObject({ status: 'up', kept: 'nodes not ready' });
    // Another mode is not this lab: refused, not reused.
    await expect(createKindLab({ name: 'kntest', mode: 'nftables', runner: r })).rejects.toThrow(/kind cluster kntest already exists: it is a kube-netlab lab \(up, mode iptables\)/);
    await rm(join(fake.dir, 'nodes-unready'));
    await set('log', '');
    const progress: string[] = [];
    const lab = await createKindLab({ name: 'kntest', mode: 'iptables', runner: r, onProgress: (s) => progress.push(s) });
    expect(progress).toContain('cluster kntest is kube-netlab\'s, kept after nodes not ready: continuing with it');
    expect((await log()).some((l) => l.startsWith('kind create'))).toBe(false);
    const rec = await readKindRecord('kntest');
    expect(rec?.status).toBe('up');
    expect(rec?.kept).toBeUndefined();
    await lab.destroy();
  });

  it('after prefetch, a fresh cluster pulls nothing: kind finds its node image, the workloads are side-loaded', async () => {
    const { workloads, node } = await labImages();
    await reset('ok');
    await set('images', '');
    const steps = await prefetch(r);
    expect(steps.map((x) => x.command)).toEqual([node, ...workloads].map((i) => `docker pull ${i}`));
    // Run again (at the venue): nothing is fetched.
    expect((await prefetch(r)).map((x) => x.detail)).toEqual(Array(3).fill("already in Docker's image store"));
    expect((await log()).filter((x) => x.includes(' pull '))).toHaveLength(3);
    await set('log', '');
    const lab = await createKindLab({ name: 'kntest', mode: 'iptables', runner: r });
    const l = await log();
    // The measure: pulls during a fresh `up` once prefetch has run.
    expect(l.filter((x) => x.includes(' pull '))).toEqual([]);
    const save = l.find((x) => x.startsWith('docker save'))!;
    expect(save).toMatch(new RegExp(`^docker save --platform linux/amd64 -o /\\S+/kube-netlab-images-\\w+/images\\.tar ${workloads.join(' ').replace(/[.]/g, '\\.')}$`));
    const archive = save.split(' ')[5];
    expect(l).toContain(`kind load image-archive ${archive} --name kntest`);
    // The archive lived in a private temp folder, gone once loaded.
    expect(existsSync(dirname(archive))).toBe(false);
    expect(await readFile(join(fake.dir, 'loaded'), 'utf8')).toBe(workloads.map((i) => `kntest linux/amd64 ${i}\n`).join(''));
    // Loaded before anything could be deployed, and the manifests let the kubelet use them.
    const loaded = l.findIndex((x) => x.startsWith('kind load'));
    // createKindLab deploys nothing; the load is done by the time it returns, so before any deploy.
    expect(loaded).toBeGreaterThan(-1);
    expect(l.slice(0, loaded).some((x) => x.includes(' apply '))).toBe(false);
    const { loadManifest } = await import('../../lib/lab/manifests.ts');
    for (const m of ['httpbin', 'curl'] as const) {
      for (const o of await loadManifest(m)) {
        for (const c of (o.spec as { template?: { spec?: { containers?: { image: string; imagePullPolicy?: string }[] } } } | undefined)?.template?.spec?.containers ?? []) {
          expect(c.imagePullPolicy).toBe('IfNotPresent');
          expect(c.image).toMatch(/:v?\d+\.\d+\.\d+$/);
        }
      }
    }
    await lab.destroy();
  });

  it('without prefetch, the first cluster pulls each image once and the next pulls none; an old daemon saves without --platform', async () => {
    const { workloads, node } = await labImages();
    await reset('ok');
    await set('images', '');
    await set('docker-server', 'linux/arm64 1.47\n');
    try {
      const first = await createKindLab({ name: 'kntest', mode: 'iptables', runner: r });
      expect((await log()).filter((x) => x.includes(' pull '))).toEqual([node, ...workloads].map((i) => `docker pull ${i}`));
      expect((await log()).find((x) => x.startsWith('docker save'))).toMatch(/^docker save -o \S+ /);
      await first.destroy();
      await set('log', '');
      const second = await createKindLab({ name: 'kntest', mode: 'iptables', runner: r });
      expect((await log()).filter((x) => x.includes(' pull '))).toEqual([]);
      await second.destroy();
    } finally {
      await rm(join(fake.dir, 'docker-server'), { force: true });
    }
  });

  it('a side-load that fails does not cost the cluster: it says why, and the nodes pull the images themselves', async () => {
    await reset('ok');
    // Docker Hub refuses the pull (its rate-limit answer); kind still finds its node image.
    await set('pull-fails', '');
    try {
      const progress: string[] = [];
      const lab = await createKindLab({ name: 'kntest', mode: 'iptables', runner: r, onProgress: (s) => progress.push(s) });
      expect(await readKindRecord('kntest')).toMatchObject({ status: 'up' });
      expect(progress).toContain('side-loading failed (docker pull docker.io/mccutchen/go-httpbin:v2.15.0: Error response from daemon: toomanyrequests: '
        + 'You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit); the nodes will pull the images themselves');
      expect((await log()).some((l) => l.startsWith('kind load'))).toBe(false);
      await lab.destroy();
    } finally {
      await rm(join(fake.dir, 'pull-fails'), { force: true });
    }
  });

  it('does not start kind at all when aborted before the create', async () => {
    await reset('ok');
    const ac = new AbortController();
    ac.abort();
    await expect(createKindLab({ name: 'kntest', mode: 'iptables', runner: r, signal: ac.signal })).rejects.toThrow(/interrupted before it began; nothing was made/);
    expect((await log()).some((l) => l.startsWith('kind create'))).toBe(false);
    expect(await readKindRecord('kntest')).toBeNull();
  });

  it('creates, lists, applies with a sync report, loads from the client pod and destroys', async () => {
    await reset('ok');
    // Before: kube-dns and the API server are programmed; after: httpbin's three endpoints too
    // (kind-httpbin.kubectl.json's slices), so the settle loop sees a finished sync.
    const dnat = (ip: string) => `-A KUBE-SEP-X -p tcp -m tcp -j DNAT --to-destination ${ip}`;
    const base = ['*nat', ':KUBE-SERVICES - [0:0]', ...['172.18.0.2:6443', '10.244.0.2:53', '10.244.0.3:53', '10.244.0.2:9153', '10.244.0.3:9153'].map(dnat)];
    await set('rules', [...base, '-A KUBE-SERVICES -j KUBE-NODEPORTS', 'COMMIT', ''].join('\n'));
    await set('rules.after', [...base, ':KUBE-SVC-FREKB6WNWYJLKTHC - [0:0]', '-A KUBE-SERVICES -d 10.96.120.15/32 -p tcp -j KUBE-SVC-FREKB6WNWYJLKTHC',
      ...['10.244.1.2:8080', '10.244.2.2:8080', '10.244.2.3:8080'].map(dnat), '-A KUBE-SERVICES -j KUBE-NODEPORTS', 'COMMIT', ''].join('\n'));
    const progress: string[] = [];
    const lab = await createKindLab({ name: 'netlab', mode: 'iptables', runner: r, onProgress: (s) => progress.push(s) });
    expect(progress.at(-1)).toBe('cluster netlab is up (context kind-netlab)');
    expect(await readKindRecord('netlab')).toMatchObject({ name: 'netlab', backend: 'kind', mode: 'iptables', status: 'up' });
    expect(lab.backend).toBe('kind');
    expect((await lab.nodes()).map((n) => n.name)).toEqual(['netlab-control-plane', 'netlab-worker', 'netlab-worker2']);
    expect((await lab.pods()).filter((p) => p.ready && p.labels.app === 'httpbin')).toHaveLength(2);
    expect(await lab.capabilities()).toEqual({ ipvs: false });
    await expect(lab.exec('other-worker', ['true'])).rejects.toThrow(/not a node of kind cluster netlab/);
    // Input reaches the command (iptables-restore, nft -f -) only through docker exec -i.
    expect((await lab.exec('netlab-worker', ['cat'], { input: 'rules\n' })).stdout).toBe('rules\n');
    expect((await lab.exec('netlab-worker', ['cat'])).stdout).toBe('');

    const { loadManifest } = await import('../../lib/lab/manifests.ts');
    const reports = await lab.apply((await loadManifest('httpbin')));
    expect(JSON.parse(await readFile(join(fake.dir, 'applied.json'), 'utf8')).items.map((o: { kind: string }) => o.kind)).toEqual(['ServiceAccount', 'Service', 'Deployment']);
    expect(reports).toHaveLength(3);
    expect(reports[1]).toEqual({
      node: 'netlab-worker', mode: 'iptables', removed: [],
      added: [':KUBE-SVC-FREKB6WNWYJLKTHC', '-A KUBE-SERVICES -d 10.96.120.15/32 -p tcp -j KUBE-SVC-FREKB6WNWYJLKTHC',
        ...['10.244.1.2:8080', '10.244.2.2:8080', '10.244.2.3:8080'].map(dnat)],
    });
    expect((await lab.services()).map((x) => `${x.namespace}/${x.name}`)).toEqual(['default/httpbin', 'default/kubernetes', 'kube-system/kube-dns']);
    expect((await lab.endpointSlices()).flatMap((x) => x.endpoints.map((e) => e.addresses[0]))).toHaveLength(6);

    // The real load script, in a real sh, with a fake curl.
    const res = await lab.load({ url: 'http://10.96.120.15:8000/hostname', requests: 30, concurrency: 4 });
    expect(res.total).toBe(30);
    expect(res.ok).toBe(30);
    expect(Object.values(res.byPod).reduce((a, b) => a + b, 0)).toBe(30);
    for (const pod of Object.keys(res.byPod)) expect(pod).toMatch(/^httpbin-[012]$/);
    expect(res.firstOkMs).not.toBeNull();
    expect((await log()).some((l) => l.startsWith('kubectl --context kind-netlab -n default exec curl-5b5c7c9c8d-qx7pl -c curl -- sh -c'))).toBe(true);

    // ipset is not on kindest/node: it runs in kube-proxy's pod on the node.
    await set('ipset', 'Name: KUBE-CLUSTER-IP\nType: hash:ip,port\n');
    const ipset = await lab.exec('netlab-worker', ['ipset', 'list']);
    expect(ipset.command).toBe('kubectl --context kind-netlab -n kube-system exec kube-proxy-9xq4w -- ipset list');
    expect(ipset.stdout).toContain('KUBE-CLUSTER-IP');

    await lab.destroy();
    // The owner was read off the nodes' mounts before the delete: no need to look inside them.
    expect((await log()).slice(-3)).toEqual(['kind get nodes --name netlab',
      'docker inspect --type container --format {{.Name}}{{range .Mounts}} {{.Destination}}{{end}} netlab-control-plane netlab-worker netlab-worker2',
      'kind delete cluster --name netlab']);
    expect(await readKindRecord('netlab')).toBeNull();
  });

  it('leaves out host-network pods (kube-proxy, kindnet, static pods): they own no pod IP', async () => {
    const pod = (name: string, hostNetwork: boolean) => ({
      kind: 'Pod', metadata: { name, namespace: 'kube-system' }, spec: { nodeName: 'netlab-worker', ...(hostNetwork ? { hostNetwork: true } : {}) },
      status: { phase: 'Running', podIP: hostNetwork ? '172.18.0.2' : '10.244.1.5', conditions: [{ type: 'Ready', status: 'True' }] },
    });
    const list = JSON.stringify({ kind: 'List', items: [pod('kube-proxy-x', true), pod('kindnet-y', true), pod('coredns-z', false)] });
    expect(parsePodsJson(list).map((p) => p.name)).toEqual(['kube-proxy-x', 'kindnet-y', 'coredns-z']);
    expect(parsePodsJson(list, { podNetworkOnly: true }).map((p) => `${p.name} ${p.ip}`)).toEqual(['coredns-z 10.244.1.5']);
  });

  it('doctor reports each prerequisite; prefetch pulls the images and loads them into a cluster', async () => {
    await reset('ok');
    await set('clusters', 'netlab\n');
    await set('images', 'curlimages/curl:8.16.0\n');
    const report = await doctor(r, { name: 'netlab' });
    const by = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    expect(by['docker daemon']).toEqual({ name: 'docker daemon', ok: true, detail: 'Docker Engine 28.2.2', fix: undefined });
    expect(by.kind.detail).toBe('kind v0.29.0');
    expect(by.kubectl).toMatchObject({ ok: true, detail: 'kubectl v1.33.1' });
    expect(by['cluster name netlab']).toMatchObject({
      ok: false, detail: 'a kind cluster named netlab exists, not made by kube-netlab',
      fix: 'pick another --name, or `kind delete cluster --name netlab` if you no longer need it',
    });
    expect(by['image curlimages/curl:8.16.0'].ok).toBe(true);
    expect(by['image docker.io/mccutchen/go-httpbin:v2.15.0']).toMatchObject({ ok: false, fix: '`npx kube-netlab prefetch` pulls it, once, into Docker\'s image store' });
    // Nothing read from this host's /proc/modules (a Mac has none): checked inside a node by `up`.
    expect(by['IPVS mode']).toMatchObject({ ok: true, detail: expect.stringContaining('`docker exec <node> modprobe -a ip_vs ip_vs_rr`') });
    expect(report.ok).toBe(false);

    // kind would run its nodes on nerdctl: the docker commands would come back empty.
    const nerd = await doctor(new EnvRunner({ PATH: fake.path, KIND_EXPERIMENTAL_PROVIDER: 'nerdctl' }), { name: 'netlab' });
    expect(nerd.checks.find((c) => c.name === 'kind node provider')).toMatchObject({
      ok: false, detail: 'nerdctl: KIND_EXPERIMENTAL_PROVIDER=nerdctl is set', fix: expect.stringMatching(/^kube-netlab runs its kind nodes through Docker only: unset KIND_EXPERIMENTAL_PROVIDER/),
    });
    // An unknown value kind ignores ("ignoring unknown value"), and so does kube-netlab.
    expect(await kindUnavailable(new EnvRunner({ PATH: fake.path, KIND_EXPERIMENTAL_PROVIDER: 'lxc' }))).toBeNull();

    const steps = await prefetch(r, { name: 'netlab' });
    const commands = steps.map((x) => x.command);
    // curl was in the store already: looked at, not pulled again.
    expect(commands.slice(0, 3)).toEqual([
      'docker pull kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f',
      'docker pull docker.io/mccutchen/go-httpbin:v2.15.0',
      "docker image inspect --format '{{.Id}}' curlimages/curl:8.16.0",
    ]);
    expect(steps[2].detail).toBe("already in Docker's image store");
    expect(commands[3]).toMatch(/^docker save --platform linux\/amd64 -o \S+\/images\.tar docker\.io\/mccutchen\/go-httpbin:v2\.15\.0 curlimages\/curl:8\.16\.0$/);
    expect(commands[4]).toMatch(/^kind load image-archive \S+\/images\.tar --name netlab$/);
    expect(steps.every((x) => x.ok)).toBe(true);
    expect(await readFile(join(fake.dir, 'loaded'), 'utf8')).toBe('netlab linux/amd64 docker.io/mccutchen/go-httpbin:v2.15.0\nnetlab linux/amd64 curlimages/curl:8.16.0\n');
  });

  it('doctor says the docker daemon is unreachable with the real docker CLI', async () => {
    const report = await doctor(new EnvRunner({ DOCKER_HOST: `unix://${join(tmp, 'no-daemon.sock')}` }));
    expect(report.checks[0]).toMatchObject({ name: 'docker daemon', ok: false, detail: 'docker daemon unreachable' });
    expect(report.checks.filter((c) => c.name.startsWith('image ')).every((c) => c.detail === 'not checked: docker daemon unreachable')).toBe(true);
    expect(report.checks.map((c) => c.name.split(' ')[0])).toEqual(['docker', 'kind', 'kind', 'kubectl', 'IPVS', 'cluster', 'image', 'image', 'image']);
    expect(report.checks[1]).toMatchObject({ name: 'kind node provider', ok: true, detail: 'docker: `docker -v` answers' });
  });
});
