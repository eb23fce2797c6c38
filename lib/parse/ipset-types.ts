/** Typed form of `ipset list` / `ipset save`. */
export interface IpsetSet {
  name: string;
  /** e.g. `hash:ip,port`, `bitmap:port`. */
  type: string;
  /** Creation options as key → value (`family` → `inet`, `hashsize` → `1024`); flags map to `true`. */
  header: Record<string, string | true>;
  /** Members as ipset prints them, e.g. `10.96.0.10,udp:53`, `10.244.1.2,tcp:8080,10.244.1.2`. */
  members: string[];
  /**
   * Per-member extensions (`timeout 299`, `packets 0`, `comment "…"`), keyed by member; only
   * members that have any appear. Absent when no member has extensions.
   */
  memberOptions?: Record<string, Record<string, string | true>>;
  /** From `ipset list` only. */
  revision?: number;
  sizeInMemory?: number;
  references?: number;
  /** `Number of entries:` (ipset ≥ 7); when `-t` omits the members this is the only count. */
  entries?: number;
}

export interface IpsetState {
  sets: IpsetSet[];
}
