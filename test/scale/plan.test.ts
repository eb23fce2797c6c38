import { describe, expect, it } from 'vitest';
import { parseIpsetList, parseIptablesSave, parseNftJson } from '../../lib/parse/index.ts';
import { builtinJumpsRestore } from '../../lib/proxy/iptables.ts';
import { iptablesTools } from '../../lib/proxy/iptables-backend.ts';
import { iptablesServiceChains, nftChainNames, nftFullSyncTx, nftServiceChains, nftStaleChainDeletion } from '../../lib/proxy/sync.ts';
import { IPVS_JUMPS } from '../../lib/proxy/ipvs.ts';
import {
  LARGE_POD_SUBNET, LatencyCheckError, ScaleOptionError, clientAddress, countIpsets, countIptables, countNftables,
  iptablesTargets, parseBackendList, parseModeList, parseSyncLimits, scaleVariants,
  parseSizeList, resolveScaleOptions, stepInputs, verifyDnat, type ProbeTargetOutput,
} from '../../lib/scale/index.ts';
import { predictCounts } from '../../lib/sim/index.ts';
import { withNetns } from '../helpers/netns.ts';

describe('options', () => {
  it('parses mode and size lists and names what is wrong', () => {
    expect(parseModeList('iptables,nftables')).toEqual(['iptables', 'nftables']);
    expect(() => parseModeList('iptables,bpf')).toThrow(/unknown mode "bpf"/);
    expect(() => parseModeList('iptables,iptables')).toThrow(/twice/);
    expect(() => parseModeList('iptables,')).toThrow(ScaleOptionError);
    expect(parseSizeList('1000,10,100')).toEqual([10, 100, 1000]);
    for (const bad of ['10,abc', '10,,100', '0', '1.5', '-3', '']) expect(() => parseSizeList(bad)).toThrow(/whole numbers ≥ 1/);
    expect(() => parseSizeList('10,10')).toThrow(/lists 10 twice/);
  });

  it('parses iptables backends and per-variant sync limits, refusing a variant the sweep does not run', () => {
    expect(parseBackendList('legacy,nft')).toEqual(['legacy', 'nft']);
    expect(() => parseBackendList('legacy,')).toThrow(/unknown backend ""/);
    expect(parseSyncLimits('300,iptables-nft=60')).toEqual({ maxSyncMs: 300_000, maxSyncMsByVariant: { 'iptables-nft': 60_000 } });
    for (const bad of ['', 'ten', '300,iptables-nft=', '0']) expect(() => parseSyncLimits(bad)).toThrow(/--max-sync-seconds must be SECONDS/);
    const ok = resolveScaleOptions({ modes: ['iptables', 'nftables'], iptablesBackends: ['legacy', 'nft'], services: [10], endpoints: 2, maxSyncMsByVariant: { 'iptables-nft': 60_000 } });
    expect(ok.maxSyncMsByVariant).toEqual({ 'iptables-nft': 60_000 });
    expect(() => resolveScaleOptions({ modes: ['iptables'], iptablesBackends: ['legacy'], services: [10], endpoints: 2, maxSyncMsByVariant: { 'iptables-nft': 60_000 } }))
      .toThrow(/names "iptables-nft", which this sweep does not run \(it runs iptables-legacy\)/);
    expect(scaleVariants(['iptables', 'nftables', 'ipvs'], ['legacy']).map((v) => v.name)).toEqual(['iptables-legacy', 'nftables', 'ipvs-legacy']);
  });

  it('keeps kind\'s pod subnet when the pods fit, and picks a bigger one when they do not', () => {
    const small = resolveScaleOptions({ modes: ['iptables'], services: [10, 1000], endpoints: 10 });
    expect(small).toMatchObject({ podSubnet: '10.244.0.0/16', samples: 200, repeats: 3, fitMaxServices: 1000, netnsPrefix: 'kn-scale' });
    expect(resolveScaleOptions({ modes: ['iptables'], services: [10_000], endpoints: 10 }).podSubnet).toBe(LARGE_POD_SUBNET);
  });

  it('refuses S×E that does not fit the pod subnet it was given, and says which flag fixes it', () => {
    expect(() => resolveScaleOptions({ modes: ['iptables'], services: [10_000], endpoints: 10, podSubnet: '10.244.0.0/16' }))
      .toThrow(/10000×10 pods need \d+ nodes of \/24, but 10\.244\.0\.0\/16 holds 256; pass a larger --pod-subnet/);
    expect(() => resolveScaleOptions({ modes: ['iptables'], services: [10], endpoints: 0 })).toThrow(/endpoints must be a whole number ≥ 1/);
    expect(() => resolveScaleOptions({ modes: ['iptables'], services: [10], endpoints: 3, netnsPrefix: 'scale' })).toThrow(/must start with kn-/);
    expect(() => resolveScaleOptions({ modes: ['iptables'], services: [10], endpoints: 3, podSubnet: 'ten' })).toThrow(/--pod-subnet/);
  });

  it('connects from a pod address that is no endpoint', () => {
    const inputs = stepInputs('iptables', 10, 3, '10.244.0.0/16');
    expect(clientAddress('10.244.0.0/16', inputs.ports)).toBe('10.244.255.254');
    expect(clientAddress(LARGE_POD_SUBNET, inputs.ports)).toBe('10.255.255.254');
  });
});

describe('the change kube-proxy applies, as text', () => {
  it('iptables: the partial restore keeps the filter table and nat\'s fixed chains, and only the changed service\'s chains', () => {
    const s = stepInputs('iptables', 5, 3, '10.244.0.0/16');
    const text = s.iptables!.change;
    const chains = [...text.matchAll(/^:(\S+)/gm)].map((m) => m[1]);
    const before = s.ports[s.changed.index];
    const [svc, ...seps] = iptablesServiceChains(before);
    expect(s.changed.service).toBe('default/svc-3:http');
    // Filter, then nat: fixed chains, the changed service's SVC and kept SEPs, then the removed SEP.
    expect(chains.filter((c) => /^KUBE-(SVC|SEP)-/.test(c))).toEqual([svc, ...seps.slice(0, 2), seps[2]]);
    expect(text).toContain(`-X ${seps[2]}\nCOMMIT`);
    expect(text.match(/^-A KUBE-SERVICES .*cluster IP/gm)).toHaveLength(5);
    expect(text).toMatch(/^\*filter\n/);
    // Other services' chains are neither declared (which would flush them) nor rewritten.
    for (const c of iptablesServiceChains(s.ports[0])) {
      expect(text).not.toContain(`:${c} `);
      expect(text).not.toContain(`-A ${c} `);
    }
  });

  it('nftables: one transaction adds and flushes one service\'s chains and rewrites their rules, as knftables writes ensureChain', () => {
    const s = stepInputs('nftables', 5, 3, '10.244.0.0/16');
    const before = s.ports[s.changed.index];
    const [svc, ...eps] = nftServiceChains(before);
    const lines = s.nftables!.change.tx.trim().split('\n');
    expect(lines.slice(0, 6)).toEqual([svc, eps[0], eps[1]].flatMap((c) => [`add chain ip kube-proxy ${c}`, `flush chain ip kube-proxy ${c}`]));
    expect(lines.filter((l) => l.startsWith('add rule'))).toHaveLength(2 + 2 * 2);
    expect(lines.at(-1)).toBe(`flush chain ip kube-proxy ${eps[2]}`);
    // Its elements name the same service chain before and after: ensureElem writes none.
    expect(lines.filter((l) => l.startsWith('add element'))).toEqual([]);
    expect(lines.filter((l) => !l.includes(svc) && !eps.some((e) => l.includes(e)))).toEqual([]);
    expect(s.nftables!.change.followUp).toBe(`delete chain ip kube-proxy ${eps[2]}\n`);
    expect(s.nftables!.revert.tx).toContain(`add chain ip kube-proxy ${eps[2]}\nflush chain ip kube-proxy ${eps[2]}\n`);
  });

  it('nftables: the full sync never deletes the table; it adds and flushes what it owns', () => {
    const g = stepInputs('nftables', 5, 3, '10.244.0.0/16').nftables!;
    for (const tx of [g.first, g.resync]) {
      expect(tx).not.toMatch(/^delete table/m);
      expect(tx.split('\n')[0]).toBe('add table ip kube-proxy { comment "rules for kube-proxy" ; }');
      expect(tx).toContain('add chain ip kube-proxy services\nflush chain ip kube-proxy services\n');
      expect(tx).toMatch(/add map ip kube-proxy service-ips \{[^\n]*\}\nflush map ip kube-proxy service-ips\n/);
      expect(tx).toMatch(/add set ip kube-proxy cluster-ips \{[^\n]*\}\nflush set ip kube-proxy cluster-ips\n/);
    }
    // Only the first sync of a kube-proxy adds and deletes each of the 8 base chains once.
    expect(g.first.match(/^delete chain /gm)).toHaveLength(8);
    expect(g.first.split('\n')[1]).toBe('add chain ip kube-proxy filter-prerouting-pre-dnat');
    expect(g.resync).not.toMatch(/^delete chain /m);
  });
});

describe('the change in the kernel (the kernel is the oracle)', () => {
  it('iptables: the partial restore removes exactly one endpoint, and the revert puts it back', async () => {
    const s = stepInputs('iptables', 20, 4, '10.244.0.0/16');
    const g = s.iptables!;
    const want = predictCounts('iptables', { services: 20, endpoints: 4 }).iptables!;
    await withNetns(async (ns) => {
      const count = async () => countIptables(parseIptablesSave((await ns.run(['iptables-save'])).stdout));
      await ns.run(['iptables-restore', '--noflush'], { input: builtinJumpsRestore(g.full.builtinJumps) });
      await ns.run(['iptables-restore', '--noflush'], { input: g.full.restore });
      expect(await count()).toEqual({ nat: want.nat, filter: want.filter });
      await ns.run(['iptables-restore', '--noflush'], { input: g.change });
      // One SEP chain less; its 2 rules and the SVC chain's jump to it gone.
      expect(await count()).toEqual({ nat: { chains: want.nat.chains - 1, rules: want.nat.rules - 3 }, filter: want.filter });
      const saved = (await ns.run(['iptables-save', '-t', 'nat'])).stdout;
      expect(saved).not.toContain(`${s.changed.removed.ip}:8080`);
      await ns.run(['iptables-restore', '--noflush'], { input: g.revert });
      expect(await count()).toEqual({ nat: want.nat, filter: want.filter });
      const [first, last] = iptablesTargets(parseIptablesSave((await ns.run(['iptables-save'])).stdout), s.ports);
      expect([first.position, first.port.name, last.position, last.port.name]).toEqual([1, 'svc-01', 20, 'svc-20']);
    });
  });

  it('nftables: the incremental transaction loads, and the revert restores the full ruleset\'s counts', async () => {
    const s = stepInputs('nftables', 20, 4, '10.244.0.0/16');
    const g = s.nftables!;
    const want = predictCounts('nftables', { services: 20, endpoints: 4 }).nftables!;
    await withNetns(async (ns) => {
      const count = async () => countNftables(parseNftJson((await ns.run(['nft', '-j', 'list', 'ruleset'])).stdout));
      await ns.run(['nft', '-f', '-'], { input: g.first });
      expect(await count()).toEqual(want);
      // The periodic full sync over it, and a second first sync (a restarted kube-proxy), leave the same.
      await ns.run(['nft', '-f', '-'], { input: g.resync });
      expect(await count()).toEqual(want);
      await ns.run(['nft', '-f', '-'], { input: g.first });
      expect(await count()).toEqual(want);
      await ns.run(['nft', '-f', '-'], { input: g.change.tx });
      // Flushed, not yet deleted: the chain is still there, its 2 rules are not (the numgen
      // dispatch stays one rule).
      expect(await count()).toEqual({ ...want, rules: want.rules - 2 });
      await ns.run(['nft', '-f', '-'], { input: g.change.followUp });
      expect(await count()).toEqual({ ...want, chains: want.chains - 1, rules: want.rules - 2 });
      const listed = (await ns.run(['nft', 'list', 'ruleset'])).stdout;
      expect(listed).not.toContain(`${s.changed.removed.ip}:8080`);
      await ns.run(['nft', '-f', '-'], { input: g.revert.tx });
      expect(await count()).toEqual(want);
    });
  });

  it('nftables: a full sync flushes the service chains it no longer writes, and they can be deleted a second later', async () => {
    const big = stepInputs('nftables', 6, 2, '10.244.0.0/16').nftables!;
    const small = stepInputs('nftables', 5, 2, '10.244.0.0/16').nftables!;
    await withNetns(async (ns) => {
      await ns.run(['nft', '-f', '-'], { input: big.first });
      const existing = nftChainNames((await ns.run(['nft', 'list', 'chains', 'ip'])).stdout);
      expect(existing).toHaveLength(predictCounts('nftables', { services: 6, endpoints: 2 }).nftables!.chains);
      const tx = nftFullSyncTx(small.full, { first: false, existingChains: existing });
      const stale = existing.filter((c) => !nftChainNames(small.full.nft).includes(c));
      expect(stale).toHaveLength(3);
      await ns.run(['nft', '-f', '-'], { input: tx });
      const counted = countNftables(parseNftJson((await ns.run(['nft', '-j', 'list', 'ruleset'])).stdout));
      expect(counted).toEqual({ ...predictCounts('nftables', { services: 5, endpoints: 2 }).nftables!, chains: existing.length });
      await ns.run(['nft', '-f', '-'], { input: nftStaleChainDeletion('ip', stale) });
      expect(countNftables(parseNftJson((await ns.run(['nft', '-j', 'list', 'ruleset'])).stdout))).toEqual(predictCounts('nftables', { services: 5, endpoints: 2 }).nftables!);
    });
  });

  it('iptables-legacy: the same restore and partial restore load into the legacy tables, which iptables-nft does not see', async () => {
    const s = stepInputs('iptables', 20, 4, '10.244.0.0/16');
    const g = s.iptables!;
    const want = predictCounts('iptables', { services: 20, endpoints: 4 }).iptables!;
    const legacy = iptablesTools('legacy');
    await withNetns(async (ns) => {
      const count = async (save: string) => countIptables(parseIptablesSave((await ns.run([save])).stdout));
      await ns.run([legacy.restore, '--noflush'], { input: builtinJumpsRestore(g.full.builtinJumps) });
      await ns.run([legacy.restore, '--noflush'], { input: g.full.restore });
      expect(await count(legacy.save)).toEqual({ nat: want.nat, filter: want.filter });
      expect(await count(iptablesTools('nft').save)).toEqual({ nat: { chains: 0, rules: 0 }, filter: { chains: 0, rules: 0 } });
      await ns.run([legacy.restore, '--noflush'], { input: g.change });
      expect(await count(legacy.save)).toEqual({ nat: { chains: want.nat.chains - 1, rules: want.nat.rules - 3 }, filter: want.filter });
    });
  });

  it('ipvs: the ipset and iptables parts of the change load (ipvsadm only where the kernel has IP_VS)', async () => {
    const s = stepInputs('ipvs', 30, 4, '10.244.0.0/16');
    const g = s.ipvs!;
    const local = s.ports.reduce((n, p) => n + p.endpoints.filter((e) => e.isLocal).length, 0);
    const want = predictCounts('ipvs', { services: 30, endpoints: 4, localEndpoints: local }).ipvs!;
    await withNetns(async (ns) => {
      await ns.run(['ipset', 'restore'], { input: g.full.ipsetRestore });
      await ns.run(['iptables-restore', '--noflush'], { input: builtinJumpsRestore(IPVS_JUMPS.map((j) => ({ ...j, args: [...j.args] }))) });
      await ns.run(['iptables-restore', '--noflush'], { input: g.full.iptablesRestore });
      const members = async () => countIpsets(parseIpsetList((await ns.run(['ipset', 'list'])).stdout));
      expect(await members()).toEqual(want.ipsetMembers);
      expect(countIptables(parseIptablesSave((await ns.run(['iptables-save'])).stdout))).toEqual({ nat: want.iptables.nat, filter: want.iptables.filter });
      if (g.change.ipset) await ns.run(['ipset', 'restore', '-exist'], { input: g.change.ipset });
      await ns.run(['iptables-restore', '--noflush'], { input: g.change.iptables });
      const removedLocal = s.changed.removed.isLocal ? 1 : 0;
      expect((await members())['KUBE-LOOP-BACK']).toBe(want.ipsetMembers['KUBE-LOOP-BACK'] - removedLocal);
      if (g.revert.ipset) await ns.run(['ipset', 'restore', '-exist'], { input: g.revert.ipset });
      expect(await members()).toEqual(want.ipsetMembers);
    });
    expect(g.change.ipvsadm).toBe(`-d -t ${s.ports[s.changed.index].clusterIP}:80 -r ${s.changed.removed.ip}:8080\n`);
    expect(g.revert.ipvsadm).toBe(`-a -t ${s.ports[s.changed.index].clusterIP}:80 -r ${s.changed.removed.ip}:8080 -m -w 1\n`);
  });
});

describe('verifyDnat: a bypassed or failed path is never reported', () => {
  const port = stepInputs('iptables', 2, 2, '10.244.0.0/16').ports[0];
  const eps = port.endpoints.map((e) => `${e.ip}:${e.port}`);
  const ok: ProbeTargetOutput = { target: `${port.clusterIP}:80`, samplesUs: [100, 120], reached: { [eps[0]]: 3, [eps[1]]: 4 }, remotes: { '10.244.255.254': 7 }, errors: 0, errorSamples: [] };

  it('accepts connections that all reached the service\'s endpoints from the client', () => {
    expect(verifyDnat(ok, port, '10.244.255.254')).toBe(2);
  });

  it('rejects a connection that reached the ClusterIP itself', () => {
    expect(() => verifyDnat({ ...ok, reached: { ...ok.reached, [`${port.clusterIP}:80`]: 1 } }, port, '10.244.255.254'))
      .toThrow(/reached 10\.96\.1\.0:80, the ClusterIP itself: the rules were bypassed/);
  });

  it('rejects another service\'s endpoint, a masqueraded source and failed connections', () => {
    expect(() => verifyDnat({ ...ok, reached: { '10.244.9.9:8080': 1 } }, port, '10.244.255.254')).toThrow(/not one of its endpoints/);
    expect(() => verifyDnat({ ...ok, remotes: { '172.18.0.3': 7 } }, port, '10.244.255.254')).toThrow(/arrived from 172\.18\.0\.3/);
    expect(() => verifyDnat({ ...ok, errors: 2, errorSamples: ['connect ETIMEDOUT'] }, port, '10.244.255.254')).toThrow(LatencyCheckError);
    expect(() => verifyDnat({ ...ok, samplesUs: [] }, port, '10.244.255.254')).toThrow(/no connection/);
  });
});

describe('estimateSyncMs: whether a step is worth starting', () => {
  it('extrapolates with the growth seen between the two largest sizes, never below linear', async () => {
    const { estimateSyncMs } = await import('../../lib/scale/plan.ts');
    expect(estimateSyncMs([], 1000)).toBeNull();
    expect(estimateSyncMs([{ services: 100, syncMs: 200 }], 1000)!.ms).toBeCloseTo(2000);
    // 100 → 1000 grew ×59: exponent log(59)/log(10) ≈ 1.77, so 5000 is about 8 s × 5^1.77.
    const e = estimateSyncMs([{ services: 10, syncMs: 59 }, { services: 100, syncMs: 136 }, { services: 1000, syncMs: 8036 }], 5000)!;
    expect(e.ms).toBeCloseTo(8036 * 5 ** (Math.log(8036 / 136) / Math.log(10)), 6);
    expect(e.basis).toContain('from 100 to 1000');
    // A cost that grew slower than linear is still extrapolated linearly.
    expect(estimateSyncMs([{ services: 10, syncMs: 100 }, { services: 100, syncMs: 110 }], 1000)!.ms).toBeCloseTo(1100);
    // Only smaller sizes count.
    expect(estimateSyncMs([{ services: 1000, syncMs: 5 }], 100)).toBeNull();
  });
});
