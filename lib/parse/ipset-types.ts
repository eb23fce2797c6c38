/** Typed form of `ipset list` / `ipset save`. */
export interface IpsetSet {
  name: string;
  /** e.g. `hash:ip,port`, `bitmap:port`. */
  type: string;
  /** Creation options as key → value (`family` → `inet`, `hashsize` → `1024`); flags map to `true`. */
  header: Record<string, string | true>;
  /** Members as ipset prints them, e.g. `10.96.0.10,udp:53`, `10.244.1.2,tcp:8080,10.244.1.2`. */
  members: string[];
}

export interface IpsetState {
  sets: IpsetSet[];
}
