/**
 * Small helpers over iptables-restore text: counting, and the sort kube-proxy's own unit tests
 * apply before comparing (sortIPTablesRules in pkg/proxy/iptables/proxier_test.go).
 */

export interface TableCounts {
  chains: number;
  rules: number;
}

/** Chain declarations (`:NAME …`) and appended rules (`-A …`) per table of restore text. */
export function countRestore(text: string): Record<string, TableCounts> {
  const out: Record<string, TableCounts> = {};
  let cur: TableCounts | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      cur = out[line.slice(1)] ??= { chains: 0, rules: 0 };
    } else if (cur && line.startsWith(':')) cur.chains++;
    else if (cur && line.startsWith('-A ')) cur.rules++;
  }
  return out;
}

/**
 * The value of `--comment` in a rule as kube-proxy writes it: quoted when it has spaces,
 * bare otherwise. Returns null when the rule has no comment.
 */
export function ruleComment(rule: string): string | null {
  const at = rule.indexOf('--comment ');
  if (at < 0) return null;
  const rest = rule.slice(at + '--comment '.length);
  if (rest.startsWith('"')) {
    const end = rest.indexOf('"', 1);
    return end < 0 ? rest.slice(1) : rest.slice(1, end);
  }
  const sp = rest.indexOf(' ');
  return sp < 0 ? rest : rest.slice(0, sp);
}

interface ParsedTable {
  name: string;
  chains: string[];
  chainLines: Map<string, string>;
  rules: Map<string, string[]>;
}

function parseTables(text: string): ParsedTable[] {
  const tables: ParsedTable[] = [];
  let cur: ParsedTable | null = null;
  text.split('\n').forEach((line, i) => {
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('*')) {
      cur = { name: line.slice(1), chains: [], chainLines: new Map(), rules: new Map() };
      tables.push(cur);
      return;
    }
    if (!cur) throw new Error(`line ${i + 1}: ${JSON.stringify(line)} comes before any *table line`);
    const t: ParsedTable = cur;
    if (line === 'COMMIT') {
      cur = null;
    } else if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0];
      if (!t.chainLines.has(name)) t.chains.push(name);
      t.chainLines.set(name, line);
      if (!t.rules.has(name)) t.rules.set(name, []);
    } else if (line.startsWith('-A ')) {
      const name = line.slice(3).split(' ')[0];
      const list = t.rules.get(name);
      if (!list) throw new Error(`line ${i + 1}: rule for undeclared chain ${name}: ${JSON.stringify(line)}`);
      list.push(line);
    } else {
      throw new Error(`line ${i + 1}: expected *table, :CHAIN, -A or COMMIT, got ${JSON.stringify(line)}`);
    }
  });
  return tables;
}

function chainOrder(a: string, b: string): number {
  const rank = (c: string) => (c === 'KUBE-NODEPORTS' ? 0 : c === 'KUBE-SERVICES' ? 1 : c.startsWith('KUBE-') ? 2 : 3);
  const d = rank(a) - rank(b);
  if (d !== 0) return d;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Service name of a rule's comment: the comment up to its first space or colon. */
function commentServiceName(rule: string): string | null {
  const c = ruleComment(rule);
  if (c === null) return null;
  const i = c.search(/[ :]/);
  return i < 0 ? c : c.slice(0, i);
}

function byCommentServiceName(a: string, b: string): number {
  const x = commentServiceName(a);
  const y = commentServiceName(b);
  if (x === null || y === null) return 0;
  if (x !== y) return x < y ? -1 : 1;
  // Upstream stops here, so the ports of a multi-port service keep kube-proxy's (random)
  // order. Breaking the tie by service port name changes nothing where upstream is stable.
  const p = (ruleComment(a) ?? '').split(' ')[0];
  const q = (ruleComment(b) ?? '').split(' ')[0];
  return p < q ? -1 : p > q ? 1 : 0;
}

/**
 * Sort restore text the way kube-proxy's tests do before comparing, so the result does not
 * depend on the order services were processed in: tables by name; chains KUBE-NODEPORTS,
 * KUBE-SERVICES, other KUBE-* alphabetically, then the rest; rules grouped by chain, and
 * KUBE-NODEPORTS / KUBE-SERVICES rules stably sorted by the service named in their comment
 * (the nat nodeports jump stays last). One refinement: ports of the same service are ordered
 * by port name, so multi-port services normalize too.
 */
export function sortRestoreLikeUpstream(text: string): string {
  const tables = parseTables(text).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let out = '';
  for (const t of tables) {
    const chains = [...t.chains].sort(chainOrder);
    for (const name of ['KUBE-NODEPORTS', 'KUBE-SERVICES']) {
      const rules = t.rules.get(name);
      if (!rules) continue;
      const isLast = (r: string) => name === 'KUBE-SERVICES' && t.name === 'nat' && (ruleComment(r) ?? '').includes('must be the last rule');
      // Array.prototype.sort is stable, as Go's sort.SliceStable.
      rules.sort((a, b) => (isLast(a) ? (isLast(b) ? 0 : 1) : isLast(b) ? -1 : byCommentServiceName(a, b)));
    }
    out += `*${t.name}\n`;
    for (const c of chains) out += `${t.chainLines.get(c)}\n`;
    for (const c of chains) for (const r of t.rules.get(c) ?? []) out += `${r}\n`;
    out += 'COMMIT\n';
  }
  return out;
}

/** Quote one argument for restore text: iptables-restore splits on spaces, honouring "…". */
export function restoreQuote(arg: string): string {
  return arg === '' || /[\s"]/.test(arg) ? `"${arg.replaceAll('"', '\\"')}"` : arg;
}
