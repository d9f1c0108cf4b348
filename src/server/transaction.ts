// MULTI/EXEC/DISCARD for one connection: the queue, its bounds, and EXEC's in-order run.

import { MULTI_READ_BYTES } from '../coordinator/index.ts';
import { KvError } from '../errors/index.ts';
import { type Command, errorReply, type Reply } from '../protocol/index.ts';
import { Arena, detach } from './detach.ts';

/** A request queued between MULTI and EXEC. */
export type Queued =
  | { readonly kind: 'command'; readonly cmd: Command; readonly shape?: (r: Reply) => Reply }
  /**
   * A connection-local answer (ECHO, CLIENT ID, ...), computed when it was queued; `effect`
   * (CLIENT SETNAME/SETINFO) is made when EXEC reaches it.
   */
  | { readonly kind: 'reply'; readonly reply: Reply; readonly effect?: () => void };

/**
 * The node-wide count queued bytes are held in (ClientBuffers, --max-client-buffer-bytes):
 * `move(before, after)` records a connection's bytes going from `before` to `after`, false
 * (nothing changed) when a growth would take the sum over its limit.
 */
export interface HeldBytes {
  move(before: number, after: number): boolean;
}

/** The answer to a command whose queueing would take the node-wide count over its limit. */
export const BUFFER_FULL_MESSAGE = 'server: too many bytes of unfinished client requests';

/** Most commands one transaction may queue. */
export const MAX_QUEUED = 100_000;

const QUEUED: Reply = { type: 'status', text: 'QUEUED' };

/**
 * One open transaction (after MULTI). Commands are only queued, never run, until EXEC; a
 * command refused while queueing (unknown, malformed, NOT_ATOMIC, NOAUTH, over the bounds)
 * marks it failed, and its EXEC then answers EXECABORT and runs nothing. Each item is queued as
 * a copy that keeps no read alive, counted as what it holds (detach.ts: its keys, values and
 * replies' bytes and its objects; a `SET k v` about 500 bytes). At most MAX_QUEUED commands and
 * `maxBytes` of them are queued, and what is
 * held counts in the node-wide `held` (--max-client-buffer-bytes) until EXEC takes it, DISCARD
 * or the connection's close drops it (`drop`), or the transaction fails: a failed transaction
 * will run nothing, so it keeps nothing (the commands after the failure are still checked and
 * counted, and answered QUEUED, as Redis does). A command whose bytes would take the node-wide
 * count over its limit is refused with LIMIT_EXCEEDED and fails the transaction, as one over
 * `maxBytes` does: unlike an unfinished request, it can be answered in its place, so the
 * connection goes on.
 */
export class Transaction {
  readonly #maxBytes: number;
  readonly #held: HeldBytes;
  /** Where the queued copies' keys and values are (freed with the queue). */
  #arena = new Arena();
  #items: Queued[] = [];
  /** Commands queued (also after a failure, when #items is dropped). */
  #count = 0;
  /** Bytes of the commands queued; held in #held while the transaction has not failed. */
  #bytes = 0;
  #failed = false;

  constructor(maxBytes: number, held: HeldBytes) {
    this.#maxBytes = maxBytes;
    this.#held = held;
  }

  /** Commands queued so far. */
  get size(): number {
    return this.#count;
  }

  /** True once a command was refused while queueing: EXEC will answer EXECABORT. */
  get failed(): boolean {
    return this.#failed;
  }

  /**
   * Marks the transaction failed (a refused command was answered with an error): EXEC will run
   * nothing, so the queue is dropped and its bytes leave the node-wide count now.
   */
  fail(): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#held.move(this.#bytes, 0);
    this.#items = [];
    this.#arena = new Arena();
  }

  /** Queues an item; answers QUEUED, or an error (and the transaction is then failed). */
  add(item: Queued): Reply {
    if (item.kind === 'reply' && item.reply.type === 'error') {
      this.fail();
      return item.reply;
    }
    // A failed transaction keeps nothing: what it is sent is only checked and counted.
    const kept = this.#failed ? null : detach(item, this.#arena);
    const bytes = kept?.bytes ?? 0;
    if (this.#count >= MAX_QUEUED || this.#bytes + bytes > this.#maxBytes) {
      this.fail();
      return errorReply(
        new KvError(
          'KV_ERR_LIMIT_EXCEEDED',
          `server: a transaction holds at most ${MAX_QUEUED} commands and ${this.#maxBytes} bytes`,
        ),
      );
    }
    if (!this.#failed && !this.#held.move(this.#bytes, this.#bytes + bytes)) {
      this.fail();
      return errorReply(new KvError('KV_ERR_LIMIT_EXCEEDED', BUFFER_FULL_MESSAGE));
    }
    this.#bytes += bytes;
    this.#count++;
    if (kept !== null) this.#items.push(kept.value);
    return QUEUED;
  }

  /** The queued items, in order (the transaction is over): they leave the node-wide count. */
  take(): readonly Queued[] {
    const items = this.#items;
    this.drop();
    return items;
  }

  /** Drops the queue (DISCARD, the connection closed, EXEC taken or aborted). */
  drop(): void {
    if (!this.#failed) this.#held.move(this.#bytes, 0);
    this.#items = [];
    this.#arena = new Arena();
    this.#count = 0;
    this.#bytes = 0;
  }
}

/**
 * EXEC: runs the queued items one after another, in order, each waiting for the one before, and
 * answers one array of their replies. When a command fails (a quorum not met, storage), the
 * commands after it are not run: each answers NOT_RUN. `run` executes one command; `failure`
 * turns a thrown error into its reply.
 */
export async function execQueued(
  items: readonly Queued[],
  run: (cmd: Command) => Reply | Promise<Reply>,
  failure: (err: unknown) => Reply,
  maxValueBytes: number = MULTI_READ_BYTES,
): Promise<Reply> {
  const out: Reply[] = [];
  let failedAt = -1;
  let valueBytes = 0;
  for (const [i, item] of items.entries()) {
    if (failedAt !== -1) {
      out.push(notRun(failedAt));
      continue;
    }
    if (item.kind === 'reply') {
      item.effect?.();
      out.push(item.reply);
      continue;
    }
    let reply: Reply;
    try {
      reply = await run(item.cmd);
      if (reply.type !== 'error' && item.shape !== undefined) reply = item.shape(reply);
    } catch (err) {
      reply = failure(err);
    }
    // The values read so far are held until EXEC answers: at most maxValueBytes of them, as for
    // one MGET (a transaction of 3,000 GETs of 1 MiB values would hold 3 GB).
    valueBytes += valueBytesOf(reply);
    if (valueBytes > maxValueBytes) {
      reply = errorReply(
        new KvError(
          'KV_ERR_LIMIT_EXCEEDED',
          `server: this EXEC's replies hold more than ${maxValueBytes} bytes of values; read fewer keys in one transaction`,
        ),
      );
    }
    if (reply.type === 'error') failedAt = i + 1;
    out.push(reply);
  }
  return { type: 'array', items: out };
}

/** Bytes of values a reply holds (a GET's value, an MGET's values). */
function valueBytesOf(reply: Reply): number {
  if (reply.type === 'value') return reply.value.length;
  if (reply.type !== 'array') return 0;
  let n = 0;
  for (const item of reply.items ?? []) n += valueBytesOf(item);
  return n;
}

function notRun(failedAt: number): Reply {
  return errorReply(
    new KvError(
      'KV_ERR_NOT_RUN',
      `server: not run, because command ${failedAt} of this EXEC failed before it`,
    ),
  );
}
