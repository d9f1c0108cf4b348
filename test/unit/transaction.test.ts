import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { type Command, parseRespRequest, type Reply } from '../../src/protocol/index.ts';
import { ScanCursorTable } from '../../src/server/scan-cursors.ts';
import { execQueued, MAX_QUEUED, type Queued, Transaction } from '../../src/server/transaction.ts';
import { respContext } from '../helpers/resp-context.ts';

const b = (s: string) => Buffer.from(s);
const CTX = respContext(
  { maxKeyBytes: 1024, maxValueBytes: 1 << 20, maxScanKeys: 100 },
  new ScanCursorTable({ max: 10, ttlMs: 60_000 }),
);
const put = (k: string, v = 'v'): Command => ({ type: 'put', key: b(k), value: b(v) });

/** A node-wide count (ClientBuffers' move) with room for `limit` bytes. */
function counter(limit = Number.MAX_SAFE_INTEGER) {
  const c = {
    bytes: 0,
    move(before: number, after: number): boolean {
      if (after > before && c.bytes + after - before > limit) return false;
      c.bytes += after - before;
      return true;
    },
  };
  return c;
}

/** The bytes `items` count when queued in a fresh transaction. */
function queuedBytes(...items: Queued[]): number {
  const held = counter();
  const tx = new Transaction(Number.MAX_SAFE_INTEGER, held);
  for (const item of items) tx.add(item);
  return held.bytes;
}

describe('Transaction', () => {
  it('queues until its bounds, then refuses and is failed (EXEC will abort)', () => {
    const held = counter();
    const one = queuedBytes({ kind: 'command', cmd: put('a') });
    const tx = new Transaction(one + 10, held);
    expect(tx.add({ kind: 'command', cmd: put('a') })).toEqual({ type: 'status', text: 'QUEUED' });
    expect(tx.failed).toBe(false);
    expect(held.bytes).toBe(one);
    const over = tx.add({ kind: 'command', cmd: put('b', 'x'.repeat(20)) });
    expect(over).toMatchObject({ type: 'error', code: 'KV_ERR_LIMIT_EXCEEDED' });
    expect(tx.failed).toBe(true);
    // A failed transaction runs nothing: it keeps nothing, and still counts what it is sent.
    expect(held.bytes).toBe(0);
    expect(tx.add({ kind: 'command', cmd: put('c') })).toEqual({ type: 'status', text: 'QUEUED' });
    expect(tx.size).toBe(2);
    expect(held.bytes).toBe(0);
    expect(tx.take()).toHaveLength(0);
    expect(MAX_QUEUED).toBeGreaterThan(1000);
  });

  it('holds its queue in the node-wide count until EXEC takes it or it is dropped; refused when full', () => {
    const two = queuedBytes({ kind: 'command', cmd: put('a') }, { kind: 'command', cmd: put('b') });
    const held = counter(two + 10);
    const tx = new Transaction(1 << 20, held);
    expect(tx.add({ kind: 'command', cmd: put('a') })).toEqual({ type: 'status', text: 'QUEUED' });
    expect(tx.add({ kind: 'command', cmd: put('b') })).toEqual({ type: 'status', text: 'QUEUED' });
    expect(held.bytes).toBe(two);
    expect(tx.take()).toHaveLength(2);
    expect(held.bytes).toBe(0);

    const other = new Transaction(1 << 20, held);
    other.add({ kind: 'command', cmd: put('a') });
    other.add({ kind: 'command', cmd: put('b') });
    expect(other.add({ kind: 'command', cmd: put('c') })).toMatchObject({
      type: 'error',
      code: 'KV_ERR_LIMIT_EXCEEDED',
      message: 'server: too many bytes of unfinished client requests',
    });
    expect(other.failed).toBe(true);
    expect(held.bytes).toBe(0);

    const dropped = new Transaction(1 << 20, held);
    dropped.add({ kind: 'reply', reply: { type: 'status', text: 'hi' } });
    expect(held.bytes).toBeGreaterThan(0);
    dropped.drop();
    expect(held.bytes).toBe(0);
  });

  it('keeps copies that hold no read alive, and counts every byte they hold, replies too', () => {
    // What the decoder hands over: views of one 64 KiB read.
    const read = Buffer.alloc(64 * 1024, 0x61);
    const held = counter();
    const tx = new Transaction(Number.MAX_SAFE_INTEGER, held);
    const shape = (r: Reply) => r;
    tx.add({
      kind: 'command',
      cmd: { type: 'put', key: read.subarray(0, 1), value: read.subarray(1, 2) },
      shape,
    });
    tx.add({
      kind: 'command',
      cmd: { type: 'mset', entries: [[read.subarray(2, 3), read.subarray(3, 5)]] },
    });
    // ECHO's answer, made when it was queued: a view of the read as long as the message.
    tx.add({ kind: 'reply', reply: { type: 'value', value: read.subarray(0, 60_000) } });
    // Unbounded, the three counted 64 bytes each (and the ECHO nothing of its message), while
    // holding the whole read.
    expect(held.bytes).toBeGreaterThan(60_000 + 5);
    const items = tx.take();
    const buffers: Buffer[] = [];
    const put0 = items[0]!;
    const mset = items[1]!;
    const echo = items[2]!;
    if (put0.kind !== 'command' || put0.cmd.type !== 'put') throw new Error('not the put');
    if (mset.kind !== 'command' || mset.cmd.type !== 'mset') throw new Error('not the mset');
    if (echo.kind !== 'reply' || echo.reply.type !== 'value') throw new Error('not the echo');
    buffers.push(put0.cmd.key, put0.cmd.value, ...mset.cmd.entries.flat(), echo.reply.value);
    expect(buffers.map((b) => b.toString())).toEqual(['a', 'a', 'a', 'aa', 'a'.repeat(60_000)]);
    for (const b of buffers) expect(b.buffer).not.toBe(read.buffer);
    expect(put0.shape).toBe(shape); // functions are kept, not copied
  });

  it("counts and copies a queued PING's message, which its answer is made of", () => {
    const read = Buffer.alloc(64 * 1024, 0x61);
    const held = counter();
    const tx = new Transaction(Number.MAX_SAFE_INTEGER, held);
    const req = parseRespRequest([Buffer.from('PING'), read.subarray(0, 60_000)], CTX);
    if (req.kind !== 'command') throw new Error('not a command');
    tx.add(req);
    // Before: the message was held by the answer's closure, a view of the whole read, counted
    // 64 bytes.
    expect(held.bytes).toBeGreaterThan(60_000);
    const [item] = tx.take();
    if (item?.kind !== 'command' || item.cmd.type !== 'ping') throw new Error('not the ping');
    expect(item.shape).toBeUndefined();
    expect(item.cmd.message?.toString()).toBe('a'.repeat(60_000));
    expect(item.cmd.message?.buffer).not.toBe(read.buffer);
  });

  it('an error reply queued (a refused command) fails the transaction', () => {
    const held = counter();
    const tx = new Transaction(1 << 20, held);
    tx.add({ kind: 'command', cmd: put('a') });
    const err: Reply = { type: 'error', code: 'KV_ERR_NOT_ATOMIC', message: 'x' };
    expect(tx.add({ kind: 'reply', reply: err })).toBe(err);
    expect(tx.failed).toBe(true);
    expect(held.bytes).toBe(0);
  });
});

describe('execQueued', () => {
  it('runs in order, one after another; after a failure the rest are not run', async () => {
    const ran: string[] = [];
    let running = 0;
    const run = async (cmd: Command): Promise<Reply> => {
      expect(running).toBe(0); // never two at once
      running++;
      await new Promise((r) => setImmediate(r));
      running--;
      const key = cmd.type === 'put' ? cmd.key.toString() : '?';
      ran.push(key);
      if (key === 'fail') throw new KvError('KV_ERR_UNAVAILABLE', 'replication: write quorum 1/2');
      return { type: 'ok' };
    };
    const failure = (err: unknown): Reply => ({
      type: 'error',
      code: (err as KvError).code,
      message: (err as KvError).message,
    });
    const reply = await execQueued(
      [
        { kind: 'command', cmd: put('a') },
        { kind: 'reply', reply: { type: 'status', text: 'hi' } },
        { kind: 'command', cmd: put('fail') },
        { kind: 'command', cmd: put('c') },
      ],
      run,
      failure,
    );
    expect(ran).toEqual(['a', 'fail']);
    expect(reply).toMatchObject({
      type: 'array',
      items: [
        { type: 'ok' },
        { type: 'status', text: 'hi' },
        { type: 'error', code: 'KV_ERR_UNAVAILABLE' },
        {
          type: 'error',
          code: 'KV_ERR_NOT_RUN',
          message: 'server: not run, because command 3 of this EXEC failed before it',
        },
      ],
    });
  });
});
