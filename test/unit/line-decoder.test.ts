import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineDecoder, type LineFrame } from '../../src/protocol/index.ts';
import { fuzzRuns } from '../helpers/fuzz.ts';

type Out = { kind: 'line'; text: string } | { kind: 'too_long'; bytes: number };

function show(f: LineFrame): Out {
  return f.kind === 'line' ? { kind: 'line', text: f.line.toString('latin1') } : f;
}

/** Feeds `input` in chunks of the given sizes (cycling) and collects every frame. */
function feed(input: Buffer, max: number, sizes: number[] = [input.length || 1]): Out[] {
  const d = new LineDecoder(max);
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

const SAMPLES: { name: string; input: string; max: number; frames: Out[] }[] = [
  { name: 'one line', input: 'PUT a b\n', max: 64, frames: [{ kind: 'line', text: 'PUT a b' }] },
  {
    name: 'crlf endings',
    input: 'GET a\r\nGET b\r\n',
    max: 64,
    frames: [
      { kind: 'line', text: 'GET a' },
      { kind: 'line', text: 'GET b' },
    ],
  },
  {
    name: 'blank lines kept as empty frames',
    input: '\n\r\nPING\n',
    max: 64,
    frames: [
      { kind: 'line', text: '' },
      { kind: 'line', text: '' },
      { kind: 'line', text: 'PING' },
    ],
  },
  {
    name: 'unfinished line is held',
    input: 'PUT a b\nGET',
    max: 64,
    frames: [{ kind: 'line', text: 'PUT a b' }],
  },
  {
    name: 'over-long line discarded, next line intact',
    input: `PUT k ${'x'.repeat(40)}\nGET k\n`,
    max: 16,
    frames: [
      { kind: 'too_long', bytes: 46 },
      { kind: 'line', text: 'GET k' },
    ],
  },
  {
    name: 'line exactly at the limit with crlf',
    input: `${'y'.repeat(16)}\r\n`,
    max: 16,
    frames: [{ kind: 'line', text: 'y'.repeat(16) }],
  },
  {
    name: 'one byte over the limit',
    input: `${'y'.repeat(17)}\n`,
    max: 16,
    frames: [{ kind: 'too_long', bytes: 17 }],
  },
  {
    name: 'value with spaces and only \\r inside',
    input: 'PUT k a b\rc\n',
    max: 64,
    frames: [{ kind: 'line', text: 'PUT k a b\rc' }],
  },
];

describe('LineDecoder', () => {
  for (const s of SAMPLES) {
    it(`${s.name}: whole`, () => {
      expect(feed(Buffer.from(s.input, 'latin1'), s.max)).toEqual(s.frames);
    });
    it(`${s.name}: byte by byte`, () => {
      expect(feed(Buffer.from(s.input, 'latin1'), s.max, [1])).toEqual(s.frames);
    });
  }

  it('never buffers more than the limit while discarding a huge line', () => {
    const d = new LineDecoder(1024);
    const frames: LineFrame[] = [];
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < 100; i++) {
      d.push(chunk, (f) => frames.push(f));
      expect(d.bufferedBytes).toBeLessThanOrEqual(1025);
    }
    d.push(Buffer.from('\nPING\n'), (f) => frames.push(f));
    expect(frames.map(show)).toEqual([
      { kind: 'too_long', bytes: 100 * 64 * 1024 },
      { kind: 'line', text: 'PING' },
    ]);
  });

  it('reset forgets a half line', () => {
    const d = new LineDecoder(64);
    const frames: LineFrame[] = [];
    d.push(Buffer.from('PUT a half'), (f) => frames.push(f));
    expect(d.midLine).toBe(true);
    d.reset();
    d.push(Buffer.from('PING\n'), (f) => frames.push(f));
    expect(frames.map(show)).toEqual([{ kind: 'line', text: 'PING' }]);
  });

  it('gives the same frames however the stream is split (property)', () => {
    const lineArb = fc.string({ maxLength: 40 }).map((s) => s.replace(/\n/g, ''));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(lineArb, fc.boolean()), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 8 }),
        (lines, sizes) => {
          const input = Buffer.from(
            lines.map(([l, crlf]) => `${l}${crlf ? '\r\n' : '\n'}`).join(''),
            'latin1',
          );
          expect(feed(input, 24, sizes)).toEqual(feed(input, 24));
        },
      ),
      { numRuns: fuzzRuns(100) },
    );
  });
});
