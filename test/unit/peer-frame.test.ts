import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import {
  DEFAULT_MAX_FRAME_BYTES,
  decodeRequest,
  decodeResponse,
  encodeError,
  encodeRequest,
  encodeResult,
  FrameDecoder,
  frameHeader,
  parsePeerAddress,
} from '../../src/peer/index.ts';

function frame(body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  return Buffer.concat([frameHeader(b.length), b]);
}

/** Feeds `input` in chunks of the given sizes (cycling), pulling every frame after each push. */
function feed(input: Buffer, max: number, sizes: number[] = [input.length || 1]): string[] {
  const d = new FrameDecoder(max);
  const out: string[] = [];
  let i = 0;
  let k = 0;
  while (i < input.length) {
    const n = Math.max(1, sizes[k++ % sizes.length]!);
    d.push(input.subarray(i, i + n));
    for (let f = d.next(); f !== null; f = d.next()) out.push(f.toString('latin1'));
    i += n;
  }
  return out;
}

const SAMPLES: { name: string; input: Buffer; frames: string[]; rest: number; max?: number }[] = [
  { name: 'one frame', input: frame('hello'), frames: ['hello'], rest: 0 },
  { name: 'empty frame', input: frame(''), frames: [''], rest: 0 },
  {
    name: 'three frames back to back',
    input: Buffer.concat([frame('a'), frame(''), frame('x'.repeat(300))]),
    frames: ['a', '', 'x'.repeat(300)],
    rest: 0,
  },
  {
    name: 'unfinished body is held',
    input: Buffer.concat([frame('ab'), frame('cdef').subarray(0, 6)]),
    frames: ['ab'],
    rest: 6,
  },
  {
    name: 'unfinished header is held',
    input: Buffer.concat([frame('ab'), Buffer.from([0, 0])]),
    frames: ['ab'],
    rest: 2,
  },
  {
    name: 'frame of exactly the limit',
    input: frame('y'.repeat(64)),
    frames: ['y'.repeat(64)],
    rest: 0,
    max: 64,
  },
];

describe('FrameDecoder', () => {
  for (const s of SAMPLES) {
    it(`${s.name}: whole`, () => {
      expect(feed(s.input, s.max ?? 1024)).toEqual(s.frames);
    });
    it(`${s.name}: byte by byte`, () => {
      expect(feed(s.input, s.max ?? 1024, [1])).toEqual(s.frames);
    });
    it(`${s.name}: leaves the unfinished bytes buffered`, () => {
      const d = new FrameDecoder(s.max ?? 1024);
      d.push(s.input);
      while (d.next() !== null) {}
      expect(d.bufferedBytes).toBe(s.rest);
    });
  }

  it('gives the same frames for any split', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 8 }),
        (bodies, sizes) => {
          const input = Buffer.concat(bodies.map((b) => frame(Buffer.from(b))));
          const expected = bodies.map((b) => Buffer.from(b).toString('latin1'));
          expect(feed(input, 64, sizes)).toEqual(expected);
        },
      ),
    );
  });

  it('returns a view for a frame within one chunk and a copy across chunks', () => {
    for (const body of ['abc', 'a'.repeat(5000)]) {
      const input = Buffer.concat([frame(body), frame('defg')]);
      const d = new FrameDecoder();
      d.push(input.subarray(0, 4 + body.length + 2));
      const first = d.next()!;
      d.push(input.subarray(4 + body.length + 2));
      const second = d.next()!;
      input.fill(0x2e);
      // A short read whose frame is taken before the next push is not copied either.
      expect(first.toString()).toBe('.'.repeat(body.length));
      expect(second.toString()).toBe('defg');
    }
  });

  it('copies what is left of a chunk under 4 KiB at the next push: of reads a byte each, it keeps the last at most', () => {
    const input = Buffer.concat([frame('hello'), frame('world'), frame('x'.repeat(300))]);
    for (const pull of [true, false]) {
      const d = new FrameDecoder();
      const out: string[] = [];
      let before: Buffer | null = null;
      for (const b of input) {
        const read = Buffer.from([b]);
        d.push(read);
        // Every read but the last pushed is no longer the decoder's.
        before?.fill(0x2e);
        before = read;
        if (pull) for (let f = d.next(); f !== null; f = d.next()) out.push(f.toString());
      }
      for (let f = d.next(); f !== null; f = d.next()) out.push(f.toString());
      expect(out).toEqual(['hello', 'world', 'x'.repeat(300)]);
    }
  });

  for (const mode of ['whole', 'byte by byte'] as const) {
    it(`rejects an oversize frame as soon as its header arrives (${mode})`, () => {
      const d = new FrameDecoder(16);
      const input = Buffer.concat([frame('ok'), frameHeader(17)]);
      const got: string[] = [];
      let error: unknown;
      const chunks = mode === 'whole' ? [input] : [...input].map((b) => Buffer.from([b]));
      for (const c of chunks) {
        d.push(c);
        try {
          for (let f = d.next(); f !== null; f = d.next()) got.push(f.toString());
        } catch (err) {
          error = err;
          break;
        }
      }
      expect(got).toEqual(['ok']);
      expect(error).toBeInstanceOf(KvError);
      expect((error as KvError).code).toBe('KV_ERR_PEER_PROTOCOL');
      expect((error as KvError).message).toMatch(/^peer: frame of 17 bytes/);
      // Stays failed: the connection must be closed.
      d.push(frame('more'));
      expect(() => d.next()).toThrow(KvError);
      expect(d.bufferedBytes).toBe(0);
    });
  }

  it('defaults to a 64 MiB limit', () => {
    const d = new FrameDecoder();
    expect(d.maxFrameBytes).toBe(DEFAULT_MAX_FRAME_BYTES);
    d.push(frameHeader(DEFAULT_MAX_FRAME_BYTES + 1));
    expect(() => d.next()).toThrow(/over the limit of 67108864/);
  });

  it('tells the size of the frame being received once its header is in, until it is whole', () => {
    const d = new FrameDecoder();
    const big = frame(Buffer.alloc(100_000, 1));
    expect(d.partialFrameBytes).toBe(0);
    d.push(big.subarray(0, 2)); // half a header
    expect(d.partialFrameBytes).toBe(0);
    d.push(big.subarray(2, 50_000));
    expect(d.partialFrameBytes).toBe(big.length);
    expect(d.next()).toBeNull();
    d.push(Buffer.concat([big.subarray(50_000), frame('x')]));
    // Whole frames waiting for next() are not being received.
    expect(d.partialFrameBytes).toBe(0);
    expect(d.next()?.length).toBe(100_000);
    expect(d.next()?.toString()).toBe('x');
    expect(d.partialFrameBytes).toBe(0);
  });
});

describe('peer codec', () => {
  it('round-trips requests; Buffers and Uint8Arrays come back as Buffers', () => {
    const body = {
      key: Buffer.from([0, 1, 2, 255]),
      raw: new Uint8Array([9, 8]),
      big: 2n ** 60n,
      n: 2 ** 40,
      list: ['a', null, true, 1.5],
      none: undefined,
      empty: Buffer.alloc(0),
    };
    const req = decodeRequest(encodeRequest(7, 'put', body));
    expect(req.i).toBe(7);
    expect(req.m).toBe('put');
    const b = req.b as typeof body;
    expect(Buffer.isBuffer(b.key)).toBe(true);
    expect(b.key.equals(body.key)).toBe(true);
    expect(Buffer.isBuffer(b.raw)).toBe(true);
    expect([...b.raw]).toEqual([9, 8]);
    expect(Buffer.isBuffer(b.empty) && b.empty.length === 0).toBe(true);
    expect(b.big).toBe(2n ** 60n);
    expect(b.n).toBe(2 ** 40);
    expect(b.list).toEqual(['a', null, true, 1.5]);
    expect('none' in b && b.none === undefined).toBe(true);
  });

  it('decoded Buffers do not share or pin the received chunk: they view a copy of their frame', () => {
    const values = [Buffer.from('value'), Buffer.alloc(40_000, 7)]; // under and over the pool's limit
    for (const value of values) {
      const encoded = encodeRequest(1, 'm', { a: value, b: Buffer.from('other') });
      // The frame as FrameDecoder hands it out: a view into a 64 KiB socket chunk.
      const chunk = Buffer.alloc(64 * 1024);
      encoded.copy(chunk, 100);
      const frame = chunk.subarray(100, 100 + encoded.length);
      const body = decodeRequest(frame).b as { a: Buffer; b: Buffer };
      chunk.fill(0);
      expect(body.a.equals(value)).toBe(true);
      expect(body.b.toString()).toBe('other');
      expect(body.a.buffer).not.toBe(chunk.buffer);
      // What keeping one holds: a slice of Node's 64 KiB pool, or a large frame's own bytes.
      if (encoded.length >= Buffer.poolSize >>> 1) {
        expect(body.a.buffer.byteLength).toBe(encoded.length);
      }
      // A large frame FrameDecoder copied out of several chunks is decoded in place.
      const copied = new FrameDecoder();
      const framed = Buffer.concat([frameHeader(encoded.length), encoded]);
      copied.push(framed.subarray(0, 10));
      copied.push(framed.subarray(10));
      const whole = copied.next()!;
      const inPlace = decodeRequest(whole).b as { a: Buffer };
      expect(inPlace.a.equals(value)).toBe(true);
      whole.fill(0); // in place: the frame's own memory; copied: a pool slice of its own
      expect(inPlace.a.equals(value)).toBe(encoded.length < Buffer.poolSize >>> 1);
      // A frame decoded from the same chunk again shares nothing with the first.
      encoded.copy(chunk, 100);
      const again = decodeRequest(frame).b as { a: Buffer };
      again.a.fill(1);
      expect(body.a.equals(value)).toBe(true);
    }
  });

  it('round-trips results and errors', () => {
    expect(decodeResponse(encodeResult(3, { ok: 1 }))).toEqual({ i: 3, ok: true, r: { ok: 1 } });
    expect(decodeResponse(encodeResult(4, undefined))).toEqual({ i: 4, ok: true, r: undefined });
    const err = new KvError('KV_ERR_STORAGE', 'storage: disk full');
    expect(decodeResponse(encodeError(5, err))).toEqual({
      i: 5,
      ok: false,
      code: 'KV_ERR_STORAGE',
      message: 'storage: disk full',
    });
  });

  it('maps an unknown remote code to KV_ERR_INTERNAL, keeping the code in the message', () => {
    const raw = encodeError(6, new KvError('KV_ERR_STORAGE', 'x'));
    const patched = Buffer.from(
      raw.toString('latin1').replace('KV_ERR_STORAGE', 'KV_ERR_FUTURE1'),
      'latin1',
    );
    expect(decodeResponse(patched)).toEqual({
      i: 6,
      ok: false,
      code: 'KV_ERR_INTERNAL',
      message: 'KV_ERR_FUTURE1: x',
    });
  });

  it('rejects malformed messages with KV_ERR_PEER_PROTOCOL', () => {
    const bad = [
      Buffer.alloc(0),
      Buffer.from([0x93, 1]),
      encodeResult(1, 1).subarray(0, 3),
      encodeRequest(1, 'm', 1).subarray(1),
    ];
    for (const b of bad) {
      expect(() => decodeRequest(b)).toThrow(
        expect.objectContaining({ code: 'KV_ERR_PEER_PROTOCOL' }),
      );
      expect(() => decodeResponse(b)).toThrow(
        expect.objectContaining({ code: 'KV_ERR_PEER_PROTOCOL' }),
      );
    }
    // Well-formed msgpack, wrong shape.
    expect(() => decodeRequest(encodeResult(1, 2))).toThrow(/request frame is not/);
    expect(() => decodeRequest(encodeRequest(-1, 'm', 1))).toThrow(/request frame is not/);
  });

  it('refuses to encode what msgpack cannot hold', () => {
    expect(() => encodeRequest(1, 'm', 2n ** 70n)).toThrow(
      expect.objectContaining({ code: 'KV_ERR_INTERNAL' }),
    );
  });
});

describe('parsePeerAddress', () => {
  it('splits host and port', () => {
    expect(parsePeerAddress('127.0.0.1:7946')).toEqual({ host: '127.0.0.1', port: 7946 });
    expect(parsePeerAddress('kvstore-0.kvstore:7946')).toEqual({
      host: 'kvstore-0.kvstore',
      port: 7946,
    });
    expect(parsePeerAddress('[::1]:7946')).toEqual({ host: '::1', port: 7946 });
  });

  it('rejects anything else', () => {
    for (const a of [
      '',
      'host',
      ':1',
      'host:',
      'host:0',
      'host:65536',
      'h:1x',
      '::1:80',
      '[::1]',
    ]) {
      expect(() => parsePeerAddress(a), a).toThrow(
        expect.objectContaining({ code: 'KV_ERR_INVALID_ARGUMENT' }),
      );
    }
  });
});
