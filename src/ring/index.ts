// ring: consistent hashing of keys onto members (xxh32 tokens, virtual nodes, owners(key, n)).

export { keyToken, TOKEN_SPACE, vnodeToken } from './hash.ts';
export {
  DEFAULT_VNODES,
  Ring,
  type RingOptions,
  rangeContains,
  type TokenRangeChange,
} from './ring.ts';
export { xxh32 } from './xxh32.ts';
export { xxh64 } from './xxh64.ts';
