/** Typed form of IPVS tables, from `ipvsadm -Ln [--stats]` or `/proc/net/ip_vs`. */

/**
 * How a real server is reached. `Unknown` only comes from `ipvsadm -Ln --stats`, which does not
 * print the forwarding method (its weight and connection counts are NaN for the same reason).
 */
export type IpvsForward = 'Masq' | 'Route' | 'Tunnel' | 'Local' | 'Unknown';

export interface IpvsStats {
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

export interface IpvsDestination {
  address: string;
  port: number;
  forward: IpvsForward;
  weight: number;
  activeConn: number;
  inactConn: number;
  /** Present when parsed from `--stats` output. */
  stats?: IpvsStats;
}

export interface IpvsService {
  protocol: 'TCP' | 'UDP' | 'SCTP' | 'FWM';
  /** Empty for firewall-mark services. */
  address: string;
  /** 0 for firewall-mark services. */
  port: number;
  scheduler: string;
  /** e.g. `persistent 10800`, `mask 255.255.255.0`, `ops`. Empty in `--stats` output. */
  flags: string[];
  destinations: IpvsDestination[];
  stats?: IpvsStats;
  /** Only for `FWM` services. */
  fwmark?: number;
}

export interface IpvsState {
  services: IpvsService[];
}
