// Client errors: one class carrying either the node's wire code or a client-side code.

/**
 * Codes for failures the client detects itself (the node never sends these). Stable: callers
 * match on them, so never rename one, only add.
 */
export const CLIENT_ERROR_CODES = {
  CONNECTION_CLOSED:
    'the connection could not be opened, or closed (or was closed) before the reply came',
  TIMEOUT: 'no reply within timeoutMs; the connection stays open and skips the late reply',
  PROTOCOL: 'a reply did not fit its request; the connection is dropped (replies would mismatch)',
  REPLY_TOO_LONG: 'a reply line was longer than maxReplyBytes; it was discarded',
  INVALID_KEY: 'the key is empty, not well-formed Unicode, or has whitespace/control characters',
  INVALID_VALUE: 'the value has a newline, ends with a carriage return, or is not well-formed',
  INVALID_ARGUMENT: 'an option is malformed (for example a LIMIT that is not a positive integer)',
} as const;

export type ClientErrorCode = keyof typeof CLIENT_ERROR_CODES;

/**
 * Every error the client rejects with. `code` is the wire code when the node answered
 * `ERR <CODE> <message>` (`remote` is true; e.g. 'INVALID_KEY', 'LIMIT_EXCEEDED'), or one of
 * CLIENT_ERROR_CODES for failures seen on this side (`remote` is false). Client-side validation
 * uses the node's code where one exists (INVALID_KEY, INVALID_ARGUMENT), so callers match one
 * code wherever the problem was caught.
 */
export class KvClientError extends Error {
  readonly code: ClientErrorCode | (string & {});
  readonly remote: boolean;

  constructor(
    code: ClientErrorCode | (string & {}),
    message: string,
    options?: { cause?: unknown; remote?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KvClientError';
    this.code = code;
    this.remote = options?.remote ?? false;
  }
}
