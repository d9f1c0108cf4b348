// The peer boundary: the record decoder and each method's decoders, on valid, truncated and
// malformed input; every failure is a KvError with a stable code, never KV_ERR_INTERNAL.

import fc from 'fast-check';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import {
  RemoteVersions,
  Replicas,
  readApplyDeadline,
  readApplyPlacement,
  readApplyReply,
  readApplyRequest,
  readGetManyRequest,
  readGetReply,
  readGetRequest,
  readScanReply,
  readScanRequest,
  readSyncedReply,
} from '../../src/replica/index.ts';
import {
  decodeRecord,
  encodeRecord,
  HybridClock,
  MAX_KEY_BYTES,
  Storage,
} from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

afterEach(cleanup);

const NOW = 1_764_000_000_000;
const version = { wall: NOW, logical: 3, node: 'kvstore-1' };
const live = encodeRecord({ version, tombstone: false, value: Buffer.from('value') });
const tomb = encodeRecord({ version, tombstone: true, value: Buffer.alloc(0) });

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(KvError);
    return (err as KvError).code;
  }
  return 'ok';
}

describe('decodeRecord', () => {
  it('reads every sample whole', () => {
    expect(decodeRecord(live)).toEqual({ version, tombstone: false, value: Buffer.from('value') });
    expect(decodeRecord(tomb)).toEqual({ version, tombstone: true, value: Buffer.alloc(0) });
  });

  it('byte by byte: a prefix shorter than header and node name is refused, longer ones cut the value', () => {
    for (const sample of [live, tomb]) {
      const nodeEnd = 11 + sample[10]!;
      for (let n = 0; n <= sample.length; n++) {
        const prefix = sample.subarray(0, n);
        if (n < nodeEnd) expect(codeOf(() => decodeRecord(prefix))).toBe('KV_ERR_BAD_RECORD');
        else expect(decodeRecord(prefix).value).toEqual(sample.subarray(nodeEnd, n));
      }
    }
  });

  it('refuses a node length past the end, a zero one, unknown flags and non-UTF-8 names', () => {
    const cases: [string, (b: Buffer) => void][] = [
      ['node length past the end', (b) => (b[10] = 200)],
      ['node length 0', (b) => (b[10] = 0)],
      ['unknown flag', (b) => (b[1] = 0x80)],
      ['format 2', (b) => (b[0] = 2)],
      ['not UTF-8', (b) => (b[11] = 0xff)],
    ];
    for (const [, mutate] of cases) {
      const b = Buffer.from(live);
      mutate(b);
      expect(codeOf(() => decodeRecord(b))).toBe('KV_ERR_BAD_RECORD');
    }
    // A tombstone that carries a value is not something encodeRecord writes.
    const withValue = Buffer.concat([tomb, Buffer.from('x')]);
    expect(codeOf(() => decodeRecord(withValue))).toBe('KV_ERR_BAD_RECORD');
  });

  it('any bytes either decode to a record that re-encodes the same, or are refused', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const buf = Buffer.from(bytes);
        let rec: ReturnType<typeof decodeRecord>;
        try {
          rec = decodeRecord(buf);
        } catch (err) {
          expect((err as KvError).code).toBe('KV_ERR_BAD_RECORD');
          return;
        }
        expect(encodeRecord(rec)).toEqual(buf);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('peer request decoders', () => {
  const k = Buffer.from('key');
  const SAMPLES: [string, () => unknown, string][] = [
    ['get', () => readGetRequest({ k }), 'ok'],
    ['get with incarnation', () => readGetRequest({ k, i: 'abc' }), 'ok'],
    ['get without key', () => readGetRequest({}), 'KV_ERR_INVALID_ARGUMENT'],
    ['get of null', () => readGetRequest(null), 'KV_ERR_INVALID_ARGUMENT'],
    ['get of bytes', () => readGetRequest(k), 'KV_ERR_INVALID_ARGUMENT'],
    ['get key a string', () => readGetRequest({ k: 'key' }), 'KV_ERR_INVALID_ARGUMENT'],
    ['get empty key', () => readGetRequest({ k: Buffer.alloc(0) }), 'KV_ERR_INVALID_KEY'],
    [
      'get key over LMDB',
      () => readGetRequest({ k: Buffer.alloc(MAX_KEY_BYTES + 1, 97) }),
      'KV_ERR_INVALID_KEY',
    ],
    ['get incarnation a number', () => readGetRequest({ k, i: 5 }), 'KV_ERR_INVALID_ARGUMENT'],
    ['get out of target', () => readGetRequest({ k, o: 1 }), 'ok'],
    ['get o other than 1', () => readGetRequest({ k, o: true }), 'KV_ERR_INVALID_ARGUMENT'],
    [
      'scan o other than 1',
      () => readScanRequest({ s: k, l: 1, o: 2 }, 10),
      'KV_ERR_INVALID_ARGUMENT',
    ],
    ['apply', () => readApplyRequest({ e: [[k, live]] }), 'ok'],
    ['apply nothing', () => readApplyRequest({ e: [] }), 'ok'],
    ['apply e not a list', () => readApplyRequest({ e: {} }), 'KV_ERR_INVALID_ARGUMENT'],
    ['apply pair of 3', () => readApplyRequest({ e: [[k, live, 1]] }), 'KV_ERR_INVALID_ARGUMENT'],
    ['apply record text', () => readApplyRequest({ e: [[k, 'x']] }), 'KV_ERR_INVALID_ARGUMENT'],
    [
      'apply empty key',
      () => readApplyRequest({ e: [[Buffer.alloc(0), live]] }),
      'KV_ERR_INVALID_KEY',
    ],
    [
      'apply short record',
      () => readApplyRequest({ e: [[k, live.subarray(0, 5)]] }),
      'KV_ERR_BAD_RECORD',
    ],
    ['apply deadline', () => readApplyDeadline({ e: [], d: 1_800_000_000_000 }), 'ok'],
    ['apply no deadline', () => readApplyDeadline({ e: [] }), 'ok'],
    ['apply deadline text', () => readApplyDeadline({ e: [], d: '5' }), 'KV_ERR_INVALID_ARGUMENT'],
    ['apply deadline < 0', () => readApplyDeadline({ e: [], d: -1 }), 'KV_ERR_INVALID_ARGUMENT'],
    ['apply deadline 0.5', () => readApplyDeadline({ e: [], d: 0.5 }), 'KV_ERR_INVALID_ARGUMENT'],
    ['apply placement', () => readApplyPlacement({ e: [], p: 'a:b' }), 'ok'],
    ['apply no placement', () => readApplyPlacement({ e: [] }), 'ok'],
    [
      'apply placement number',
      () => readApplyPlacement({ e: [], p: 5 }),
      'KV_ERR_INVALID_ARGUMENT',
    ],
    [
      'apply placement empty',
      () => readApplyPlacement({ e: [], p: '' }),
      'KV_ERR_INVALID_ARGUMENT',
    ],
    [
      'apply placement too long',
      () => readApplyPlacement({ e: [], p: 'x'.repeat(4097) }),
      'KV_ERR_INVALID_ARGUMENT',
    ],
    ['scan', () => readScanRequest({ s: Buffer.alloc(0), e: null, l: 10 }, 100), 'ok'],
    ['scan limit 0', () => readScanRequest({ s: k, l: 0 }, 100), 'KV_ERR_INVALID_ARGUMENT'],
    ['scan limit over', () => readScanRequest({ s: k, l: 101 }, 100), 'KV_ERR_INVALID_ARGUMENT'],
    ['scan limit text', () => readScanRequest({ s: k, l: '5' }, 100), 'KV_ERR_INVALID_ARGUMENT'],
    [
      'scan ie text',
      () => readScanRequest({ s: k, l: 1, ie: 'y' }, 100),
      'KV_ERR_INVALID_ARGUMENT',
    ],
    // An empty end would be the empty key (nothing), not "no end" (null says that): no member
    // sends one, and the store's two paths read it differently before.
    [
      'scan end empty',
      () => readScanRequest({ s: Buffer.alloc(0), e: Buffer.alloc(0), l: 1 }, 100),
      'KV_ERR_INVALID_KEY',
    ],
    ['scan headers only', () => readScanRequest({ s: k, l: 1, h: true }, 100), 'ok'],
    ['scan h text', () => readScanRequest({ s: k, l: 1, h: 1 }, 100), 'KV_ERR_INVALID_ARGUMENT'],
    ['get headers only', () => readGetRequest({ k, h: true }), 'ok'],
    ['get h text', () => readGetRequest({ k, h: 'yes' }), 'KV_ERR_INVALID_ARGUMENT'],
    ['getMany h number', () => readGetManyRequest({ ks: [k], h: 1 }), 'KV_ERR_INVALID_ARGUMENT'],
    [
      'scan start over LMDB',
      () => readScanRequest({ s: Buffer.alloc(4000), l: 1 }, 100),
      'KV_ERR_INVALID_KEY',
    ],
  ];
  it.each(SAMPLES)('%s', (_name, f, code) => {
    expect(codeOf(f)).toBe(code);
  });

  it('keep only the known fields, typed', () => {
    expect(readScanRequest({ s: k, l: 2, x: 1, ie: true }, 10)).toEqual({
      s: k,
      e: null,
      ie: true,
      xs: false,
      l: 2,
      h: false,
      i: undefined,
      o: false,
    });
    expect(readGetRequest({ k, o: 1 })).toEqual({ k, h: false, i: undefined, o: true });
    expect(readGetRequest({ k, h: true })).toEqual({ k, h: true, i: undefined, o: false });
    expect(readGetManyRequest({ ks: [k], i: 'abc', o: 1 })).toEqual({
      ks: [k],
      h: false,
      i: 'abc',
      o: true,
    });
    const [entry] = readApplyRequest({ e: [[k, live]] });
    // The record's bytes as received come along: storage keeps them instead of encoding again.
    expect(entry).toEqual({ key: k, record: decodeRecord(live), raw: live });
  });

  it('any value: a typed result or a KvError with a stable code, never an internal one', () => {
    const anyValue = fc.anything({
      withTypedArray: true,
      withNullPrototype: true,
      withBigInt: true,
      maxDepth: 3,
    });
    const bodies = fc.oneof(
      anyValue,
      fc.record({ k: anyValue, i: anyValue, e: anyValue, s: anyValue, l: anyValue }),
      fc.record({ e: fc.array(fc.tuple(fc.uint8Array(), fc.uint8Array())) }),
    );
    fc.assert(
      fc.property(bodies, (body) => {
        for (const f of [
          () => readGetRequest(body),
          () => readApplyRequest(body),
          () => readScanRequest(body, 100),
          () => readGetReply(body),
          () => readApplyReply(body),
          () => readScanReply(body, 100),
          () => readSyncedReply(body),
        ]) {
          expect(codeOf(f)).not.toBe('KV_ERR_INTERNAL');
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('peer reply decoders', () => {
  it('check shape, records and key order', () => {
    expect(readGetReply({ r: null })).toBeNull();
    expect(readGetReply({ r: live })?.record).toEqual(decodeRecord(live));
    expect(codeOf(() => readGetReply({ r: Buffer.from([1]) }))).toBe('KV_ERR_BAD_RECORD');
    expect(codeOf(() => readGetReply('x'))).toBe('KV_ERR_PEER_PROTOCOL');
    expect(readApplyReply({ n: 0 })).toEqual({ n: 0 });
    expect(codeOf(() => readApplyReply({ n: -1 }))).toBe('KV_ERR_PEER_PROTOCOL');
    expect(readSyncedReply({ b: '0a1b' })).toEqual({ process: '0a1b', hints: undefined });
    expect(readSyncedReply({ b: '0a1b', h: 3 })).toEqual({ process: '0a1b', hints: 3 });
    expect(readSyncedReply({})).toEqual({ process: undefined, hints: undefined });
    expect(codeOf(() => readSyncedReply({ b: 7 }))).toBe('KV_ERR_PEER_PROTOCOL');
    expect(codeOf(() => readSyncedReply({ b: 'x'.repeat(65) }))).toBe('KV_ERR_PEER_PROTOCOL');
    expect(codeOf(() => readSyncedReply({ b: '0a1b', h: -1 }))).toBe('KV_ERR_PEER_PROTOCOL');
    expect(codeOf(() => readSyncedReply({ b: '0a1b', h: 0.5 }))).toBe('KV_ERR_PEER_PROTOCOL');
    const a = Buffer.from('a');
    const b = Buffer.from('b');
    expect(
      readScanReply(
        {
          e: [
            [a, live],
            [b, tomb],
          ],
          more: false,
        },
        2,
      ).e,
    ).toHaveLength(2);
    const unordered = {
      e: [
        [b, live],
        [a, tomb],
      ],
      more: false,
    };
    expect(codeOf(() => readScanReply(unordered, 2))).toBe('KV_ERR_PEER_PROTOCOL');
    const tooMany = {
      e: [
        [a, live],
        [b, tomb],
      ],
      more: true,
    };
    expect(codeOf(() => readScanReply(tooMany, 1))).toBe('KV_ERR_PEER_PROTOCOL');
    expect(codeOf(() => readScanReply({ e: [], more: 1 }, 1))).toBe('KV_ERR_PEER_PROTOCOL');
  });
});

describe('versions from peers', () => {
  it('are refused beyond the max clock offset, counted, and never reach the clock', async () => {
    const registry = new Registry();
    const clock = new HybridClock('me', () => NOW, 500);
    const versions = new RemoteVersions({ clock, registry });
    versions.check({ wall: NOW + 500, logical: 0xffff, node: 'p' }, 'request', 'p');
    for (const wall of [NOW + 501, 2 ** 48 - 1]) {
      expect(codeOf(() => versions.check({ wall, logical: 0, node: 'p' }, 'request', 'p'))).toBe(
        'KV_ERR_CLOCK_OFFSET',
      );
    }
    const text = await registry.metrics();
    expect(text).toMatch(/kvstore_clock_offset_rejections_total\{source="request"\} 2/);
  });

  it('in replies: a peer answering a record from the future counts as a failed replica', async () => {
    const storage = Storage.open({ path: tempDir(), nodeName: 'me' });
    defer(() => storage.close());
    const registry = new Registry();
    const versions = new RemoteVersions({ clock: storage.clock, registry });
    const poison = encodeRecord({
      version: { wall: 2 ** 48 - 1, logical: 0xffff, node: 'evil' },
      tombstone: false,
      value: Buffer.from('x'),
    });
    const fresh = encodeRecord({
      version: { wall: Date.now(), logical: 0, node: 'ok' },
      tombstone: false,
      value: Buffer.from('y'),
    });
    const answers: Record<string, unknown> = {
      get: { r: poison },
      scan: {
        e: [
          [Buffer.from('k'), fresh],
          [Buffer.from('p'), poison],
        ],
        more: false,
      },
    };
    const replicas = new Replicas(
      'me',
      storage,
      async (_name, method) => answers[method],
      () => ({}),
      versions,
    );
    await expect(replicas.get('evil', Buffer.from('k'))).rejects.toMatchObject({
      code: 'KV_ERR_CLOCK_OFFSET',
    });
    const scan = { s: Buffer.alloc(0), e: null, ie: false, xs: false, l: 10 };
    await expect(replicas.scan('evil', scan)).rejects.toMatchObject({
      code: 'KV_ERR_CLOCK_OFFSET',
    });
    expect(await registry.metrics()).toMatch(
      /kvstore_clock_offset_rejections_total\{source="reply"\} 2/,
    );
    // The clock never moved: a local write still gets a present-day version.
    expect(storage.clock.now().wall).toBeLessThan(Date.now() + 1000);
  });
});
