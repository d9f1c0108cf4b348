import { afterEach, describe, expect, it, vi } from 'vitest';
import { Storage, type Version } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

// A replica's write from another coordinator is often not above the store's newest version
// (this node's own coordinator wrote a newer one since), yet above every version of its own key:
// the store then decides it without reading the old record (Storage.#applyOne, newest.ts). Last
// write wins must hold all the same, per key, whatever order the versions come in.

const b = (s: string) => Buffer.from(s);
afterEach(cleanup);

function openStore(path: string): Storage {
  const s = Storage.open({ path, nodeName: 'n1' });
  defer(() => s.close());
  return s;
}

/** Counts LMDB reads of records (getBinaryFast, which the store's write decisions use). */
function countLmdbReads(s: Storage): { readonly n: number } {
  let owner: object | null = s.root;
  while (owner !== null && !Object.hasOwn(owner, 'getBinaryFast')) {
    owner = Object.getPrototypeOf(owner) as object | null;
  }
  if (owner === null) throw new Error('no getBinaryFast');
  const spy = vi.spyOn(owner as { getBinaryFast: (k: Buffer) => unknown }, 'getBinaryFast');
  defer(() => spy.mockRestore());
  return {
    get n() {
      return spy.mock.calls.length;
    },
  };
}

const put = (v: Version, value: string) => ({ version: v, tombstone: false, value: b(value) });

describe('writes above their key but not above the store', () => {
  it('are decided without reading the old record, and older ones are still refused', async () => {
    const s = openStore(tempDir('kv-newest-'));
    const t = Date.now();
    expect(await s.apply(b('a'), put({ wall: t, logical: 0, node: 'n2' }, 'a1'))).toBe(true);
    // A newer write to another key: 'a's next write is no longer above the store's newest.
    expect(await s.apply(b('z'), put({ wall: t + 10, logical: 0, node: 'n1' }, 'z1'))).toBe(true);
    await s.flush(); // committed: a read of 'a' now goes to LMDB, not to the queued writes
    const reads = countLmdbReads(s);
    expect(await s.apply(b('a'), put({ wall: t + 5, logical: 0, node: 'n3' }, 'a2'))).toBe(true);
    expect(reads.n).toBe(0);
    // Below what 'a' holds now: refused (this one reads it).
    expect(await s.apply(b('a'), put({ wall: t + 4, logical: 9, node: 'n2' }, 'a0'))).toBe(false);
    expect(s.get(b('a'))?.value.toString()).toBe('a2');
    expect(s.stats().liveKeys).toBe(2);
  });

  it('keep last write wins per key for versions from three nodes in any order, through reopen', async () => {
    const dir = tempDir('kv-newest-');
    let s = openStore(dir);
    const t = Date.now();
    let x = 7;
    const next = (n: number) => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x % n;
    };
    const model = new Map<string, { v: Version; tomb: boolean }>();
    const nodes = ['n1', 'n2', 'n3'];
    const cmp = (p: Version, q: Version) =>
      p.wall - q.wall || p.logical - q.logical || (p.node < q.node ? -1 : p.node > q.node ? 1 : 0);
    for (let i = 0; i < 3000; i++) {
      const key = `k${next(40)}`;
      const v: Version = { wall: t + next(400), logical: next(3), node: nodes[next(3)]! };
      const tomb = next(5) === 0;
      const old = model.get(key);
      // At the same version a tombstone ranks above a value (compareRecords).
      const wins = old === undefined || (cmp(old.v, v) || (old.tomb ? 1 : 0) - (tomb ? 1 : 0)) < 0;
      const rec = tomb ? { version: v, tombstone: true, value: b('') } : put(v, `v${i}`);
      expect(await s.apply(b(key), rec)).toBe(wins);
      if (wins) model.set(key, { v, tomb });
      if (i % 500 === 250) await s.flush();
      if (i === 1500) {
        await s.close();
        s = openStore(dir);
      }
    }
    let live = 0;
    for (const [key, want] of model) {
      const got = s.get(b(key));
      expect(got?.version).toEqual(want.v);
      expect(got?.tombstone).toBe(want.tomb);
      if (!want.tomb) live++;
    }
    expect(s.stats().liveKeys).toBe(live);
    expect(s.stats().tombstones).toBe(model.size - live);
  });
});
