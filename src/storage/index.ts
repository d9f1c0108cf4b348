// storage: the durable ordered store (a write-ahead log in front of LMDB), the record codec and
// hybrid-logical-clock versions.

export { type DirLock, LOCK_FILE, lockDataDir } from './dir-lock.ts';
export { type Hint, HintStore } from './hints.ts';
export {
  compareVersions,
  DEFAULT_MAX_CLOCK_OFFSET_MS,
  HybridClock,
  isValidVersion,
  MAX_LOGICAL,
  MAX_VALID_WALL,
  microsPast,
  readingAt,
  SUB_MS_STEP,
  type Version,
} from './hlc.ts';
export {
  compareCopies,
  compareRecords,
  decodeRecord,
  decodeRecordHeader,
  deletedAt,
  encodeRecord,
  expiredForm,
  headerBytes,
  isLive,
  isWholeAnswer,
  liveValueStart,
  MAX_EXPIRES_AT,
  MAX_KEY_BYTES,
  RECORD_HEADER_BYTES,
  type StoredRecord,
  sameWrite,
  validWall,
  withoutValue,
} from './record.ts';
export type { ScanBounds, ScannedRecord } from './scan.ts';
export { countDiskOp, diskWorkOut } from './stall.ts';
export {
  NODE_NAME,
  readStateDoc,
  STATE_DOCS,
  type StateDoc,
  type StateKey,
  type StateStore,
  type StreamCursor,
  validStateDoc,
  writeStateDoc,
} from './state-keys.ts';
export { untilAborted } from './steps.ts';
export { type Entry, type OpenPhase, Storage, type StorageOptions } from './store.ts';
export { ExpirySweeper, type SweeperOptions } from './sweeper.ts';
export { type StoreCheck, verifyStore } from './verify.ts';
