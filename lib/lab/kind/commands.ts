/**
 * The kind backend's commands and the parsers for what they print. Pure: argv arrays in, data
 * out, nothing runs here. Flags are kind's (pkg/cmd/kind/...), kubectl's and docker's own.
 */
import type { LabNode, LoadResult, Pod } from '../types.ts';
import type { ProxyMode } from '../../proxy/modes.ts';

/** kind names the kubeconfig context of cluster N `kind-N`; every kubectl call pins it. */
export function kubeContext(cluster: string): string {
  return `kind-${cluster}`;
}

// ---------------------------------------------------------------------------------------------
// kind

export interface KindCreateOptions {
  name: string;
  /** A config file path, or `-` to read the config from stdin. */
  config: string;
  /** How long kind waits for the control plane to be Ready, as a Go duration (`120s`). */
  wait?: string;
  /** Keep the nodes when creation fails (for debugging); we then don't delete them either. */
  retain?: boolean;
}

export function kindCreate(o: KindCreateOptions): string[] {
  const argv = ['kind', 'create', 'cluster', '--name', o.name, '--config', o.config];
  if (o.wait !== undefined) argv.push('--wait', o.wait);
  if (o.retain) argv.push('--retain');
  return argv;
}

export const kindDelete = (name: string): string[] => ['kind', 'delete', 'cluster', '--name', name];
export const kindGetClusters = (): string[] => ['kind', 'get', 'clusters'];
export const kindGetNodes = (name: string): string[] => ['kind', 'get', 'nodes', '--name', name];
export const kindVersion = (): string[] => ['kind', 'version'];

/** Load an image archive (from `docker save`) into every node of cluster `name`. */
export const kindLoadArchive = (name: string, file: string): string[] => ['kind', 'load', 'image-archive', file, '--name', name];

// ---------------------------------------------------------------------------------------------
// kubectl: always with --context, so a lab never acts on whatever cluster is current.

function kubectl(cluster: string, ...args: string[]): string[] {
  return ['kubectl', '--context', kubeContext(cluster), ...args];
}

/** `kubectl apply -f -`: the manifests go in on stdin. */
export const kubectlApply = (cluster: string): string[] => kubectl(cluster, 'apply', '-f', '-');

export function kubectlScale(cluster: string, deployment: string, replicas: number, namespace = 'default'): string[] {
  if (!Number.isInteger(replicas) || replicas < 0) throw new Error(`replicas must be a whole number ≥ 0, got ${replicas}`);
  return kubectl(cluster, '-n', namespace, 'scale', `deployment/${deployment}`, `--replicas=${replicas}`);
}

export function kubectlRolloutStatus(cluster: string, deployment: string, namespace = 'default', timeout = '120s'): string[] {
  return kubectl(cluster, '-n', namespace, 'rollout', 'status', `deployment/${deployment}`, `--timeout=${timeout}`);
}

export interface GetOptions {
  /** A namespace; all namespaces (`-A`) when absent. */
  namespace?: string;
  /** Label selector as a map; becomes `-l k=v,k2=v2`. */
  selector?: Record<string, string>;
  fieldSelector?: string;
}

/** `kubectl get R1,R2 -A -o json`; cluster-scoped resources (nodes) ignore -A. */
export function kubectlGetJson(cluster: string, resources: readonly string[], o: GetOptions = {}): string[] {
  if (resources.length === 0) throw new Error('kubectlGetJson: no resources');
  const argv = kubectl(cluster, 'get', resources.join(','));
  argv.push(...(o.namespace ? ['-n', o.namespace] : ['-A']));
  const sel = labelSelector(o.selector);
  if (sel) argv.push('-l', sel);
  if (o.fieldSelector) argv.push('--field-selector', o.fieldSelector);
  argv.push('-o', 'json');
  return argv;
}

/**
 * `kubectl delete services -l SELECTOR` in one namespace: only what carries the selector's labels,
 * and none left is no error (a clean-up may run twice).
 */
export function kubectlDeleteServices(cluster: string, selector: Record<string, string>, namespace = 'default'): string[] {
  const sel = labelSelector(selector);
  if (!sel) throw new Error('kubectlDeleteServices: an empty selector would delete every Service');
  return kubectl(cluster, '-n', namespace, 'delete', 'services', '-l', sel, '--ignore-not-found');
}

export const kubectlGetNodes = (cluster: string): string[] => kubectl(cluster, 'get', 'nodes', '-o', 'json');

/** Wait until every node's Ready condition is True (`kubectl wait` exits 1 on its timeout). */
export const kubectlWaitNodesReady = (cluster: string, timeout: string): string[] =>
  kubectl(cluster, 'wait', '--for=condition=Ready', 'nodes', '--all', `--timeout=${timeout}`);

/** Wait until a DaemonSet runs a ready, current pod on every node it should. */
export const kubectlRolloutStatusDaemonSet = (cluster: string, name: string, namespace: string, timeout: string): string[] =>
  kubectl(cluster, '-n', namespace, 'rollout', 'status', `daemonset/${name}`, `--timeout=${timeout}`);

/** The kube-proxy ConfigMap kubeadm writes; its `config.conf` names the mode. */
export const kubectlGetKubeProxyConfig = (cluster: string): string[] =>
  kubectl(cluster, '-n', 'kube-system', 'get', 'configmap', 'kube-proxy', '-o', 'json');

/** kube-proxy's pod on one node (kubeadm labels the DaemonSet's pods k8s-app=kube-proxy). */
export const kubectlGetKubeProxyPod = (cluster: string, node: string): string[] =>
  kubectlGetJson(cluster, ['pods'], { namespace: 'kube-system', selector: { 'k8s-app': 'kube-proxy' }, fieldSelector: `spec.nodeName=${node}` });

/** `stdin`: the command reads ours (-i); without it kubectl gives it none. */
export function kubectlExec(cluster: string, pod: string, argv: readonly string[], o: { namespace?: string; container?: string; stdin?: boolean } = {}): string[] {
  if (argv.length === 0) throw new Error('kubectlExec: empty argv');
  return kubectl(cluster, '-n', o.namespace ?? 'default', 'exec', ...(o.stdin ? ['-i'] : []), pod, ...(o.container ? ['-c', o.container] : []), '--', ...argv);
}

export function labelSelector(sel: Record<string, string> | undefined): string {
  if (!sel) return '';
  const LABEL = /^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/;
  return Object.entries(sel).map(([k, v]) => {
    if (!LABEL.test(k) || (v !== '' && !LABEL.test(v))) throw new Error(`label selector ${k}=${v}: not a valid label key/value`);
    return `${k}=${v}`;
  }).join(',');
}

// ---------------------------------------------------------------------------------------------
// The node provider kind picks (kind v0.29.0: pkg/internal/runtime/runtime.go reads
// KIND_EXPERIMENTAL_PROVIDER; without it pkg/cluster/provider.go DetectNodeProvider takes the first
// of docker, nerdctl (or finch), podman whose `<tool> -v` prints exactly one line starting
// "Docker version", "nerdctl version", "finch version", "podman version", and falls back to docker).

export type NodeProvider = 'docker' | 'podman' | 'nerdctl' | 'finch' | 'nerdctl.lima';

/** The KIND_EXPERIMENTAL_PROVIDER values kind acts on; any other value it ignores. */
export const KIND_PROVIDER_VALUES: readonly NodeProvider[] = ['docker', 'podman', 'nerdctl', 'finch', 'nerdctl.lima'];

/** The order kind tries providers in, each with the banner `<tool> -v` must start with. */
export const KIND_PROVIDER_PROBES: readonly { provider: NodeProvider; banner: string }[] = [
  { provider: 'docker', banner: 'Docker version' },
  { provider: 'nerdctl', banner: 'nerdctl version' },
  { provider: 'finch', banner: 'finch version' },
  { provider: 'podman', banner: 'podman version' },
];

export const toolVersionBanner = (tool: string): string[] => [tool, '-v'];

/** Whether `<tool> -v` output is that tool's, as kind decides it: one line with the banner. */
export function isProviderBanner(stdout: string, banner: string): boolean {
  const out = stdout.split('\n').filter((l) => l !== '');
  return out.length === 1 && out[0].startsWith(banner);
}

// ---------------------------------------------------------------------------------------------
// docker

export const dockerInfo = (): string[] => ['docker', 'info', '--format', '{{.ServerVersion}}'];
export const dockerPull = (image: string): string[] => ['docker', 'pull', image];

/**
 * The daemon's platform and API version, `linux/arm64 1.51` (docker/cli's `docker version`
 * template fields Server.Os, Server.Arch (Go's GOARCH names) and Server.APIVersion).
 */
export const dockerServerPlatform = (): string[] => ['docker', 'version', '--format', '{{.Server.Os}}/{{.Server.Arch}} {{.Server.APIVersion}}'];

export interface DockerServer { platform: string; api: string }

export function parseDockerServerPlatform(stdout: string): DockerServer {
  const m = /^([a-z0-9]+\/[a-z0-9]+) (\d+\.\d+)$/.exec(stdout.trim());
  if (!m) throw new Error(`docker version: expected "<os>/<arch> <api version>", got ${JSON.stringify(stdout.trim())}`);
  return { platform: m[1], api: m[2] };
}

/** `docker save --platform` needs API 1.48 (Docker 28); older daemons keep one platform per image anyway. */
export function saveTakesPlatform(api: string): boolean {
  const [major, minor] = api.split('.').map(Number);
  return major > 1 || (major === 1 && minor >= 48);
}

/**
 * `docker save` of `images` into `file`, only the nodes' platform when the daemon can: a
 * multi-platform index whose other platforms are not in the store is what makes kind's
 * `load docker-image` (`ctr images import --all-platforms`) fail on Docker's containerd image
 * store and on Docker Desktop (kind #3795).
 */
export function dockerSave(images: readonly string[], file: string, platform: string | null): string[] {
  if (images.length === 0) throw new Error('dockerSave: no images');
  return ['docker', 'save', ...(platform ? ['--platform', platform] : []), '-o', file, ...images];
}
export const dockerImageInspect = (image: string): string[] => ['docker', 'image', 'inspect', '--format', '{{.Id}}', image];

/** Each container's name and mount destinations, one line each: `/<name> /var /lib/modules …`. */
export function dockerInspectMounts(containers: readonly string[]): string[] {
  if (containers.length === 0) throw new Error('dockerInspectMounts: no containers');
  return ['docker', 'inspect', '--type', 'container', '--format', '{{.Name}}{{range .Mounts}} {{.Destination}}{{end}}', ...containers];
}

/** `stdin`: the command reads ours (-i: iptables-restore, nft -f -); without it docker gives it none. */
export function dockerExec(node: string, argv: readonly string[], o: { stdin?: boolean } = {}): string[] {
  if (argv.length === 0) throw new Error('dockerExec: empty argv');
  return ['docker', 'exec', ...(o.stdin ? ['-i'] : []), node, ...argv];
}

// ---------------------------------------------------------------------------------------------
// Parsers

function lines(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/** kind's own notices, printed instead of an empty list (on stderr, but tolerate them on stdout). */
function isKindNotice(line: string): boolean {
  return line.startsWith('No kind ') || line.startsWith('using podman') || line.startsWith('enabling experimental');
}

/** `kind get clusters`: one name per line, or `No kind clusters found.` */
export function parseKindClusters(stdout: string): string[] {
  return lines(stdout).filter((l) => !isKindNotice(l));
}

/** `kind get nodes --name N`: one container name per line, or `No kind nodes found for cluster "N".` */
export function parseKindNodes(stdout: string): string[] {
  return lines(stdout).filter((l) => !isKindNotice(l));
}

export interface Semver { major: number; minor: number; patch: number; pre: string }

/** `kind version`: `kind v0.27.0 go1.23.4 linux/amd64` (pre-releases: `v0.24.0-alpha.12+abc`). */
export function parseKindVersion(stdout: string): Semver {
  const first = stdout.trim().split('\n')[0] ?? '';
  const words = first.split(/\s+/);
  const v = words[0] === 'kind' ? words[1] : words[0];
  const parsed = v ? parseSemver(v) : null;
  if (!parsed) throw new Error(`kind version: expected "kind vX.Y.Z goX linux/amd64", got ${JSON.stringify(first)}`);
  return parsed;
}

export function parseSemver(v: string): Semver | null {
  const m = /^v?(\d{1,6})\.(\d{1,6})\.(\d{1,6})(?:-([0-9A-Za-z.-]{1,100}))?(?:\+[0-9A-Za-z.-]{1,100})?$/.exec(v);
  if (!m) return null;
  return { major: +m[1], minor: +m[2], patch: +m[3], pre: m[4] ?? '' };
}

/** a < b → negative. A pre-release sorts before its release, as in semver. */
export function compareSemver(a: Semver, b: Semver): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch || (a.pre === b.pre ? 0 : a.pre === '' ? 1 : b.pre === '' ? -1 : a.pre < b.pre ? -1 : 1);
}

export const formatSemver = (v: Semver): string => `v${v.major}.${v.minor}.${v.patch}${v.pre ? `-${v.pre}` : ''}`;

/**
 * The oldest kind the labs run on, in every mode. labs/kind-*.yaml pin the node image published
 * with kind v0.29.0 (kindest/node:v1.33.1@sha256:0500722…, containerd 2.1 with config version 3;
 * kind's pkg/apis/config/defaults/image.go at v0.29.0), and kind supports a node image only with
 * the release that published it: kind ≤ v0.26 cannot even load images into it ("failed to detect
 * containerd snapshotter", kind #3853 and #3871).
 */
export const MIN_KIND: Semver = { major: 0, minor: 29, patch: 0, pre: '' };

/** kube-proxy's IPVS scheduler when its configuration names none (labs/kind-ipvs.yaml sets none). */
export const IPVS_SCHEDULER = 'rr';

/** The modules IPVS mode loads: ip_vs and the scheduler in use, nothing else (kube-proxy checks the same). */
export function ipvsModules(scheduler: string = IPVS_SCHEDULER): string[] {
  if (!/^[a-z]{1,8}$/.test(scheduler)) throw new Error(`IPVS scheduler ${JSON.stringify(scheduler)}: expected a short lower-case name (rr, wrr, sh …)`);
  return ['ip_vs', `ip_vs_${scheduler}`];
}

/** `kubectl version --client -o json` → `v1.33.1`. */
export function parseKubectlVersion(stdout: string): string {
  const o = parseJsonObject(stdout, 'kubectl version --client -o json');
  const cv = o.clientVersion;
  const v = isObject(cv) && typeof cv.gitVersion === 'string' ? cv.gitVersion : null;
  if (!v) throw new Error('kubectl version --client -o json: no clientVersion.gitVersion');
  return v;
}

export type DockerProblem = 'daemon-unreachable' | 'permission-denied' | 'other';

/**
 * Why `docker info` failed, from its stderr. A missing binary never gets here (the runner raises
 * MissingToolError). Messages are the docker CLI's own (moby client/request.go):
 * Docker ≤ 28: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker
 * daemon running?" and "permission denied while trying to connect to the Docker daemon socket at …";
 * Docker 29 (docker-v29.0.0) for a socket that is not there: "failed to connect to the docker API
 * at unix:///var/run/docker.sock; check if the path is correct and if the daemon is running: …",
 * and "permission denied while trying to connect to the docker API at …";
 * "error during connect: …" (a DOCKER_HOST or Desktop pipe that does not answer).
 */
export function classifyDockerInfoFailure(stderr: string): DockerProblem {
  const s = stderr.toLowerCase();
  if (s.includes('permission denied') && s.includes('docker')) return 'permission-denied';
  // Docker's `Is the docker daemon running?` only ever follows `Cannot connect to the Docker daemon`.
  if (s.includes('cannot connect to the docker daemon') || s.includes('error during connect')
    || s.includes('failed to connect to the docker api') || s.includes('if the daemon is running')) {
    return 'daemon-unreachable';
  }
  return 'other';
}

/** The messages of kind's `ERROR: …` lines (kind prints them on stderr and exits 1). */
export function kindErrors(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('ERROR: ')).map((l) => l.slice('ERROR: '.length).trim());
}

export type KindFailure = 'docker-missing' | 'docker-unreachable' | 'cluster-exists' | 'other';

/** What a failed kind command says about its cause. */
export function classifyKindFailure(stderr: string): KindFailure {
  const s = stderr.toLowerCase();
  if (s.includes('already exist for a cluster with the name')) return 'cluster-exists';
  if (s.includes('failed to get docker info') || s.includes('cannot connect to the docker daemon') || s.includes('failed to connect to the docker api')) {
    return s.includes('executable file not found') ? 'docker-missing' : 'docker-unreachable';
  }
  if (s.includes('executable file not found') && s.includes('docker')) return 'docker-missing';
  return 'other';
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJsonObject(text: string, what: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${what}: not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(v)) throw new Error(`${what}: expected a JSON object`);
  return v;
}

function listItems(text: string, what: string): Json[] {
  const o = parseJsonObject(text, what);
  const items = o.kind === 'List' || Array.isArray(o.items) ? o.items : [o];
  if (!Array.isArray(items)) throw new Error(`${what}: expected items to be a list`);
  return items.map((it, i) => {
    if (!isObject(it)) throw new Error(`${what}: items[${i}] is not an object`);
    return it;
  });
}

function str(o: unknown, key: string): string {
  return isObject(o) && typeof o[key] === 'string' ? (o[key] as string) : '';
}

function strMap(o: unknown): Record<string, string> {
  if (!isObject(o)) return {};
  return Object.fromEntries(Object.entries(o).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
}

/**
 * `kubectl get pods -o json` → Pod[]. Pods that finished (Succeeded/Failed) are left out; a pod
 * counts as ready when its Ready condition is True and it is not being deleted. With
 * `podNetworkOnly`, pods on their node's network (`hostNetwork: true`: kube-proxy, kindnet, the
 * control plane's static pods) are left out too: they have no pod IP, veth or route of their own.
 */
export function parsePodsJson(text: string, opts: { podNetworkOnly?: boolean } = {}): Pod[] {
  const out: Pod[] = [];
  listItems(text, 'kubectl get pods -o json').forEach((item, i) => {
    if (item.kind !== undefined && item.kind !== 'Pod') return;
    const meta = item.metadata;
    const name = str(meta, 'name');
    if (!name) throw new Error(`kubectl get pods -o json: items[${i}] has no metadata.name`);
    if (opts.podNetworkOnly && isObject(item.spec) && item.spec.hostNetwork === true) return;
    const status = isObject(item.status) ? item.status : {};
    const phase = str(status, 'phase');
    if (phase === 'Succeeded' || phase === 'Failed') return;
    const conditions = Array.isArray(status.conditions) ? status.conditions : [];
    const readyCond = conditions.find((c) => isObject(c) && c.type === 'Ready');
    const deleting = isObject(meta) && typeof meta.deletionTimestamp === 'string';
    out.push({
      namespace: str(meta, 'namespace') || 'default',
      name,
      ip: str(status, 'podIP'),
      node: str(item.spec, 'nodeName'),
      labels: strMap(isObject(meta) ? meta.labels : undefined),
      ready: !deleting && isObject(readyCond) && readyCond.status === 'True',
    });
  });
  return out;
}

/** `kubectl get nodes -o json` → LabNode[], control plane first, then workers by name. */
export function parseNodesJson(text: string): LabNode[] {
  const nodes = listItems(text, 'kubectl get nodes -o json').map((item, i): LabNode => {
    const meta = item.metadata;
    const name = str(meta, 'name');
    if (!name) throw new Error(`kubectl get nodes -o json: items[${i}] has no metadata.name`);
    const labels = strMap(isObject(meta) ? meta.labels : undefined);
    const status = isObject(item.status) ? item.status : {};
    const addresses = Array.isArray(status.addresses) ? status.addresses : [];
    const internal = addresses.find((a) => isObject(a) && a.type === 'InternalIP' && typeof a.address === 'string' && !a.address.includes(':'))
      ?? addresses.find((a) => isObject(a) && a.type === 'InternalIP');
    return {
      name,
      role: 'node-role.kubernetes.io/control-plane' in labels ? 'control-plane' : 'worker',
      ip: str(internal, 'address'),
      podCIDR: str(item.spec, 'podCIDR'),
    };
  });
  return nodes.sort((a, b) => (a.role === b.role ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.role === 'control-plane' ? -1 : 1));
}

/** The `mode:` in kube-proxy's ConfigMap (`config.conf`); kubeadm leaves it empty for iptables. */
export function parseKubeProxyMode(configMapJson: string, parseYaml: (s: string) => unknown): ProxyMode {
  const cm = parseJsonObject(configMapJson, 'kube-proxy ConfigMap');
  const conf = isObject(cm.data) ? cm.data['config.conf'] : undefined;
  if (typeof conf !== 'string') throw new Error('kube-proxy ConfigMap has no data["config.conf"]');
  const mode = str(parseYaml(conf), 'mode');
  if (mode === '' || mode === 'iptables') return 'iptables';
  if (mode === 'ipvs' || mode === 'nftables') return mode;
  throw new Error(`kube-proxy ConfigMap: unknown mode ${JSON.stringify(mode)}`);
}

/**
 * The IPVS scheduler in kube-proxy's ConfigMap (`ipvs.scheduler`); kube-proxy takes rr when it
 * is empty (pkg/proxy/ipvs/proxier.go), as kubeadm and kind leave it.
 */
export function parseKubeProxyScheduler(configMapJson: string, parseYaml: (s: string) => unknown): string {
  const cm = parseJsonObject(configMapJson, 'kube-proxy ConfigMap');
  const conf = isObject(cm.data) ? cm.data['config.conf'] : undefined;
  if (typeof conf !== 'string') throw new Error('kube-proxy ConfigMap has no data["config.conf"]');
  const ipvs = (parseYaml(conf) as Json | null)?.ipvs;
  return str(ipvs, 'scheduler') || IPVS_SCHEDULER;
}

// ---------------------------------------------------------------------------------------------
// Load from the client pod

/**
 * The load loop, run as `sh -c LOAD_SCRIPT sh URL N C T` in the curl pod (busybox sh) or on a
 * node. It is a fixed text: URL and numbers arrive as "$1"… and are never spliced into it.
 * C background loops share the N requests. Output: `start <uptime>`, then one line per request,
 * `<uptime> <body with newlines removed> <http code>`; curl prints code 000 when no answer came.
 * /proc/uptime (10 ms steps) gives the time of each answer without a `date` that knows %N.
 */
export const LOAD_SCRIPT = [
  'url=$1; n=$2; c=$3; t=$4',
  'read s _ < /proc/uptime; echo "start $s"',
  'w=0',
  'while [ "$w" -lt "$c" ]; do',
  '  ( k=$w',
  '    while [ "$k" -lt "$n" ]; do',
  '      r=$(curl -s -m "$t" -w \' %{http_code}\' "$url" 2>/dev/null | tr -d \'\\r\\n\')',
  '      read u _ < /proc/uptime; echo "$u $r"',
  '      k=$((k + c))',
  '    done ) &',
  '  w=$((w + 1))',
  'done',
  'wait',
].join('\n');

export interface LoadArgs { url: string; requests: number; concurrency: number; timeoutSeconds: number }

/** The positional arguments of LOAD_SCRIPT, checked so nothing odd reaches the pod's shell. */
export function loadArgs(a: LoadArgs): string[] {
  if (!/^https?:\/\/[A-Za-z0-9.:[\]-]+(\/[A-Za-z0-9._~\/?=&%-]*)?$/.test(a.url)) throw new Error(`load: url ${JSON.stringify(a.url)} is not a plain http URL`);
  for (const [k, v, max] of [['requests', a.requests, 10_000_000], ['concurrency', a.concurrency, 256], ['timeout', a.timeoutSeconds, 600]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > max) throw new Error(`load: ${k} must be a whole number in 1..${max}, got ${v}`);
  }
  return [a.url, String(a.requests), String(a.concurrency), String(a.timeoutSeconds)];
}

/** argv that runs LOAD_SCRIPT: `sh -c SCRIPT sh URL N C T` ($0 is `sh`). */
export function loadArgv(a: LoadArgs): string[] {
  return ['sh', '-c', LOAD_SCRIPT, 'sh', ...loadArgs(a)];
}

/**
 * LOAD_SCRIPT's output → LoadResult. An answer is ok when its code is 2xx and its body is JSON
 * with a string `hostname`; byPod counts ok answers by that name. durationMs is from `start`
 * to the last answer.
 */
export function parseLoadOutput(stdout: string): LoadResult {
  let start: number | null = null;
  let total = 0;
  let ok = 0;
  let last = 0;
  let firstOk: number | null = null;
  const byPod: Record<string, number> = {};
  for (const [i, raw] of stdout.split('\n').entries()) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('start ')) {
      start = parseUptime(line.slice(6), i + 1, line);
      continue;
    }
    const sp1 = line.indexOf(' ');
    const sp2 = line.lastIndexOf(' ');
    if (sp1 < 0) throw new Error(`load output line ${i + 1}: expected "<uptime> <body> <code>", got ${JSON.stringify(line)}`);
    const at = parseUptime(line.slice(0, sp1), i + 1, line);
    const code = sp2 > sp1 ? line.slice(sp2 + 1) : line.slice(sp1 + 1);
    const body = sp2 > sp1 ? line.slice(sp1 + 1, sp2).trim() : '';
    if (!/^\d{3}$/.test(code)) throw new Error(`load output line ${i + 1}: expected an HTTP code at the end, got ${JSON.stringify(line)}`);
    total++;
    last = Math.max(last, at);
    const host = code.startsWith('2') ? hostnameOf(body) : null;
    if (host === null) continue;
    ok++;
    byPod[host] = (byPod[host] ?? 0) + 1;
    if (firstOk === null || at < firstOk) firstOk = at;
  }
  if (start === null) throw new Error('load output: no "start" line (the load script did not run)');
  const ms = (t: number) => Math.max(0, Math.round((t - (start as number)) * 1000));
  return { total, ok, errors: total - ok, byPod, durationMs: total > 0 ? ms(last) : 0, firstOkMs: firstOk === null ? null : ms(firstOk) };
}

function parseUptime(s: string, line: number, text: string): number {
  if (!/^\d{1,12}(\.\d{1,6})?$/.test(s)) throw new Error(`load output line ${line}: expected seconds of uptime, got ${JSON.stringify(text)}`);
  return Number(s);
}

function hostnameOf(body: string): string | null {
  try {
    const o = JSON.parse(body) as unknown;
    return isObject(o) && typeof o.hostname === 'string' && o.hostname !== '' ? o.hostname : null;
  } catch {
    return null;
  }
}
