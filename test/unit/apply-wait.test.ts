// Which copies the peer client may wait for past their own timeout behind other frames to a slow
// member (the deadline set again as the frame leaves: PeerRequestOptions.deadline). A copy of a
// live value may (it lands within freshWithin of its own version, before any newer delete's
// tombstone can be collected); a tombstone's or an expiring record's may not: the repair window
// (repairWithinMs) counts on those landing within their timeout of being sent, and a read repair
// of an older value could otherwise land after their collection. The Replicas class over a real
// store, its PeerCall recording what each request asked for.

import { afterEach, describe, expect, it } from 'vitest';
import { type PeerCall, Replicas } from '../../src/replica/index.ts';
import { encodeRecord, type StoredRecord } from '../../src/storage/index.ts';
import { openStore } from '../helpers/coordinators.ts';
import { cleanup } from '../helpers/node-process.ts';

afterEach(cleanup);

const version = { wall: Date.now(), logical: 0, node: 'a' };
const LARGE = Buffer.alloc(128 * 1024, 1);

function sent() {
  const calls: { body: Record<string, unknown>; opts: Record<string, unknown> }[] = [];
  const call: PeerCall = async (_name, _method, body, opts) => {
    calls.push({ body: body as Record<string, unknown>, opts: { ...opts } });
    return { n: 1 };
  };
  const replicas = new Replicas(
    'a',
    openStore('a'),
    call,
    undefined,
    undefined,
    2000,
    undefined,
    60_000,
  );
  const apply = (records: StoredRecord[]) =>
    replicas.apply(
      'b',
      records.map((r, i) => [Buffer.from(`k${i}`), encodeRecord(r)]),
      records,
    );
  return { calls, apply };
}

describe('a copy sent without a deadline of its own', () => {
  it('of a live value may wait behind other frames, up to the copy wait', async () => {
    const { calls, apply } = sent();
    await apply([{ version, tombstone: false, value: LARGE }]);
    expect(calls[0]!.opts).toMatchObject({ timeoutMs: 2000, deadline: true, maxWaitMs: 60_000 });
    expect(Object.keys(calls[0]!.body)[0]).toBe('d');
  });

  it('holding a tombstone or an expiring record gets its own timeout only', async () => {
    const { calls, apply } = sent();
    const tombstone = { version, tombstone: true, value: Buffer.alloc(0) };
    const expiring = { version, tombstone: false, value: LARGE, expiresAt: Date.now() + 60_000 };
    await apply([{ version, tombstone: false, value: LARGE }, tombstone]);
    await apply([expiring]);
    for (const c of calls) {
      // Not waited for behind other frames past it: the replica refuses it then.
      expect(c.opts).toEqual({ timeoutMs: 2000, landBy: c.body.d });
      expect(c.body.d).toBeLessThanOrEqual(Date.now() + 2000);
    }
  });
});
