// A connection's authentication and transaction state, and the requests about it: AUTH, HELLO, MULTI, EXEC, DISCARD.

import {
  type Command,
  errorReply,
  helloReply,
  type Reply,
  type RespSession,
  respErrors,
  type ServerFacts,
  type SessionOp,
} from '../protocol/index.ts';
import type { Authenticator } from './auth.ts';
import type { ServerMetrics } from './metrics.ts';
import { type HeldBytes, type Queued, Transaction } from './transaction.ts';

const OK: Reply = { type: 'ok' };

/** What a session request comes to: a reply now, or the queued commands EXEC must run. */
export type SessionOutcome = { readonly reply: Reply } | { readonly exec: readonly Queued[] };

/**
 * Whether the connection authenticated, and its open transaction. Commands go through
 * `admit` before they run (NOAUTH, AUTH itself); inside MULTI they go to `queue` instead.
 */
export class SessionState {
  readonly #auth: Authenticator;
  readonly #metrics: ServerMetrics;
  readonly #maxTxBytes: number;
  /** Where an open transaction's queue is counted (--max-client-buffer-bytes). */
  readonly #held: HeldBytes;
  #authenticated: boolean;
  #tx: Transaction | null = null;

  constructor(auth: Authenticator, metrics: ServerMetrics, maxTxBytes: number, held: HeldBytes) {
    this.#auth = auth;
    this.#metrics = metrics;
    this.#maxTxBytes = maxTxBytes;
    this.#held = held;
    this.#authenticated = !auth.required;
  }

  /** Commands queued in the open MULTI; -1 outside one. */
  get queued(): number {
    return this.#tx?.size ?? -1;
  }

  get authenticated(): boolean {
    return this.#authenticated;
  }

  get inMulti(): boolean {
    return this.#tx !== null;
  }

  /** Answers AUTH and refuses commands before it: the reply to send instead, or null to run. */
  admit(cmd: Command): Reply | null {
    if (cmd.type === 'auth') {
      const { reply, ok } = this.#auth.check(cmd.password, cmd.named);
      if (ok) this.#authenticated = true;
      else this.#metrics.authFailures.inc();
      return reply;
    }
    return this.#auth.gate(this.#authenticated, cmd.type);
  }

  /** Queues a request inside MULTI (after the checks a command gets before it runs). */
  queue(item: Queued): Reply {
    const tx = this.#tx!;
    if (item.kind === 'command') {
      const denied =
        item.cmd.type === 'auth'
          ? errorReply(respErrors.notInMulti('auth'))
          : this.#auth.gate(this.#authenticated, item.cmd.type);
      if (denied !== null) {
        tx.fail();
        return denied;
      }
    }
    return tx.add(item);
  }

  /** HELLO, MULTI, EXEC, DISCARD, CLIENT LIST/KILL. */
  handle(op: SessionOp, session: RespSession | null, facts: () => ServerFacts): SessionOutcome {
    const tx = this.#tx;
    switch (op.op) {
      case 'hello':
        if (tx === null) return { reply: this.#hello(op, session!, facts) };
        tx.fail();
        return { reply: errorReply(respErrors.notInMulti('hello')) };
      case 'multi':
        if (!this.#authenticated) return { reply: errorReply(respErrors.noAuth()) };
        if (tx !== null) return { reply: errorReply(respErrors.multiNested()) };
        this.#tx = new Transaction(this.#maxTxBytes, this.#held);
        return { reply: OK };
      case 'clients':
        if (!this.#authenticated) return { reply: errorReply(respErrors.noAuth()) };
        if (tx === null) return { reply: op.run() };
        tx.fail();
        return { reply: errorReply(respErrors.notInMulti(op.name)) };
      case 'discard':
        this.#tx = null;
        tx?.drop();
        return { reply: tx === null ? errorReply(respErrors.discardWithoutMulti()) : OK };
      case 'exec':
        this.#tx = null;
        if (tx === null) return { reply: errorReply(respErrors.execWithoutMulti()) };
        if (tx.failed) {
          tx.drop();
          return { reply: errorReply(respErrors.execAbort()) };
        }
        return { exec: tx.take() };
      default: {
        const never: never = op;
        throw new Error(`server: unhandled session request ${JSON.stringify(never)}`);
      }
    }
  }

  /** The connection closed: an open transaction's queue is dropped (and leaves the count). */
  close(): void {
    this.#tx?.drop();
    this.#tx = null;
  }

  /** HELLO: authenticate if asked, then switch protocol and name; the server map, or an error. */
  #hello(
    op: Extract<SessionOp, { op: 'hello' }>,
    session: RespSession,
    facts: () => ServerFacts,
  ): Reply {
    if (op.password !== null) {
      const { reply, ok } =
        op.user === 'default'
          ? this.#auth.check(op.password, true)
          : { reply: errorReply(respErrors.wrongPass()), ok: false };
      if (!ok) {
        this.#metrics.authFailures.inc();
        return reply;
      }
      this.#authenticated = true;
    } else if (!this.#authenticated) {
      return errorReply(respErrors.noAuthHello());
    }
    if (op.proto !== null) session.proto = op.proto;
    if (op.name !== null) session.name = op.name === '' ? null : op.name;
    return helloReply(session, facts());
  }
}
