// What commands answer, independent of framing: the text and RESP2 encoders each render it.

import { type ErrorCode, KvError } from '../errors/index.ts';

/** One `# Name` section of an INFO answer: `field:value` lines. */
export interface InfoSection {
  /** Lower-case section name (`server`, `clients`, `replication`, `keyspace`). */
  readonly name: string;
  readonly fields: readonly (readonly [string, string | number])[];
}

/** What a command answers; each framing encodes it its own way. */
export type Reply =
  | { readonly type: 'ok' }
  | { readonly type: 'pong' }
  /** A key that is absent: text `NOT_FOUND`, RESP null bulk string. */
  | { readonly type: 'not_found' }
  /** A value: the raw bytes on a text line, a RESP bulk string. */
  | { readonly type: 'value'; readonly value: Buffer }
  /** A one-line informational answer (CLUSTER's JSON); never contains a newline. */
  | { readonly type: 'info'; readonly text: string }
  /**
   * Keys in ascending byte order. `paged` is true when the client asked for LIMIT; then `next`
   * is the cursor to resume after, or null when the answer is complete.
   */
  | {
      readonly type: 'keys';
      readonly keys: readonly Buffer[];
      readonly paged: boolean;
      readonly next: Buffer | null;
    }
  /**
   * A failure. `resp`, when set, is the whole RESP error line after `-` for errors whose form
   * Redis defines (`ERR unknown command ...`, `NOPROTO ...`); otherwise RESP sends
   * `-ERR <CODE> <message>` and text sends `ERR <CODE> <message>`.
   */
  | {
      readonly type: 'error';
      readonly code: ErrorCode;
      readonly message: string;
      readonly resp?: string;
    }
  // The variants below come only from commands that exist in RESP; the text encoder never
  // receives them (it would answer ERR INTERNAL rather than break its line framing).
  /** RESP integer (`:n`). */
  | { readonly type: 'integer'; readonly value: number }
  /** RESP simple string (`+text`); text must not contain CR or LF. */
  | { readonly type: 'status'; readonly text: string }
  /** RESP array of replies; `items: null` is the null array (`*-1`). */
  | { readonly type: 'array'; readonly items: readonly Reply[] | null }
  /** INFO's answer: sections rendered as one RESP bulk string. */
  | { readonly type: 'sections'; readonly sections: readonly InfoSection[] }
  /** RESP3 map (`%n`); RESP2 sends it as a flat array of names and values. */
  | { readonly type: 'map'; readonly entries: readonly (readonly [Reply, Reply])[] }
  /** RESP3 set (`~n`); RESP2 sends it as an array. */
  | { readonly type: 'set'; readonly items: readonly Reply[] }
  /** RESP3 double (`,1.5`); RESP2 sends it as a bulk string. */
  | { readonly type: 'double'; readonly value: number };

/** Where the encoders append a reply's bytes: an array of buffers, or a connection's output. */
export interface ReplySink {
  push(bytes: Buffer): unknown;
}

/** The RESP version a connection speaks: 2 until `HELLO 3`. */
export type RespVersion = 2 | 3;

/**
 * A KvError whose RESP form Redis defines (`resp` is the error line after `-`). The text
 * protocol, which never produces one, would show it as `ERR <CODE> <message>`.
 */
export class RespError extends KvError {
  readonly resp: string;
  /** `message` is what the text protocol and logs show; by default `protocol: <resp>`. */
  constructor(code: ErrorCode, resp: string, message = `protocol: ${resp}`) {
    super(code, message);
    this.name = 'RespError';
    this.resp = resp;
  }
}

/** The error reply for a KvError (keeping a RespError's Redis form). */
export function errorReply(err: KvError): Reply {
  if (err instanceof RespError) {
    return { type: 'error', code: err.code, message: err.message, resp: err.resp };
  }
  return { type: 'error', code: err.code, message: err.message };
}
