import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ARG_OVERHEAD,
  encodeRespReply,
  type Reply,
  RespDecoder,
  type RespFrame,
  type RespLimits,
} from '../../src/protocol/index.ts';
import { fuzzRuns } from '../helpers/fuzz.ts';

type Out = { args: string[] } | { error: string };

const LIMITS: RespLimits = {
  maxBulkBytes: 300,
  maxArgs: 8,
  maxRequestBytes: 2000,
  maxInlineBytes: 32,
};

function show(f: RespFrame): Out {
  return f.kind === 'request'
    ? { args: f.args.map((a) => a.toString('latin1')) }
    : { error: f.message };
}

/** Feeds `input` in chunks of the given sizes (cycling) and collects every frame. */
function feed(input: Buffer, sizes: number[] = [input.length || 1], limits = LIMITS): Out[] {
  const d = new RespDecoder(limits);
  const out: Out[] = [];
  let i = 0;
  let k = 0;
  while (i < input.length) {
    const n = Math.max(1, sizes[k++ % sizes.length]!);
    d.push(input.subarray(i, i + n), (f) => out.push(show(f)));
    i += n;
  }
  return out;
}

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const lat = (b: Buffer) => b.toString('latin1');
const req = (...args: (string | Buffer)[]) =>
  Buffer.concat([
    Buffer.from(`*${args.length}\r\n`),
    ...args.flatMap((a) => {
      const b = typeof a === 'string' ? Buffer.from(a, 'latin1') : a;
      return [Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')];
    }),
  ]);

const SAMPLES: { name: string; input: Buffer; frames: Out[] }[] = [
  { name: 'one request', input: req('GET', 'k'), frames: [{ args: ['GET', 'k'] }] },
  {
    name: 'pipelined requests',
    input: Buffer.concat([req('SET', 'a', 'b'), req('GET', 'a'), req('PING')]),
    frames: [{ args: ['SET', 'a', 'b'] }, { args: ['GET', 'a'] }, { args: ['PING'] }],
  },
  {
    name: 'binary-safe bulk strings: every byte, CRLF inside',
    input: req('SET', ALL_BYTES, 'x\r\ny'),
    frames: [{ args: ['SET', lat(ALL_BYTES), 'x\r\ny'] }],
  },
  {
    name: 'empty bulk string',
    input: req('SET', 'k', ''),
    frames: [{ args: ['SET', 'k', ''] }],
  },
  {
    name: '*0 and *-1 are empty requests',
    input: Buffer.concat([Buffer.from('*0\r\n*-1\r\n'), req('PING')]),
    frames: [{ args: ['PING'] }],
  },
  {
    name: 'inline requests, spaces and tabs, blank lines ignored',
    input: Buffer.from('PING\r\n\r\n  SET   a\tb \r\nGET a\n'),
    frames: [{ args: ['PING'] }, { args: ['SET', 'a', 'b'] }, { args: ['GET', 'a'] }],
  },
  {
    name: 'inline between arrays',
    input: Buffer.concat([req('GET', 'a'), Buffer.from('PING\r\n'), req('GET', 'b')]),
    frames: [{ args: ['GET', 'a'] }, { args: ['PING'] }, { args: ['GET', 'b'] }],
  },
  {
    name: 'largest bulk string allowed',
    input: req('SET', 'k', 'v'.repeat(300)),
    frames: [{ args: ['SET', 'k', 'v'.repeat(300)] }],
  },
  {
    name: 'unfinished request is held',
    input: Buffer.concat([req('GET', 'a'), req('GET', 'b').subarray(0, 10)]),
    frames: [{ args: ['GET', 'a'] }],
  },
  // Protocol errors: the frames before, one error, then nothing.
  {
    name: 'non-numeric count',
    input: Buffer.concat([req('PING'), Buffer.from('*x\r\n'), req('PING')]),
    frames: [{ args: ['PING'] }, { error: 'Protocol error: invalid multibulk length' }],
  },
  {
    name: 'count without digits',
    input: Buffer.from('*\r\n'),
    frames: [{ error: 'Protocol error: invalid multibulk length' }],
  },
  {
    name: 'CR not followed by LF in a header',
    input: Buffer.from('*1\rX'),
    frames: [{ error: 'Protocol error: invalid multibulk length' }],
  },
  {
    name: 'element that is not a bulk string',
    input: Buffer.from('*2\r\n+GET\r\n'),
    frames: [{ error: "Protocol error: expected '$', got '+'" }],
  },
  {
    name: 'negative bulk length',
    input: Buffer.from('*1\r\n$-1\r\n'),
    frames: [{ error: 'Protocol error: invalid bulk length' }],
  },
  {
    name: 'bulk string longer than declared',
    input: Buffer.from('*1\r\n$3\r\nabcd\r\n'),
    frames: [{ error: 'Protocol error: expected CRLF after bulk string' }],
  },
  {
    name: 'bulk string over the limit (refused at its header)',
    input: Buffer.from('*2\r\n$3\r\nSET\r\n$301\r\n'),
    frames: [{ error: 'Protocol error: invalid bulk length' }],
  },
  {
    name: 'huge declared bulk length (refused before its end)',
    input: Buffer.from('*1\r\n$99999999999999999999'),
    frames: [{ error: 'Protocol error: invalid bulk length' }],
  },
  {
    name: 'too many elements',
    input: Buffer.from('*9\r\n'),
    frames: [{ error: 'Protocol error: invalid multibulk length' }],
  },
  {
    name: 'request over the byte budget',
    input: req('MSET', 'a', 'v'.repeat(300), 'b', 'v'.repeat(300), 'c', 'v'.repeat(300)),
    frames: [{ error: 'Protocol error: request over 2000 bytes' }],
  },
  {
    name: 'inline request over the limit',
    input: Buffer.from(`GET ${'k'.repeat(40)}\r\n`),
    frames: [{ error: 'Protocol error: too big inline request' }],
  },
];

/**
 * Feeds `input` as feed() does, with `fast` (GET or SET) offered to onGet or onSet, which takes
 * the requests whose key does not start with 'x' (the rest become frames).
 */
function viaFast(input: Buffer, sizes: number[], fast: 'GET' | 'SET'): Out[] {
  const d = new RespDecoder(LIMITS);
  const out: Out[] = [];
  const take = (...args: Buffer[]) => {
    if (args[0]![0] === 0x78) return false;
    out.push({ args: [fast, ...args.map(lat)] });
    return true;
  };
  for (let i = 0, k = 0; i < input.length; ) {
    const n = Math.max(1, sizes[k++ % sizes.length]!);
    const chunk = input.subarray(i, i + n);
    if (fast === 'GET') d.push(chunk, (f) => out.push(show(f)), take);
    else d.push(chunk, (f) => out.push(show(f)), undefined, take);
    i += n;
  }
  return out;
}

/**
 * Runs `check` on copies of `input` with up to three bytes changed to some of `chars`, each fed
 * in chunks of `sizes` (cycling).
 */
function forDamaged(
  input: Buffer,
  chars: string,
  check: (damaged: Buffer, sizes: number[]) => void,
): void {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(input.length - 1), fc.constantFrom(...chars.split(''))), {
        maxLength: 3,
      }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 }),
      (edits, sizes) => {
        const damaged = Buffer.from(input);
        for (const [at, ch] of edits) damaged[at] = ch.charCodeAt(0);
        check(damaged, sizes);
      },
    ),
    { numRuns: fuzzRuns(300) },
  );
}

describe('RespDecoder', () => {
  for (const s of SAMPLES) {
    it(`${s.name}: whole, byte by byte, and in odd chunks`, () => {
      expect(feed(s.input)).toEqual(s.frames);
      expect(feed(s.input, [1])).toEqual(s.frames);
      expect(feed(s.input, [2, 3, 5, 7])).toEqual(s.frames);
    });
  }

  it('gives the same frames for every split of every sample', () => {
    const input = Buffer.concat(SAMPLES.slice(0, 8).map((s) => s.input));
    const expected = SAMPLES.slice(0, 8).flatMap((s) => s.frames);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 }), (sizes) => {
        expect(feed(input, sizes)).toEqual(expected);
      }),
      { numRuns: fuzzRuns(100) },
    );
  });

  it('decodes a damaged stream the same whole as byte by byte (one-pass and state machine agree)', () => {
    const valid = Buffer.concat(SAMPLES.slice(0, 8).map((s) => s.input));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.constantFrom(...'*$\r\n09-a '.split(''))), {
          maxLength: 3,
        }),
        (edits) => {
          const input = Buffer.from(valid);
          for (const [at, ch] of edits) input[at] = ch.charCodeAt(0);
          expect(feed(input)).toEqual(feed(input, [1]));
        },
      ),
      { numRuns: fuzzRuns(300) },
    );
  });

  it('round-trips any arguments, whatever the split', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1 }),
        (args, sizes) => {
          const bufs = args.map((a) => Buffer.from(a));
          expect(feed(req(...bufs), sizes)).toEqual([{ args: bufs.map(lat) }]);
        },
      ),
      { numRuns: fuzzRuns(100) },
    );
  });

  it('ignores everything after an error until reset', () => {
    const d = new RespDecoder(LIMITS);
    const out: Out[] = [];
    d.push(Buffer.from('*1\r\n$x'), (f) => out.push(show(f)));
    d.push(req('PING'), (f) => out.push(show(f)));
    expect(out).toEqual([{ error: 'Protocol error: invalid bulk length' }]);
    d.reset();
    d.push(req('PING'), (f) => out.push(show(f)));
    expect(out.at(-1)).toEqual({ args: ['PING'] });
  });

  it('counts the bytes of the unfinished request it holds: 0 between requests and after an error', () => {
    const noop = () => {};
    const d = new RespDecoder(LIMITS);
    // Byte by byte: the count grows with every argument byte received, by ARG_OVERHEAD at each
    // argument's header, and is 0 once the request is whole.
    const input = req('SET', 'key', 'v'.repeat(100));
    const seen: number[] = [];
    for (let i = 0; i < input.length; i++) {
      d.push(input.subarray(i, i + 1), noop);
      seen.push(d.bufferedBytes);
    }
    expect(seen.at(-1)).toBe(0);
    expect(Math.max(...seen)).toBe(3 + 3 + 100 + 3 * ARG_OVERHEAD);
    expect(seen.slice(0, -1).every((n, i) => i === 0 || n >= seen[i - 1]!)).toBe(true);
    // In the middle of a value split across reads: what arrived of it.
    d.push(Buffer.from('*2\r\n$3\r\nGET\r\n$10\r\nab'), noop);
    expect(d.bufferedBytes).toBe(3 + 2 + 2 * ARG_OVERHEAD);
    d.reset();
    expect(d.bufferedBytes).toBe(0);
    // An inline line: its bytes.
    d.push(Buffer.from('PING pi'), noop);
    expect(d.bufferedBytes).toBe(7);
    d.push(Buffer.from('ng\r\n'), noop);
    expect(d.bufferedBytes).toBe(0);
    // A malformed frame drops the request.
    d.push(Buffer.from('*2\r\n$3\r\nGET\r\n$x'), noop);
    expect(d.bufferedBytes).toBe(0);
  });

  it('tells the frame callback the bytes of the request it completes, as they were counted unfinished', () => {
    const d = new RespDecoder(LIMITS);
    const seen: number[] = [];
    const onFrame = () => seen.push(d.requestBytes);
    const set = req('SET', 'key', 'v'.repeat(100));
    // Whole in one read, and byte by byte: the same count, the highest bufferedBytes reached.
    d.push(set, onFrame);
    let held = 0;
    for (let i = 0; i < set.length; i++) {
      d.push(set.subarray(i, i + 1), onFrame);
      held = Math.max(held, d.bufferedBytes);
    }
    expect(seen).toEqual([3 + 3 + 100 + 3 * ARG_OVERHEAD, held]);
    // GET offered whole to onGet, and an inline line.
    d.push(req('GET', 'abc'), onFrame, () => {
      seen.push(d.requestBytes);
      return true;
    });
    d.push(Buffer.from('PING pi'), onFrame);
    d.push(Buffer.from('ng\r\n'), onFrame);
    expect(seen.slice(2)).toEqual([3 + 3 + 2 * ARG_OVERHEAD, 'PING ping\r'.length]);
  });

  it('bounds memory: a huge declared count is refused before any element arrives', () => {
    const big: RespLimits = { ...LIMITS, maxArgs: 1024 * 1024, maxRequestBytes: 10 * ARG_OVERHEAD };
    expect(feed(Buffer.from('*11\r\n'), [1], big)).toEqual([
      { error: 'Protocol error: invalid multibulk length' },
    ]);
    expect(feed(req(...Array.from({ length: 10 }, () => '')), [1], big)).toHaveLength(1);
  });

  it('offers whole GETs to onGet, which changes nothing but who takes them', () => {
    // onGet takes the keys it likes (not those starting with 'x') and leaves the rest as frames.
    const viaGet = (input: Buffer, sizes: number[]) => viaFast(input, sizes, 'GET');
    const same = (frames: Out[]) =>
      frames.map((f) =>
        'args' in f && f.args.length === 2 && f.args[0]!.toUpperCase() === 'GET'
          ? { args: ['GET', f.args[1]!] }
          : f,
      );
    const plain = (input: Buffer) => same(feed(input));
    const input = Buffer.concat([
      req('get', 'a'),
      req('GET', 'xa'),
      req('GeT', ''),
      req('GET', 'k'.repeat(300)),
      req('GET', 'k'.repeat(301)), // over maxBulkBytes: the general way words the error
      ...SAMPLES.slice(0, 8).map((s) => s.input),
    ]);
    expect(same(viaGet(input, [input.length]))).toEqual(plain(input));
    expect(same(viaGet(input, [1]))).toEqual(plain(input));
    const taken: string[] = [];
    new RespDecoder(LIMITS).push(
      req('get', 'a'),
      () => {},
      (key) => taken.push(lat(key)) > 0,
    );
    expect(taken).toEqual(['a']);
    forDamaged(input, '*$\r\n09-aGx ', (damaged, sizes) =>
      expect(same(viaGet(damaged, sizes))).toEqual(plain(damaged)),
    );
  });

  it('offers whole SETs without options to onSet, which changes nothing but who takes them', () => {
    const same = (frames: Out[]) =>
      frames.map((f) =>
        'args' in f && f.args.length === 3 && f.args[0]!.toUpperCase() === 'SET'
          ? { args: ['SET', ...f.args.slice(1)] }
          : f,
      );
    const input = Buffer.concat([
      req('set', 'a', 'v'),
      req('SET', 'xa', 'v'), // not taken: a frame
      req('SeT', '', ''),
      req('SET', 'k'.repeat(300), 'v'.repeat(300)),
      req('SET', 'k', 'v'.repeat(301)), // over maxBulkBytes: the general way words the error
      req('SET', 'a', 'v', 'EX', '10'),
      req('SETX', 'a', 'v'),
      req('GET', 'a'),
      ...SAMPLES.slice(0, 8).map((s) => s.input),
    ]);
    const plain = same(feed(input));
    expect(plain).toContainEqual({ args: ['SET', '', ''] });
    expect(same(viaFast(input, [input.length], 'SET'))).toEqual(plain);
    expect(same(viaFast(input, [1], 'SET'))).toEqual(plain);
    // Taken whole, with the count of bytes the general way makes.
    const d = new RespDecoder(LIMITS);
    const taken: string[] = [];
    d.push(
      req('SET', 'key', 'value'),
      (f) => taken.push(show(f).toString()),
      undefined,
      (k, v) => {
        taken.push(`${lat(k)}=${lat(v)} ${d.requestBytes}`);
        return true;
      },
    );
    expect(taken).toEqual([`key=value ${3 + 3 + 5 + 3 * ARG_OVERHEAD}`]);
    forDamaged(input, '*$\r\n039-aSx ', (damaged, sizes) =>
      expect(same(viaFast(damaged, sizes, 'SET'))).toEqual(same(feed(damaged))),
    );
  });

  it('copies nothing for a bulk string that arrives in one chunk', () => {
    const input = req('GET', 'key');
    let frame: RespFrame | undefined;
    new RespDecoder(LIMITS).push(input, (f) => {
      frame = f;
    });
    expect(frame?.kind).toBe('request');
    if (frame?.kind === 'request') expect(frame.args[1]!.buffer).toBe(input.buffer);
  });
});

function resp(reply: Reply): string {
  const out: Buffer[] = [];
  encodeRespReply(reply, out);
  return Buffer.concat(out).toString('latin1');
}

describe('encodeRespReply', () => {
  it('heads every value length with $<n>, from the shared headers and past them', () => {
    const lengths = [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 1001, 4094, 4095, 4096, 70_000];
    for (const n of [...Array.from({ length: 4100 }, (_, i) => i), ...lengths]) {
      const chunks: Buffer[] = [];
      encodeRespReply(
        { type: 'value', value: Buffer.alloc(n, 120) },
        { push: (c) => chunks.push(c) },
      );
      const bytes = Buffer.concat(chunks);
      const head = `$${n}\r\n`;
      if (bytes.toString('latin1', 0, head.length) !== head || bytes.length !== head.length + n + 2)
        throw new Error(`length ${n}: ${JSON.stringify(bytes.subarray(0, 12).toString('latin1'))}`);
      // A header kept for the life of the process is not a slab of Node's 64 KiB pool.
      if (n < 4096) expect(chunks[0]!.buffer.byteLength).toBeLessThan(Buffer.poolSize);
    }
  });

  const b = (s: string) => Buffer.from(s, 'latin1');
  it('encodes every reply type', () => {
    expect(resp({ type: 'ok' })).toBe('+OK\r\n');
    expect(resp({ type: 'pong' })).toBe('+PONG\r\n');
    expect(resp({ type: 'not_found' })).toBe('$-1\r\n');
    expect(resp({ type: 'value', value: b('a\r\nb') })).toBe('$4\r\na\r\nb\r\n');
    expect(resp({ type: 'value', value: b('') })).toBe('$0\r\n\r\n');
    expect(resp({ type: 'info', text: '{"a":1}' })).toBe('$7\r\n{"a":1}\r\n');
    expect(resp({ type: 'integer', value: 0 })).toBe(':0\r\n');
    expect(resp({ type: 'integer', value: 12345 })).toBe(':12345\r\n');
    expect(resp({ type: 'integer', value: -1 })).toBe(':-1\r\n');
    expect(resp({ type: 'status', text: 'A\r\nB' })).toBe('+A B\r\n');
    expect(resp({ type: 'array', items: null })).toBe('*-1\r\n');
    expect(resp({ type: 'array', items: [] })).toBe('*0\r\n');
    expect(
      resp({
        type: 'array',
        items: [
          { type: 'value', value: b('x') },
          { type: 'not_found' },
          { type: 'integer', value: 2 },
        ],
      }),
    ).toBe('*3\r\n$1\r\nx\r\n$-1\r\n:2\r\n');
  });

  it('encodes keys as an array, and paged keys as [keys, next or null]', () => {
    expect(resp({ type: 'keys', keys: [b('a'), b('b c')], paged: false, next: null })).toBe(
      '*2\r\n$1\r\na\r\n$3\r\nb c\r\n',
    );
    expect(resp({ type: 'keys', keys: [], paged: false, next: null })).toBe('*0\r\n');
    expect(resp({ type: 'keys', keys: [b('a')], paged: true, next: null })).toBe(
      '*2\r\n*1\r\n$1\r\na\r\n$-1\r\n',
    );
    expect(resp({ type: 'keys', keys: [b('a')], paged: true, next: b('a') })).toBe(
      '*2\r\n*1\r\n$1\r\na\r\n$1\r\na\r\n',
    );
  });

  it('encodes errors as -ERR <CODE> <message>, or in their Redis form', () => {
    expect(
      resp({
        type: 'error',
        code: 'KV_ERR_UNAVAILABLE',
        message: 'replication: write\nquorum 1/2',
      }),
    ).toBe('-ERR UNAVAILABLE replication: write quorum 1/2\r\n');
    expect(
      resp({
        type: 'error',
        code: 'KV_ERR_INVALID_ARGUMENT',
        message: 'x',
        resp: 'NOPROTO unsupported protocol version',
      }),
    ).toBe('-NOPROTO unsupported protocol version\r\n');
  });

  it('renders INFO sections as one bulk string', () => {
    const text = resp({
      type: 'sections',
      sections: [
        { name: 'server', fields: [['kvstore_version', '1.0']] },
        { name: 'keyspace', fields: [['db0', 'keys=1,expires=0,avg_ttl=0']] },
      ],
    });
    const body =
      '# Server\r\nkvstore_version:1.0\r\n\r\n# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n';
    expect(text).toBe(`$${body.length}\r\n${body}\r\n`);
  });
});
