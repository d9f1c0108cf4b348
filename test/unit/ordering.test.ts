import { describe, expect, it } from 'vitest';
import type { Reply } from '../../src/protocol/index.ts';
import { CommandOrder } from '../../src/server/ordering.ts';

const ok = (text: string): Reply => ({ type: 'info', text });

describe('CommandOrder', () => {
  it('hands each later outcome to its done, in the reaction that lets the next group run', async () => {
    const order = new CommandOrder();
    const events: string[] = [];
    const done = (name: string) => (reply: Reply | null, err: unknown) =>
      events.push(`${name} ${reply?.type === 'info' ? reply.text : `failed: ${err}`}`);
    const write = Promise.withResolvers<Reply>();
    const failing = Promise.withResolvers<Reply>();
    // Two writes run at once (one group), a read after them waits for both.
    expect(order.run('write', () => write.promise, done('w1'))).toBeNull();
    expect(order.run('write', () => failing.promise, done('w2'))).toBeNull();
    expect(
      order.run(
        'read',
        () => {
          events.push('r1 runs');
          return Promise.resolve(ok('read'));
        },
        done('r1'),
      ),
    ).toBeNull();
    expect(order.idle).toBe(false);
    failing.reject(new Error('disk'));
    write.resolve(ok('written'));
    await new Promise<void>((r) => setImmediate(r));
    expect(events).toEqual(['w2 failed: Error: disk', 'w1 written', 'r1 runs', 'r1 read']);
    expect(order.idle).toBe(true);
    // Nothing in flight: a synchronous result comes back at once, and done is not called.
    expect(order.run('read', () => ok('now'), done('r2'))).toEqual(ok('now'));
    expect(events).toHaveLength(4);
  });
});
