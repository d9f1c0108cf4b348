import { describe, expect, it } from 'vitest';
import type { Reply } from '../../src/protocol/index.ts';
import { CommandOrder } from '../../src/server/ordering.ts';

const ok = (text: string): Reply => ({ type: 'info', text });

/** An order whose commands are named by their targets; what each settled with, in order. */
function recorder() {
  const events: string[] = [];
  const order = new CommandOrder<string>((name, reply, err) => {
    events.push(`${name} ${reply?.type === 'info' ? reply.text : `failed: ${err}`}`);
  });
  return { events, order };
}

/** `run` for a command whose outcome is `result` (its arg unused). */
const give = (result: Reply | Promise<Reply>) => () => result;

describe('CommandOrder', () => {
  it('hands each later outcome to settled with its target, in the reaction that lets the next group run', async () => {
    const { events, order } = recorder();
    const write = Promise.withResolvers<Reply>();
    const failing = Promise.withResolvers<Reply>();
    // Two writes run at once (one group), a read after them waits for both.
    expect(order.run('write', give(write.promise), null, 'w1')).toBeNull();
    expect(order.run('write', give(failing.promise), null, 'w2')).toBeNull();
    expect(
      order.run(
        'read',
        (arg: string) => {
          events.push(`r1 runs with ${arg}`);
          return Promise.resolve(ok('read'));
        },
        'its arg',
        'r1',
      ),
    ).toBeNull();
    expect(order.idle).toBe(false);
    failing.reject(new Error('disk'));
    write.resolve(ok('written'));
    await new Promise<void>((r) => setImmediate(r));
    expect(events).toEqual([
      'w2 failed: Error: disk',
      'w1 written',
      'r1 runs with its arg',
      'r1 read',
    ]);
    expect(order.idle).toBe(true);
    // Nothing in flight: a synchronous result comes back at once, and settled is not called.
    expect(order.run('read', (arg: string) => ok(arg), 'now', 'r2')).toEqual(ok('now'));
    expect(events).toHaveLength(4);
  });

  it('commands given the same promise settle in order from one reaction, and a settled one given again still settles', async () => {
    const { events, order } = recorder();
    const shared = Promise.withResolvers<Reply>();
    let reactions = 0;
    const then = shared.promise.then.bind(shared.promise);
    // biome-ignore lint/suspicious/noThenProperty: counts the reactions the order attaches
    shared.promise.then = ((a: never, b: never) => {
      reactions++;
      return then(a, b);
    }) as typeof shared.promise.then;
    for (const name of ['w1', 'w2', 'w3'])
      expect(order.run('write', give(shared.promise), null, name)).toBeNull();
    const read = () => {
      events.push('r1 runs');
      return shared.promise; // a read given the writes' promise: its own group, after them
    };
    expect(order.run('read', read, null, 'r1')).toBeNull();
    shared.resolve(ok('ok'));
    await new Promise<void>((r) => setImmediate(r));
    expect(events).toEqual(['w1 ok', 'w2 ok', 'w3 ok', 'r1 runs', 'r1 ok']);
    expect(reactions).toBe(2); // one for the three writes, one for the read
    expect(order.idle).toBe(true);
    // The same promise, settled, given to a command that must wait (a write in flight before it).
    const pending = Promise.withResolvers<Reply>();
    expect(order.run('write', give(pending.promise), null, 'w4')).toBeNull();
    expect(order.run('write', give(shared.promise), null, 'w5')).toBeNull();
    pending.resolve(ok('later'));
    await new Promise<void>((r) => setImmediate(r));
    expect(events.slice(5)).toEqual(['w5 ok', 'w4 later']);
    expect(order.idle).toBe(true);
  });

  it('a settle that throws does not keep the commands after it from settling', async () => {
    const settled: string[] = [];
    const order = new CommandOrder<string>((name) => {
      settled.push(name);
      if (name === 'w1') throw new Error('bug in w1');
    });
    const shared = Promise.withResolvers<Reply>();
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    try {
      order.run('write', give(shared.promise), null, 'w1');
      order.run('write', give(shared.promise), null, 'w2');
      shared.resolve(ok('ok'));
      await new Promise<void>((r) => setImmediate(r));
      await new Promise<void>((r) => setImmediate(r));
      expect(settled).toEqual(['w1', 'w2']);
      expect(order.idle).toBe(true);
      expect(rejections).toEqual([new Error('bug in w1')]);
    } finally {
      process.off('unhandledRejection', onRejection);
    }
  });
});
