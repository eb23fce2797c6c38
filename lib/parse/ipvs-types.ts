/** Typed form of IPVS tables, from `ipvsadm -Ln [--stats]` or `/proc/net/ip_vs`. */
export type IpvsForward = 'Masq' | 'Route' | 'Tunnel' | 'Local';

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
  address: string;
  port: number;
  scheduler: string;
  /** e.g. `persistent 10800`. */
  flags: string[];
  destinations: IpvsDestination[];
  stats?: IpvsStats;
}

export interface IpvsState {
  services: IpvsService[];
}
