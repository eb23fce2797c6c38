/**
 * Which real server an IPVS virtual server hands a new connection to, per scheduler, as exact
 * shares. Schedulers whose choice depends only on the connection counts ipvsadm prints (lc, wlc,
 * sed, nq, fo, ovf) are deterministic: the one server they pick gets probability 1. rr and wrr
 * rotate through the servers, so for one connection of unknown position in the rotation each
 * server's chance is its share of a full round. Hashing schedulers (sh, dh, mh) and the
 * locality-based ones (lblc, lblcr) are given weight-proportional shares, with a warning: the
 * kernel's choice there is fixed by a hash or a cache this model does not reproduce.
 */
import type { IpvsDestination, IpvsService } from '../parse/ipvs-types.ts';

export interface IpvsShare {
  destination: IpvsDestination;
  probability: number;
}

export interface IpvsPick {
  shares: IpvsShare[];
  /** Set when the shares are an approximation of what the kernel does. */
  warning?: string;
}

/** Servers the kernel may choose: weight 0 means "quiesced", no new connections. */
function live(svc: IpvsService): IpvsDestination[] {
  return svc.destinations.filter((d) => d.weight > 0);
}

const proportional = (ds: IpvsDestination[]): IpvsShare[] => {
  const total = ds.reduce((a, d) => a + d.weight, 0);
  return ds.map((d) => ({ destination: d, probability: d.weight / total }));
};

const only = (d: IpvsDestination): IpvsShare[] => [{ destination: d, probability: 1 }];

/** The first server minimising `cost` (the kernel keeps the first of equals). */
function argmin(ds: IpvsDestination[], cost: (d: IpvsDestination) => number): IpvsDestination {
  let best = ds[0];
  let bestCost = cost(best);
  for (const d of ds.slice(1)) {
    const c = cost(d);
    if (c < bestCost) {
      best = d;
      bestCost = c;
    }
  }
  return best;
}

/** ip_vs_dest_conn_overhead: active connections weigh 256 times inactive ones. */
const overhead = (d: IpvsDestination) => d.activeConn * 256 + d.inactConn;

export function ipvsShares(svc: IpvsService): IpvsPick {
  const ds = live(svc);
  if (ds.length === 0) return { shares: [] };
  const countsKnown = ds.every((d) => Number.isFinite(d.activeConn) && Number.isFinite(d.inactConn));
  const needCounts = (pick: () => IpvsShare[]): IpvsPick => countsKnown
    ? { shares: pick() }
    : { shares: proportional(ds), warning: `scheduler ${svc.scheduler} picks by connection counts, which this dump lacks (ipvsadm --stats prints none): weight-proportional shares shown` };
  switch (svc.scheduler) {
    case 'rr':
      return { shares: ds.map((d) => ({ destination: d, probability: 1 / ds.length })) };
    case 'wrr':
      return { shares: proportional(ds) };
    case 'lc':
      return needCounts(() => only(argmin(ds, overhead)));
    case 'wlc':
      return needCounts(() => only(argmin(ds, (d) => overhead(d) / d.weight)));
    case 'sed':
      return needCounts(() => only(argmin(ds, (d) => (d.activeConn + 1) / d.weight)));
    case 'nq': {
      return needCounts(() => only(ds.find((d) => d.activeConn === 0) ?? argmin(ds, (d) => (d.activeConn + 1) / d.weight)));
    }
    case 'fo':
    case 'ovf':
      // Highest weight first; ovf also skips servers whose active connections exceed it.
      return needCounts(() => {
        const open = svc.scheduler === 'ovf' ? ds.filter((d) => d.activeConn < d.weight) : ds;
        if (open.length === 0) return [];
        return only(argmin(open, (d) => -d.weight));
      });
    default:
      return {
        shares: proportional(ds),
        warning: `scheduler ${svc.scheduler} chooses by a hash or cache of addresses: weight-proportional shares shown, not the server this packet would get`,
      };
  }
}
