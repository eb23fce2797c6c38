/**
 * Where the kit runs: on a machine of its own or in a container, and, in a container, whether
 * `docker run` gave it what a netns lab needs. A container's own network is the kit's "host":
 * labs live in namespaces they create, and nothing here changes anything.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';

/** What the checks read; tests pass their own. */
export interface PlaceProbe {
  exists(path: string): boolean;
  /** The file's text, or null when it cannot be read. */
  read(path: string): string | null;
  /** Whether this process may write the file: yes, or why not. */
  writable(path: string): 'yes' | 'read-only' | 'denied' | 'absent';
  env: Readonly<Record<string, string | undefined>>;
  kernel: string;
}

export const systemProbe: PlaceProbe = {
  exists: existsSync,
  read(path) {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return null;
    }
  },
  writable(path) {
    try {
      accessSync(path, constants.W_OK);
      return 'yes';
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return code === 'EROFS' ? 'read-only' : code === 'ENOENT' ? 'absent' : 'denied';
    }
  },
  env: process.env,
  kernel: release(),
};

export interface ContainerInfo {
  engine: 'docker' | 'podman' | 'container';
  /** What gave it away, for the audience: `/.dockerenv, / on overlay`. */
  evidence: string;
}

/** The mount of `/` as /proc/self/mountinfo lists it: its filesystem type. */
function rootFsType(mountinfo: string | null): string | null {
  for (const line of (mountinfo ?? '').split('\n')) {
    const [before, after] = line.split(' - ');
    if (before?.split(' ')[4] === '/' && after) return after.split(' ')[0] ?? null;
  }
  return null;
}

/**
 * The container this process runs in, or null. /.dockerenv alone is not enough: machines built
 * from a Docker image keep it; a container's `/` is its image's overlay, or its cgroup names
 * the engine (cgroup v1).
 */
export function detectContainer(p: PlaceProbe = systemProbe): ContainerInfo | null {
  const cgroup = p.read('/proc/1/cgroup') ?? '';
  const cgroupEngine = /\/(docker|libpod|kubepods|containerd|lxc)[/-]/.exec(cgroup)?.[1];
  const rootFs = rootFsType(p.read('/proc/self/mountinfo'));
  const layered = rootFs === 'overlay' || rootFs === 'fuse-overlayfs' || rootFs === 'aufs';
  const fsNote = layered ? `/ on ${rootFs}` : null;
  const cgNote = cgroupEngine ? `/proc/1/cgroup names ${cgroupEngine}` : null;
  if (p.exists('/run/.containerenv')) return { engine: 'podman', evidence: ['/run/.containerenv', fsNote, cgNote].filter(Boolean).join(', ') };
  if (p.exists('/.dockerenv') && (layered || cgroupEngine)) return { engine: 'docker', evidence: ['/.dockerenv', fsNote, cgNote].filter(Boolean).join(', ') };
  const envName = p.env.container;
  if (envName) return { engine: 'container', evidence: `container=${envName} in the environment` };
  if (cgroupEngine) return { engine: cgroupEngine === 'docker' ? 'docker' : 'container', evidence: cgNote! };
  return null;
}

/** Capability numbers from linux/capability.h. */
export const CAP_NET_ADMIN = 12;
export const CAP_SYS_ADMIN = 21;

/** The effective capability set in /proc/self/status (`CapEff:\t000001ffffffffff`), or null. */
export function effectiveCapabilities(status: string | null): bigint | null {
  const hex = /^CapEff:\s*([0-9a-f]+)$/im.exec(status ?? '')?.[1];
  return hex === undefined ? null : BigInt(`0x${hex}`);
}

export interface FlagCheck {
  /** The `docker run` option that gives the container this. */
  flag: string;
  /** null: could not tell (no /proc, not root). */
  inEffect: boolean | null;
  /** What was found. */
  detail: string;
  /** What a netns lab does with it. */
  why: string;
}

/** The sysctl every lab node writes in its own namespace (Docker mounts /proc/sys read-only). */
export const FORWARDING_SYSCTL = '/proc/sys/net/ipv4/ip_forward';

/** The three `docker run` options a netns lab needs, each with whether it is in effect here. */
export function containerFlags(p: PlaceProbe = systemProbe): FlagCheck[] {
  const caps = effectiveCapabilities(p.read('/proc/self/status'));
  const cap = (flag: string, bit: number, name: string, why: string): FlagCheck => {
    if (caps === null) return { flag, inEffect: null, detail: 'no CapEff in /proc/self/status', why };
    const has = (caps >> BigInt(bit)) & 1n;
    return { flag, inEffect: has === 1n, detail: has ? `${name} is in the effective set` : `${name} is not in the effective set`, why };
  };
  const sys = p.writable(FORWARDING_SYSCTL);
  return [
    cap('--cap-add NET_ADMIN', CAP_NET_ADMIN, 'CAP_NET_ADMIN', 'a lab creates links, addresses and routes, and loads kube-proxy\'s rules, in namespaces of its own'),
    cap('--cap-add SYS_ADMIN', CAP_SYS_ADMIN, 'CAP_SYS_ADMIN', '`ip netns add` mounts each namespace under /run/netns'),
    {
      flag: '--security-opt systempaths=unconfined',
      inEffect: sys === 'yes' ? true : sys === 'read-only' ? false : null,
      detail: sys === 'yes' ? '/proc/sys is writable'
        : sys === 'read-only' ? '/proc/sys is mounted read-only'
          : sys === 'absent' ? `${FORWARDING_SYSCTL} does not exist` : `cannot tell whether /proc/sys is writable (${FORWARDING_SYSCTL}: permission denied; run as root)`,
      why: 'each node turns on forwarding (net.ipv4.ip_forward) in its own namespace, through /proc/sys',
    },
  ];
}

/**
 * Why a netns lab cannot run for want of a `docker run` option, naming the options to add, or
 * null. Checked wherever the kit runs: a missing capability or a read-only /proc/sys outside a
 * container we recognise still says which one, and the options that give it.
 */
export function missingContainerFlags(p: PlaceProbe = systemProbe): string | null {
  const missing = containerFlags(p).filter((f) => f.inEffect === false);
  if (missing.length === 0) return null;
  const where = detectContainer(p);
  const what = missing.map((f) => f.detail).join(', ');
  const add = missing.map((f) => f.flag).join(' ');
  return where
    ? `this container was started without ${add} (${what}); start it again with \`docker run ${add} …\` (netns labs need --cap-add NET_ADMIN --cap-add SYS_ADMIN --security-opt systempaths=unconfined)`
    : `${what}; in a container, start it with \`docker run ${add} …\``;
}

export interface Place {
  container: ContainerInfo | null;
  kernel: string;
  /** Whose kernel that is, when its name says (Docker Desktop's VM, WSL 2). */
  kernelNote: string | null;
  /** The options `docker run` needs for netns labs; empty outside a container. */
  flags: FlagCheck[];
  /** /proc/net/ip_vs: the kernel has IP_VS, so IPVS labs get virtual servers and traffic. */
  ipvs: boolean;
}

/** Where the kit runs, for `doctor`. */
export function wherePlace(p: PlaceProbe = systemProbe): Place {
  const container = detectContainer(p);
  const kernelNote = /linuxkit/i.test(p.kernel) ? "Docker Desktop's Linux VM"
    : /microsoft/i.test(p.kernel) ? 'WSL 2' : null;
  return { container, kernel: p.kernel, kernelNote, flags: container ? containerFlags(p) : [], ipvs: p.exists('/proc/net/ip_vs') };
}
