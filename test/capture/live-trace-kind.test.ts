// The live trace on the kind backend, where no Docker engine runs: the kind fakes' docker runs
// `docker exec NODE argv…` as argv itself, found first in the fakes' folder, so the node's tools
// here are small scripts that answer as kindest/node's would (or as a missing one: docker exec
// exits 127 with "executable file not found"), and record what they were given.
import { chmod, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  LiveTraceUnavailable, installTraceRules, monitorCommand, probeLiveTrace, removeTraceRules, type NodeExec, type TraceMatch,
} from '../../lib/capture/index.ts';
import { NFTRACE_READER_PROGRAM } from '../../lib/capture/nftrace-reader.ts';
import { dockerExec } from '../../lib/lab/kind/commands.ts';
import { fakeToolchain, type FakeToolchain } from '../lab/kind-fakes.ts';

const NODE = 'netlab-worker';
const MISSING = (tool: string) => `echo 'OCI runtime exec failed: exec failed: unable to start container process: exec: "${tool}": executable file not found in $PATH: unknown' >&2; exit 127`;
const MATCH: TraceMatch = { protocol: 'tcp', src: '10.244.1.4', dst: '10.96.120.15', dport: 8000, hook: 'PREROUTING' };
const kindLab = (mode: 'iptables' | 'nftables' | 'ipvs', ipvs = false) => ({ mode, capabilities: async () => ({ ipvs }) });

let fake: FakeToolchain;
let exec: NodeExec;
const dir = join(tmpdir(), `kn-live-kind-${process.pid}`);

/** A tool on the fake node: a bash script (body gets the arguments). */
async function tool(name: string, body: string): Promise<void> {
  await fake.set(name, `#!/bin/bash\nF=${JSON.stringify(fake.dir)}\n${body}\n`);
  await chmod(join(fake.dir, name), 0o755);
}

beforeAll(async () => {
  fake = await fakeToolchain(dir, ['docker']);
  // As KindLab.exec runs it: -i where the command reads input.
  exec = (argv, opts) => fake.runner.run(dockerExec(NODE, argv, { stdin: opts?.input !== undefined }), opts);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  await fake.set('log', '');
  await rm(join(fake.dir, 'python3'), { force: true });
  await tool('iptables', `echo 'iptables v1.8.9 (nf_tables)'`);
  await tool('nft', `echo 'nftables v1.0.9 (Old Doc Yak #3)'`);
  await tool('xtables-monitor', `echo 'xtables-monitor 1.8.9'`);
});

describe('live trace on a kind node, through docker exec', () => {
  it('a node with nft: nft monitor, probed in the node container (kindest/node has no python3 for the kit\'s reader)', async () => {
    expect(await probeLiveTrace(kindLab('iptables'), exec, NODE)).toBe('nft');
    expect(await fake.log()).toEqual([`docker exec ${NODE} nft --version`, `docker exec ${NODE} iptables --version`, `docker exec ${NODE} /usr/bin/python3 --version`]);
    await expect(probeLiveTrace(kindLab('nftables'), exec, NODE, 'netlink')).rejects.toThrow(/has no \/usr\/bin\/python3 of Python 3.7 or later, which runs the kit's trace reader .*--monitor nft reads the same events/);
    // Too old a Python is no reader either.
    await tool('python3', `echo 'Python 3.5.3'`);
    expect(await probeLiveTrace(kindLab('nftables'), exec, NODE)).toBe('nft');
  });

  it('a node image with /usr/bin/python3 and nft: the kit\'s reader, its program given on standard input (docker exec -i)', async () => {
    await tool('python3', `echo 'Python 3.11.2'`);
    expect(await probeLiveTrace(kindLab('nftables'), exec, NODE)).toBe('netlink');
    expect(await probeLiveTrace(kindLab('iptables'), exec, NODE)).toBe('netlink');
    expect(await probeLiveTrace(kindLab('iptables'), exec, NODE, 'nft')).toBe('nft');
    await tool('nft', MISSING('nft'));
    expect(await probeLiveTrace(kindLab('iptables'), exec, NODE)).toBe('xtables');
    await expect(probeLiveTrace(kindLab('iptables'), exec, NODE, 'netlink')).rejects.toThrow(/has no nft, whose listing names the rules/);
    await fake.set('log', '');
    await tool('python3', 'cat > "$F/program"; echo "listening\t1"');
    const r = await exec(monitorCommand('netlink'), { input: NFTRACE_READER_PROGRAM });
    expect(r.stdout).toBe('listening\t1\n');
    expect(await fake.log()).toEqual([`docker exec -i ${NODE} /usr/bin/python3 -I -`]);
    expect(await readFile(join(fake.dir, 'program'), 'utf8')).toBe(NFTRACE_READER_PROGRAM);
  });

  it('IPVS mode: its iptables part probed as iptables mode is, with or without IP_VS', async () => {
    expect(await probeLiveTrace(kindLab('ipvs', true), exec, NODE)).toBe('nft');
    expect(await probeLiveTrace(kindLab('ipvs', false), exec, NODE)).toBe('nft');
    // A monitor asked for is taken as in iptables mode.
    expect(await probeLiveTrace(kindLab('ipvs', false), exec, NODE, 'xtables')).toBe('xtables');
  });

  it('a node image without nft but with xtables-monitor: xtables-monitor', async () => {
    await tool('nft', MISSING('nft'));
    expect(await probeLiveTrace(kindLab('iptables'), exec, NODE)).toBe('xtables');
    expect(await fake.log()).toEqual([`docker exec ${NODE} nft --version`, `docker exec ${NODE} iptables --version`, `docker exec ${NODE} xtables-monitor --help`]);
    expect(dockerExec(NODE, ['timeout', '65', ...monitorCommand('xtables')])).toEqual(['docker', 'exec', NODE, 'timeout', '65', 'xtables-monitor', '--trace']);
  });

  it('skipped with the reason where the node has neither, runs iptables-legacy, or is nftables without nft', async () => {
    await tool('nft', MISSING('nft'));
    await tool('xtables-monitor', MISSING('xtables-monitor'));
    await expect(probeLiveTrace(kindLab('iptables'), exec, NODE)).rejects.toThrow(LiveTraceUnavailable);
    await expect(probeLiveTrace(kindLab('iptables'), exec, NODE)).rejects.toThrow(/neither nft nor xtables-monitor .*kind's node image may lack both/);
    await expect(probeLiveTrace(kindLab('nftables'), exec, NODE)).rejects.toThrow(/has no nft, which the trace needs/);
    await tool('iptables', `echo 'iptables v1.8.9 (legacy)'`);
    await expect(probeLiveTrace(kindLab('iptables'), exec, NODE)).rejects.toThrow(/iptables-legacy: its TRACE target logs to the kernel log/);
    // IPVS mode's iptables part is traced as iptables mode is, so a legacy node is refused alike.
    await expect(probeLiveTrace(kindLab('ipvs', true), exec, NODE)).rejects.toThrow(/iptables-legacy: its TRACE target logs to the kernel log/);
  });

  it('the tracing rules go in and out through docker exec, as iptables-restore and nft input', async () => {
    await tool('iptables-restore', 'cat > "$F/restore.$(date +%s%N)"');
    const owner = { pid: 4242, start: '987654' };
    const rules = await installTraceRules(exec, 'iptables', MATCH, owner);
    expect(await removeTraceRules(exec, rules)).toBe(true);
    expect(await fake.log()).toEqual([`docker exec -i ${NODE} iptables-restore --noflush`, `docker exec -i ${NODE} iptables-restore --noflush`]);
    const saved = (await readdir(fake.dir)).filter((f) => f.startsWith('restore.')).sort();
    const inputs = await Promise.all(saved.map((f) => readFile(join(fake.dir, f), 'utf8')));
    expect(inputs[0]).toContain(`-A ${rules.kind === 'iptables' ? rules.chain : ''} -s 10.244.1.4/32 -d 10.96.120.15/32 -p tcp -m tcp --dport 8000 --tcp-flags FIN,SYN,RST,ACK SYN -m comment --comment kube-netlab-trace/4242/987654 -j TRACE`);
    expect(inputs[1]).toMatch(/^\*raw\n-D PREROUTING -m comment --comment kube-netlab-trace\/4242\/987654 -j KUBE-NETLAB-TRACE-[0-9a-f]{8}\n-F /);

    await fake.set('log', '');
    await tool('nft', 'if [ "$1" = -f ]; then cat > "$F/nft.input"; fi');
    const table = await installTraceRules(exec, 'nftables', MATCH, owner);
    expect(await removeTraceRules(exec, table)).toBe(true);
    const name = table.kind === 'nftables' ? table.table : '';
    expect(name).toMatch(/^kube-netlab-trace-4242-987654-[0-9a-f]{8}$/);
    expect(await fake.log()).toEqual([`docker exec -i ${NODE} nft -f -`, `docker exec ${NODE} nft delete table ip ${name}`]);
    expect(await readFile(join(fake.dir, 'nft.input'), 'utf8')).toContain('type filter hook prerouting priority -300; policy accept;');
  });
});
