// client: the TypeScript client of the kvstore text protocol (pipelined, typed), used by kvctl.

export {
  KvClient,
  type KvClientOptions,
  type ScanAllOptions,
  type ScanQuery,
} from './client.ts';
export type { ClientTls } from './connection.ts';
export { CLIENT_ERROR_CODES, type ClientErrorCode, KvClientError } from './errors.ts';
export type { ScanResult } from './replies.ts';
export type { ScanOptions } from './request.ts';
