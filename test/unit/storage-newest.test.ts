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

  it('keep the decisions and counters exact through discards, deletes of live values, expiry and a reopen', async () => {
    // Every other path that changes a key's record (collection's discard, DEL's removeIfLive,
    // the sweeper's expiry, a reopen) between writes decided by the bound.
    const dir = tempDir('kv-newest-');
    let s = openStore(dir);
    const t = Date.now();
    let x = 11;
    const next = (n: number) => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x % n;
    };
    type Model = { v: Version; tomb: boolean; exp?: number };
    const model = new Map<string, Model>();
    const nodes = ['n1', 'n2', 'n3'];
    const cmp = (p: Version, q: Version) =>
      p.wall - q.wall || p.logical - q.logical || (p.node < q.node ? -1 : p.node > q.node ? 1 : 0);
    const beats = (old: Model | undefined, v: Version, tomb: boolean) =>
      old === undefined || (cmp(old.v, v) || (old.tomb ? 1 : 0) - (tomb ? 1 : 0)) < 0;
    const isLive = (m: Model | undefined) =>
      m !== undefined && !m.tomb && (m.exp === undefined || m.exp > Date.now());
    let wall = t;
    for (let i = 0; i < 4000; i++) {
      const key = `k${next(30)}`;
      // Mostly rising, as clocks do, with writes from behind (other coordinators, repairs).
      wall += next(3);
      const v: Version = { wall: wall - next(60), logical: next(3), node: nodes[next(3)]! };
      const old = model.get(key);
      const op = next(20);
      if (op === 0 && old !== undefined) {
        // Collection (or a dropped range): the stored version, or a stale one.
        const stale = next(3) === 0;
        const dv = stale ? { ...old.v, logical: old.v.logical + 1 } : old.v;
        expect(await s.discard([{ key: b(key), version: dv }])).toBe(stale ? 0 : 1);
        if (!stale) model.delete(key);
      } else if (op === 1) {
        const wins = isLive(old) && beats(old, v, true);
        expect(await s.removeIfLive(b(key), v)).toBe(wins);
        if (wins) model.set(key, { v, tomb: true });
      } else if (op === 2) {
        const r = await s.expireDue(1000);
        let n = 0;
        for (const m of model.values()) {
          if (!m.tomb && m.exp !== undefined && m.exp <= Date.now()) {
            m.tomb = true;
            n++;
          }
        }
        expect(r.expired).toBe(n);
      } else {
        const tomb = next(6) === 0;
        // No expiry, one passed already, or one far off.
        const e = next(4);
        const exp = tomb || e < 2 ? undefined : e === 2 ? t - 1000 : t + 3_600_000;
        const rec = {
          version: v,
          tombstone: tomb,
          value: b(tomb ? '' : `v${i}`),
          ...(exp === undefined ? {} : { expiresAt: exp }),
        };
        const wins = beats(old, v, tomb);
        expect(await s.apply(b(key), rec)).toBe(wins);
        if (wins) model.set(key, { v, tomb, ...(exp === undefined ? {} : { exp }) });
      }
      if (i % 700 === 350) await s.flush();
      if (i === 2000) {
        await s.close();
        s = openStore(dir);
      }
    }
    let live = 0;
    let expiring = 0;
    for (const [key, want] of model) {
      const got = s.get(b(key));
      expect(got?.version).toEqual(want.v);
      expect(got?.tombstone).toBe(want.tomb);
      if (!want.tomb) live++;
      if (!want.tomb && want.exp !== undefined) expiring++;
    }
    for (let k = 0; k < 30; k++) if (!model.has(`k${k}`)) expect(s.get(b(`k${k}`))).toBeUndefined();
    expect(s.stats()).toMatchObject({ liveKeys: live, tombstones: model.size - live, expiring });
  });
});

describe('the tables a write decided on its version alone uses', () => {
  it('are not held by a store not written since it opened, and the first write makes them', async () => {
    // An empty node holds neither (docs/memory.md): the bounds were 576 KiB made at open.
    const dir = tempDir('kv-newest-');
    let s = openStore(dir);
    expect(s.writeTableBytes()).toEqual({ kinds: 0, newest: 0 });
    expect(s.get(b('a'))).toBeUndefined(); // reads make none
    expect(s.writeTableBytes()).toEqual({ kinds: 0, newest: 0 });
    const t = Date.now();
    expect(await s.apply(b('a'), put({ wall: t, logical: 0, node: 'n2' }, 'a1'))).toBe(true);
    const made = s.writeTableBytes();
    expect(made.newest).toBeGreaterThan(0);
    expect(made.kinds).toBeGreaterThan(0);
    await s.close();
    // Reopened after a clean stop (nothing to replay): none again until a write is stored, and
    // the writes decide as before: an older version is refused (storing nothing), a newer one taken.
    s = openStore(dir);
    expect(s.writeTableBytes()).toEqual({ kinds: 0, newest: 0 });
    expect(await s.apply(b('a'), put({ wall: t - 1, logical: 0, node: 'n3' }, 'a0'))).toBe(false);
    expect(s.writeTableBytes()).toEqual({ kinds: 0, newest: 0 });
    expect(await s.apply(b('a'), put({ wall: t + 1, logical: 0, node: 'n1' }, 'a2'))).toBe(true);
    expect(s.writeTableBytes().newest).toBeGreaterThan(0);
    expect(s.get(b('a'))?.value.toString()).toBe('a2');
    expect(s.stats().liveKeys).toBe(1);
  });
});
