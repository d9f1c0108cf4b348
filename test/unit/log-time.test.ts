// isoTime(), the logger's timestamp: the text of Date.prototype.toISOString, without its time zone lookup.

import { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLogger, isoTime } from '../../src/observability/index.ts';

/** Last millisecond of 9999-12-31 and first of 0000-01-01: the years toISOString writes in 4 digits. */
const MAX_MS = 253402300799999;
const MIN_MS = -62167219200000;

describe('isoTime', () => {
  it('writes what toISOString writes, at the edges and for any time of years 0 to 9999', () => {
    const edges = [
      0,
      1,
      999,
      -1,
      MIN_MS,
      MAX_MS,
      Date.UTC(2024, 1, 29, 23, 59, 59, 999),
      Date.UTC(2100, 2, 1),
      Date.UTC(1000, 0, 1),
      Date.UTC(999, 11, 31, 23, 59, 59, 999),
      Date.now(),
    ];
    for (const ms of edges) expect(isoTime(ms), String(ms)).toBe(new Date(ms).toISOString());
    fc.assert(
      fc.property(fc.integer({ min: MIN_MS, max: MAX_MS }), (ms) => {
        expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 20000 },
    );
  });

  it("is each log line's time, as pino's isoTime wrote it", () => {
    const lines: string[] = [];
    const out = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const before = Date.now();
    createLogger('info', { node: 't' }, out).info({ n: 1 }, 'hello');
    const after = Date.now();
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!) as { time: string; msg: string; node: string; n: number };
    expect(entry).toMatchObject({ msg: 'hello', node: 't', n: 1 });
    expect(entry.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const t = Date.parse(entry.time);
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(after);
  });
});
