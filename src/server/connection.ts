// One client connection: decode lines, dispatch in order, reply in order, apply backpressure.

import type { Socket } from 'node:net';
import type { Coordinator } from '../coordinator/index.ts';
import { KvError, toKvError, wireCode } from '../errors/index.ts';
import type { Logger } from '../observability/index.ts';
import {
  type Command,
  type CommandLimits,
  type CommandType,
  encodeTextReply,
  LineDecoder,
  type LineFrame,
  type Ordering,
  orderingOf,
  parseTextLine,
  type Reply,
} from '../protocol/index.ts';
import type { ServerMetrics } from './metrics.ts';

export interface ConnectionContext {
  readonly coordinator: Coordinator;
  readonly limits: CommandLimits;
  readonly maxLineBytes: number;
  readonly maxPipeline: number;
  readonly metrics: ServerMetrics;
  readonly logger: Logger;
}

/** Consecutive commands of one kind that may run concurrently; see #execute. */
interface Group {
  readonly kind: Ordering;
  /** Settles when every command before this group settled; null when nothing was before. */
  readonly gate: Promise<void> | null;
  /** Commands of this group not yet settled. */
  pending: number;
  /** Resolves when `pending` reaches 0 (which implies every earlier group settled too). */
  readonly done: Promise<void>;
  readonly resolve: () => void;
}

function newGroup(kind: Ordering, gate: Promise<void> | null): Group {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { kind, gate, pending: 0, done: promise, resolve };
}

/** A command's place in the reply order; `reply` is null until the command finished. */
interface Slot {
  reply: Reply | null;
  readonly command: CommandType | null;
  readonly started: number;
}

function errorReply(err: KvError): Reply {
  return { type: 'error', code: err.code, message: err.message };
}

/**
 * Serves one socket. Commands run as soon as they are decoded (pipelining); replies go out in
 * command order, batched into one write per turn. Reading pauses while `maxPipeline` replies are
 * outstanding or the socket's write buffer is full, so a client that does not read its replies
 * cannot make the node buffer without bound.
 */
export class Connection {
  readonly #socket: Socket;
  readonly #ctx: ConnectionContext;
  readonly #decoder: LineDecoder;
  #slots: Slot[] = [];
  #head = 0;
  #flushScheduled = false;
  #quitting = false;
  #draining = false;
  #closed = false;
  #onIdle: (() => void) | null = null;
  #group: Group | null = null;

  constructor(socket: Socket, ctx: ConnectionContext) {
    this.#socket = socket;
    this.#ctx = ctx;
    this.#decoder = new LineDecoder(ctx.maxLineBytes);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#maybeResume());
    socket.on('end', () => this.#onEnd());
    socket.on('error', (err) => ctx.logger.debug({ err }, 'client socket error'));
    socket.on('close', () => this.#onClose());
  }

  get #pending(): number {
    return this.#slots.length - this.#head;
  }

  /** Stops reading, lets in-flight commands finish and their replies go out, then ends. */
  drain(): Promise<void> {
    this.#draining = true;
    this.#socket.pause();
    return new Promise((resolve) => {
      this.#onIdle = resolve;
      this.#checkIdle();
    });
  }

  /** Closes at once, dropping unsent replies (writes already started still become durable). */
  destroy(): void {
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    if (this.#quitting || this.#draining) return;
    this.#decoder.push(chunk, (frame) => this.#onFrame(frame));
    this.#flush();
    if (this.#pending >= this.#ctx.maxPipeline || this.#socket.writableNeedDrain) {
      this.#socket.pause();
    }
  }

  #onFrame(frame: LineFrame): void {
    if (this.#quitting) return;
    if (frame.kind === 'too_long') {
      const limit = this.#ctx.maxLineBytes;
      const msg = `protocol: line of ${frame.bytes} bytes is over the limit of ${limit}`;
      this.#pushError(null, new KvError('KV_ERR_LINE_TOO_LONG', msg));
      return;
    }
    let cmd: Command | null;
    try {
      cmd = parseTextLine(frame.line, this.#ctx.limits);
    } catch (err) {
      this.#pushError(null, toKvError(err, 'protocol'));
      return;
    }
    if (cmd !== null) this.#dispatch(cmd);
  }

  #dispatch(cmd: Command): void {
    const slot: Slot = { reply: null, command: cmd.type, started: performance.now() };
    this.#slots.push(slot);
    this.#ctx.metrics.requests.labels(cmd.type).inc();
    if (cmd.type === 'quit') this.#quitting = true;
    let result: Reply | Promise<Reply>;
    try {
      result = this.#execute(cmd);
    } catch (err) {
      this.#finish(slot, this.#failure(err));
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (reply) => this.#finish(slot, reply),
        (err: unknown) => this.#finish(slot, this.#failure(err)),
      );
      result.then(
        () => this.#scheduleFlush(),
        () => this.#scheduleFlush(),
      );
    } else {
      this.#finish(slot, result);
    }
  }

  /**
   * Runs a command with this connection's ordering guarantee: commands take effect in the order
   * they were sent. Consecutive PUTs (or consecutive reads) run concurrently, since replicas
   * apply writes in submission order; a read waits for the writes before it, a write for the
   * reads before it, and a REMOVE for everything before it, so a pipelined GET after PUT sees
   * the PUT and never a later write.
   */
  #execute(cmd: Command): Reply | Promise<Reply> {
    const kind = orderingOf(cmd);
    const coordinator = this.#ctx.coordinator;
    let group = this.#group;
    if (group === null || group.pending === 0) {
      // Nothing in flight: run now; only an asynchronous result needs a group.
      this.#group = null;
      const result = coordinator.execute(cmd);
      if (result instanceof Promise) {
        this.#group = newGroup(kind, null);
        this.#track(this.#group, result);
      }
      return result;
    }
    if (group.kind !== kind || kind === 'exclusive')
      group = this.#group = newGroup(kind, group.done);
    const gate = group.gate;
    const result =
      gate === null ? coordinator.execute(cmd) : gate.then(() => coordinator.execute(cmd));
    if (result instanceof Promise) this.#track(group, result);
    return result;
  }

  #track(group: Group, result: Promise<Reply>): void {
    group.pending++;
    const settle = () => {
      if (--group.pending === 0) group.resolve();
    };
    result.then(settle, settle);
  }

  #failure(err: unknown): Reply {
    const e = toKvError(err, 'server');
    if (e.code === 'KV_ERR_INTERNAL' || e.code === 'KV_ERR_STORAGE') {
      this.#ctx.logger.error({ err: e, code: e.code }, 'command failed');
    }
    return errorReply(e);
  }

  #finish(slot: Slot, reply: Reply): void {
    slot.reply = reply;
    if (slot.command !== null) {
      this.#ctx.metrics.duration
        .labels(slot.command)
        .observe((performance.now() - slot.started) / 1000);
    }
    if (reply.type === 'error') this.#ctx.metrics.errors.labels(wireCode(reply.code)).inc();
  }

  #pushError(command: CommandType | null, err: KvError): void {
    const slot: Slot = { reply: null, command, started: performance.now() };
    this.#slots.push(slot);
    this.#finish(slot, errorReply(err));
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Writes every finished reply at the head of the queue, in order, as one write. */
  #flush(): void {
    const out: Buffer[] = [];
    while (this.#head < this.#slots.length) {
      const slot = this.#slots[this.#head]!;
      if (slot.reply === null) break;
      encodeTextReply(slot.reply, out);
      this.#head++;
    }
    if (this.#head === this.#slots.length) {
      this.#slots = [];
      this.#head = 0;
    } else if (this.#head > 1024) {
      this.#slots = this.#slots.slice(this.#head);
      this.#head = 0;
    }
    if (out.length > 0 && !this.#closed) {
      this.#socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    }
    this.#maybeResume();
    this.#checkIdle();
  }

  #maybeResume(): void {
    if (this.#draining || this.#quitting || this.#closed) return;
    if (this.#pending < this.#ctx.maxPipeline / 2 + 1 && !this.#socket.writableNeedDrain) {
      this.#socket.resume();
    }
  }

  #onEnd(): void {
    // The client half-closed: answer what it sent, then close our side.
    this.#decoder.reset();
    this.#quitting = true;
    this.#checkIdle();
  }

  #checkIdle(): void {
    if (this.#pending > 0) return;
    if (this.#quitting || this.#draining) {
      if (!this.#closed) this.#socket.end();
      const done = this.#onIdle;
      this.#onIdle = null;
      done?.();
    }
  }

  #onClose(): void {
    this.#closed = true;
    this.#decoder.reset();
    const done = this.#onIdle;
    this.#onIdle = null;
    done?.();
  }
}
