/**
 * MurmurHash2 (32-bit, seed 0) exactly as nginx's ngx_murmur_hash2, which split_clients uses.
 * It hashes the string's char codes as bytes: Node decodes header values as latin1, so every
 * char code is one original byte. No allocation.
 */
const M = 0x5bd1e995;

export function murmurHash2(s: string): number {
  let len = s.length;
  let h = len >>> 0;
  let i = 0;
  while (len >= 4) {
    let k =
      (s.charCodeAt(i) & 0xff) |
      ((s.charCodeAt(i + 1) & 0xff) << 8) |
      ((s.charCodeAt(i + 2) & 0xff) << 16) |
      ((s.charCodeAt(i + 3) & 0xff) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
    i += 4;
    len -= 4;
  }
  // The C original falls through 3 → 2 → 1.
  if (len === 3) h ^= (s.charCodeAt(i + 2) & 0xff) << 16;
  if (len >= 2) h ^= (s.charCodeAt(i + 1) & 0xff) << 8;
  if (len >= 1) {
    h ^= s.charCodeAt(i) & 0xff;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h >>> 0;
}

/** Number of buckets: 0.01 % resolution, like split_clients' two decimals. */
export const BUCKETS = 10_000;

/** A key's bucket in [0, 10000). `bucketOf('10.0.0.1')` is the same forever. */
export function bucketOf(key: string): number {
  return Math.floor((murmurHash2(key) * BUCKETS) / 4294967296);
}
