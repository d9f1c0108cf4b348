// Which failed LMDB commits are final for the process (LmdbHealth.fatal), and the store's syncs
// of LMDB's file (LmdbSync): see docs/storage.md, "When the disk fails".

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { COMMIT_CAUSE_WAIT_MS, LmdbHealth } from '../../src/storage/health.ts';
import { LmdbSync } from '../../src/storage/lmdb-sync.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function health() {
  const dir = mkdtempSync(join(tmpdir(), 'kvstore-health-'));
  dirs.push(dir);
  const fatals: string[] = [];
  return {
    h: new LmdbHealth(
      dir,
      () => {},
      (f) => fatals.push(f),
    ),
    fatals,
  };
}

/** A failed commit as lmdb-js reports it: the write rejects, its commitError says why later. */
function commitFailed(code: number, message: string) {
  const cause = Object.assign(new Error(message), { code });
  const commitError = Promise.reject(cause);
  commitError.catch(() => {});
  return Object.assign(new Error('Commit failed (see commitError for details)'), { commitError });
}

describe('LmdbHealth', () => {
  it('a commit failed by an I/O error is fatal once lmdb-js says so, and never recovers', async () => {
    const { h, fatals } = health();
    const generation = h.generation;
    h.fail(commitFailed(5, 'Input/output error'));
    expect(h.fatal).toBeNull(); // the cause comes a moment later: judged() waits for it
    await h.judged();
    expect(h.fatal).toBe('an LMDB commit failed: I/O error (EIO)');
    expect(fatals).toEqual([h.fatal]);
    expect(h.failure).toBe(h.fatal);
    expect(h.recovered(h.generation)).toBe(false);
    expect(h.recovered(generation)).toBe(false);
  });

  it('a failed commit whose cause lmdb-js never says is judged without it: fatal, and judged() ends', async () => {
    const { h, fatals } = health();
    // lmdb-js printed the status and left commitError pending (a status before the failed mark).
    const commitError = new Promise<never>(() => {});
    h.fail(
      Object.assign(new Error('Commit failed (see commitError for details)'), { commitError }),
    );
    const waited = await Promise.race([
      h.judged().then(() => 'judged'),
      new Promise((resolve) => setTimeout(resolve, COMMIT_CAUSE_WAIT_MS * 5, 'pending')),
    ]);
    expect(waited).toBe('judged');
    expect(h.fatal).toBe('an LMDB commit failed: LMDB commit failed');
    expect(fatals).toEqual([h.fatal]);
    expect(h.recovered(h.generation)).toBe(false);
  });

  it('MDB_PANIC is fatal', async () => {
    const { h } = health();
    h.fail(commitFailed(-30795, 'MDB_PANIC: Update of meta page failed'));
    await h.judged();
    expect(h.fatal).toMatch(/^an LMDB commit failed: /);
  });

  it('a full disk is not: the repair retries it', async () => {
    const { h, fatals } = health();
    h.fail(commitFailed(28, 'No space left on device'));
    await h.judged();
    expect({ fatal: h.fatal, fatals, failure: h.failure }).toEqual({
      fatal: null,
      fatals: [],
      failure: 'disk full (ENOSPC)',
    });
    expect(h.recovered(h.generation)).toBe(true);
  });

  it('judged() waits for a failure recorded while it waited, not only for those before it', async () => {
    const { h } = health();
    const later = (code: number, message: string) => {
      const { promise, reject } = Promise.withResolvers<never>();
      promise.catch(() => {});
      const err = Object.assign(new Error('Commit failed (see commitError for details)'), {
        commitError: promise,
      });
      return { err, say: () => reject(Object.assign(new Error(message), { code })) };
    };
    const full = later(28, 'No space left on device');
    const eio = later(5, 'Input/output error');
    h.fail(full.err);
    const judged = h.judged();
    h.fail(eio.err); // a second failure while the first one's cause is not known yet
    full.say();
    setTimeout(eio.say, 50); // the second cause comes later
    await judged;
    // A repair (Writability.ensure) after judged() would retry a commit lmdb-js failed for EIO.
    expect(h.fatal).toBe('an LMDB commit failed: I/O error (EIO)');
  });

  it("an error of the store's own code (a transaction callback that threw) is not LMDB's", async () => {
    const { h } = health();
    h.fail(new Error('callback threw'));
    await h.judged();
    expect(h.fatal).toBeNull();
  });

  it('a failed sync of the file is fatal, whatever its cause', async () => {
    const { h, fatals } = health();
    h.syncFailed(Object.assign(new Error('No space left on device'), { code: 'ENOSPC' }));
    expect(h.fatal).toBe("a sync of LMDB's file failed: disk full (ENOSPC)");
    expect(fatals).toHaveLength(1);
  });
});

describe('LmdbSync', () => {
  /** An env whose syncs the test ends by hand, in order. */
  function env() {
    const pending: ((error?: unknown) => void)[] = [];
    return { pending, sync: (cb: (error?: unknown) => void) => pending.push(cb) };
  }

  it('runs one sync at a time; callers during one share the next, which starts after it', async () => {
    const e = env();
    const s = new LmdbSync(e);
    const first = s.sync();
    const second = s.sync();
    const third = s.sync();
    expect(e.pending).toHaveLength(1);
    e.pending[0]!();
    await first;
    await new Promise((r) => setImmediate(r));
    expect(e.pending).toHaveLength(2); // the shared next one started once the first ended
    e.pending[1]!();
    await Promise.all([second, third]);
    expect(e.pending).toHaveLength(2);
  });

  it('rejects every caller of a failed sync, and the next caller gets a new one', async () => {
    const e = env();
    const s = new LmdbSync(e);
    const first = s.sync();
    e.pending[0]!(new Error('EIO'));
    await expect(first).rejects.toThrow('EIO');
    const again = s.sync();
    expect(e.pending).toHaveLength(2);
    e.pending[1]!();
    await again;
  });

  it('rejects when the environment cannot sync at all (closed)', async () => {
    const s = new LmdbSync({
      sync: () => {
        throw new Error('The environment is already closed.');
      },
    });
    await expect(s.sync()).rejects.toThrow('already closed');
  });
});
