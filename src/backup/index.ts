// backup: whole-cluster (or one member's) backups streamed from member snapshots, and restores
// that write every record, version kept, to its owners in the current ring.

export {
  type BackupEntry,
  type BackupHeader,
  type BackupTrailer,
  BLOCK_HEADER,
  BLOCK_RECORDS,
  BLOCK_TRAILER,
  type Block,
  BlockReader,
  decodeRecords,
  encodeRecords,
} from './format.ts';
export { type MemberCall, SnapshotMerge } from './merge.ts';
export { type BackupRoutesOptions, backupRoutes } from './routes.ts';
export {
  BACKUP_METHODS,
  type BackupPage,
  BackupSessions,
  type RestoreState,
  SESSION_IDLE_MS,
} from './sessions.ts';
