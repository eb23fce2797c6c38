/** Chains printed as the tools list them, for notebook cells; a marker points at the rules that matter. */
import { ruleLine } from '../capture/iptables.ts';
import type { IptChain, IptRule, NftChain, NftRule } from '../parse/index.ts';
import { NFT_PRIORITIES } from '../parse/nft.ts';

/** A chain's rules as `iptables -S CHAIN` lists them (its -N or -P line left out), `→` before marked ones. */
export function iptablesRuleLines(chain: IptChain, mark?: (rule: IptRule) => boolean): string {
  const pad = mark ? '  ' : '';
  return chain.rules.map((r) => `${mark?.(r) ? '→ ' : pad}${ruleLine(chain.name, r)}`).join('\n');
}

/** The hooks nft names dstnat and srcnat in (ip, ip6 and inet); the other names print in any hook. */
const ONLY_IN_HOOK: Readonly<Record<string, string>> = { dstnat: 'prerouting', srcnat: 'postrouting' };

/** A base chain's priority as nft prints it: `dstnat`, `dstnat - 10`, `filter + 5`, or the number. */
export function nftPriorityText(hook: string, priority: number): string {
  for (const [name, base] of Object.entries(NFT_PRIORITIES)) {
    const only = ONLY_IN_HOOK[name];
    if (only && only !== hook) continue;
    const off = priority - base;
    if (off === 0) return name;
    if (Math.abs(off) <= 10) return `${name} ${off < 0 ? '-' : '+'} ${Math.abs(off)}`;
  }
  return String(priority);
}

/** A chain as `nft list chain` prints it inside its table, `→` before marked rules. */
export function nftChainLines(chain: NftChain, mark?: (rule: NftRule) => boolean): string {
  const prio = chain.hook && chain.priority !== null ? nftPriorityText(chain.hook, chain.priority) : '';
  const head = chain.hook ? [`    type ${chain.type} hook ${chain.hook} priority ${prio}; policy ${chain.policy ?? 'accept'};`] : [];
  const rules = chain.rules.map((r) => `${mark?.(r) ? '→   ' : '    '}${r.text}`);
  return [`chain ${chain.name} {`, ...head, ...rules, '}'].join('\n');
}
