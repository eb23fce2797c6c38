import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runner } from '../../lib/exec/index.ts';
import { loadManifest } from '../../lib/lab/manifests.ts';
import { createNetnsLab, type NetnsLab } from '../../lib/lab/netns/index.ts';
import {
  CheckFailed, captureLabNode, captured, found, iptablesRuleLines, nftChainLines, nftPriorityText, onNode, servicePorts,
} from '../../lib/notebook/index.ts';
import { findChain, findNftChain, findNftTable, findTable } from '../../lib/parse/index.ts';
import { savedProbability } from '../../lib/proxy/iptables.ts';
import { sepChain, svcChain } from '../../lib/proxy/names.ts';
import { nftEndpointChain, nftServiceChain } from '../../lib/proxy/nftables.ts';
import { iptablesEndpointJumps, nftEndpointEntries } from '../../lib/proxy/read-back.ts';
import type { ProxyMode } from '../../lib/proxy/modes.ts';
import { counterMismatches } from '../../lib/traffic/cross-check.ts';
import { trafficMeasurement } from '../plot/data.ts';
import { testRunTag } from '../helpers/netns.ts';

// The notebooks' helpers for reading a lab node, on real netns labs: the kernel lists the rules,
// the helpers must read them as iptables -S and nft list chain print them.

const tag = testRunTag().slice(0, 4);

async function labIn(mode: ProxyMode, replicas: number): Promise<{ lab: NetnsLab; node: string }> {
  const lab = await createNetnsLab({ name: `t${tag}-h${mode.slice(0, 2)}`, mode });
  const httpbin = (await loadManifest('httpbin')).map((o) => (o.kind === 'Deployment' ? { ...o, spec: { ...(o.spec as object), replicas } } : o));
  await lab.apply([...httpbin, ...(await loadManifest('curl'))]);
  const curl = (await lab.pods({ app: 'curl' }))[0];
  return { lab, node: curl.node };
}

/** Lines a host shell prints for `PREFIX command` on the node. */
async function onHost(prefix: string, command: string): Promise<string[]> {
  return (await runner.run(['sh', '-c', `${prefix} ${command}`])).stdout.trimEnd().split('\n');
}

describe('a lab node in iptables mode, as notebook 03 reads it', () => {
  let lab: NetnsLab;
  let node: string;
  beforeAll(async () => {
    ({ lab, node } = await labIn('iptables', 4));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('onNode is a prefix a root shell on the host runs', async () => {
    expect(onNode(lab, node)).toBe(`ip netns exec kn-${lab.name}.${node}`);
    expect(onNode({ backend: 'kind', name: 'x' }, 'x-worker')).toBe('docker exec x-worker');
    expect(await onHost(onNode(lab, node), 'iptables -t nat -S KUBE-SERVICES')).toContain('-N KUBE-SERVICES');
  });

  it('captureLabNode prints each command as typed on the host, and captured() hands back the parsed dump', async () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const cap = await captureLabNode(lab, node, ['iptables-save', 'iptables-nat-list']);
    const printed = log.mock.calls.map((c) => String(c[0]));
    log.mockRestore();
    expect(printed).toEqual([`$ ${onNode(lab, node)} iptables-save -c`, `$ ${onNode(lab, node)} iptables -t nat -L -n -v`]);
    expect(cap.provenance).toMatchObject({ source: 'captured', backend: 'netns', mode: 'iptables', node, lab: lab.name });
    const dump = captured(cap, 'iptables-save');
    expect(dump.tables.map((t) => t.name)).toEqual(expect.arrayContaining(['nat', 'filter']));
    expect(() => captured(cap, 'nft')).toThrow(CheckFailed);
    expect(() => captured(cap, 'nft')).toThrow(`no parsed nft from ${node}: not captured`);
  });

  it('servicePorts resolves the Services as the node sees them', async () => {
    const ports = await servicePorts(lab, node);
    const httpbin = found(ports.find((p) => p.name === 'httpbin'), 'httpbin');
    expect(httpbin.endpoints.filter((e) => e.ready)).toHaveLength(4);
    expect(ports.map((p) => p.servicePortName)).toContain('kube-system/kube-dns:dns');
  });

  it('reads the KUBE-SVC jumps back: chance, KUBE-SEP chain (a hash of its endpoint) and DNAT', async () => {
    const dump = captured(await captureLabNode(lab, node, ['iptables-save']), 'iptables-save');
    const nat = found(findTable(dump, 'nat'), 'nat');
    const jumps = iptablesEndpointJumps(nat, svcChain('default/httpbin:http', 'tcp'));
    expect(jumps.map((j) => j.probability)).toEqual([savedProbability(4), savedProbability(3), savedProbability(2), null]);
    expect(jumps.map((j) => j.probability)).toEqual(['0.25000000000', '0.33333333349', '0.50000000000', null]);
    for (const j of jumps) {
      expect(j.dnat).toMatch(/^10\.244\.\d+\.\d+:8080$/);
      expect(j.chain).toBe(sepChain('default/httpbin:http', 'tcp', j.dnat!));
      expect(j.rules).toBe(2);
    }
    expect(() => iptablesEndpointJumps(nat, 'KUBE-SVC-NOSUCHCHAIN')).toThrow('no chain KUBE-SVC-NOSUCHCHAIN');
  });

  it('prints a chain as iptables -S does', async () => {
    const dump = captured(await captureLabNode(lab, node, ['iptables-save']), 'iptables-save');
    const nat = found(findTable(dump, 'nat'), 'nat');
    for (const name of ['KUBE-SERVICES', svcChain('default/httpbin:http', 'tcp')]) {
      const kernel = (await onHost(onNode(lab, node), `iptables -t nat -S ${name}`)).slice(1);
      expect(iptablesRuleLines(found(findChain(nat, name), name)).split('\n')).toEqual(kernel);
    }
    const services = found(findChain(nat, 'KUBE-SERVICES'), 'KUBE-SERVICES');
    const marked = iptablesRuleLines(services, (r) => r.target?.name === svcChain('default/httpbin:http', 'tcp')).split('\n');
    expect(marked.filter((l) => l.startsWith('→ -A KUBE-SERVICES '))).toHaveLength(1);
    expect(marked.every((l) => l.startsWith('→ -A') || l.startsWith('  -A'))).toBe(true);
  });
});

describe('a lab node in nftables mode, as notebook 05 reads it', () => {
  let lab: NetnsLab;
  let node: string;
  beforeAll(async () => {
    ({ lab, node } = await labIn('nftables', 5));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('reads the numgen dispatch back: one entry per endpoint chain, each with its DNAT', async () => {
    const rs = captured(await captureLabNode(lab, node, ['nft']), 'nft');
    const kp = found(findNftTable(rs, 'ip', 'kube-proxy'), 'table ip kube-proxy');
    const httpbin = found((await servicePorts(lab, node)).find((p) => p.name === 'httpbin'), 'httpbin');
    const d = nftEndpointEntries(kp, nftServiceChain(httpbin));
    expect([d.mode, d.mod]).toEqual(['random', 5]);
    expect(d.entries.map((e) => e.numbers)).toEqual(['0', '1', '2', '3', '4']);
    expect(d.entries.map((e) => e.count)).toEqual([1, 1, 1, 1, 1]);
    expect(d.entries.map((e) => e.chain)).toEqual(httpbin.endpoints.map((e) => nftEndpointChain(httpbin, e)));
    expect(d.entries.map((e) => e.dnat)).toEqual(httpbin.endpoints.map((e) => `${e.ip}:8080`));
    expect(d.entries.every((e) => e.rules === 2)).toBe(true);
    expect(() => nftEndpointEntries(kp, 'services')).toThrow('chain services has no numgen rule');
  });

  it('prints a chain as nft list chain does', async () => {
    const rs = captured(await captureLabNode(lab, node, ['nft']), 'nft');
    const kp = found(findNftTable(rs, 'ip', 'kube-proxy'), 'table ip kube-proxy');
    const names = ['services', 'nat-prerouting', 'nat-output', 'nat-postrouting', 'filter-prerouting-pre-dnat', 'filter-input', nftServiceChain(found((await servicePorts(lab, node)).find((p) => p.name === 'httpbin'), 'httpbin'))];
    for (const name of names) {
      const kernel = (await onHost(onNode(lab, node), `nft list chain ip kube-proxy ${name}`)).map((l) => l.trim());
      // The kernel's listing wraps the chain in its table: drop `table … {` and the closing brace.
      const ours = nftChainLines(found(findNftChain(kp, name), name)).split('\n').map((l) => l.trim());
      expect(ours).toEqual(kernel.slice(1, -1));
    }
  });
});

describe('kernel counters against the answers', () => {
  it('agree when KUBE-SEP packets equal the answers and conntrack is equal or a little lower', () => {
    const m = trafficMeasurement();
    expect(counterMismatches(m)).toEqual([]);
    const low = { ...m, byPod: m.byPod.map((p) => ({ ...p, conntrack: Math.ceil(p.answers * 0.95) })) };
    expect(counterMismatches(low)).toEqual([]);
  });

  it('name each pod whose count strays, and a missing KUBE-SEP count in iptables mode', () => {
    const m = trafficMeasurement();
    const [a, b, c] = m.byPod;
    const bad = { ...m, byPod: [{ ...a, sepPackets: a.answers + 20 }, { ...b, conntrack: 0 }, { ...c, sepPackets: null }] };
    expect(counterMismatches(bad)).toEqual([
      `${a.pod}: KUBE-SEP counted ${a.answers + 20} connections, the pod answered ${a.answers}`,
      `${b.pod}: conntrack holds 0 entries for ${b.answers} answers`,
      `${c.pod}: no KUBE-SEP packet count`,
    ]);
    const nft = { ...bad, provenance: { ...m.provenance, mode: 'nftables' as const } };
    expect(counterMismatches(nft)).toEqual([`${b.pod}: conntrack holds 0 entries for ${b.answers} answers`]);
  });
});

describe('nft priorities as nft names them', () => {
  it('uses the standard names where the hook has them, within ten of them', () => {
    expect([
      nftPriorityText('prerouting', -100), nftPriorityText('prerouting', -110), nftPriorityText('output', -100), nftPriorityText('output', -110),
      nftPriorityText('input', 0), nftPriorityText('input', 5), nftPriorityText('input', 100), nftPriorityText('postrouting', 100), nftPriorityText('ingress', -500),
    ]).toEqual(['dstnat', 'dstnat - 10', '-100', '-110', 'filter', 'filter + 5', '100', 'srcnat', '-500']);
  });
});

describe('found', () => {
  it('passes a value through, and fails a check naming what is missing', () => {
    expect(found(0, 'zero')).toBe(0);
    expect(() => found(undefined, 'chain KUBE-SERVICES')).toThrow(new CheckFailed('not found: chain KUBE-SERVICES'));
    expect(() => found(null, 'x')).toThrow(CheckFailed);
  });
});
