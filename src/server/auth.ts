// Client authentication: checks AUTH passwords in constant time and gates unauthenticated commands.

import { type CommandType, errorReply, type Reply, respErrors } from '../protocol/index.ts';

/**
 * node:crypto, loaded at the first call: a node that never needs it does not load it (with
 * OpenSSL's set-up, about 1 MiB of RSS; docs/memory.md).
 */
const nodeCrypto = () => process.getBuiltinModule('node:crypto');

/** Commands a connection may send before it authenticated. */
const OPEN: ReadonlySet<CommandType> = new Set(['auth', 'ping', 'quit']);

const OK: Reply = { type: 'ok' };
const NOAUTH = errorReply(respErrors.noAuth());
const WRONGPASS = errorReply(respErrors.wrongPass());
const NO_PASSWORD = errorReply(respErrors.noPassword());

/**
 * The node's password check. Only a SHA-256 digest of the password is kept, and digests are
 * compared with timingSafeEqual, so neither the length nor a prefix of the password leaks
 * through timing. Passwords are never logged.
 */
export class Authenticator {
  readonly #digest: Buffer | null;

  /** `password` null or empty: no authentication (every connection starts authenticated). */
  constructor(password: string | null) {
    this.#digest = password ? digest(Buffer.from(password, 'utf8')) : null;
  }

  get required(): boolean {
    return this.#digest !== null;
  }

  /**
   * The reply to AUTH, and whether the connection is now authenticated. `named`: the password
   * came with the user name `default` (AUTH default p, HELLO AUTH default p), which Redis
   * accepts when no password is configured; the bare AUTH p then gets Redis's no-password error.
   */
  check(password: Buffer, named = false): { reply: Reply; ok: boolean } {
    if (this.#digest === null) return { reply: named ? OK : NO_PASSWORD, ok: true };
    const ok = nodeCrypto().timingSafeEqual(digest(password), this.#digest);
    return { reply: ok ? OK : WRONGPASS, ok };
  }

  /** NOAUTH when an unauthenticated connection sends anything but AUTH, PING or QUIT. */
  gate(authenticated: boolean, type: CommandType): Reply | null {
    return authenticated || OPEN.has(type) ? null : NOAUTH;
  }
}

function digest(b: Buffer): Buffer {
  return nodeCrypto().createHash('sha256').update(b).digest();
}
