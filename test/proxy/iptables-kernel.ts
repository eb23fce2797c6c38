/**
 * The kernel as oracle for iptables and ip6tables input: load it the way kube-proxy does, read it
 * back with iptables-save / ip6tables-save, and compare with what the tools render for each rule.
 */
import { expect } from 'vitest';
import { builtinJumpsRestore, formatProbability, savedProbability, type IptablesRules } from '../../lib/proxy/iptables.ts';
import { withNetns } from '../helpers/netns.ts';

export type Saved = Record<string, Record<string, string[]>>;
type Family = 'IPv4' | 'IPv6';

export function tokenize(rule: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < rule.length) {
    if (rule[i] === ' ') { i++; continue; }
    if (rule[i] === '"') {
      const end = rule.indexOf('"', i + 1);
      out.push(rule.slice(i + 1, end));
      i = end + 1;
    } else {
      const end = rule.indexOf(' ', i);
      out.push(rule.slice(i, end < 0 ? rule.length : end));
      i = end < 0 ? rule.length : end;
    }
  }
  return out;
}

const hex = (v: string) => `0x${parseInt(v, 16).toString(16)}`;

/**
 * How iptables 1.8 (nf_tables) prints back a rule kube-proxy wrote: -s/-d/-p first with the host
 * mask added (/32, or /128 in ip6tables), every comment quoted, marks as --set-xmark,
 * probabilities as the kernel stores them, REJECT with the family's default, recent's options in
 * its own order.
 */
export function asSaved(rule: string, family: Family = 'IPv4'): string {
  const host = family === 'IPv4' ? '/32' : '/128';
  const withPrefix = (a: string) => (a.includes('/') ? a : `${a}${host}`);
  const t = tokenize(rule);
  const head = [t[0], t[1]];
  let src: string[] = [];
  let dst: string[] = [];
  let proto: string[] = [];
  const rest: string[] = [];
  for (let i = 2; i < t.length; i++) {
    const neg = t[i] === '!' && ['-s', '-d', '-p'].includes(t[i + 1]);
    const flag = neg ? t[i + 1] : t[i];
    const value = neg ? t[i + 2] : t[i + 1];
    const bang = neg ? ['!'] : [];
    if (flag === '-s') src = [...bang, '-s', withPrefix(value)];
    else if (flag === '-d') dst = [...bang, '-d', withPrefix(value)];
    else if (flag === '-p') proto = [...bang, '-p', value];
    else { rest.push(t[i]); continue; }
    i += neg ? 2 : 1;
  }
  const out: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const tok = rest[i];
    if (tok === '--comment') out.push(tok, `"${rest[++i]}"`);
    else if (tok === '--or-mark') { const m = hex(rest[++i]); out.push('--set-xmark', `${m}/${m}`); }
    else if (tok === '--xor-mark') out.push('--set-xmark', `${hex(rest[++i])}/0x0`);
    else if (tok === '--mark') { const [a, b] = rest[++i].split('/'); out.push(tok, `${hex(a)}/${hex(b)}`); }
    else if (tok === '--probability') {
      const p = Number(rest[++i]);
      out.push(tok, savedProbability(Math.round(1 / p)));
      expect(formatProbability(Math.round(1 / p))).toBe(rest[i]);
    } else if (tok === '-m' && rest[i + 1] === 'recent') {
      const opts: string[] = [];
      let name = '';
      i += 2;
      for (; i < rest.length && rest[i].startsWith('--'); i++) {
        if (rest[i] === '--name') name = rest[++i];
        else if (rest[i] === '--seconds') opts.push('--seconds', rest[++i]);
        else opts.push(rest[i]);
      }
      i--;
      const mask = family === 'IPv4' ? '255.255.255.255' : 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
      out.push('-m', 'recent', ...opts, '--name', name, '--mask', mask, '--rsource');
    } else out.push(tok);
  }
  if (out.at(-1) === 'REJECT') out.push('--reject-with', family === 'IPv4' ? 'icmp-port-unreachable' : 'icmp6-port-unreachable');
  return [...head, ...src, ...dst, ...proto, ...out].join(' ');
}

/** iptables-save output as table → chain → rules (every declared chain present). */
export function parseSave(text: string): Saved {
  const out: Saved = {};
  let table: Record<string, string[]> | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = out[line.slice(1)] = {};
    else if (table && line.startsWith(':')) table[line.slice(1).split(' ')[0]] = [];
    else if (table && line.startsWith('-A ')) table[line.split(' ')[1]].push(line);
  }
  return out;
}

/** Load as kube-proxy does (jumps first, then the restore without flushing), with the family's tools. */
export async function loadInKernel(rules: IptablesRules): Promise<{ saved: Saved; text: string }> {
  const tool = rules.family === 'IPv4' ? 'iptables' : 'ip6tables';
  return withNetns(async (ns) => {
    await ns.run([`${tool}-restore`, '--test'], { input: rules.restore });
    await ns.run([`${tool}-restore`, '--noflush'], { input: builtinJumpsRestore(rules.builtinJumps) });
    await ns.run([`${tool}-restore`, '--noflush'], { input: rules.restore });
    const text = (await ns.run([`${tool}-save`])).stdout;
    return { saved: parseSave(text), text };
  });
}

/** Every rule kube-proxy writes comes back from the kernel, chain by chain, in order, and nothing else. */
export function expectKernelHasAll(rules: IptablesRules, saved: Saved): void {
  const written = parseSave(rules.restore);
  for (const table of ['filter', 'nat']) {
    for (const [chain, list] of Object.entries(written[table])) {
      expect(saved[table][chain], `${table} ${chain}`).toEqual(list.map((r) => asSaved(r, rules.family)));
    }
    const kube = Object.keys(saved[table]).filter((c) => c.startsWith('KUBE-') && !(c in written[table]) && saved[table][c].length > 0);
    expect(kube, `${table}: chains the restore did not write`).toEqual([]);
  }
  // -I puts later jumps on top: the built-in chains hold them in reverse order.
  for (const table of ['filter', 'nat'] as const) {
    const builtin = new Map<string, string[]>();
    for (const j of rules.builtinJumps.filter((x) => x.table === table)) {
      const rule = ['-A', j.chain, ...j.args.map((a) => (a.includes(' ') ? `"${a}"` : a))].join(' ');
      builtin.set(j.chain, [asSaved(rule, rules.family), ...(builtin.get(j.chain) ?? [])]);
    }
    for (const [chain, list] of builtin) expect(saved[table][chain], `${table} ${chain}`).toEqual(list);
  }
}
