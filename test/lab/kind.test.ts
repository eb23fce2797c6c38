import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { MissingToolError, Runner, runner, type ExecResult, type RunOptions } from '../../lib/exec/index.ts';
import {
  BackendUnavailableError, LOAD_SCRIPT, classifyDockerInfoFailure, classifyKindFailure, compareSemver, createKindLab,
  diffLines, dockerExec, dockerImageInspect, dockerInfo, dockerPull, kindCreate, kindDelete, kindErrors, kindGetClusters, kindGetNodes, kindLoadImage,
  kindUnavailable, kubectlApply, kubectlExec, kubectlGetJson, kubectlGetKubeProxyPod, kubectlRolloutStatus, kubectlScale,
  loadArgv, parseKindClusters, parseKindNodes, parseKindVersion, parseKubeProxyMode, parseKubectlVersion,
  parseLoadOutput, parseNodesJson, parsePodsJson, preflight, programmedDestinations, ruleLines,
} from '../../lib/lab/kind/index.ts';
import { doctor, kernelModules, labImages, prefetch } from '../../lib/lab/kind/doctor.ts';

const FIXTURES = new URL('../fixtures/kind/', import.meta.url);
const fixture = (name: string) => readFile(new URL(name, FIXTURES), 'utf8');

/** The real runner, with extra environment for every command (PATH, DOCKER_HOST). */
class EnvRunner extends Runner {
  constructor(private readonly env: Record<string, string>) {
    super({ timeoutMs: 30_000 });
  }
  override run(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
    return super.run(argv, { ...opts, env: { ...this.env, ...opts.env } });
  }
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kn-kind-test-'));
});
afterAll(async () => {
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
    expect(kindLoadImage('netlab', ['docker.io/mccutchen/go-httpbin:v2.15.0', 'curlimages/curl:8.16.0']))
      .toEqual(['kind', 'load', 'docker-image', 'docker.io/mccutchen/go-httpbin:v2.15.0', 'curlimages/curl:8.16.0', '--name', 'netlab']);
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

  it('reads the IPVS kernel modules from /proc/modules or /sys/module', () => {
    const proc = 'ip_vs_rr 12288 1 - Live 0x0000000000000000\nip_vs 221184 3 ip_vs_rr, Live 0x0000000000000000\n';
    expect(kernelModules(proc, (m) => m === 'nf_conntrack')).toEqual({ ip_vs: true, ip_vs_rr: true, ip_vs_wrr: false, ip_vs_sh: false, nf_conntrack: true });
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
    const err = await preflight(r, 'nftables').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).cause).toBe('docker daemon unreachable');
    expect((err as Error).message).toMatch(/Cannot connect to the Docker daemon/);
    expect((err as Error).message).toMatch(/fix: start it/);
    expect(await kindUnavailable(r)).toMatch(/^docker daemon unreachable; start it/);
  });

  it('kubectl accepts every kubectl argv we build (stopping at the missing context)', async () => {
    // The real kubectl, with an empty kubeconfig: flags are parsed before the context is looked up,
    // so a wrong flag would fail with "unknown flag" rather than with the missing context.
    const r = new EnvRunner({ KUBECONFIG: join(tmp, 'no-kubeconfig') });
    const argvs = [
      kubectlApply('kntest'), kubectlScale('kntest', 'httpbin', 3), kubectlRolloutStatus('kntest', 'httpbin'),
      kubectlGetJson('kntest', ['services', 'endpointslices']), kubectlGetJson('kntest', ['pods'], { selector: { app: 'curl' } }),
      kubectlGetKubeProxyPod('kntest', 'kntest-worker'), kubectlExec('kntest', 'curl-x', ['sh', '-c', 'true'], { container: 'curl' }),
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
    for (const argv of [dockerInfo(), dockerExec('kntest-worker', ['test', '-e', '/proc/net/ip_vs']), dockerImageInspect('curlimages/curl:8.16.0'), dockerPull('curlimages/curl:8.16.0')]) {
      const { exitCode, stderr } = await r.run(argv, { allowFailure: true, timeoutMs: 15_000 });
      expect(exitCode).not.toBe(0);
      expect(stderr).not.toMatch(/unknown (flag|shorthand)|unknown command/);
      expect(stderr).toMatch(/Cannot connect to the Docker daemon/);
    }
  });

  it('createKindLab fails fast and leaves nothing behind', async () => {
    const r = new EnvRunner({ DOCKER_HOST: `unix://${join(tmp, 'no-daemon.sock')}` });
    // Other test files run alongside and make their own namespaces and temp files: look for ours.
    const ours = (names: string[]) => names.filter((n) => n.includes('kntest') || (n.includes('kind') && !tmp.endsWith(n))).sort();
    const netns = async () => ours((await runner.run(['ip', 'netns', 'list'], { allowFailure: true })).stdout.split('\n'));
    const netnsBefore = await netns();
    const tmpBefore = ours(readdirSync(tmpdir()));
    const labsBefore = readdirSync(new URL('../../labs/', import.meta.url)).sort();
    const echoed: string[] = [];
    const err = await createKindLab({ name: 'kntest', mode: 'iptables', runner: r, echo: (c) => echoed.push(c) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).cause).toBe('docker daemon unreachable');
    // Nothing past the docker check ran: no kind create, so no delete either.
    expect(echoed).toEqual(["docker info --format '{{.ServerVersion}}'"]);
    expect(await netns()).toEqual(netnsBefore);
    expect(ours(readdirSync(tmpdir()))).toEqual(tmpBefore);
    expect(readdirSync(new URL('../../labs/', import.meta.url)).sort()).toEqual(labsBefore);
  });
});

describe('kind backend: create, use and clean up, with fake kind/kubectl/docker', () => {
  let fake: string;
  let r: EnvRunner;
  const log = async () => (await readFile(join(fake, 'log'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
  const set = (file: string, text: string) => writeFile(join(fake, file), text);

  beforeAll(async () => {
    fake = join(tmp, 'fake');
    await mkdir(fake);
    const scripts: Record<string, string> = {
      docker: `
case "$1" in
  info) echo 28.2.2 ;;
  pull) echo "Status: Downloaded newer image for $2" ;;
  image) if grep -qxF "$5" "$F/images" 2>/dev/null; then echo sha256:0f3b; else echo "Error: No such image: $5" >&2; exit 1; fi ;;
  exec) shift 2
        if [ "$1" = iptables-save ]; then cat "$F/rules"; else exec "$@"; fi ;;
  *) echo "unexpected docker $*" >&2; exit 1 ;;
esac`,
      kind: `
case "$1" in
  version) cat "$F/kind-version" ;;
  get) if [ -s "$F/clusters" ]; then cat "$F/clusters"; else echo "No kind clusters found." >&2; fi ;;
  create) case "$(cat "$F/create")" in
            ok) echo 'Creating cluster "x" ...' >&2 ;;
            fail) cat "$F/create.stderr" >&2; exit 1 ;;
            hang) exec sleep 30 ;;
          esac ;;
  load) echo "Image: \"$3\" with ID \"sha256:0f3b\" not yet present on node \"$6-worker\", loading..." >&2 ;;
  delete) echo "Deleting cluster \\"$4\\" ..." >&2 ;;
  *) echo "ERROR: unknown command \\"$1\\" for \\"kind\\"" >&2; exit 1 ;;
esac`,
      kubectl: `
[ "$1" = --context ] && shift 2
case "$*" in
  "version --client -o json") echo '{"clientVersion":{"gitVersion":"v1.33.1"}}' ;;
  "get nodes -o json") cat "$F/nodes.json" ;;
  "get pods -A -o json"|"get pods -A -l app=curl -o json") cat "$F/pods.json" ;;
  "get services,endpointslices -A -o json") cat "$F/cluster.json" ;;
  "apply -f -") cat > "$F/applied.json"; cp "$F/rules.after" "$F/rules"; echo "deployment.apps/httpbin configured" ;;
  "-n default rollout status deployment/httpbin --timeout=180s") echo 'deployment "httpbin" successfully rolled out' ;;
  *" exec "*) while [ "$1" != -- ]; do shift; done; shift; exec "$@" ;;
  *) echo "error: unexpected kubectl $*" >&2; exit 1 ;;
esac`,
      // Answers like go-httpbin's /hostname (pretty-printed JSON), from one of three pods.
      curl: `
w=''; url=''
while [ $# -gt 0 ]; do case "$1" in -w) w="$2"; shift 2 ;; -m) shift 2 ;; -s) shift ;; *) url="$1"; shift ;; esac; done
printf '{\\n  "hostname": "httpbin-%d"\\n}\\n' $((RANDOM % 3))
printf '%s' "\${w//%\\{http_code\\}/200}"`,
    };
    for (const [name, body] of Object.entries(scripts)) {
      const lg = name === 'curl' ? '' : `printf '%s\\n' "${name} \${*:1:12}" >> "$F/log"\n`;
      await writeFile(join(fake, name), `#!/bin/bash\nF=${JSON.stringify(fake)}\n${lg}${body}\n`);
      await chmod(join(fake, name), 0o755);
    }
    await set('kind-version', 'kind v0.29.0 go1.24.2 linux/amd64\n');
    await set('nodes.json', await fixture('kubectl-get-nodes.json'));
    await set('pods.json', await fixture('kubectl-get-pods.json'));
    await set('cluster.json', await readFile(new URL('../fixtures/kind-httpbin.kubectl.json', import.meta.url), 'utf8'));
    r = new EnvRunner({ PATH: `${fake}:/usr/bin:/bin` });
  });

  const reset = async (create: string, stderr = '') => {
    await set('log', '');
    await set('create', create);
    await set('create.stderr', stderr);
    await set('clusters', '');
  };

  it('refuses nftables with a kind older than v0.23', async () => {
    await reset('ok');
    await set('kind-version', 'kind v0.22.0 go1.21.7 linux/amd64\n');
    try {
      const err = await createKindLab({ name: 'kntest', mode: 'nftables', runner: r }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BackendUnavailableError);
      expect((err as BackendUnavailableError).cause).toBe('kind too old');
      expect((err as Error).message).toMatch(/kind v0\.22\.0 is older than v0\.23\.0/);
      expect(await log()).not.toContain('kind create cluster --name kntest');
      // iptables mode runs on that kind.
      expect(await kindUnavailable(r, 'iptables')).toBeNull();
    } finally {
      await set('kind-version', 'kind v0.29.0 go1.24.2 linux/amd64\n');
    }
  });

  it('refuses a name that is taken', async () => {
    await reset('ok');
    await set('clusters', 'kntest\n');
    await expect(createKindLab({ name: 'kntest', mode: 'iptables', runner: r })).rejects.toThrow(/kind cluster kntest already exists/);
    expect((await log()).some((l) => l.startsWith('kind create'))).toBe(false);
  });

  it('deletes a half-made cluster when kind create fails, and says what kind said', async () => {
    await reset('fail', await fixture('kind-create-failed.stderr'));
    const err = await createKindLab({ name: 'kntest', mode: 'ipvs', runner: r }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^kind create cluster kntest failed: failed to create cluster: command "docker run --name netlab-worker/);
    expect((err as Error).message).toMatch(/the half-made cluster was deleted$/);
    const l = await log();
    expect(l.slice(-2)).toEqual([
      `kind create cluster --name kntest --config ${join(new URL('../../labs/', import.meta.url).pathname, 'kind-ipvs.yaml')} --wait 120s`,
      'kind delete cluster --name kntest',
    ]);
  });

  it('keeps the nodes with retain, and never deletes a cluster that was already there', async () => {
    await reset('fail', await fixture('kind-create-failed.stderr'));
    await expect(createKindLab({ name: 'kntest', mode: 'iptables', runner: r, retain: true })).rejects.toThrow(/kept \(--retain\)/);
    expect((await log()).at(-1)).toMatch(/^kind create cluster --name kntest .* --wait 120s --retain$/);
    await reset('fail', await fixture('kind-create-exists.stderr'));
    await expect(createKindLab({ name: 'kntest', mode: 'iptables', runner: r })).rejects.toThrow(/already exist for a cluster with the name/);
    expect((await log()).at(-1)).toMatch(/^kind create cluster/);
  });

  it('stops a create that is interrupted and deletes what it made', async () => {
    await reset('hang');
    const ac = new AbortController();
    const t0 = performance.now();
    const p = createKindLab({ name: 'kntest', mode: 'iptables', runner: r, workers: 3, signal: ac.signal }).catch((e: unknown) => e);
    await new Promise((res) => setTimeout(res, 500));
    ac.abort();
    const err = await p;
    expect((err as Error).message).toMatch(/interrupted .* the half-made cluster was deleted/);
    expect(performance.now() - t0).toBeLessThan(10_000);
    // A worker count other than the file's goes to kind on stdin.
    expect((await log()).slice(-2)).toEqual(['kind create cluster --name kntest --config - --wait 120s', 'kind delete cluster --name kntest']);
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
    expect(lab.backend).toBe('kind');
    expect((await lab.nodes()).map((n) => n.name)).toEqual(['netlab-control-plane', 'netlab-worker', 'netlab-worker2']);
    expect((await lab.pods()).filter((p) => p.ready && p.labels.app === 'httpbin')).toHaveLength(2);
    expect(await lab.capabilities()).toEqual({ ipvs: existsSync('/proc/net/ip_vs') });
    await expect(lab.exec('other-worker', ['true'])).rejects.toThrow(/not a node of kind cluster netlab/);

    const { loadManifest } = await import('../../lib/lab/manifests.ts');
    const reports = await lab.apply((await loadManifest('httpbin')));
    expect(JSON.parse(await readFile(join(fake, 'applied.json'), 'utf8')).items.map((o: { kind: string }) => o.kind)).toEqual(['ServiceAccount', 'Service', 'Deployment']);
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

    await lab.destroy();
    expect((await log()).at(-1)).toBe('kind delete cluster --name netlab');
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
    expect(by['cluster name netlab']).toMatchObject({ ok: false, fix: 'use it, pick another --name, or `kind delete cluster --name netlab`' });
    expect(by['image curlimages/curl:8.16.0'].ok).toBe(true);
    expect(by['image docker.io/mccutchen/go-httpbin:v2.15.0']).toMatchObject({ ok: false, fix: 'docker pull docker.io/mccutchen/go-httpbin:v2.15.0' });
    expect(by['kernel modules for IPVS mode']).toBeDefined();
    expect(report.ok).toBe(false);

    const steps = await prefetch(r, { name: 'netlab' });
    expect(steps.map((x) => x.command)).toEqual([
      'docker pull kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f',
      'docker pull docker.io/mccutchen/go-httpbin:v2.15.0',
      'docker pull curlimages/curl:8.16.0',
      'kind load docker-image docker.io/mccutchen/go-httpbin:v2.15.0 curlimages/curl:8.16.0 --name netlab',
    ]);
    expect(steps.every((x) => x.ok)).toBe(true);
  });

  it('doctor says the docker daemon is unreachable with the real docker CLI', async () => {
    const report = await doctor(new EnvRunner({ DOCKER_HOST: `unix://${join(tmp, 'no-daemon.sock')}` }));
    expect(report.checks[0]).toMatchObject({ name: 'docker daemon', ok: false, detail: 'docker daemon unreachable' });
    expect(report.checks.filter((c) => c.name.startsWith('image ')).every((c) => c.detail === 'not checked: docker daemon unreachable')).toBe(true);
    expect(report.checks.map((c) => c.name.split(' ')[0])).toEqual(['docker', 'kind', 'kubectl', 'kernel', 'cluster', 'image', 'image', 'image']);
  });
});
