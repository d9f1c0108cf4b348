// Storage.openAsync and a stop signal: the replay of a large log lets the event loop turn (a
// SIGTERM handler runs) and, aborted there, closes the store without changing the log, so that
// the next open replays all of it.

import { afterEach, expect, it } from 'vitest';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { killedStorageWriter } from '../helpers/storage-writer-run.ts';

/** Records in the log to replay: a replay of them takes far longer than one 20 ms slice. */
const SECOND = 60_000;

afterEach(cleanup);

/** A store whose writer was SIGKILLed after SECOND acknowledged writes (all in its log). */
async function killedWriter(): Promise<string> {
  const dir = tempDir();
  await killedStorageWriter(dir, 10, SECOND);
  return dir;
}

it('a replay a signal cuts short closes the store, and the next open replays all of it', async () => {
  const dir = await killedWriter();
  const stop = new AbortController();
  const reason = new Error('SIGTERM while starting');
  const phases: string[] = [];
  const opening = Storage.openAsync({ path: dir, nodeName: 'n1' }, stop.signal, (p) => {
    phases.push(p.phase);
    // As the signal handler: it runs once the replay lets the event loop turn. A replay that
    // never did would finish first, and the open would resolve.
    if (p.phase === 'replaying the write-ahead log') setImmediate(() => stop.abort(reason));
  });
  await expect(opening).rejects.toBe(reason);
  expect(phases).toEqual([
    'checking the LMDB file',
    'reading the write-ahead log',
    'checking the LMDB trees',
    'opening LMDB',
    'replaying the write-ahead log',
  ]);

  const s = Storage.open({ path: dir, nodeName: 'n1' });
  defer(() => s.close());
  expect(s.recovery.replayed).toBeGreaterThanOrEqual(SECOND);
  for (let i = 0; i < SECOND; i += 97) {
    expect(s.get(Buffer.from(`p2-${i}`))?.value.toString()).toBe(`value of p2-${i}`);
  }
  expect(s.stats().liveKeys).toBe(10 - 1 + SECOND); // every tenth p1 key was removed: p1-0
}, 60_000);
