// The chaos history checker on small hand-made histories that must pass and must fail.

import { describe, expect, it } from 'vitest';
import {
  checkConvergence,
  checkHistory,
  checkReplicas,
  type ReplicaRecord,
} from '../chaos/checker.ts';
import type { Op, Outcome } from '../chaos/history.ts';

let nextId = 0;

/** An operation from `inv` to `cmp` (null: no reply). */
function op(
  type: Op['type'],
  key: string,
  inv: number,
  cmp: number | null,
  outcome: Outcome | null,
  extra: Partial<Op> = {},
): Op {
  return { id: nextId++, client: 'c0', node: 'kv0', type, key, inv, cmp, outcome, ...extra };
}
const put = (key: string, value: string, inv: number, cmp: number | null, outcome: Outcome) =>
  op('put', key, inv, cmp, outcome, {
    value,
    ...(outcome === 'timeout' ? { error: 'TIMEOUT' } : {}),
  });
const get = (key: string, inv: number, cmp: number, read: string | null, final = false) =>
  op('get', key, inv, cmp, read === null ? 'not_found' : 'value', { read, final });
const remove = (key: string, inv: number, cmp: number | null, outcome: Outcome) =>
  op('remove', key, inv, cmp, outcome);
const range = (start: string, end: string, inv: number, cmp: number, keys: string[]) =>
  op('range', start, inv, cmp, 'keys', { end, keys });

/** A SETEX of `ttlS` seconds (times here in ms, as in the history). */
const setex = (
  key: string,
  value: string,
  ttlS: number,
  inv: number,
  cmp: number | null,
  outcome: Outcome,
) => op('put', key, inv, cmp, outcome, { value, ttlS });

const KEYS = ['a', 'b', 'c'];
const kinds = (ops: Op[]) => checkHistory(ops, KEYS).map((v) => v.kind);

describe('checkHistory: histories that pass', () => {
  it('reads of the latest acknowledged write, and of the initial absence', () => {
    expect(
      kinds([
        get('a', 0, 1, null),
        put('a', 'v1', 2, 3, 'ok'),
        get('a', 4, 5, 'v1'),
        put('a', 'v2', 6, 7, 'ok'),
        get('a', 8, 9, 'v2', true),
      ]),
    ).toEqual([]);
  });

  it('a read concurrent with a write may see either value', () => {
    expect(
      kinds([
        put('a', 'v1', 0, 1, 'ok'),
        put('a', 'v2', 2, 6, 'ok'),
        get('a', 3, 4, 'v1'),
        get('a', 3, 5, 'v2'),
      ]),
    ).toEqual([]);
  });

  it('failed and indeterminate writes may have been applied', () => {
    expect(
      kinds([
        put('a', 'v1', 0, 1, 'ok'),
        put('a', 'lost?', 2, 3, 'error'),
        get('a', 4, 5, 'lost?'),
        put('a', 'late', 6, null, 'timeout'),
        put('a', 'v3', 20, 21, 'ok'),
        // A write with no reply may take effect at any time, even after later acknowledged ones.
        get('a', 30, 31, 'late', true),
      ]),
    ).toEqual([]);
  });

  it('a concurrent or indeterminate REMOVE explains absence; scans follow the same rules', () => {
    expect(
      kinds([
        put('a', 'v1', 0, 1, 'ok'),
        remove('a', 2, 5, 'ok'),
        get('a', 3, 4, null),
        put('b', 'w1', 0, 1, 'ok'),
        remove('b', 6, null, 'timeout'),
        range('a', 'c', 7, 8, ['b']),
        range('a', 'c', 9, 10, []),
        op('prefix', 'b', 11, 12, 'keys', { keys: ['b'] }),
        remove('c', 13, 14, 'not_found'),
      ]),
    ).toEqual([]);
  });

  it('a REMOVE answering NOT_FOUND deletes a PUT concurrent with it (its tombstone comes after its read)', () => {
    // Seed 24001 (session 24): the PUT acknowledged while the REMOVE ran, the REMOVE's read
    // before the PUT's copies landed, its tombstone after them; the key is then absent.
    expect(
      kinds([
        put('a', 'v1', 0, 80, 'ok'),
        remove('a', 2, 76, 'not_found'),
        range('a', 'c', 104, 120, []),
        get('a', 121, 122, null),
      ]),
    ).toEqual([]);
  });
});

describe('checkHistory: values that expire (SETEX)', () => {
  // Slack 1000 ms (EXPIRY_SLACK_MS): a 2 s SETEX answered at 100 may be read until 3,100 and
  // may be gone from 1,000 (invoked at 0).
  it('passes: read before its expiry, absent after it (GET and scans), absent within the slack', () => {
    expect(
      kinds([
        setex('a', 'v1', 2, 0, 100, 'ok'),
        get('a', 200, 300, 'v1'),
        get('a', 3000, 3050, 'v1'),
        get('a', 1500, 1600, null),
        range('a', 'c', 4000, 4100, []),
        get('a', 9000, 9100, null, true),
      ]),
    ).toEqual([]);
    // A SETEX that never answered may have been made at any later time: no bound on its value.
    expect(
      kinds([setex('a', 'v1', 1, 0, null, 'timeout'), get('a', 60_000, 60_001, 'v1')]),
    ).toEqual([]);
    // A plain PUT after an expired SETEX is read as usual; a REMOVE still deletes a SETEX.
    expect(
      kinds([
        setex('a', 'v1', 1, 0, 100, 'ok'),
        put('a', 'v2', 5000, 5100, 'ok'),
        get('a', 9000, 9100, 'v2'),
        setex('b', 'w', 3, 0, 100, 'ok'),
        remove('b', 200, 300, 'ok'),
        get('b', 400, 500, null),
      ]),
    ).toEqual([]);
  });

  it('fails: a value read after its expiry, a scan listing it, absent long before it', () => {
    const v = checkHistory([setex('a', 'v1', 2, 0, 100, 'ok'), get('a', 3200, 3300, 'v1')], KEYS);
    expect(v.map((x) => x.kind)).toEqual(['expired']);
    expect(v[0]!.excerpt.join('\n')).toContain('SETEX a 2 v1 -> ok');
    // An error answer bounds it too: its version (and expiry) were made before it.
    expect(kinds([setex('a', 'v1', 1, 0, 100, 'error'), get('a', 2200, 2300, 'v1')])).toEqual([
      'expired',
    ]);
    expect(kinds([setex('a', 'v1', 1, 0, 100, 'ok'), range('a', 'c', 2200, 2300, ['a'])])).toEqual([
      'expired',
    ]);
    expect(kinds([setex('a', 'v1', 3, 0, 100, 'ok'), get('a', 500, 600, null)])).toEqual([
      'stale-read',
    ]);
    // The slack is an option (a clock stepped back shows values late by the step).
    expect(
      checkHistory([setex('a', 'v1', 1, 0, 100, 'ok'), get('a', 5000, 5100, 'v1')], KEYS, {
        expirySlackMs: 6000,
      }),
    ).toEqual([]);
  });
});

describe('checkHistory: histories that fail', () => {
  it('lost write: the final read misses an acknowledged write', () => {
    const v = checkHistory(
      [put('a', 'v1', 0, 1, 'ok'), put('a', 'v2', 2, 3, 'ok'), get('a', 10, 11, 'v1', true)],
      KEYS,
    );
    expect(v.map((x) => x.kind)).toEqual(['lost-write']);
    expect(v[0]!.excerpt[0]).toMatch(/^> #\d+ \[0\.010\.\.0\.011\] c0@kv0 GET a -> value v1/);
    expect(v[0]!.excerpt.join('\n')).toContain('PUT a v2 -> ok');
    expect(kinds([put('a', 'v1', 0, 1, 'ok'), get('a', 10, 11, null, true)])).toEqual([
      'lost-write',
    ]);
  });

  it('phantom: a value never written, written to another key, or written after the read', () => {
    expect(kinds([get('a', 0, 1, 'nobody')])).toEqual(['phantom']);
    expect(kinds([put('b', 'vb', 0, 1, 'ok'), get('a', 2, 3, 'vb')])).toEqual(['phantom']);
    expect(kinds([get('a', 0, 1, 'future'), put('a', 'future', 2, 3, 'ok')])).toEqual(['phantom']);
    expect(kinds([range('a', 'c', 0, 1, ['b'])])).toEqual(['phantom']);
  });

  it('stale read: older than a write acknowledged before the read began', () => {
    expect(
      kinds([put('a', 'v1', 0, 1, 'ok'), put('a', 'v2', 2, 3, 'ok'), get('a', 4, 5, 'v1')]),
    ).toEqual(['stale-read']);
    // A failed write is superseded too: its version was made before its error reply.
    expect(
      kinds([put('a', 'bad', 0, 1, 'error'), put('a', 'v2', 2, 3, 'ok'), get('a', 4, 5, 'bad')]),
    ).toEqual(['stale-read']);
    expect(kinds([put('a', 'v1', 0, 1, 'ok'), range('a', 'c', 2, 3, [])])).toEqual(['stale-read']);
  });

  it('resurrected: a value read after an acknowledged REMOVE completed', () => {
    expect(
      kinds([put('a', 'v1', 0, 1, 'ok'), remove('a', 2, 3, 'ok'), get('a', 4, 5, 'v1', true)]),
    ).toEqual(['resurrected']);
    expect(
      kinds([put('a', 'v1', 0, 1, 'ok'), remove('a', 2, 3, 'ok'), range('a', 'a', 4, 5, ['a'])]),
    ).toEqual(['resurrected']);
    // A REMOVE's own NOT_FOUND is a read made before its tombstone: the tombstone does not
    // excuse it (absent after an acknowledged PUT with no other REMOVE).
    expect(kinds([put('a', 'v1', 0, 1, 'ok'), remove('a', 2, 3, 'not_found')])).toEqual([
      'stale-read',
    ]);
    expect(
      kinds([
        put('a', 'v1', 0, 1, 'ok'),
        remove('a', 0, 9, 'timeout'),
        remove('a', 2, 3, 'not_found'),
      ]),
    ).toEqual([]);
    // REMOVE answering OK saw a live value: the key was back.
    expect(
      kinds([put('a', 'v1', 0, 1, 'ok'), remove('a', 2, 3, 'ok'), remove('a', 4, 5, 'ok')]),
    ).toEqual(['resurrected']);
    // A REMOVE answering NOT_FOUND deleted too: a failed PUT before it must not come back.
    // (No acknowledged PUT before it: its NOT_FOUND would be a stale read, above.)
    expect(
      kinds([
        put('a', 'failed', 2, 3, 'error'),
        remove('a', 4, 5, 'not_found'),
        get('a', 6, 7, 'failed'),
      ]),
    ).toEqual(['resurrected']);
  });

  it('malformed scans: out of order, duplicated, out of bounds', () => {
    const w = [put('a', 'x', 0, 1, 'ok'), put('b', 'y', 0, 1, 'ok'), put('c', 'z', 0, 1, 'ok')];
    expect(kinds([...w, range('a', 'c', 2, 3, ['b', 'a', 'c'])])).toContain('malformed-scan');
    expect(kinds([...w, range('a', 'b', 2, 3, ['a', 'b', 'c'])])).toContain('malformed-scan');
    expect(kinds([...w, range('a', 'c', 2, 3, ['a', 'a', 'b', 'c'])])).toContain('malformed-scan');
  });
});

describe('convergence', () => {
  const answers = (node: string, values: [string, string | null | Error][], range: string[]) => ({
    node,
    values: new Map(values),
    range,
  });

  it('passes when every node answers the same and RANGE matches the GETs', () => {
    const same: [string, string | null][] = [
      ['a', 'x'],
      ['b', null],
      ['c', 'z'],
    ];
    expect(
      checkConvergence([answers('n1', same, ['a', 'c']), answers('n2', same, ['a', 'c'])], KEYS),
    ).toEqual([]);
  });

  it('fails on different answers, read errors, and a RANGE that disagrees', () => {
    const v = checkConvergence(
      [
        answers(
          'n1',
          [
            ['a', 'x'],
            ['b', null],
            ['c', new Error('UNAVAILABLE')],
          ],
          ['a'],
        ),
        answers(
          'n2',
          [
            ['a', 'y'],
            ['b', null],
            ['c', null],
          ],
          ['a', 'b'],
        ),
      ],
      KEYS,
    );
    expect(v.map((x) => `${x.kind} ${x.key}`)).toEqual([
      'divergence a',
      'divergence c',
      'divergence *',
    ]);
  });

  it('replicas: owners agree on the live record, or all hold none', () => {
    const rec = (value: string, version: string, tombstone = false): ReplicaRecord => ({
      value,
      version,
      tombstone,
    });
    const stores = new Map([
      [
        'n1',
        new Map([
          ['a', rec('x', '1')],
          ['b', rec('', '2', true)],
          ['c', rec('z', '3')],
        ]),
      ],
      [
        'n2',
        new Map([
          ['a', rec('x', '1')],
          ['c', rec('z', '2')],
        ]),
      ],
    ]);
    const v = checkReplicas(stores, () => ['n1', 'n2'], KEYS);
    expect(v.map((x) => x.key)).toEqual(['c']);
    expect(v[0]!.excerpt).toEqual(['  n1: z @3', '  n2: z @2']);
  });
});
