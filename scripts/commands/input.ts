import { isIpv4, isIpv6 } from '../../lib/parse/addr.ts';
import { quoteForTerminal } from '../../lib/parse/errors.ts';
import { PodSubnetTooSmallError, readClusterJson, syntheticCluster, type Cluster } from '../../lib/k8s/index.ts';
import { UsageError, intOption, stringOption, type ParsedArgs } from '../cli.ts';
import { InputError, readInput, showPath, type InputKind } from '../io.ts';

/**
 * Read a file named on the command line (`-` is standard input) with a clear error, refusing
 * input over the size limit for its kind (io.ts) before it is all in memory.
 */
export async function readInputFile(path: string, kind: InputKind = 'text'): Promise<string> {
  try {
    return await readInput(path, kind);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const shown = showPath(path);
    throw new UsageError(code === 'ENOENT' ? `${shown}: no such file` : `${shown}: cannot read (${code ?? (e as Error).message})`);
  }
}

/**
 * Most endpoints (services × endpoints) `rules` generates for: the project's largest sweep,
 * 10,000 Services × 10 endpoints, whose iptables rules are 32 MB and nftables rules 47 MB,
 * both within what `parse` reads back.
 */
export const MAX_RULES_ENDPOINTS = 100_000;

export const clusterOptions = {
  objects: { type: 'string' },
  services: { type: 'string' },
  endpoints: { type: 'string' },
  'node-ports': { type: 'string' },
  'pod-subnet': { type: 'string' },
  'kind-defaults': { type: 'boolean' },
} as const;

/** `A.B.C.D/N`, as kube-proxy's --cluster-cidr and kind's pod subnet are written. */
export function cidrOption(args: ParsedArgs, key: string): string | undefined {
  const v = stringOption(args, key);
  if (v === undefined) return undefined;
  const slash = v.indexOf('/');
  const len = v.slice(slash + 1);
  if (slash < 0 || !isIpv4(v.slice(0, slash)) || !/^[0-9]{1,2}$/.test(len) || Number(len) > 32) {
    throw new UsageError(`--${key} must be an IPv4 CIDR such as 10.244.0.0/16, got ${quoteForTerminal(v)}`);
  }
  return v;
}

/** An address as the tools print it: a dotted quad without leading zeros, or IPv6 without a zone. */
export function strictIpFamily(s: string): 'IPv4' | 'IPv6' | null {
  if (isIpv4(s)) return 'IPv4';
  return !s.includes('%') && isIpv6(s) ? 'IPv6' : null;
}

/** `ADDR/LEN` of either family, strictly written; its family, or null. */
export function strictCidrFamily(s: string): 'IPv4' | 'IPv6' | null {
  const slash = s.indexOf('/');
  const len = s.slice(slash + 1);
  if (slash < 0 || !/^[0-9]{1,3}$/.test(len) || (len.length > 1 && len.startsWith('0'))) return null;
  const family = strictIpFamily(s.slice(0, slash));
  if (family === null || Number(len) > (family === 'IPv4' ? 32 : 128)) return null;
  return family;
}

/**
 * A comma-separated list of CIDRs of either family (`--service-cidr`, `--nodeport-addresses`),
 * each strictly written; at most `max`, and at most one per family when `onePerFamily`.
 */
export function cidrListOption(args: ParsedArgs, key: string, what: string, opts: { max: number; onePerFamily?: boolean }): string[] | undefined {
  const v = stringOption(args, key);
  if (v === undefined) return undefined;
  const parts = v.split(',');
  const bad = (why: string) => new UsageError(`--${key} must be ${what}, ${why}, got ${quoteForTerminal(v)}`);
  if (v === '' || parts.length > opts.max) throw bad(v === '' ? 'not empty' : `at most ${opts.max}`);
  const families = parts.map((p) => strictCidrFamily(p));
  const at = families.indexOf(null);
  if (at >= 0) throw bad(`and ${quoteForTerminal(parts[at])} is not a CIDR`);
  if (opts.onePerFamily && families.length === 2 && families[0] === families[1]) throw bad('one IPv4 and one IPv6 at most');
  return parts;
}

/** `--objects FILE` (kubectl's List) or a synthetic `--services S --endpoints E` cluster. */
export async function clusterFromArgs(args: ParsedArgs): Promise<Cluster> {
  const objects = stringOption(args, 'objects');
  if (objects !== undefined) {
    for (const k of ['services', 'endpoints', 'node-ports', 'pod-subnet', 'kind-defaults']) {
      if (args.values[k] !== undefined) throw new UsageError(`give either --objects FILE or --services S --endpoints E, not both (--${k} with --objects)`);
    }
    return readClusterJson(await readInputFile(objects, 'json'));
  }
  if (args.values.services === undefined) throw new UsageError('give --objects FILE or --services S --endpoints E');
  const why = `at most ${MAX_RULES_ENDPOINTS.toLocaleString('en-US')} endpoints in all, the project's largest sweep (10,000 × 10)`;
  const services = intOption(args, 'services', undefined, { max: 65_000, why: 'the service subnet 10.96.0.0/16 holds about 65,000' });
  const endpoints = intOption(args, 'endpoints', 3, { max: MAX_RULES_ENDPOINTS, why });
  if (services * endpoints > MAX_RULES_ENDPOINTS) {
    throw new UsageError(`--services × --endpoints must be ${why}, got ${services} × ${endpoints} = ${(services * endpoints).toLocaleString('en-US')}`);
  }
  const nodePorts = intOption(args, 'node-ports', 0, { max: Math.min(services, 2768), why: 'one per service, from the NodePort range 30000-32767' });
  try {
    return syntheticCluster({
      services,
      endpoints,
      nodePorts,
      podSubnet: cidrOption(args, 'pod-subnet'),
      kindDefaults: args.values['kind-defaults'] === true,
    });
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (e instanceof PodSubnetTooSmallError) {
      // --cluster-cidr looks like the fix but only sets kube-proxy's local-traffic detector.
      const { nodesNeeded: n, nodesHeld: held, nodeMaskSize: m, subnet, longestFittingPrefix: p } = e;
      throw new UsageError(`${services}×${endpoints} pods need ${n} nodes of /${m}, but the pod subnet ${subnet} holds ${held}: pass --pod-subnet with a /${p} or wider, e.g. --pod-subnet 10.0.0.0/8 (--cluster-cidr only sets kube-proxy's local-traffic detector)`);
    }
    throw new UsageError((e as Error).message);
  }
}
