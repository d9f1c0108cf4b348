// storage: the durable ordered store (LMDB), the record codec and hybrid-logical-clock versions.

export { compareVersions, HybridClock, type Version } from './hlc.ts';
export { decodeRecord, encodeRecord, type StoredRecord } from './record.ts';
export { type ScanBounds, type ScannedRecord, Storage, type StorageOptions } from './store.ts';
