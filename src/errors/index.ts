// errors: stable error codes shared by every module, and the one table that maps them to the wire.

/**
 * Every error kvstore reports has one of these codes. Inside the process the code is
 * `KV_ERR_<NAME>`; on the wire it is `ERR <NAME> <message>`. Codes are stable: clients match on
 * them, so never rename one, only add.
 */
export const ERROR_CODES = {
  KV_ERR_UNKNOWN_COMMAND: 'the command name is not one kvstore knows',
  KV_ERR_WRONG_ARITY: 'the command got the wrong number of arguments',
  KV_ERR_INVALID_KEY: 'the key is empty, longer than --max-key-bytes, or has control characters',
  KV_ERR_VALUE_TOO_LARGE: 'the value is longer than --max-value-bytes',
  KV_ERR_LINE_TOO_LONG:
    'the line is longer than --max-line-bytes; it was discarded up to the next newline',
  KV_ERR_INVALID_UTF8: 'the line is not valid UTF-8',
  KV_ERR_INVALID_ARGUMENT:
    'an option is malformed (for example LIMIT that is not a positive integer)',
  KV_ERR_LIMIT_EXCEEDED:
    'a RANGE/PREFIX without LIMIT matched more keys than --max-scan-keys; or the node holds --max-client-buffer-bytes of unfinished requests (the connection is closed)',
  KV_ERR_NOAUTH: 'a password is configured and this connection has not sent AUTH yet',
  KV_ERR_WRONGPASS: 'AUTH was given a wrong password (counted in kvstore_auth_failures_total)',
  KV_ERR_MAX_CLIENTS: 'the node already has --max-connections clients; the connection is closed',
  KV_ERR_UNAVAILABLE:
    'too few replicas answered to meet the read or write quorum; a write may still have been applied on some',
  KV_ERR_PEER_UNAVAILABLE:
    'a peer could not be reached or the connection to it was lost; the request may have been applied',
  KV_ERR_PEER_TIMEOUT:
    'a peer did not answer within the request timeout; the request may have been applied',
  KV_ERR_PEER_PROTOCOL:
    'a peer frame was malformed or over the frame size limit; a bad received frame closes the connection',
  KV_ERR_PEER_OVERLOADED: 'too many requests to one peer are outstanding; the request was not sent',
  KV_ERR_EXPIRED:
    'a peer write arrived after its sender stopped waiting for it (its deadline plus --max-clock-offset-ms); it was not applied',
  KV_ERR_WRONG_INCARNATION:
    'a replica was asked for data as a holder of the settled ring, but its data directory is not the one that ring recorded (new or replaced); it counts once rebalancing filled it',
  KV_ERR_HANDED_OFF:
    'a replica was asked for data after its decommission hand-off finished: the ring without it holds everything it held, and its copies no longer count',
  KV_ERR_STALE_RING:
    "a peer refused data because one of the two members' settled rings is newer and leaves the other out: that one left the ring (taken out without a decommission, when it may hold values deleted since, or decommissioned: its copies no longer count); it asks the members for their rings at once, and one taken out while active then drops its records",
  KV_ERR_STORAGE: 'the storage engine failed; the write was not acknowledged',
  KV_ERR_STORAGE_STALLED:
    "this node's disk stopped answering (a log sync or LMDB commit outstanding past --storage-stall-timeout-ms); it refuses commands until the disk answers again: use another node. A write refused this way was not acknowledged",
  KV_ERR_BAD_RECORD:
    'a record is malformed (too short, an unknown format or flag, a node name running past its end) or its version is out of range',
  KV_ERR_CLOCK_OFFSET:
    "a peer sent a version more than --max-clock-offset-ms ahead of this node's clock; it was refused, never adopted (kvstore_clock_offset_rejections_total). To a client: this node's clock is more than that off from most of its peers', so it refuses writes (kvstore_clock_out_of_sync); nothing was applied",
  KV_ERR_CORRUPT:
    'the data directory is damaged (write-ahead log or LMDB file); the node does not start (exit code 2)',
  KV_ERR_INTERNAL: 'an unexpected failure; the node keeps running',
  KV_ERR_DISCOVERY:
    'the member source could not be read: a --discovery DNS query failed (the server unreachable, SERVFAIL, REFUSED, no answer in time); logged with `member source failed`, never a reply: the node keeps the members it knows and asks again at the next --resolve-interval-ms',
  KV_ERR_PROTOCOL:
    'a RESP request is malformed or over a size limit, or an HTTP request was sent to the client port (nothing of it runs); one error reply, then the connection is closed',
  KV_ERR_CONFIG:
    'a flag, an environment variable or a file it names is invalid; the process does not start (exit code 2)',
  KV_ERR_DATA_DIR_LOCKED:
    'another process holds the --data-dir lock; the node does not start (exit code 2)',
  KV_ERR_BACKUP:
    'a backup or restore could not go on: the ring moved, a member could not be read, a backup file is damaged or incomplete, or the cluster to restore into is not empty',
  KV_ERR_NOT_REPRESENTABLE:
    'a key or value cannot be expressed on a text-protocol line (whitespace, control bytes, a newline, a value ending in a carriage return): written over RESP, read it over RESP; a text PUT or SETEX of a value ending in a carriage return is refused',
  KV_ERR_NOT_ATOMIC:
    'a conditional or read-modify-write command (SET NX/XX/GET, SETNX, INCR, GETSET, WATCH, ...) needs consensus kvstore does not have; refused, nothing applied',
  KV_ERR_UNSUPPORTED:
    'a Redis command kvstore deliberately does not have (other data types, pub/sub, scripts, ...); the message names the reason',
  KV_ERR_EXECABORT:
    'EXEC of a transaction in which a command was refused while queued; nothing in it was applied',
  KV_ERR_NOT_RUN:
    'a command queued in a transaction was not run because an earlier command in the same EXEC failed',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error with a stable code. `message` starts with the module name (`storage: ...`). */
export class KvError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KvError';
    this.code = code;
  }
}

/** The code as it appears on the wire: `KV_ERR_INVALID_KEY` -> `INVALID_KEY`. */
export function wireCode(code: ErrorCode): string {
  return code.slice('KV_ERR_'.length);
}

/** Any thrown value as a KvError: KvErrors pass through, anything else becomes KV_ERR_INTERNAL. */
export function toKvError(err: unknown, module: string): KvError {
  if (err instanceof KvError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new KvError('KV_ERR_INTERNAL', `${module}: ${text}`, { cause: err });
}
