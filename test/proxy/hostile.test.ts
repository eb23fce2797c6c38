/**
 * Safe under hostile input, with the kernel as judge. Random clusters in every odd form the API
 * accepts, plus hostile mutations (injected quotes, newlines and braces, odd IP forms,
 * duplicates, IPv6, out-of-range numbers…), go through readCluster → resolveServicePorts →
 * each generator; hostile service ports also go to the generators directly. Every case must end
 * in the error its mutation calls for (ObjectError or GeneratorInputError), or in rules that
 * load into a private namespace and read back with nothing kube-proxy would not write and the
 * addresses the input means (kernel-oracle.ts). One namespace per property, emptied between runs.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { ObjectError, readCluster, resolveServicePorts, type ServicePortInfo } from '../../lib/k8s/index.ts';
import { generateIptables } from '../../lib/proxy/iptables.ts';
import { generateIpvs } from '../../lib/proxy/ipvs.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import type { ProxyMode } from '../../lib/proxy/modes.ts';
import { GeneratorInputError } from '../../lib/proxy/tokens.ts';
import { clusterModelArb, expectedOf, listOf, mutationArb, portsCaseArb, type Mutation } from '../helpers/hostile.ts';
import { ipvsModeProblems, iptablesModeProblems, nftablesModeProblems, resetNetns, type Meaning } from '../helpers/kernel-oracle.ts';
import { withNetns, type TestNetns } from '../helpers/netns.ts';

const NODE = 'kind-worker';
const OPTS = { nodeName: NODE, nodeIPs: ['172.18.0.3'], clusterCIDR: '10.244.0.0/16' };
/** Runs per property: each accepted case is a kernel load (tens of ms), so a property takes seconds. */
const RUNS = 250;
const MODES: readonly ProxyMode[] = ['iptables', 'ipvs', 'nftables'];

type Rules = ReturnType<typeof generateIptables> | ReturnType<typeof generateIpvs> | ReturnType<typeof generateNftables>;

function generate(mode: ProxyMode, ports: readonly ServicePortInfo[]): Rules {
  if (mode === 'iptables') return generateIptables(ports, OPTS);
  if (mode === 'ipvs') return generateIpvs(ports, OPTS);
  return generateNftables(ports, OPTS);
}

function kernelProblems(mode: ProxyMode, ns: TestNetns, rules: Rules, meaning: Meaning): Promise<string[]> {
  if (mode === 'iptables') return iptablesModeProblems(ns, rules as ReturnType<typeof generateIptables>, meaning);
  if (mode === 'ipvs') return ipvsModeProblems(ns, rules as ReturnType<typeof generateIpvs>, meaning);
  return nftablesModeProblems(ns, rules as ReturnType<typeof generateNftables>, meaning);
}

/** A clear error names an object (or service port) and a field, and quotes values: no raw newline. */
function unclear(e: ObjectError | GeneratorInputError): string | null {
  const object = e instanceof ObjectError ? e.object : e.where;
  if (object === '' || e.field === '' || e.message.includes('\n')) return `unclear error: ${JSON.stringify(e.message)}`;
  return null;
}

// Category → [tried, refused with a clear error, loaded clean], over all modes; printed at the end.
const tally = new Map<string, [number, number, number]>();
function count(categories: readonly string[], refused: boolean): void {
  for (const c of categories) {
    const row = tally.get(c) ?? [0, 0, 0];
    row[0]++;
    row[refused ? 1 : 2]++;
    tally.set(c, row);
  }
}
afterAll(() => {
  const rows = [...tally.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  console.log(['category | tried | clear error | loaded clean', ...rows.map(([c, [t, e, l]]) => `${c} | ${t} | ${e} | ${l}`)].join('\n'));
});

const described = (ms: readonly Mutation[]) => (ms.length ? ms.map((m) => m.what).join('; ') : 'no mutation');

describe.each(MODES)('%s mode under hostile input, the kernel as judge', (mode) => {
  it('Kubernetes objects: a clear ObjectError, or rules holding only what kube-proxy writes', { timeout: 180_000 }, async () => {
    await withNetns(async (ns) => {
      const property = fc.asyncProperty(clusterModelArb, fc.array(mutationArb, { maxLength: 2 }), async (model, mutations) => {
        const list = structuredClone(listOf(model));
        const meaning = expectedOf(model);
        // Two mutations of one object may undo each other (a bad address overwritten by a good one):
        // such pairs say nothing about the reader, so they are not judged.
        const targets = mutations.map((m) => m.target(list, model)).filter((t) => t !== null);
        fc.pre(new Set(targets).size === targets.length);
        const applied = mutations.map((m) => ({ m, outcome: m.apply(list, meaning, model) })).filter((a) => a.outcome !== 'not applicable');
        const mustFail = applied.some((a) => a.outcome === 'error');
        const categories = [applied.length === 0 ? 'valid (odd address forms only)' : applied.length === 1 ? applied[0].m.category : 'two mutations at once'];
        let ports: ServicePortInfo[];
        try {
          ports = resolveServicePorts(readCluster(list), { nodeName: NODE });
        } catch (e) {
          if (!(e instanceof ObjectError)) throw e;
          if (!mustFail) throw new Error(`refused a valid List (${described(mutations)}): ${e.message}`);
          const why = unclear(e);
          if (why) throw new Error(why);
          count(categories, true);
          return;
        }
        if (mustFail) throw new Error(`accepted an invalid List (${described(mutations)})`);
        const rules = generate(mode, ports);
        await resetNetns(ns);
        const problems = await kernelProblems(mode, ns, rules, meaning);
        expect(problems, described(mutations)).toEqual([]);
        count(categories, false);
      });
      await fc.assert(property, { numRuns: RUNS });
    });
  });

  it('service ports straight to the generator: a clear GeneratorInputError, or rules holding only what kube-proxy writes', { timeout: 180_000 }, async () => {
    await withNetns(async (ns) => {
      const property = fc.asyncProperty(portsCaseArb, async (c) => {
        const categories = [`direct: ${c.outcome === 'not applicable' ? 'valid (odd address forms only)' : c.category}`];
        let rules: Rules;
        try {
          rules = generate(mode, c.ports);
        } catch (e) {
          if (!(e instanceof GeneratorInputError)) throw e;
          if (c.outcome !== 'error') throw new Error(`refused valid service ports (${c.what}): ${e.message}`);
          const why = unclear(e);
          if (why) throw new Error(why);
          count(categories, true);
          return;
        }
        if (c.outcome === 'error') throw new Error(`generated rules for invalid service ports (${c.what})`);
        await resetNetns(ns);
        const problems = await kernelProblems(mode, ns, rules, { clusterIPs: c.expectedClusterIPs, endpoints: c.expectedEndpoints });
        expect(problems, c.what).toEqual([]);
        count(categories, false);
      });
      await fc.assert(property, { numRuns: RUNS });
    });
  });
});
