/**
 * Stand-ins for kind, kubectl and docker, for the kind backend's tests. kind and a Docker engine
 * cannot run on the machines these tests run on, so small bash scripts answer with the exit
 * codes, stdout and stderr the real tools give, and keep the little state kind keeps: which
 * clusters exist, each node's /kind/kubeadm.conf (where kind writes the config's node labels) and
 * mounts, Docker's image store (`images`), what was loaded into the nodes (`loaded`), and
 * whether the nodes' kernel has IP_VS loaded (`ip_vs`) or cannot load it (`no-ip-vs`).
 * Everything else (the runner, the load script in a real sh, parsing) runs for real.
 */
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Runner } from '../../lib/exec/index.ts';
import { labImages } from '../../lib/lab/kind/images.ts';

/** The real runner, with extra environment for every command (PATH, DOCKER_HOST). */
export class EnvRunner extends Runner {
  constructor(env: Record<string, string>) {
    super({ timeoutMs: 30_000, env });
  }
}

const SCRIPTS: Record<string, string> = {
  // `docker -v` as the docker CLI prints it (this machine's real CLI: "Docker version 28.2.2, build
  // e6534b4"); the file docker-banner replaces it, as podman-docker's `docker` answers for podman.
  docker: `
# kube-proxy's /metrics: the page kube-proxy-metrics.txt, plus the syncs run since. Each apply
# leaves two syncs pending (syncs-pending); each read runs one, a partial sync of 0.1 s, which
# lands in the le="0.128" bucket and above.
metrics() {
  [ -f "$F/kube-proxy-metrics.txt" ] || exit 7
  p=$(cat "$F/syncs-pending" 2>/dev/null || echo 0); n=$(cat "$F/syncs" 2>/dev/null || echo 0)
  if [ "$p" -gt 0 ]; then echo $((p - 1)) > "$F/syncs-pending"; n=$((n + 1)); echo $n > "$F/syncs"; fi
  awk -v n="$n" '/^kubeproxy_sync_(proxy|partial_proxy)_rules_duration_seconds_/ {
      v = $2
      if ($1 ~ /_bucket/) { match($1, /le="[^"]*"/); le = substr($1, RSTART + 4, RLENGTH - 5); if (le == "+Inf" || le + 0 >= 0.128) v += n }
      else if ($1 ~ /_count/) v += n
      else v += n * 0.1
      print $1, v; next }
    { print }' "$F/kube-proxy-metrics.txt"
}
case "$1" in
  -v) if [ -f "$F/docker-banner" ]; then cat "$F/docker-banner"; else echo 'Docker version 28.2.2, build e6534b4'; fi ;;
  info) if [ -s "$F/docker-down" ]; then cat "$F/docker-down" >&2; exit 1; fi
        if [ -f "$F/docker-down" ]; then
          echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2; exit 1
        fi
        echo 28.2.2 ;;
  # The image store is the file images, one reference a line: pull adds to it, save reads it.
  # pull-fails: Docker Hub's answer once the anonymous rate limit is reached (docs.docker.com/docker-hub/usage/pulls).
  pull) if [ -f "$F/pull-fails" ]; then echo 'Error response from daemon: toomanyrequests: You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit' >&2; exit 1; fi
        grep -qxF "$2" "$F/images" 2>/dev/null || echo "$2" >> "$F/images"
        echo "Status: Downloaded newer image for $2" ;;
  image) if grep -qxF "$5" "$F/images" 2>/dev/null; then echo sha256:0f3b; else echo "Error: No such image: $5" >&2; exit 1; fi ;;
  # docker version --format '{{.Server.Os}}/{{.Server.Arch}} {{.Server.APIVersion}}' (docker/cli
  # cli/command/system/version.go fields; Docker 28.2.2 speaks API 1.50); docker-server overrides it.
  version) if [ -f "$F/docker-server" ]; then cat "$F/docker-server"; else echo 'linux/amd64 1.50'; fi ;;
  # docker save [--platform P] -o FILE IMAGE…: the archive here lists "P IMAGE" per image.
  save) shift; p=all; [ "$1" = --platform ] && { p=$2; shift 2; }; out=$2; shift 2
        for i in "$@"; do grep -qxF "$i" "$F/images" 2>/dev/null || { echo "Error response from daemon: No such image: $i" >&2; exit 1; }; done
        for i in "$@"; do echo "$p $i"; done > "$out" ;;
  # docker inspect --type container --format '{{.Name}}{{range .Mounts}} {{.Destination}}{{end}}' N…:
  # one line per container that exists; for the others, the daemon's error and exit 1 (as the real
  # CLI 28.2.2 does against Docker Engine 20.10.24 here).
  inspect) shift 5; rc=0
           for n in "$@"; do
             if [ -f "$F/mounts/$n" ]; then echo "/$n $(cat "$F/mounts/$n")"
             else echo "Error response from daemon: No such container: $n" >&2; rc=1; fi
           done
           exit $rc ;;
  # docker exec gives the command our standard input only with -i.
  exec) shift; stdin=; if [ "$1" = -i ]; then stdin=1; shift; fi; node="$1"; shift
        # An absolute path runs only where the node has it: the fakes' folder stands for the node.
        case "$1" in /*) if [ -x "$F/$(basename "$1")" ]; then set -- "$F/$(basename "$1")" "\${@:2}"
                         else echo "OCI runtime exec failed: exec failed: unable to start container process: exec: \"$1\": stat $1: no such file or directory: unknown" >&2; exit 127; fi ;; esac
        if [ "$1" = cat ] && [ "$2" = /kind/kubeadm.conf ]; then
          if [ -f "$F/kubeadm/$node" ]; then cat "$F/kubeadm/$node"
          else echo "cat: /kind/kubeadm.conf: No such file or directory" >&2; exit 1; fi
        elif [ "$1" = test ] && [ "$3" = /proc/net/ip_vs ]; then [ -f "$F/ip_vs" ]
        # kmod's modprobe when the kernel has no such module (tools/modprobe.c: "Module %s not found
        # in directory %s"); otherwise the modules load, and /proc/net/ip_vs appears.
        elif [ "$1" = modprobe ]; then
          if [ -f "$F/no-ip-vs" ]; then echo "modprobe: FATAL: Module ip_vs not found in directory /lib/modules/6.10.14-linuxkit" >&2; exit 1; fi
          : > "$F/ip_vs"
        elif [ "$1" = iptables-save ]; then cat "$F/rules"
        elif [ "$1" = curl ] && [ "$3" = http://127.0.0.1:10249/metrics ]; then metrics
        elif [ -n "$stdin" ]; then exec "$@"
        else exec "$@" < /dev/null; fi ;;
  *) echo "unexpected docker $*" >&2; exit 1 ;;
esac`,
  kind: `
nodes() { printf '%s\\n' "$1-control-plane" "$1-worker" "$1-worker2"; }
# What kind's config action does: the config's node labels into each node's kubeadm.conf
# (kubeadm v1beta3, as kind v0.29 writes it for Kubernetes 1.33).
mark() {
  owner=$(sed -n 's/^ *kube-netlab\\/owner: *//p' "$2" | head -n 1)
  mkdir -p "$F/kubeadm"
  for n in $(nodes "$1"); do
    printf 'apiVersion: kubeadm.k8s.io/v1beta3\\nkind: InitConfiguration\\nnodeRegistration:\\n  kubeletExtraArgs:\\n    node-labels: "kube-netlab/owner=%s"\\n---\\nkind: KubeletConfiguration\\n' "$owner" > "$F/kubeadm/$n"
  done
}
# What kind's provision step does: node containers, each with the config's extraMounts besides
# kind's own (/var, /lib/modules).
containers() {
  tok=$(sed -n 's#^ *containerPath: /kube-netlab/owner/##p' "$2" | head -n 1)
  mkdir -p "$F/mounts"
  for n in $(nodes "$1"); do echo "/var /lib/modules\${tok:+ /kube-netlab/owner/$tok}" > "$F/mounts/$n"; done
}
touch "$F/clusters"
case "$1" in
  version) cat "$F/kind-version" ;;
  get) if [ "$2" = clusters ]; then
         if [ -s "$F/clusters" ]; then cat "$F/clusters"; else echo "No kind clusters found." >&2; fi
       elif grep -qxF "$4" "$F/clusters"; then nodes "$4"
       else echo "No kind nodes found for cluster \\"$4\\"." >&2; fi ;;
  # create modes: ok; fail (create.stderr); hang (made, then never returns); early (nodes made,
  # killed before the config step wrote kubeadm.conf); pulling (still pulling the node image: no
  # node yet); late (hang, and when killed a docker run already under way adds a node 0.4 s later);
  # late-other (the same, but the node that appears carries no owner mount).
  create) mode=$(cat "$F/create")
          [ "$mode" = pulling ] && exec sleep 30
          # kind's ensureNodeImages (providers/docker/images.go at v0.29.0): \`docker inspect
          # --type=image\`, and \`docker pull\` only when that fails; logged as the pull kind runs.
          img=$(sed -n 's/^ *image: *//p' "$6" | head -n 1)
          if ! grep -qxF "$img" "$F/images" 2>/dev/null; then echo "docker pull $img" >> "$F/log"; echo "$img" >> "$F/images"; fi
          grep -qxF "$4" "$F/clusters" || echo "$4" >> "$F/clusters"
          containers "$4" "$6"
          case "$mode" in
            ok) mark "$4" "$6"; echo "Creating cluster \\"$4\\" ..." >&2 ;;
            fail) cat "$F/create.stderr" >&2; exit 1 ;;
            hang) mark "$4" "$6"; exec sleep 30 ;;
            early) exec sleep 30 ;;
            # late-other: what comes back is someone else's node of that name (no owner mount).
            late-other) mark "$4" "$6"
                  trap '(sleep 0.4; grep -qxF "$4" "$F/clusters" || echo "$4" >> "$F/clusters"; containers "$4" /dev/null) >/dev/null 2>&1 & kill $pid; exit 143' TERM INT
                  sleep 30 & pid=$!
                  : > "$F/create.trapped"
                  wait $pid ;;
            late) mark "$4" "$6"
                  # The orphaned docker run writes to kind's pipes, not ours: detach its output.
                  trap '(sleep 0.4; grep -qxF "$4" "$F/clusters" || echo "$4" >> "$F/clusters"; containers "$4" "$6") >/dev/null 2>&1 & kill $pid; exit 143' TERM INT
                  sleep 30 & pid=$!
                  : > "$F/create.trapped"
                  wait $pid ;;
          esac ;;
  # kind load image-archive FILE --name N: every node imports the archive (here: noted in loaded).
  load) [ "$2" = image-archive ] && [ -s "$3" ] || { echo "ERROR: failed to load image: unable to open $3" >&2; exit 1; }
        sed "s#^#$5 #" "$3" >> "$F/loaded" ;;
  delete) grep -vxF "$4" "$F/clusters" > "$F/clusters.new"; mv "$F/clusters.new" "$F/clusters"
          for n in $(nodes "$4"); do rm -f "$F/kubeadm/$n" "$F/mounts/$n"; done
          echo "Deleting cluster \\"$4\\" ..." >&2 ;;
  *) echo "ERROR: unknown command \\"$1\\" for \\"kind\\"" >&2; exit 1 ;;
esac`,
  kubectl: `
[ "$1" = --context ] && shift 2
case "$*" in
  "version --client -o json") echo '{"clientVersion":{"gitVersion":"v1.33.1"}}' ;;
  "get nodes -o json") cat "$F/nodes.json" ;;
  # kubectl wait and rollout status as kubectl prints them (pkg/cmd/wait: "%s condition met",
  # "timed out waiting for the condition on %s"; polymorphichelpers/rollout_status.go for a DaemonSet).
  "wait --for=condition=Ready nodes --all --timeout="*)
    if [ -f "$F/nodes-unready" ]; then sleep 0.2; echo 'error: timed out waiting for the condition on nodes/kntest-worker2' >&2; exit 1; fi
    echo 'node/kntest-control-plane condition met' ;;
  "-n kube-system rollout status daemonset/kube-proxy --timeout="*) echo 'daemon set "kube-proxy" successfully rolled out' ;;
  "-n kube-system get configmap kube-proxy -o json")
    if [ -f "$F/kube-proxy-cm.json" ]; then cat "$F/kube-proxy-cm.json"; else echo 'Error from server (NotFound): configmaps "kube-proxy" not found' >&2; exit 1; fi ;;
  "get pods -A -o json"|"get pods -A -l app=curl -o json") cat "$F/pods.json" ;;
  "get pods -n kube-system -l k8s-app=kube-proxy --field-selector spec.nodeName="*) cat "$F/kube-proxy-pods.json" ;;
  "get services,endpointslices -A -o json") cat "$F/cluster.json" ;;
  # Services are kept in services, one "NAME {LABELS}" a line; apply-fails: the apply with that
  # number fails after creating its Services, as one over the namespace's quota does.
  "apply -f -") cat > "$F/applied.json"; cp "$F/rules.after" "$F/rules"; echo 2 > "$F/syncs-pending"
                # Counted before any Service is written: a test that sees one may stop the apply.
                echo $(( $(cat "$F/applies" 2>/dev/null || echo 0) + 1 )) > "$F/applies"
                grep -oE '"kind":"Service","metadata":\\{"name":"[^"]*","namespace":"default","labels":\\{[^}]*\\}' "$F/applied.json" \
                  | sed -E 's/.*"name":"([^"]*)".*"labels":(.*)/\\1 \\2/' | while read -r svc; do
                      grep -qxF "$svc" "$F/services" 2>/dev/null || echo "$svc" >> "$F/services"; done
                if [ "$(cat "$F/applies")" = "$(cat "$F/apply-fails" 2>/dev/null)" ]; then
                  echo 'Error from server (Forbidden): error when creating "STDIN": services "bulk-11" is forbidden: exceeded quota: services, requested: services=1, used: services=10, limited: services=10' >&2; exit 1
                fi
                echo "deployment.apps/httpbin configured" ;;
  # Deletes the Services whose labels hold the selector's one k=v, and notes them in deleted.
  "-n default delete services -l "*" --ignore-not-found")
    kv=$(printf '"%s":"%s"' "\${6%%=*}" "\${6#*=}")
    touch "$F/services"; grep -F "$kv" "$F/services" | cut -d' ' -f1 | tee -a "$F/deleted" | sed 's#^#service "#; s#$#" deleted#'
    grep -vF "$kv" "$F/services" > "$F/services.new"; mv "$F/services.new" "$F/services" ;;
  "-n default rollout status deployment/"*) if [ -f "$F/rollout-hangs" ]; then exec sleep 30; fi
                                           echo 'deployment successfully rolled out' ;;
  "-n kube-system exec kube-proxy-"*" -- ipset list") cat "$F/ipset" ;;
  # kubectl exec, like docker exec, gives the command our standard input only with -i.
  *" exec "*) case " $* " in *" exec -i "*) ;; *) exec < /dev/null ;; esac
              while [ "$1" != -- ]; do shift; done; shift; exec "$@" ;;
  *) echo "error: unexpected kubectl $*" >&2; exit 1 ;;
esac`,
  // `podman -v` and `nerdctl -v` as kind expects them (kind v0.29.0 providers/podman/util.go and
  // providers/nerdctl/util.go: one line, "podman version 1.7.1-dev", "nerdctl version …").
  podman: `
case "$1" in
  -v) echo 'podman version 5.4.0' ;;
  *) echo "unexpected podman $*" >&2; exit 1 ;;
esac`,
  nerdctl: `
case "$1" in
  -v) echo 'nerdctl version 2.0.3' ;;
  *) echo "unexpected nerdctl $*" >&2; exit 1 ;;
esac`,
  // Answers like go-httpbin's /hostname (pretty-printed JSON), from one of three pods.
  curl: `
w=''; url=''
while [ $# -gt 0 ]; do case "$1" in -w) w="$2"; shift 2 ;; -m) shift 2 ;; -s) shift ;; *) url="$1"; shift ;; esac; done
printf '{\\n  "hostname": "httpbin-%d"\\n}\\n' $((RANDOM % 3))
printf '%s' "\${w//%\\{http_code\\}/200}"`,
};

/** How the fake `kind create` behaves (see its script). */
export type CreateMode = 'ok' | 'fail' | 'hang' | 'early' | 'pulling' | 'late' | 'late-other';

export interface FakeToolchain {
  dir: string;
  /** PATH with the fakes first, then the system's (sh, sed, grep, sleep …). */
  path: string;
  runner: EnvRunner;
  set(file: string, text: string): Promise<void>;
  /** Every fake command run so far, as `tool arg…` (curl excepted). */
  log(): Promise<string[]>;
  /** A fresh log, no clusters, and how the next `kind create` behaves. */
  reset(create: CreateMode, stderr?: string): Promise<void>;
}

/**
 * Fake kind/kubectl/docker/curl in `dir`. Only the listed tools get a fake; the others are left
 * to PATH (pass e.g. ['kind'] and a PATH holding the real docker CLI).
 */
/** The fakes a kind lab needs (podman and nerdctl only where a test asks for them). */
const LAB_TOOLS = ['docker', 'kind', 'kubectl', 'curl'];

export async function fakeToolchain(dir: string, tools: readonly string[] = LAB_TOOLS, fixtures?: Record<string, string>): Promise<FakeToolchain> {
  await mkdir(dir, { recursive: true });
  for (const name of tools) {
    const lg = name === 'curl' ? '' : `printf '%s\\n' "${name} \${*:1:12}" >> "$F/log"\n`;
    await writeFile(join(dir, name), `#!/bin/bash\nF=${JSON.stringify(dir)}\n${lg}${SCRIPTS[name]}\n`);
    await chmod(join(dir, name), 0o755);
  }
  const set = (file: string, text: string) => writeFile(join(dir, file), text);
  await set('kind-version', 'kind v0.29.0 go1.24.2 linux/amd64\n');
  await set('ipset', '');
  for (const [file, text] of Object.entries(fixtures ?? {})) await set(file, text);
  const path = `${dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
  return {
    dir,
    path,
    runner: new EnvRunner({ PATH: path }),
    set,
    log: async () => (await readFile(join(dir, 'log'), 'utf8').catch(() => '')).split('\n').filter(Boolean),
    async reset(create, stderr = '') {
      await set('log', '');
      await set('create', create);
      await set('create.stderr', stderr);
      await set('clusters', '');
      // Docker's store holds the node image (kind pulled it before), nothing else; `loaded` is empty.
      await set('images', `${(await labImages()).node}\n`);
      await set('loaded', '');
      for (const f of ['ip_vs', 'no-ip-vs', 'nodes-unready', 'kube-proxy-cm.json', 'syncs', 'syncs-pending', 'services', 'deleted', 'applies', 'apply-fails']) await rm(join(dir, f), { force: true });
      for (const d of ['mounts', 'kubeadm']) await rm(join(dir, d), { recursive: true, force: true });
    },
  };
}

/**
 * A directory to use as PATH that holds the real docker CLI and nothing else (no kind, no
 * kubectl): the CLI is found on PATH the way a shell would, without running one.
 */
export async function dockerOnlyPath(dir: string): Promise<string> {
  const { access, mkdir: mkdirp, symlink: link } = await import('node:fs/promises');
  const { constants } = await import('node:fs');
  const { join: joinPath } = await import('node:path');
  let docker: string | undefined;
  for (const d of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    try {
      await access(joinPath(d, 'docker'), constants.X_OK);
      docker = joinPath(d, 'docker');
      break;
    } catch { /* not here */ }
  }
  if (!docker) throw new Error('the docker CLI is not on PATH: install it with `apt-get install -y docker.io` (the tests need the CLI, not a daemon)');
  await mkdirp(dir, { recursive: true });
  await link(docker, joinPath(dir, 'docker'));
  return dir;
}
