import { createHash } from 'node:crypto';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 (Go's base32.StdEncoding), with padding. */
export function base32(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  while (out.length % 8 !== 0) out += '=';
  return out;
}

function sha256Base32(text: string): string {
  return base32(createHash('sha256').update(text).digest());
}

/** kube-proxy's portProtoHash: base32(sha256(servicePortName + protocol))[:16]. */
export function portProtoHash(servicePortName: string, protocol: string): string {
  return sha256Base32(servicePortName + protocol.toLowerCase()).slice(0, 16);
}

export const svcChain = (spn: string, proto: string) => `KUBE-SVC-${portProtoHash(spn, proto)}`;
/** Local-traffic-policy chain (externalTrafficPolicy/internalTrafficPolicy: Local). */
export const svlChain = (spn: string, proto: string) => `KUBE-SVL-${portProtoHash(spn, proto)}`;
export const extChain = (spn: string, proto: string) => `KUBE-EXT-${portProtoHash(spn, proto)}`;
export const fwChain = (spn: string, proto: string) => `KUBE-FW-${portProtoHash(spn, proto)}`;

/** KUBE-SEP- + base32(sha256(servicePortName + protocol + "ip:port"))[:16]. */
export function sepChain(spn: string, proto: string, endpoint: string): string {
  return `KUBE-SEP-${sha256Base32(spn + proto.toLowerCase() + endpoint).slice(0, 16)}`;
}

/** nftables mode's hashAndTruncate: base32(sha256(name))[:8] + "-" + name, capped at nft's limit. */
export function hashAndTruncate(name: string, maxLength = 256): string {
  const full = `${sha256Base32(name).slice(0, 8)}-${name}`;
  return full.length > maxLength ? `${full.slice(0, maxLength - 3)}...` : full;
}
