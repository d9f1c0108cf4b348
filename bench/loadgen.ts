// Load generator worker thread: keeps `depth` requests outstanding per connection, records latencies.

import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { Histogram } from './histogram.ts';
import {
  type ParsedReply,
  type Protocol,
  type ProtocolName,
  protocolFor,
  REPLY_MISS,
  REPLY_OK,
  REPLY_VALUE,
} from './protocols.ts';

export type Op = 'put' | 'get';

/** Given to every worker at creation: the key space and value size, the same in all workers. */
export interface WorkerInit {
  readonly keys: number;
  readonly valueBytes: number;
}

/** Where to send load and how much of it. */
export interface LoadTarget {
  readonly port: number;
  readonly protocol: ProtocolName;
  readonly connections: number;
  readonly depth: number;
}

export type ToWorker =
  | ({ readonly type: 'start'; readonly op: Op } & LoadTarget)
  | { readonly type: 'record' }
  | { readonly type: 'stop' }
  | ({ readonly type: 'fill'; readonly from: number; readonly to: number } & LoadTarget);

/** One worker's measurement of one cell. */
export interface WorkerResult {
  readonly ops: number;
  readonly errors: number;
  readonly misses: number;
  readonly firstError: string | null;
  readonly windowMs: number;
  readonly counts: Float64Array;
  readonly sumNs: number;
  readonly maxNs: number;
  /** CPU time (user + system) this worker thread used during the window. */
  readonly cpuMs: number;
  /** Event-loop utilization of this worker during the window (1 = saturated). */
  readonly elu: number;
}

export type FromWorker =
  | { readonly type: 'started' }
  | { readonly type: 'result'; readonly result: WorkerResult }
  | { readonly type: 'filled'; readonly ops: number; readonly errors: number }
  | { readonly type: 'failed'; readonly message: string };

/** murmur3's 32-bit finalizer: a bijection, so distinct indexes give distinct keys. */
function mix32(x: number): number {
  let h = x >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Key i is `key:<8 hex digits>`, spread over the key space in random-looking order. */
export function buildKeys(count: number): Buffer[] {
  const all = Buffer.from(
    Array.from({ length: count }, (_, i) => `key:${mix32(i).toString(16).padStart(8, '0')}`).join(
      '',
    ),
  );
  const width = all.length / Math.max(1, count);
  return Array.from({ length: count }, (_, i) => all.subarray(i * width, (i + 1) * width));
}

/** A value of `bytes` letters and digits: no spaces or line breaks, valid in both protocols. */
export function buildValue(bytes: number): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) out[i] = alphabet.charCodeAt(mix32(i + 1) % alphabet.length);
  return out;
}

/** One run's shared state: what to send, where results go, when to stop. */
class Load {
  readonly protocol: Protocol;
  readonly op: Op;
  readonly depth: number;
  readonly requestBytes: number;
  readonly hist = new Histogram();
  readonly keys: Buffer[];
  readonly value: Buffer;
  /** Next key index for fill runs; null means uniformly random keys. */
  cursor: { next: number; readonly end: number } | null = null;
  recording = false;
  stopping = false;
  ops = 0;
  errors = 0;
  misses = 0;
  firstError: string | null = null;
  failure: Error | null = null;

  constructor(target: LoadTarget, op: Op, keys: Buffer[], value: Buffer) {
    this.protocol = protocolFor(target.protocol);
    this.op = op;
    this.depth = target.depth;
    this.keys = keys;
    this.value = value;
    this.requestBytes = this.protocol.requestBytes(keys[0]?.length ?? 0, value.length);
  }

  /** The next key index, or -1 when a fill run has sent every key. */
  nextKey(): number {
    if (this.cursor === null) return (Math.random() * this.keys.length) | 0;
    return this.cursor.next < this.cursor.end ? this.cursor.next++ : -1;
  }

  get exhausted(): boolean {
    return this.stopping || (this.cursor !== null && this.cursor.next >= this.cursor.end);
  }

  /** Counts one reply (its bytes are buf[from, to)); a reply that does not fit the request is an error. */
  complete(latencyMs: number, reply: ParsedReply, buf: Buffer, from: number, to: number): void {
    const good =
      this.op === 'put'
        ? reply.kind === REPLY_OK
        : reply.kind === REPLY_MISS ||
          (reply.kind === REPLY_VALUE && reply.length === this.value.length);
    if (!good) {
      this.errors++;
      this.firstError ??= buf.toString('latin1', from, Math.min(to, from + 200)).trim();
    } else if (reply.kind === REPLY_MISS) this.misses++;
    if (!this.recording) return;
    this.ops++;
    this.hist.record(latencyMs * 1e6);
  }
}

/** One TCP connection with a FIFO ring of the send times of its outstanding requests. */
class Connection {
  readonly load: Load;
  readonly socket: Socket;
  readonly sent: Float64Array;
  readonly reply: ParsedReply = { kind: 0, length: 0 };
  head = 0;
  outstanding = 0;
  carry: Buffer | null = null;
  readonly idle: Promise<void>;
  #resolveIdle: () => void = () => {};

  constructor(load: Load, socket: Socket) {
    this.load = load;
    this.socket = socket;
    this.sent = new Float64Array(load.depth);
    this.idle = new Promise((resolve) => {
      this.#resolveIdle = resolve;
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      load.failure ??= err;
    });
    socket.on('close', () => {
      if (!load.exhausted) load.failure ??= new Error('loadgen: server closed the connection');
      this.#resolveIdle();
    });
  }

  onData(chunk: Buffer): void {
    const now = performance.now();
    const buf = this.carry === null ? chunk : Buffer.concat([this.carry, chunk]);
    this.carry = null;
    const { protocol, depth } = this.load;
    let at = 0;
    let done = 0;
    for (;;) {
      const next = protocol.parse(buf, at, this.reply);
      if (next === -1) break;
      if (this.outstanding === 0) {
        this.load.failure ??= new Error(
          `loadgen: unexpected reply ${buf.toString('latin1', at, next)}`,
        );
        this.socket.destroy();
        return;
      }
      this.load.complete(now - this.sent[this.head]!, this.reply, buf, at, next);
      this.head = (this.head + 1) % depth;
      this.outstanding--;
      at = next;
      done++;
    }
    if (at < buf.length) this.carry = buf.subarray(at);
    this.issue(done);
  }

  /** Sends up to n new requests in one write. */
  issue(n: number): void {
    const load = this.load;
    if (n > 0 && !load.exhausted) {
      const out = Buffer.allocUnsafe(n * load.requestBytes);
      const now = performance.now();
      let len = 0;
      for (let i = 0; i < n; i++) {
        const k = load.nextKey();
        if (k === -1) break;
        const key = load.keys[k]!;
        len =
          load.op === 'put'
            ? load.protocol.writePut(out, len, key, load.value)
            : load.protocol.writeGet(out, len, key);
        this.sent[(this.head + this.outstanding) % load.depth] = now;
        this.outstanding++;
      }
      if (len > 0) this.socket.write(out.subarray(0, len));
    }
    this.checkIdle();
  }

  checkIdle(): void {
    if (this.outstanding === 0 && this.load.exhausted) this.#resolveIdle();
  }
}

function openConnection(load: Load, port: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(new Connection(load, socket));
    });
  });
}

/** Waits until every connection has no outstanding request, at most `timeoutMs`. */
async function drain(conns: Connection[], timeoutMs: number): Promise<void> {
  for (const c of conns) c.checkIdle();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([Promise.all(conns.map((c) => c.idle)), timeout]);
  clearTimeout(timer);
  for (const c of conns) c.socket.destroy();
}

/** The worker's message loop; one run (start..stop, or fill) at a time. */
function serve(port: MessagePort, init: WorkerInit): void {
  const keys = buildKeys(init.keys);
  const value = buildValue(init.valueBytes);
  const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  let load: Load | null = null;
  let conns: Connection[] = [];
  let cpu0 = process.threadCpuUsage();
  let elu0 = performance.eventLoopUtilization();
  let t0 = 0;

  async function open(target: LoadTarget, op: Op): Promise<Load> {
    const l = new Load(target, op, keys, value);
    conns = await Promise.all(
      Array.from({ length: target.connections }, () => openConnection(l, target.port)),
    );
    for (const c of conns) c.issue(target.depth);
    return l;
  }

  async function handle(msg: ToWorker): Promise<void> {
    switch (msg.type) {
      case 'start':
        load = await open(msg, msg.op);
        post({ type: 'started' });
        return;
      case 'record':
        if (load === null) throw new Error('loadgen: record before start');
        load.recording = true;
        t0 = performance.now();
        cpu0 = process.threadCpuUsage();
        elu0 = performance.eventLoopUtilization();
        return;
      case 'stop': {
        if (load === null) throw new Error('loadgen: stop before start');
        const l = load;
        l.recording = false;
        l.stopping = true;
        const windowMs = performance.now() - t0;
        const cpu = process.threadCpuUsage(cpu0);
        const elu = performance.eventLoopUtilization(elu0).utilization;
        await drain(conns, 10_000);
        load = null;
        if (l.failure) throw l.failure;
        const counts = l.hist.counts;
        const { ops, errors, misses, firstError } = l;
        const result: WorkerResult = {
          ops,
          errors,
          misses,
          firstError,
          windowMs,
          counts,
          sumNs: l.hist.sumNs,
          maxNs: l.hist.maxNs,
          cpuMs: (cpu.user + cpu.system) / 1000,
          elu,
        };
        post({ type: 'result', result }, [counts.buffer as ArrayBuffer]);
        return;
      }
      case 'fill': {
        const l = new Load(msg, 'put', keys, value);
        l.cursor = { next: msg.from, end: msg.to };
        const opened = await Promise.all(
          Array.from({ length: msg.connections }, () => openConnection(l, msg.port)),
        );
        for (const c of opened) c.issue(msg.depth);
        await Promise.all(opened.map((c) => c.idle));
        l.stopping = true;
        for (const c of opened) c.socket.destroy();
        if (l.failure) throw l.failure;
        post({ type: 'filled', ops: msg.to - msg.from, errors: l.errors });
        return;
      }
      default:
        msg satisfies never;
    }
  }

  port.on('message', (msg: ToWorker) => {
    handle(msg).catch((err: unknown) => {
      post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    });
  });
}

if (!isMainThread && parentPort !== null) serve(parentPort, workerData as WorkerInit);
