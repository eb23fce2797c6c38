import { wherePlace } from '../../lib/container/index.ts';
import { runner } from '../../lib/exec/index.ts';
import { doctor as kindDoctor, prefetch as kindPrefetch } from '../../lib/lab/kind/doctor.ts';
import { netnsUnavailable } from '../../lib/lab/netns/index.ts';
import { printJson, stringOption, type CommandSpec } from '../cli.ts';
import { printPlace } from './doctor-container.ts';

export const doctor: CommandSpec = {
  summary: 'check what each backend needs on this machine, with a fix for whatever is missing',
  usage: 'doctor [--name NAME] [--json]',
  options: { name: { type: 'string' } },
  async run(args, io) {
    const netnsWhy = await netnsUnavailable(runner);
    const kind = await kindDoctor(runner, { name: stringOption(args, 'name') ?? 'netlab' });
    const where = wherePlace();
    const report = { where, netns: { ok: netnsWhy === null, detail: netnsWhy ?? 'ready: Linux, root, iproute2, iptables, ipset, nftables' }, kind };
    if (args.values.json) return printJson(io, report);
    printPlace(io, where);
    io.out(`netns backend: ${report.netns.ok ? 'ok' : 'not available'} (${report.netns.detail})`);
    io.out(`kind backend:  ${kind.ok ? 'ok' : 'not ready'}`);
    for (const c of kind.checks) io.out(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}${!c.ok && c.fix ? `\n       fix: ${c.fix}` : ''}`);
    return report.netns.ok || kind.ok ? 0 : 1;
  },
};

export const prefetch: CommandSpec = {
  summary: 'pull the kind node image and the lab images, and load them into a kind cluster (for venues with poor network)',
  usage: 'prefetch [--name NAME] [--json]',
  options: { name: { type: 'string' } },
  async run(args, io) {
    const steps = await kindPrefetch(runner, { name: stringOption(args, 'name') });
    if (args.values.json) return printJson(io, { steps });
    for (const s of steps) io.out(`${s.ok ? 'ok  ' : 'FAIL'} ${s.command}${s.ok ? '' : `: ${s.detail}`}`);
    return steps.every((s) => s.ok) ? 0 : 1;
  },
};
