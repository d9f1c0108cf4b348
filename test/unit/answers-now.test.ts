// Coordinator.answersNow: the connection counts no reply bytes ahead of a GET it says execute
// answers at once (connection.ts #dispatch), so it must be true only when execute's GET of that
// key is synchronous: this node the key's only replica. Calls to its peers fail.

import { afterEach, describe, expect, it } from 'vitest';
import type { ClusterCoordinator, ClusterOptions } from '../../src/coordinator/index.ts';
import { Topology } from '../../src/membership/index.ts';
import { Storage } from '../../src/storage/index.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { standalone } from '../helpers/standalone.ts';

const opened: Storage[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await cleanup();
});

/** A coordinator on n1 of `members` with replication factor `rf`. */
function coordinator(
  members: string[],
  rf: number,
  more: Partial<ClusterOptions> = {},
): { c: ClusterCoordinator; topology: Topology } {
  const s = Storage.open({ path: tempDir(), nodeName: 'n1' });
  opened.push(s);
  const topology = new Topology(members, null, rf);
  return { c: standalone(s, 100, topology, more), topology };
}

const keys = Array.from({ length: 64 }, (_, i) => Buffer.from(`key-${i}`));

describe('Coordinator.answersNow', () => {
  it('is true on a one-member ring, where GET is answered synchronously', async () => {
    const { c } = coordinator(['n1'], 3);
    await c.execute({ type: 'put', key: keys[0]!, value: Buffer.from('v') });
    for (const key of keys) expect(c.answersNow(key)).toBe(true);
    const reply = c.execute({ type: 'get', key: keys[0]! });
    expect(reply).not.toBeInstanceOf(Promise);
    expect(reply).toEqual({ type: 'value', value: Buffer.from('v') });
  });

  it('is false for every key when each has more than one owner', () => {
    const { c } = coordinator(['n1', 'n2', 'n3'], 3);
    for (const key of keys) expect(c.answersNow(key)).toBe(false);
    const reply = c.execute({ type: 'get', key: keys[0]! });
    expect(reply).toBeInstanceOf(Promise);
    (reply as Promise<unknown>).catch(() => {});
  });

  it('with one owner per key, is true exactly for the keys this node owns alone', () => {
    const { c, topology } = coordinator(['n1', 'n2', 'n3'], 1);
    let mine = 0;
    for (const key of keys) {
      const alone = topology.place(key).all.join() === 'n1';
      expect(c.answersNow(key)).toBe(alone);
      const reply = c.execute({ type: 'get', key });
      if (alone) {
        mine++;
        expect(reply).not.toBeInstanceOf(Promise);
      } else {
        expect(reply).toBeInstanceOf(Promise);
        (reply as Promise<unknown>).catch(() => {});
      }
    }
    // Both kinds were tried.
    expect(mine).toBeGreaterThan(0);
    expect(mine).toBeLessThan(keys.length);
  });

  it('is false while this node may not answer alone (the ring fence): its GETs wait for the members', async () => {
    let asked = 0;
    const alone = {
      may: () => false,
      until: () => {
        asked++;
        return Promise.reject(new Error('no member answered'));
      },
    };
    const { c, topology } = coordinator(['n1', 'n2', 'n3'], 1, { alone });
    const own = keys.filter((key) => topology.place(key).all.join() === 'n1');
    expect(own.length).toBeGreaterThan(0);
    for (const key of own) {
      // The connection would count no reply bytes for it, while it waits and then reads a copy.
      expect(c.answersNow(key)).toBe(false);
      const reply = c.execute({ type: 'get', key });
      expect(reply).toBeInstanceOf(Promise);
      await expect(reply).rejects.toThrow('no member answered');
    }
    expect(asked).toBe(own.length);
  });
});
