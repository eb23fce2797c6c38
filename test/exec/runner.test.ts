import { describe, expect, it } from 'vitest';
import { CommandError, MissingToolError, Runner, shellQuote, withScratchNetns } from '../../lib/exec/index.ts';

const r = new Runner({ timeoutMs: 10_000 });
const node = process.execPath;

describe('Runner: the one way to run external commands', () => {
  it('passes argv through untouched: no shell ever sees it', async () => {
    const tricky = ['$(id)', '`id`', 'a b', "it's", '*', ';', ''];
    const res = await r.run([node, '-e', 'console.log(JSON.stringify(process.argv.slice(1)))', ...tricky]);
    expect(JSON.parse(res.stdout)).toEqual(tricky);
    expect(res.exitCode).toBe(0);
  });

  it('feeds input on stdin', async () => {
    const res = await r.run([node, '-e', 'process.stdin.pipe(process.stdout)'], { input: 'line 1\nline 2\n' });
    expect(res.stdout).toBe('line 1\nline 2\n');
  });

  it('onStdout sees output while the command still runs, split UTF-8 included, and the result does not keep it', async () => {
    const seen: string[] = [];
    // Writes half of a two-byte character, waits, then the rest: the callback gets whole characters.
    const script = "process.stdout.write(Buffer.from([0x61, 0xc3])); setTimeout(() => process.stdout.write(Buffer.from([0xa9, 0x0a])), 300)";
    const res = await r.run([node, '-e', script], { onStdout: (chunk) => seen.push(chunk) });
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.join('')).toBe('a\u00e9\n');
    expect(res.stdout).toBe('');
  });

  it('a failed command throws with its command line, exit code and stderr', async () => {
    const err = await r.run([node, '-e', 'console.error("no such chain: KUBE-SVC-X"); process.exit(3)', 'arg with space'])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    const ce = err as CommandError;
    expect(ce.exitCode).toBe(3);
    expect(ce.reason).toBe('exit');
    expect(ce.stderr).toContain('no such chain: KUBE-SVC-X');
    expect(ce.message).toContain("'arg with space'");
    expect(ce.message).toContain('exited 3: no such chain: KUBE-SVC-X');
  });

  it('allowFailure returns the exit code instead of throwing', async () => {
    const res = await r.run([node, '-e', 'process.exit(7)'], { allowFailure: true });
    expect(res.exitCode).toBe(7);
  });

  it('kills a command at its timeout and says so', async () => {
    const t0 = performance.now();
    const err = await r.run([node, '-e', 'setTimeout(() => {}, 60_000)'], { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).reason).toBe('timeout');
    expect((err as CommandError).message).toContain('timed out');
    expect(performance.now() - t0).toBeLessThan(30_000);
  });

  it('an abort signal terminates the command', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const err = await r.run([node, '-e', 'setTimeout(() => {}, 60_000)'], { signal: ac.signal }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).reason).not.toBe('exit');
  });

  it('a missing binary names the package that provides it', async () => {
    const err = await r.run(['iptables-save'], { env: { PATH: '/nonexistent' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingToolError);
    expect((err as MissingToolError).package).toBe('iptables');
    expect((err as Error).message).toBe('iptables-save is not installed: install it with `apt-get install -y iptables`');
  });

  it('echoes the equivalent shell command before running it', async () => {
    const seen: string[] = [];
    await r.withEcho((c) => seen.push(c)).run([node, '-e', '0', 'two words']);
    expect(seen).toEqual([shellQuote([node, '-e', '0', 'two words'])]);
    expect(seen[0]).toContain("'two words'");
  });

  it('teeStderr still captures stderr for the result and for errors', async () => {
    const res = await r.run([node, '-e', 'console.error("progress 1/2")'], { teeStderr: true });
    expect(res.stderr).toContain('progress 1/2');
  });
});

describe('shellQuote', () => {
  it('quotes only what a shell would split or expand, and reads back as the same argv', () => {
    expect(shellQuote(['iptables', '-t', 'nat', '-S'])).toBe('iptables -t nat -S');
    expect(shellQuote(['sh', '-c', "echo 'hi'"])).toBe(`sh -c 'echo '\\''hi'\\'''`);
    expect(shellQuote([''])).toBe("''");
  });
});

describe('Runner inside a network namespace', () => {
  it('a tool missing under `ip netns exec` is a MissingToolError, not an exit code', async () => {
    await withScratchNetns('kn-test', async (ns) => {
      const err = await r.run(['ip', 'netns', 'exec', ns.name, 'kn-no-such-tool'], { allowFailure: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MissingToolError);
      expect((err as MissingToolError).binary).toBe('kn-no-such-tool');
      expect((err as MissingToolError).where).toBe('inside');
      expect((err as Error).message).toBe('kn-no-such-tool is not installed or not on PATH');
      // A tool that runs and fails is still an exit code.
      const res = await r.run(['ip', 'netns', 'exec', ns.name, 'ip', 'route', 'get', '300.1.1.1'], { allowFailure: true });
      expect(res.exitCode).not.toBe(0);
    });
  });
});

describe('process references', () => {
  it('a pid reused by a later process does not count as the one referenced', async () => {
    const { processRef, stillRuns } = await import('../../lib/exec/index.ts');
    const me = processRef(process.pid);
    expect(me.start).not.toBeNull();
    expect(stillRuns(me)).toBe(true);
    expect(stillRuns({ ...me, start: 'an-earlier-start' })).toBe(false);
    expect(stillRuns(me, { alive: () => false, start: () => me.start })).toBe(false);
  });
});
