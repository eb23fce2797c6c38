/**
 * What others published about kube-proxy at scale, measured on clusters we cannot reproduce.
 * Each entry says where it comes from and how we know it: `source-text` means the wording was
 * read in the source itself while building the kit; `secondary` means the figures are as widely
 * quoted from slides we could not read from here, so a notebook must say so beside them.
 * Claims are stated as relations where the source gives no numbers, so a sweep of our own can be
 * checked against them (see checkPublishedClaims).
 */
export type Verification = 'source-text' | 'secondary';

export interface PublishedSource {
  id: 'k8s-blog-nftables-2025' | 'huawei-kubecon-2017' | 'tigera-2019';
  title: string;
  where: string;
  url: string;
  year: number;
  verification: Verification;
  /** What their test bed was, in a line: how far it is from a laptop namespace. */
  testbed: string;
}

export const PUBLISHED_SOURCES: readonly PublishedSource[] = [
  {
    id: 'k8s-blog-nftables-2025',
    title: 'NFTables mode for kube-proxy',
    where: 'Kubernetes blog, Dan Winship (Red Hat), 28 Feb 2025; data from the KubeCon NA 2024 talk "From Observability to Performance"',
    url: 'https://kubernetes.io/blog/2025/02/28/nftables-kube-proxy/',
    year: 2025,
    verification: 'source-text',
    testbed: 'real clusters of 5,000, 10,000 and 30,000 Services; first-packet latency percentiles p01…p99',
  },
  {
    id: 'huawei-kubecon-2017',
    title: 'Scale Kubernetes to Support 50,000 Services',
    where: 'KubeCon + CloudNativeCon Europe 2017 (Berlin), Haibin Michael Xie and Quinton Hoole, Huawei',
    url: 'https://www.slideshare.net/slideshow/scale-kubernetes-to-support-50000-services/77112281',
    year: 2017,
    verification: 'secondary',
    testbed: 'kube-proxy of 2017, which rewrote every iptables rule on each update (no partial sync, no iptables-restore --noflush of changed chains only)',
  },
  {
    id: 'tigera-2019',
    title: 'Comparing kube-proxy modes: iptables or IPVS?',
    where: 'Tigera (Project Calico) blog, 2019',
    url: 'https://www.tigera.io/blog/comparing-kube-proxy-modes-iptables-or-ipvs/',
    year: 2019,
    verification: 'secondary',
    testbed: 'a real microservice on a cluster, 10 backend pods per Service, up to 10,000 Services; CPU and round-trip time with and without keepalive',
  },
];

/** A figure a source reports: a cost at a cluster size. */
export interface PublishedFigure {
  source: PublishedSource['id'];
  mode: 'iptables' | 'ipvs' | 'nftables';
  services: number;
  /** iptables rules the source counted at that size, if it says. */
  rules?: number;
  metric: 'rule-update-latency';
  value: number;
  unit: 'ms';
  note: string;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

export const PUBLISHED_FIGURES: readonly PublishedFigure[] = [
  { source: 'huawei-kubecon-2017', mode: 'iptables', services: 5_000, rules: 40_000, metric: 'rule-update-latency', value: 11 * MINUTE, unit: 'ms', note: 'time to add one rule, 2017 kube-proxy' },
  { source: 'huawei-kubecon-2017', mode: 'iptables', services: 20_000, rules: 160_000, metric: 'rule-update-latency', value: 5 * HOUR, unit: 'ms', note: 'time to add one rule, 2017 kube-proxy' },
  { source: 'huawei-kubecon-2017', mode: 'ipvs', services: 5_000, metric: 'rule-update-latency', value: 2, unit: 'ms', note: 'time to add one virtual server' },
  { source: 'huawei-kubecon-2017', mode: 'ipvs', services: 20_000, metric: 'rule-update-latency', value: 2, unit: 'ms', note: 'time to add one virtual server' },
];

/** A relation a source states, in our words, with the sizes it was stated for. */
export interface PublishedClaim {
  id: string;
  source: PublishedSource['id'];
  statement: string;
}

export const PUBLISHED_CLAIMS: readonly PublishedClaim[] = [
  {
    id: 'iptables-latency-grows',
    source: 'k8s-blog-nftables-2025',
    statement: 'In iptables mode first-packet latency grows with the number of Services (one KUBE-SERVICES rule per Service port is tested in turn), and a Service late in the chain pays more than an early one.',
  },
  {
    id: 'nftables-flat',
    source: 'k8s-blog-nftables-2025',
    statement: 'In nftables mode one verdict-map lookup replaces that walk, so first-packet latency stays roughly the same at every cluster size.',
  },
  {
    id: 'nftables-p50-vs-iptables-best',
    source: 'k8s-blog-nftables-2025',
    statement: "At 5,000 and 10,000 Services, nftables' median first-packet latency is about iptables' best case (its p01).",
  },
  {
    id: 'iptables-update-linear',
    source: 'k8s-blog-nftables-2025',
    statement: 'Even with the partial syncs of Kubernetes 1.26+, an iptables update is O(n) in the number of Services; an nftables update is O(n) only in what changed.',
  },
  {
    id: 'ipvs-cost-insignificant-below-1000',
    source: 'tigera-2019',
    statement: 'The difference between iptables and IPVS modes is small until a cluster goes beyond about 1,000 Services (10,000 backend pods).',
  },
];

/** The parts of a scale point a claim check reads (what `kube-netlab scale --json` measures). */
export interface ClaimCheckPoint {
  mode: string;
  services: number;
  firstP50Us?: number;
  lastP50Us?: number;
  syncMs?: number;
  changeMs?: number;
}

export interface ClaimCheck {
  claim: string;
  /** true: our sweep agrees; false: it does not; null: the sweep lacks the sizes or modes to say. */
  holds: boolean | null;
  evidence: string;
}

const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));

/**
 * Check the blog's relations against a sweep of our own. Tolerances are stated in the evidence,
 * never hidden: "about the same" is read as within a factor of 2.
 */
export function checkPublishedClaims(points: readonly ClaimCheckPoint[]): ClaimCheck[] {
  const of = (mode: string) => points.filter((p) => p.mode === mode).sort((a, b) => a.services - b.services);
  const ipt = of('iptables');
  const nft = of('nftables');
  const out: ClaimCheck[] = [];

  const iptLat = ipt.filter((p) => p.lastP50Us !== undefined && p.firstP50Us !== undefined);
  if (iptLat.length >= 2) {
    const small = iptLat[0];
    const big = iptLat[iptLat.length - 1];
    const grows = big.lastP50Us! >= 1.1 * small.lastP50Us!;
    const lateCostsMore = big.lastP50Us! >= 1.05 * big.firstP50Us!;
    out.push({
      claim: 'iptables-latency-grows',
      holds: grows && lateCostsMore,
      evidence: `iptables, last Service p50: ${fmt(small.lastP50Us!)} µs at ${small.services} Services → ${fmt(big.lastP50Us!)} µs at ${big.services}; at ${big.services}, first Service ${fmt(big.firstP50Us!)} µs ("grows" read as +10% or more, "pays more" as +5% or more)`,
    });
  } else out.push({ claim: 'iptables-latency-grows', holds: null, evidence: 'needs iptables latency at two sizes or more' });

  const nftLat = nft.filter((p) => p.lastP50Us !== undefined);
  if (nftLat.length >= 2) {
    const small = nftLat[0];
    const big = nftLat[nftLat.length - 1];
    const ratio = big.lastP50Us! / small.lastP50Us!;
    out.push({
      claim: 'nftables-flat',
      holds: ratio < 2,
      evidence: `nftables, last Service p50: ${fmt(small.lastP50Us!)} µs at ${small.services} Services, ${fmt(big.lastP50Us!)} µs at ${big.services} (×${ratio.toFixed(2)}; "flat" read as less than ×2)`,
    });
  } else out.push({ claim: 'nftables-flat', holds: null, evidence: 'needs nftables latency at two sizes or more' });

  const sizes = [5_000, 10_000].filter((s) => ipt.some((p) => p.services === s && p.firstP50Us !== undefined) && nft.some((p) => p.services === s && p.lastP50Us !== undefined));
  if (sizes.length > 0) {
    const parts = sizes.map((s) => {
      const best = ipt.find((p) => p.services === s)!.firstP50Us!;
      const n = nft.find((p) => p.services === s)!.lastP50Us!;
      return { s, best, n, ok: n / best < 2 && best / n < 2 };
    });
    out.push({
      claim: 'nftables-p50-vs-iptables-best',
      holds: parts.every((p) => p.ok),
      evidence: parts.map((p) => `at ${p.s}: nftables p50 ${fmt(p.n)} µs vs iptables first-Service p50 ${fmt(p.best)} µs`).join('; ') +
        ' (our stand-in for iptables p01 is the first Service in KUBE-SERVICES; "about" read as within ×2)',
    });
  } else out.push({ claim: 'nftables-p50-vs-iptables-best', holds: null, evidence: 'needs both modes at 5,000 or 10,000 Services' });

  // Compare the same span of sizes in both modes, or the growth factors mean nothing.
  const both = ipt.filter((p) => p.changeMs !== undefined && nft.some((q) => q.services === p.services && q.changeMs !== undefined)).map((p) => p.services);
  if (both.length >= 2) {
    const lo = both[0];
    const hi = both[both.length - 1];
    const at = (pts: ClaimCheckPoint[], s: number) => pts.find((p) => p.services === s)!.changeMs!;
    const gi = at(ipt, hi) / at(ipt, lo);
    const gn = at(nft, hi) / at(nft, lo);
    const span = `${lo}→${hi} Services`;
    out.push({
      claim: 'iptables-update-linear',
      holds: gi >= 1.5 * gn,
      evidence: `one-endpoint change over ${span}: iptables ×${gi.toFixed(1)}, nftables ×${gn.toFixed(1)} (read as holding when iptables' growth is at least 1.5 times nftables')`,
    });
  } else out.push({ claim: 'iptables-update-linear', holds: null, evidence: 'needs one-endpoint change times for both modes at the same two sizes or more' });

  return out;
}
