import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import {
  decodeRequest,
  decodeResponse,
  encodeErrorFrame,
  encodeRequest,
  encodeRequestFrame,
  encodeResultFrame,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  setRequestDeadline,
  setRequestId,
} from '../../src/peer/index.ts';
import { NOT_PLAIN, readPlain, writePlain } from '../../src/peer/msgpack.ts';

/** The general codec, set up as codec.ts sets it up: what every other member decodes with. */
const packr = new Packr({ useRecords: false });

/** writePlain without header room, as a Buffer of its own. */
function plain(value: unknown): Buffer {
  const out = writePlain(0, value);
  if (out === null) throw new Error('not plain');
  return Buffer.from(out);
}

/** Plain values as peer messages hold them: what writePlain must take. */
const plainValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.constant(undefined),
    fc.boolean(),
    fc.integer({ min: -0x8000_0000, max: 0xffff_ffff }),
    fc.double({ noNaN: false }),
    fc.constantFrom(2 ** 40, Date.now() + 2000, -(2 ** 33), -0, 0.1),
    fc.string({ unit: 'binary', maxLength: 80 }),
    fc.string({ maxLength: 300 }),
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc.array(tie('value'), { maxLength: 20 }),
    fc.dictionary(
      fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
      tie('value'),
      { maxKeys: 18 },
    ),
  ),
})).value;

describe('peer msgpack writer and reader', () => {
  it('writes what msgpackr decodes to the value msgpackr itself round-trips', () => {
    fc.assert(
      fc.property(plainValue, (v) => {
        const expected = packr.unpack(packr.pack(v));
        expect(packr.unpack(plain(v))).toEqual(expected);
        expect(readPlain(plain(v))).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('measures a frame larger than a slab exactly: it is written into memory of its size', () => {
    fc.assert(
      fc.property(plainValue, (v) => {
        const big = { v, pad: Buffer.alloc(70_000, 1) };
        const f = writePlain(4, big)!;
        expect(f.buffer.byteLength).toBe(f.length);
        expect(packr.unpack(f.subarray(4))).toEqual(packr.unpack(packr.pack(big)));
      }),
      { numRuns: 200 },
    );
  });

  it('reads what msgpackr writes of plain values to the value msgpackr reads', () => {
    fc.assert(
      fc.property(plainValue, (v) => {
        const bytes = packr.pack(v);
        expect(readPlain(bytes)).toEqual(packr.unpack(bytes));
      }),
      { numRuns: 500 },
    );
  });

  it('reads every width of ints, strings, bins, arrays and maps', () => {
    const samples: [string, unknown][] = [
      ['cc80', 128],
      ['cd0100', 256],
      ['ce00010000', 65536],
      ['d080', -128],
      ['d1ff00', -256],
      ['d2ffff0000', -65536],
      ['d90161', 'a'],
      ['da000161', 'a'],
      ['db0000000161', 'a'],
      ['c5000101', Buffer.from([1])],
      ['c60000000101', Buffer.from([1])],
      ['dc000101', [1]],
      ['dd0000000101', [1]],
      ['de0001a16101', { a: 1 }],
      ['df00000001a16101', { a: 1 }],
      ['81a2c3a902', { é: 2 }],
    ];
    for (const [hex, value] of samples) {
      expect(readPlain(Buffer.from(hex, 'hex')), hex).toEqual(value);
    }
  });

  it('leaves what it does not write to the general codec, never throwing', () => {
    const left = [
      'ca3f800000', // float32
      'cf0000010000000000', // uint64: msgpackr gives a bigint
      'd3ffffff0000000000', // int64
      'd6ff00000001', // timestamp extension (a Date)
      'd40100', // fixext1 of another type
      'c1', // never used
      '81c0c0', // map key that is not a string
      '81a95f5f70726f746f5f5f01', // the key __proto__
      '0101', // bytes after the value
      '', // nothing
    ];
    for (const hex of left) expect(readPlain(Buffer.from(hex, 'hex')), hex).toBe(NOT_PLAIN);
    let deep = Buffer.from('01', 'hex');
    for (let n = 0; n < 100; n++) deep = Buffer.concat([Buffer.from([0x91]), deep]);
    expect(readPlain(deep)).toBe(NOT_PLAIN);
  });

  it('gives up on every truncation and on arbitrary bytes, never throwing', () => {
    const whole = plain({ i: 7, m: 'apply', b: { e: [[Buffer.from('k'), Buffer.alloc(300)]] } });
    for (let n = 0; n < whole.length; n++) {
      expect(readPlain(whole.subarray(0, n))).toBe(NOT_PLAIN);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const b = Buffer.from(bytes);
        const got = readPlain(b);
        if (got !== NOT_PLAIN) expect(got).toEqual(packr.unpack(b));
      }),
      { numRuns: 2000 },
    );
  });

  it('does not write what is not plain', () => {
    class Point {
      x = 1;
    }
    const left = [2n, new Date(0), new Map(), new Set(), new Point(), () => 1, Symbol('s')];
    for (const v of left) {
      expect(writePlain(0, v)).toBeNull();
      expect(writePlain(0, { nested: [v] })).toBeNull();
    }
    expect(writePlain(0, new Uint16Array(2))).toBeNull();
    expect(writePlain(0, JSON.parse('{"__proto__": 1}'))).toBeNull();
    let deep: unknown = 1;
    for (let n = 0; n < 100; n++) deep = [deep];
    expect(writePlain(0, deep)).toBeNull();
  });

  it('keeps every frame it hands out intact while later ones are written, across slabs', () => {
    const frames: [Buffer, number, Buffer][] = [];
    for (let n = 0; n < 1000; n++) {
      const v = Buffer.alloc(n % 50 === 0 ? 70_000 : 100, n & 0xff);
      frames.push([writePlain(4, { n, v })!, n, v]);
    }
    for (const [f, n, v] of frames) {
      expect(f.readUInt32BE(0)).toBe(0);
      // A frame larger than a slab is measured first and holds memory of its own size.
      if (f.length > 64 * 1024) expect(f.buffer.byteLength).toBe(f.length);
      const got = packr.unpack(f.subarray(4)) as { n: number; v: Buffer };
      expect(got.n).toBe(n);
      expect(got.v.equals(v)).toBe(true);
    }
  });
});

describe('peer frames', () => {
  it('carry their header: FrameDecoder gives back the body, which decodes', () => {
    const bodies: unknown[] = [{ k: Buffer.from('key') }, { big: 2n ** 60n }, undefined];
    for (const body of bodies) {
      const frame = encodeRequestFrame('get', body);
      setRequestId(frame, 42);
      const d = new FrameDecoder();
      d.push(frame);
      const got = decodeRequest(d.next()!);
      expect(got).toEqual({ i: 42, m: 'get', b: body });
      expect(frame.readUInt32BE(0)).toBe(frame.length - FRAME_HEADER_BYTES);
    }
    // A body whose first key is its deadline (ApplyRequest.d): set again as the frame leaves.
    const now = Date.now();
    const late = { d: now, e: [[Buffer.from('k'), Buffer.alloc(100_000, 1)]], p: 'rings' };
    for (const method of ['apply', 'm'.repeat(40)]) {
      const frame = encodeRequestFrame(method, late);
      setRequestId(frame, 7);
      expect(setRequestDeadline(frame, now + 12_345)).toBe(true);
      expect(decodeRequest(frame.subarray(FRAME_HEADER_BYTES))).toEqual({
        i: 7,
        m: method,
        b: { ...late, d: now + 12_345 },
      });
    }
    // Anything else is left as it is.
    for (const body of [{ e: [], d: now }, { d: 5 }, [now], { d: 'x' }, undefined]) {
      const frame = encodeRequestFrame('apply', body);
      const copy = Buffer.from(frame);
      expect(setRequestDeadline(frame, now + 1)).toBe(false);
      expect(frame).toEqual(copy);
    }
    const ok = encodeResultFrame(9, { rs: [Buffer.from('r'), null] });
    expect(decodeResponse(ok.subarray(FRAME_HEADER_BYTES))).toEqual({
      i: 9,
      ok: true,
      r: { rs: [Buffer.from('r'), null] },
    });
    const err = encodeErrorFrame(10, new KvError('KV_ERR_EXPIRED', 'late'));
    expect(decodeResponse(err.subarray(FRAME_HEADER_BYTES))).toMatchObject({
      i: 10,
      ok: false,
      code: 'KV_ERR_EXPIRED',
    });
  });

  it('are what a member on msgpackr alone reads, and read what it writes', () => {
    const body = { e: [[Buffer.from('k'), Buffer.from('rec')]], d: Date.now() + 2000, p: 'ring' };
    const ours = encodeRequest(5, 'apply', body);
    expect(packr.unpack(ours)).toEqual({ i: 5, m: 'apply', b: body });
    const theirs = packr.pack({ i: 5, m: 'apply', b: body });
    expect(decodeRequest(theirs)).toEqual({ i: 5, m: 'apply', b: body });
  });

  it('refuses truncated and garbage frames with KV_ERR_PEER_PROTOCOL', () => {
    const whole = encodeRequest(1, 'getMany', { ks: [Buffer.from('a'), Buffer.from('b')] });
    for (let n = 0; n < whole.length; n++) {
      expect(() => decodeRequest(whole.subarray(0, n))).toThrow(
        expect.objectContaining({ code: 'KV_ERR_PEER_PROTOCOL' }),
      );
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeResponse(Buffer.from(bytes));
        } catch (err) {
          expect(err).toMatchObject({ code: 'KV_ERR_PEER_PROTOCOL' });
        }
      }),
      { numRuns: 2000 },
    );
  });
});
