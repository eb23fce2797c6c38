import { runner as baseRunner, withScratchNetns, type Runner } from '../../lib/exec/index.ts';
import { resolveServicePorts, workshopCluster } from '../../lib/k8s/index.ts';
import { findTable, parseIpsetList, parseIptablesSave, parseNftRuleset } from '../../lib/parse/index.ts';
import { builtinJumpsRestore, generateIptables } from '../../lib/proxy/iptables.ts';
import { generateIpvs } from '../../lib/proxy/ipvs.ts';
import { generateNftables } from '../../lib/proxy/nftables.ts';
import { PROXY_MODES, isProxyMode, type ProxyMode } from '../../lib/proxy/modes.ts';
import { predictSplit } from '../../lib/sim/split.ts';
import { traceNat } from '../../lib/trace/index.ts';
import { existsSync } from 'node:fs';
import { UsageError, intOption, stringOption, type CommandSpec, type Io } from '../cli.ts';

const NODE = 'kind-worker';
const NODE_IP = '172.18.0.3';

/**
 * The pod-to-service story on a real kernel, in a minute: kube-proxy's rules for the workshop's
 * httpbin Service go into a private namespace, come back out of the kernel, and are traced.
 */
export const tour: CommandSpec = {
  summary: 'load kube-proxy\'s rules for the workshop\'s httpbin into a private namespace, read them back, trace a packet (root)',
  usage: 'tour [--mode iptables|ipvs|nftables] [--replicas N] [--quiet]',
  options: { mode: { type: 'string' }, replicas: { type: 'string' }, quiet: { type: 'boolean' } },
  async run(args, io) {
    const only = stringOption(args, 'mode');
    if (only !== undefined && !isProxyMode(only)) throw new UsageError(`--mode must be iptables, ipvs or nftables, got ${JSON.stringify(only)}`);
    if (process.getuid?.() !== 0) throw new UsageError('the tour creates a network namespace, which needs root: run it with sudo');
    const replicas = intOption(args, 'replicas', 3);
    if (replicas < 1) throw new UsageError('--replicas must be at least 1');
    const ports = resolveServicePorts(workshopCluster({ replicas }), { nodeName: NODE });
    const echo = args.values.quiet ? undefined : (cmd: string) => io.out(`    $ ${cmd}`);
    const runner = baseRunner.withEcho(echo);
    io.out(`kube-netlab tour: default/httpbin (${replicas} replicas, ClusterIP 10.96.120.15:8000 → 8080) as node ${NODE} sees it\n`);
    for (const mode of only ? [only] : PROXY_MODES) {
      await withScratchNetns('kn-tour', (ns) => TOURS[mode](ns.name, ports, runner, io), runner);
    }
    io.out('\nEvery namespace the tour made is gone; the host\'s own tables were never touched.');
  },
};

type Ports = ReturnType<typeof resolveServicePorts>;
const inNs = (ns: string, argv: string[]) => ['ip', 'netns', 'exec', ns, ...argv];

const TOURS: Record<ProxyMode, (ns: string, ports: Ports, runner: Runner, io: Io) => Promise<void>> = {
  async iptables(ns, ports, runner, io) {
    io.out('iptables mode');
    const gen = generateIptables(ports, { nodeName: NODE });
    io.out(`  predicted: nat ${gen.counts.nat.rules} rules in ${gen.counts.nat.chains} chains (lib/proxy)`);
    await runner.run(inNs(ns, ['iptables-restore', '--noflush']), { input: builtinJumpsRestore(gen.builtinJumps) });
    await runner.run(inNs(ns, ['iptables-restore', '--noflush']), { input: gen.restore });
    const saved = parseIptablesSave((await runner.run(inNs(ns, ['iptables-save', '-t', 'nat']))).stdout);
    const nat = findTable(saved, 'nat')!;
    const kubeChains = nat.chains.filter((c) => c.name.startsWith('KUBE-'));
    io.out(`  captured:  nat ${kubeChains.reduce((a, c) => a + c.rules.length, 0)} rules in ${kubeChains.length} KUBE- chains (iptables-save, netns ${ns})`);
    const { outcomes } = traceNat({ nat, hook: 'PREROUTING', localAddresses: [NODE_IP], packet: { protocol: 'tcp', src: '10.244.1.100', dst: '10.96.120.15', dport: 8000, sport: 40000 } });
    const split = predictSplit('iptables', outcomes.length, 3000);
    io.out('  traced from a pod (10.244.1.100 → 10.96.120.15:8000), through the rules the kernel holds:');
    for (const o of outcomes) {
      io.out(`    ${(o.probability * 100).toFixed(8).padStart(12)}%  DNAT → ${o.dnat}   via ${o.path.join(' › ')}`);
    }
    io.out(`  predicted for 3000 requests: ${split.shares.map((s) => `${s.expected.toFixed(0)} [${s.low}–${s.high}]`).join(', ')}\n`);
  },

  async ipvs(ns, ports, runner, io) {
    io.out('IPVS mode');
    const gen = generateIpvs(ports, { nodeName: NODE, nodeIPs: [NODE_IP] });
    await runner.run(inNs(ns, ['ipset', 'restore']), { input: gen.ipsetRestore });
    await runner.run(inNs(ns, ['iptables-restore', '--noflush']), { input: gen.iptablesRestore });
    const sets = parseIpsetList((await runner.run(inNs(ns, ['ipset', 'list', 'KUBE-CLUSTER-IP']))).stdout);
    const members = sets.sets[0]?.members ?? [];
    io.out(`  captured:  KUBE-CLUSTER-IP holds ${members.length} members (ipset list, netns ${ns}): ${members.slice(0, 6).join(' ')}`);
    const nat = findTable(parseIptablesSave((await runner.run(inNs(ns, ['iptables-save', '-t', 'nat']))).stdout), 'nat')!;
    io.out(`  captured:  nat KUBE-SERVICES has ${nat.chains.find((c) => c.name === 'KUBE-SERVICES')?.rules.length ?? 0} rules, however many services there are`);
    if (existsSync('/proc/net/ip_vs')) {
      await runner.run(inNs(ns, ['ipvsadm', '-R']), { input: gen.ipvsadmRestore });
      io.out(`  captured:  ${(await runner.run(inNs(ns, ['ipvsadm', '-Ln']))).stdout.trim().split('\n').length} lines of ipvsadm -Ln`);
    } else {
      io.out(`  this kernel has no IP_VS (/proc/net/ip_vs is absent): the ${gen.counts.virtualServers} virtual servers and ${gen.counts.realServers} real servers below are PREDICTED, not captured`);
      for (const line of gen.ipvsadmRestore.trim().split('\n').filter((l) => l.includes('8000'))) io.out(`    predicted: ipvsadm ${line}`);
    }
    io.out('');
  },

  async nftables(ns, ports, runner, io) {
    io.out('nftables mode');
    const gen = generateNftables(ports, { nodeName: NODE, nodeIPs: [NODE_IP] });
    io.out(`  predicted: ${gen.counts.chains} chains, ${gen.counts.rules} rules, ${gen.counts.elements} elements (lib/proxy)`);
    await runner.run(inNs(ns, ['nft', '-f', '-']), { input: gen.nft });
    const ruleset = parseNftRuleset((await runner.run(inNs(ns, ['nft', 'list', 'ruleset']))).stdout);
    const table = ruleset.tables.find((t) => t.name === 'kube-proxy');
    const chains = table?.chains ?? [];
    io.out(`  captured:  table ip kube-proxy with ${chains.length} chains, ${chains.reduce((a, c) => a + c.rules.length, 0)} rules (nft list ruleset, netns ${ns})`);
    const svc = chains.find((c) => c.name.includes('default/httpbin/tcp/http') && c.name.startsWith('service-'));
    const dispatch = svc?.rules.find((r) => r.numgen);
    const ng = dispatch?.numgen;
    if (svc && ng) {
      io.out(`  ${svc.name}: numgen ${ng.mode} mod ${ng.mod}, each endpoint 1/${ng.mod}:`);
      for (const e of ng.entries) io.out(`    ${e.index} : ${e.verdict.kind} ${e.verdict.target}`);
    }
    io.out('');
  },
};
