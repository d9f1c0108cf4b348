import { describe, expect, it } from 'vitest';
import type { Command, Reply } from '../../src/protocol/index.ts';
import { replyBound, replySize } from '../../src/server/reply-bytes.ts';

const LIMITS = { maxKeyBytes: 100, maxValueBytes: 1000, maxScanKeys: 50 };
const MULTI = 5000;
const k = (s: string) => Buffer.from(s);

describe('replyBound', () => {
  it('is the largest value for a read of one, every value an MGET may read, the keys a scan may return', () => {
    const cases: [Command, number][] = [
      [{ type: 'get', key: k('a') }, 1000],
      [{ type: 'getex', key: k('a'), change: { kind: 'none' } }, 1000],
      [{ type: 'mget', keys: [k('a'), k('b')] }, 2000],
      [{ type: 'mget', keys: Array.from({ length: 9 }, (_, i) => k(`k${i}`)) }, MULTI],
      [
        { type: 'range', start: k('a'), end: k('z'), page: { limit: null, cursor: null } },
        51 * 100,
      ],
      [{ type: 'prefix', prefix: k('a'), page: { limit: 3, cursor: null } }, 4 * 100],
      [{ type: 'put', key: k('a'), value: k('v') }, 0],
      [{ type: 'exists', keys: [k('a')] }, 0],
      [{ type: 'ping' }, 0],
    ];
    for (const [cmd, want] of cases) expect(replyBound(cmd, LIMITS, MULTI), cmd.type).toBe(want);
  });
});

describe('replySize', () => {
  it('counts the bytes of values and keys, in arrays too, and nothing else', () => {
    const value = (n: number): Reply => ({ type: 'value', value: Buffer.alloc(n) });
    expect(replySize(value(7))).toBe(7);
    expect(replySize({ type: 'keys', keys: [k('ab'), k('cde')], paged: false, next: null })).toBe(
      5,
    );
    expect(replySize({ type: 'array', items: [value(3), { type: 'not_found' }, value(4)] })).toBe(
      7,
    );
    expect(replySize({ type: 'array', items: null })).toBe(0);
    expect(replySize({ type: 'ok' })).toBe(0);
    expect(replySize({ type: 'error', code: 'KV_ERR_INTERNAL', message: 'x' })).toBe(0);
  });
});
