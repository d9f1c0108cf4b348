// MGET and EXISTS read their keys a chunk at a time and stop past a byte bound of values.

import { describe, expect, it } from 'vitest';
import { executeMulti, multiReadBounds } from '../../src/coordinator/multi.ts';
import type { Command, Reply } from '../../src/protocol/index.ts';

const key = (i: number) => Buffer.from(`k${i}`);
/** A run that answers each GET with a value of `size(i)` bytes, sync or async, and records the most in flight. */
function store(size: (i: number) => number, async: boolean) {
  let inFlight = 0;
  let most = 0;
  const run = (cmd: Command): Reply | Promise<Reply> => {
    if (cmd.type !== 'get') throw new Error(cmd.type);
    const reply: Reply = {
      type: 'value',
      value: Buffer.alloc(size(Number(cmd.key.toString().slice(1)))),
    };
    if (!async) return reply;
    inFlight++;
    most = Math.max(most, inFlight);
    return new Promise((r) =>
      setImmediate(() => {
        inFlight--;
        r(reply);
      }),
    );
  };
  return { run, most: () => most };
}

describe('MGET and EXISTS', () => {
  const bounds = multiReadBounds(100, 1000); // 1,000 bytes of values, 10 keys at a time

  it('answer in full under the bound, synchronously when every part is', () => {
    const { run } = store(() => 10, false);
    const keys = Array.from({ length: 95 }, (_, i) => key(i));
    const reply = executeMulti({ type: 'mget', keys }, run, bounds);
    expect(reply).toMatchObject({ type: 'array' });
    expect((reply as unknown as { items: Reply[] }).items).toHaveLength(95);
    expect(executeMulti({ type: 'exists', keys }, run, bounds)).toEqual({
      type: 'integer',
      value: 95,
    });
  });

  it('fail with LIMIT_EXCEEDED past the bound, with at most a chunk in flight', async () => {
    const { run, most } = store(() => 100, true);
    const keys = Array.from({ length: 30 }, (_, i) => key(i));
    await expect(executeMulti({ type: 'mget', keys }, run, bounds)).rejects.toMatchObject({
      code: 'KV_ERR_LIMIT_EXCEEDED',
      message: expect.stringContaining('MGET reads more than 1000 bytes'),
    });
    expect(most()).toBeLessThanOrEqual(10);
    const sync = store(() => 100, false);
    await expect(executeMulti({ type: 'exists', keys }, sync.run, bounds)).rejects.toMatchObject({
      code: 'KV_ERR_LIMIT_EXCEEDED',
    });
  });

  it('keep the order of the keys across chunks', async () => {
    const { run } = store((i) => i, true);
    const keys = Array.from({ length: 25 }, (_, i) => key(i));
    const reply = (await executeMulti({ type: 'mget', keys }, run, bounds)) as unknown as {
      items: Reply[];
    };
    expect(reply.items.map((r) => (r.type === 'value' ? r.value.length : -1))).toEqual(
      keys.map((_, i) => i),
    );
  });

  it('read one key at a time when a value may be as large as the bound', () => {
    expect(multiReadBounds(64 << 20, 64 << 20).chunkKeys).toBe(1);
    expect(multiReadBounds(1 << 20).chunkKeys).toBe(64);
  });
});
