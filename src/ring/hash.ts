import { xxh32 } from './xxh32.ts';

/** Size of the token space: tokens are the unsigned 32-bit integers 0 .. 2^32 - 1. */
export const TOKEN_SPACE = 0x1_0000_0000;

/**
 * The 32-bit token of a key: xxHash32 (seed 0) of the key's bytes, an unsigned integer in
 * 0 .. 2^32 - 1. xxh32 was measured against xxh64 and xxh3-64 truncated to 32 bits on 1M
 * Buffer keys of ~25 bytes (Node 24, @node-rs/xxhash 1.7.8): ~8 M/s for xxh32 vs ~5-6 M/s for
 * the 64-bit variants, whose BigInt results cost more than the hashing itself; the TypeScript
 * xxh32 in ./xxh32.ts is faster again for such keys (no N-API call). The token is part of the
 * cluster's on-disk and on-wire contract: changing it reshuffles every key.
 */
export function keyToken(key: Uint8Array): number {
  return xxh32(key, 0);
}

/**
 * The token of virtual node `index` of `member`: keyToken of the UTF-8 bytes of
 * `${member}#${index}` (for example `kvstore-0#17`). Every node computes the same ring from
 * the same member names with this scheme.
 */
export function vnodeToken(member: string, index: number): number {
  return keyToken(Buffer.from(`${member}#${index}`, 'utf8'));
}
