import { formatProbability } from '../proxy/iptables.ts';
import { kernelProbability } from '../trace/iptables.ts';
import { binomialInterval, seededUint32 } from './stats.ts';
import type { ProxyMode } from '../proxy/modes.ts';

export interface EndpointShare {
  /** 0-based position in kube-proxy's sorted endpoint list. */
  index: number;
  /** Chance that one new connection lands here. */
  probability: number;
  /** Expected count out of `requests`. */
  expected: number;
  /** 95% interval of the count (exact for rr, binomial for random modes). */
  low: number;
  high: number;
}

export interface SplitPrediction {
  mode: ProxyMode;
  endpoints: number;
  requests: number;
  /** How the shares were derived, in words a notebook can print. */
  basis: string;
  shares: EndpointShare[];
}

/**
 * Per-endpoint chances of iptables mode: endpoint i jumps with 1/(n−i), stored by the kernel
 * as round(p·2^31)/2^31, so the shares are not exactly 1/n.
 */
export function iptablesShares(n: number): number[] {
  const shares: number[] = [];
  let remaining = 1;
  for (let i = 0; i < n; i++) {
    const p = i === n - 1 ? 1 : storedJump(n - i);
    shares.push(remaining * p);
    remaining *= 1 - p;
  }
  return shares;
}

/** The jump probability 1/k as kube-proxy writes it (%0.10f) and xt_statistic stores it. */
function storedJump(k: number): number {
  return kernelProbability(Number(formatProbability(k)));
}

/** Most endpoints a split is predicted for: one share per endpoint. */
export const MAX_SPLIT_ENDPOINTS = 10_000;
/**
 * Most requests × endpoints for a predicted split: the binomial intervals take time ∝
 * √(requests × endpoints), about half a second at this bound.
 */
export const MAX_SPLIT_WORK = 1e10;
/** Most requests × endpoints a Monte Carlo draw makes (one random number each, at worst). */
export const MAX_MONTE_CARLO_WORK = 1e9;

function checkSplit(endpoints: number, requests: number, maxWork: number): void {
  if (!Number.isInteger(endpoints) || endpoints < 1) throw new Error(`endpoints must be ≥ 1, got ${endpoints}`);
  if (!Number.isInteger(requests) || requests < 0) throw new Error(`requests must be ≥ 0, got ${requests}`);
  if (endpoints > MAX_SPLIT_ENDPOINTS) throw new Error(`a split is predicted for at most ${MAX_SPLIT_ENDPOINTS.toLocaleString('en-US')} endpoints, got ${endpoints}`);
  if (requests * endpoints > maxWork) {
    throw new Error(`requests × endpoints must be at most ${maxWork.toExponential()} for a split (the work grows with it), got ${requests} × ${endpoints}`);
  }
}

/** Expected split of N new connections over n endpoints, with 95% intervals. */
export function predictSplit(mode: ProxyMode, endpoints: number, requests: number): SplitPrediction {
  checkSplit(endpoints, requests, MAX_SPLIT_WORK);
  if (mode === 'ipvs') {
    // rr hands out connections in turn: every endpoint gets ⌊N/n⌋ or ⌈N/n⌉, whatever the start.
    const lo = Math.floor(requests / endpoints);
    const hi = Math.ceil(requests / endpoints);
    return {
      mode, endpoints, requests,
      basis: 'IPVS rr: connections are handed out in turn, so each endpoint gets ⌊N/n⌋ or ⌈N/n⌉',
      shares: Array.from({ length: endpoints }, (_, index) => ({ index, probability: 1 / endpoints, expected: requests / endpoints, low: lo, high: hi })),
    };
  }
  const probs = mode === 'iptables' ? iptablesShares(endpoints) : Array<number>(endpoints).fill(1 / endpoints);
  return {
    mode, endpoints, requests,
    basis: mode === 'iptables'
      ? 'iptables statistic: endpoint i jumps with probability 1/(n−i), as the kernel stores it (round(p·2^31)/2^31); counts are binomial'
      : 'nftables numgen random mod n: each endpoint 1/n; counts are binomial',
    shares: probs.map((probability, index) => {
      const [low, high] = binomialInterval(requests, probability);
      return { index, probability, expected: requests * probability, low, high };
    }),
  };
}

/**
 * Draw N connections the way the kernel picks, with a seeded generator:
 * xt_statistic compares (random & 0x7fffffff) < round(p·2^31); nft numgen scales a random
 * u32 into [0, n) as reciprocal_scale does; IPVS rr cycles.
 */
export function monteCarloSplit(mode: ProxyMode, endpoints: number, requests: number, seed = 1): number[] {
  checkSplit(endpoints, requests, MAX_MONTE_CARLO_WORK);
  const counts = Array<number>(endpoints).fill(0);
  const rand = seededUint32(seed);
  if (mode === 'ipvs') {
    const start = rand() % endpoints;
    for (let k = 0; k < requests; k++) counts[(start + k) % endpoints]++;
    return counts;
  }
  if (mode === 'nftables') {
    for (let k = 0; k < requests; k++) counts[Math.floor((rand() * endpoints) / 2 ** 32)]++;
    return counts;
  }
  const stored = Array.from({ length: endpoints - 1 }, (_, i) => storedJump(endpoints - i) * 2 ** 31);
  for (let k = 0; k < requests; k++) {
    let i = 0;
    while (i < endpoints - 1 && (rand() & 0x7fffffff) >= stored[i]) i++;
    counts[i]++;
  }
  return counts;
}
