// storage: the durable ordered store (a write-ahead log in front of LMDB), the record codec and
// hybrid-logical-clock versions.

export { type Hint, HintStore } from './hints.ts';
export { compareVersions, HybridClock, type Version } from './hlc.ts';
export { decodeRecord, encodeRecord, type StoredRecord } from './record.ts';
export {
  type Entry,
  type ScanBounds,
  type ScannedRecord,
  Storage,
  type StorageOptions,
} from './store.ts';
