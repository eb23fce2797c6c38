/** Typed form of IPVS tables, from `ipvsadm -Ln [--stats]` or `/proc/net/ip_vs`. */

/**
 * How a real server is reached. `Unknown` comes from the listings that do not print the
 * forwarding method (`--stats`, `--rate`, `--thresholds`, `--persistent-conn`); a column a
 * listing does not print is NaN for the same reason.
 */
export type IpvsForward = 'Masq' | 'Route' | 'Tunnel' | 'Local' | 'Unknown';

export interface IpvsStats {
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

/** `ipvsadm -Ln --rate`: per-second rates the kernel estimates over a few seconds. */
export interface IpvsRates {
  cps: number;
  inPps: number;
  outPps: number;
  inBps: number;
  outBps: number;
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
  /** Present when parsed from `--rate` output. */
  rates?: IpvsRates;
  /** `--thresholds`: the connection limits (0 is none). */
  upperThreshold?: number;
  lowerThreshold?: number;
  /** `--persistent-conn`: connections kept by persistence. */
  persistConn?: number;
  /** `--tun-info` (ipvsadm 1.30 and later): `ipip`, `gue:PORT:FLAGS`, `gre:FLAGS`, or null (`n/a`). */
  tunnel?: string | null;
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
  rates?: IpvsRates;
  /** Only for `FWM` services. */
  fwmark?: number;
}

export interface IpvsState {
  services: IpvsService[];
}
