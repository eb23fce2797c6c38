import { randomBytes } from 'node:crypto';
import { runner } from '../lib/exec/index.ts';

// The host's network state, before and after the whole suite. Nothing the project does may
// change it; namespaces of other concurrent test runs (other tags) are not ours to judge.
const SNAPSHOT: string[][] = [
  ['ip', '-d', 'link'],
  ['ip', 'route'],
  ['ip', 'rule'],
  ['iptables-save'],
  ['nft', 'list', 'ruleset'],
  ['ipset', 'list'],
  ['ip', 'netns', 'list'],
];

async function snapshot(tag: string): Promise<string> {
  const parts: string[] = [];
  for (const argv of SNAPSHOT) {
    const r = await runner.run(argv, { allowFailure: true });
    let out = r.stdout + r.stderr;
    if (argv[0] === 'iptables-save') {
      // Drop the timestamp comments and the built-in chains' live packet counters.
      out = out.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/ \[\d+:\d+\]$/, '')).join('\n');
    }
    if (argv[1] === 'netns') {
      out = out.split('\n').filter((l) => !l.startsWith('kn-test-') || l.startsWith(`kn-test-${tag}-`)).join('\n');
    }
    parts.push(`$ ${argv.join(' ')}\n${out}`);
  }
  return parts.join('\n');
}

export default async function setup(): Promise<() => Promise<void>> {
  const tag = randomBytes(3).toString('hex');
  process.env.KUBE_NETLAB_TEST_RUN = tag;
  const before = await snapshot(tag);
  return async () => {
    const after = await snapshot(tag);
    if (after !== before) {
      const b = before.split('\n');
      const a = after.split('\n');
      const diff = [...b.filter((l) => !a.includes(l)).map((l) => `- ${l}`), ...a.filter((l) => !b.includes(l)).map((l) => `+ ${l}`)];
      throw new Error(`The test suite changed the host's network state:\n${diff.slice(0, 40).join('\n')}`);
    }
    console.log('host-invariance: host network state identical before and after the suite');
  };
}
