// The write-ahead log's replay decisions (scanLog), for damage at every byte: damage before the
// last group commit is corruption, damage in the last group is a torn tail.

import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  encodeGroupHeader,
  GROUP_HEADER,
  type SegmentBytes,
  scanLog,
  seed,
  WAL_PUT,
} from '../../src/storage/wal-format.ts';

/** One group of `n` records with keys `<name>0..`, as the log writes it. */
function group(seq: number, name: string, n: number, seal: { seq: number; end: number } | null) {
  const records = Array.from({ length: n }, (_, i) => {
    const key = Buffer.from(`${name}${i}`);
    const payload = Buffer.from(`value-${name}-${i}`);
    const body = Buffer.concat([Buffer.from([WAL_PUT, 0, 0, 0, 0]), key, payload]);
    body.writeUInt32LE(key.length, 1);
    const head = Buffer.alloc(8);
    head.writeUInt32LE(body.length, 0);
    head.writeUInt32LE(crc32(body, seed(seq)), 4);
    return Buffer.concat([head, body]);
  });
  const body = Buffer.concat(records);
  const header = Buffer.alloc(GROUP_HEADER);
  encodeGroupHeader(header, seq, body.length, n, seal);
  return Buffer.concat([header, body]);
}

/** Segments 7 (groups a: 3 records, b: 2) and 8 (c: 2, sealing 7; d: 3), zero-padded. */
function log() {
  const a = group(7, 'a', 3, null);
  const b = group(7, 'b', 2, null);
  const end7 = a.length + b.length;
  const c = group(8, 'c', 2, { seq: 7, end: end7 });
  const d = group(8, 'd', 3, null);
  const pad = (bufs: Buffer[]) => Buffer.concat([...bufs, Buffer.alloc(512)]);
  return {
    seg7: pad([a, b]),
    seg8: pad([c, d]),
    // Group boundaries of each segment, with the records of each group.
    groups7: [
      { start: 0, end: a.length, records: 3 },
      { start: a.length, end: end7, records: 2 },
    ],
    groups8: [
      { start: 0, end: c.length, records: 2 },
      { start: c.length, end: c.length + d.length, records: 3 },
    ],
  };
}

const keys = (segments: SegmentBytes[]) => scanLog(segments).entries.map((e) => e.key.toString());
const ALL = ['a0', 'a1', 'a2', 'b0', 'b1', 'c0', 'c1', 'd0', 'd1', 'd2'];

const flipped = (buf: Buffer, at: number) => {
  const copy = Buffer.from(buf);
  copy[at] = copy[at]! ^ 0x5a;
  return copy;
};

describe('write-ahead log replay decisions', () => {
  it('replays every group of an undamaged log, in order', () => {
    const l = log();
    const scan = scanLog([
      { seq: 7, buf: l.seg7 },
      { seq: 8, buf: l.seg8 },
    ]);
    expect(scan.entries.map((e) => e.key.toString())).toEqual(ALL);
    expect(scan.entries[0]!.payload.toString()).toBe('value-a-0');
    expect(scan).toMatchObject({ torn: null, corrupt: null });
    expect(scan.ends.get(7)).toBe(l.groups7[1]!.end);
    expect(keys([{ seq: 7, buf: l.seg7 }])).toEqual(ALL.slice(0, 5));
  });

  it('calls a flipped byte anywhere before the last group corruption, naming segment and offset', () => {
    const l = log();
    const checked: string[] = [];
    for (const [seq, groups, buf] of [
      [7, l.groups7, l.seg7],
      [8, l.groups8.slice(0, 1), l.seg8],
    ] as const) {
      for (let at = 0; at < groups.at(-1)!.end; at++) {
        const segments = [
          { seq: 7, buf: seq === 7 ? flipped(buf, at) : l.seg7 },
          { seq: 8, buf: seq === 8 ? flipped(buf, at) : l.seg8 },
        ];
        const scan = scanLog(segments);
        const hit = groups.find((g) => at >= g.start && at < g.end)!;
        expect({ seq, at, corrupt: scan.corrupt }).toMatchObject({
          corrupt: { segment: seq, groupStart: hit.start },
        });
        expect(scan.corrupt!.offset).toBeGreaterThanOrEqual(hit.start);
        expect(scan.corrupt!.offset).toBeLessThanOrEqual(at);
        // Replay keeps the groups before the damaged one, and counts what it would skip.
        const before = seq === 7 ? l.groups7.filter((g) => g.end <= hit.start) : l.groups7;
        expect(scan.entries).toHaveLength(before.reduce((n, g) => n + g.records, 0));
        expect(scan.corrupt!.droppedSegments).toBe(seq === 7 ? 1 : 0);
        checked.push(`${seq}:${at}`);
      }
    }
    expect(checked.length).toBeGreaterThan(200);
  });

  it('calls a flipped byte in the last group a torn tail and counts its records', () => {
    const l = log();
    const last = l.groups8[1]!;
    for (let at = last.start; at < last.end; at++) {
      const scan = scanLog([
        { seq: 7, buf: l.seg7 },
        { seq: 8, buf: flipped(l.seg8, at) },
      ]);
      expect({ at, corrupt: scan.corrupt }).toEqual({ at, corrupt: null });
      expect({ at, torn: scan.torn }).toMatchObject({
        torn: { segment: 8, groupStart: last.start, records: 3 },
      });
      expect(scan.entries.map((e) => e.key.toString())).toEqual(ALL.slice(0, 7));
    }
  });

  it('ignores bytes after the end of the log (preallocated zeros, a sealed segment tail)', () => {
    const l = log();
    for (let at = l.groups7[1]!.end; at < l.seg7.length; at++) {
      expect(
        keys([
          { seq: 7, buf: flipped(l.seg7, at) },
          { seq: 8, buf: l.seg8 },
        ]),
      ).toEqual(ALL);
    }
    for (let at = l.groups8[1]!.end; at < l.seg8.length; at++) {
      const scan = scanLog([
        { seq: 7, buf: l.seg7 },
        { seq: 8, buf: flipped(l.seg8, at) },
      ]);
      expect(scan).toMatchObject({ torn: null, corrupt: null });
      expect(scan.entries).toHaveLength(10);
    }
  });

  it('a last segment cut at any length keeps its whole groups; a cut group is a torn tail', () => {
    const l = log();
    for (let len = 0; len <= l.groups8[1]!.end; len++) {
      const scan = scanLog([
        { seq: 7, buf: l.seg7 },
        { seq: 8, buf: l.seg8.subarray(0, len) },
      ]);
      const whole = l.groups8.filter((g) => g.end <= len);
      const cut = l.groups8.find((g) => len > g.start && len < g.end);
      expect({ len, corrupt: scan.corrupt }).toEqual({ len, corrupt: null });
      expect(scan.entries).toHaveLength(5 + whole.reduce((n, g) => n + g.records, 0));
      // A cut inside the header leaves nothing to count; past it, the header says how many.
      if (cut && len >= cut.start + GROUP_HEADER) expect(scan.torn?.records).toBe(cut.records);
      if (!cut) expect(scan.torn).toBeNull();
    }
  });

  it('a segment cut short before the end its successor names is corruption', () => {
    const l = log();
    for (let len = 0; len < l.groups7[1]!.end; len++) {
      const scan = scanLog([
        { seq: 7, buf: l.seg7.subarray(0, len) },
        { seq: 8, buf: l.seg8 },
      ]);
      expect({ len, segment: scan.corrupt?.segment }).toEqual({ len, segment: 7 });
    }
  });

  it('a failed group left behind a seal is skipped, not replayed and not damage', () => {
    const l = log();
    // Segment 7 holds a third group whose write failed; segment 8 seals 7 before it.
    const failed = group(7, 'x', 2, null);
    const seg7 = Buffer.concat([l.seg7.subarray(0, l.groups7[1]!.end), failed, Buffer.alloc(64)]);
    const scan = scanLog([
      { seq: 7, buf: seg7 },
      { seq: 8, buf: l.seg8 },
    ]);
    expect(scan.entries.map((e) => e.key.toString())).toEqual(ALL);
    expect(scan).toMatchObject({ torn: null, corrupt: null });
  });

  it('never replays the groups of a recycled segment (another number, another CRC seed)', () => {
    const old = group(3, 'old', 4, null);
    const fresh = group(9, 'new', 1, null);
    const buf = Buffer.concat([old, old]);
    fresh.copy(buf, 0);
    const scan = scanLog([{ seq: 9, buf }]);
    expect(scan.entries.map((e) => e.key.toString())).toEqual(['new0']);
    expect(scan).toMatchObject({ torn: null, corrupt: null });
  });
});
