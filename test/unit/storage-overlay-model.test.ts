import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Version } from '../../src/storage/index.ts';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { fuzzRuns } from '../helpers/fuzz.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

afterEach(cleanup);

// Keys of 1 to 2 bytes over 3 letters (many sharing prefixes), so one batch holds a key's put,
// delete and put again; scans' bounds (starts of 0 to 2 bytes) fall on, between and around them.
const bytesArb = (minLength: number) =>
  fc.uint8Array({ minLength, maxLength: 2 }).map((a) => a.map((x) => 97 + (x % 3)));
const keyArb = bytesArb(1);
const boundArb = bytesArb(0);
const opArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ op: fc.constant('put' as const), key: keyArb, tomb: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('discard' as const), key: keyArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), key: keyArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('tick' as const), flush: fc.boolean() }) },
  // The batch to LMDB, not waited for: later writes and reads meet it on its way (#issued).
  { weight: 2, arbitrary: fc.record({ op: fc.constant('issue' as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('scan' as const),
      start: boundArb,
      end: fc.option(boundArb), // an empty end is the empty key (null: no end)
      exclusiveStart: fc.boolean(),
      inclusiveEnd: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen' as const) }) },
);

interface Model {
  v: Version;
  tomb: boolean;
  value: string;
}

describe('the store against a model, through batches given to LMDB at any point', () => {
  it('answers get, scan and the counters as a Map of the newest writes (fuzzed)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 120, size: 'max' }), async (ops) => {
        const dir = tempDir('kv-overlay-');
        let s = Storage.open({ path: dir, nodeName: 'n1' });
        defer(() => s.close());
        const model = new Map<string, Model>();
        // Writes of this turn not yet awaited: several in one batch and one event-loop turn.
        let pending: Promise<unknown>[] = [];
        const settle = async () => {
          await Promise.all(pending);
          pending = [];
        };
        let n = 0;
        const check = () => {
          let live = 0;
          for (const [k, m] of model) {
            const got = s.get(Buffer.from(k, 'latin1'));
            expect(got?.version).toEqual(m.v);
            expect(got?.tombstone).toBe(m.tomb);
            if (!m.tomb) {
              live++;
              expect(got?.value.toString()).toBe(m.value);
            }
          }
          expect(s.stats()).toMatchObject({ liveKeys: live, tombstones: model.size - live });
        };
        for (const o of ops) {
          if (o.op === 'put') {
            const k = Buffer.from(o.key).toString('latin1');
            const v = s.clock.now();
            const value = o.tomb ? '' : `v${n++}`;
            // The caller's key buffer is overwritten after the call (a reused read buffer).
            const key = Buffer.from(o.key);
            pending.push(
              s.apply(key, { version: v, tombstone: o.tomb, value: Buffer.from(value) }),
            );
            key.fill(0x7a);
            model.set(k, { v, tomb: o.tomb, value });
          } else if (o.op === 'discard') {
            const k = Buffer.from(o.key).toString('latin1');
            const m = model.get(k);
            if (m === undefined) continue;
            pending.push(s.discard([{ key: Buffer.from(o.key), version: m.v }]));
            model.delete(k);
          } else if (o.op === 'remove') {
            const k = Buffer.from(o.key).toString('latin1');
            const m = model.get(k);
            const v = s.clock.now();
            const wins = m !== undefined && !m.tomb;
            pending.push(s.removeIfLive(Buffer.from(o.key), v).then((r) => expect(r).toBe(wins)));
            if (wins) model.set(k, { v, tomb: true, value: '' });
          } else if (o.op === 'issue') {
            pending.push(s.flush());
          } else if (o.op === 'tick') {
            await settle();
            if (o.flush) await s.flush();
            check();
          } else if (o.op === 'scan') {
            const start = Buffer.from(o.start);
            const end = o.end === null ? null : Buffer.from(o.end);
            const got = [
              ...s.scan({
                start,
                end,
                exclusiveStart: o.exclusiveStart,
                inclusiveEnd: o.inclusiveEnd,
              }),
            ].map(
              (r) => `${r.key.toString('latin1')}=${r.record.tombstone ? '-' : r.record.value}`,
            );
            const want = [...model.keys()]
              .filter((k) => {
                const kb = Buffer.from(k, 'latin1');
                const c = Buffer.compare(kb, start);
                if (c < 0 || (c === 0 && o.exclusiveStart)) return false;
                if (end === null) return true;
                const d = Buffer.compare(kb, end);
                return d < 0 || (d === 0 && o.inclusiveEnd);
              })
              .sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')))
              .map((k) => {
                const m = model.get(k)!;
                return `${k}=${m.tomb ? '-' : m.value}`;
              });
            expect(got).toEqual(want);
          } else {
            await settle();
            await s.close();
            s = Storage.open({ path: dir, nodeName: 'n1' });
            check();
          }
        }
        await settle();
        check();
        await s.close();
        s = Storage.open({ path: dir, nodeName: 'n1' });
        check();
        await s.close();
      }),
      { numRuns: fuzzRuns(60) },
    );
  });
});
