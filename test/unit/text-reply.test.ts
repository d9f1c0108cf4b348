// The text protocol's replies both ways: what the server encodes, protocol/ decodes to the same Reply.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorCode } from '../../src/errors/index.ts';
import {
  decodeTextReply,
  encodeTextReply,
  LineDecoder,
  type Reply,
  type TextReplyKind,
} from '../../src/protocol/index.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 500);

/** Encodes `reply` and reads it back as the client's line decoder and `kind` would. */
function roundTrip(kind: TextReplyKind, reply: Reply): Reply {
  const out: Buffer[] = [];
  encodeTextReply(reply, out);
  const lines: Buffer[] = [];
  new LineDecoder(1 << 20).push(Buffer.concat(out), (f) => {
    if (f.kind === 'line') lines.push(f.line);
  });
  // A paged scan answers two lines, unless it failed: an error is always one line.
  expect(lines).toHaveLength(kind === 'paged' && reply.type !== 'error' ? 2 : 1);
  return decodeTextReply(kind, lines[0]!, lines[1] ?? null);
}

const codes = Object.keys(ERROR_CODES) as ErrorCode[];
/** Messages as the node writes them: one line (the encoder folds CR/LF; not tested here). */
const message = fc.string({ maxLength: 60 }).filter((m) => !/[\r\n]/.test(m));
const error = fc.record({
  type: fc.constant('error' as const),
  code: fc.constantFrom(...codes),
  message,
});
/**
 * A value a text line carries unchanged: no LF (answered NOT_REPRESENTABLE), no final CR (the
 * line framing drops one), and not one that reads as another reply: `NOT_FOUND` or an error
 * line (the seed protocol's own ambiguity, documented on GET).
 */
const value = fc
  .uint8Array({ maxLength: 80 })
  .map((a) => Buffer.from(a))
  .filter(
    (v) =>
      !v.includes(0x0a) &&
      v.at(-1) !== 0x0d &&
      v.toString('latin1') !== 'NOT_FOUND' &&
      !v.toString('latin1').startsWith('ERR '),
  );
/** Keys a text line carries: printable, no space; sorted and unique as a scan answers them. */
const key = fc.stringMatching(/^[a-z0-9:_.-]{1,12}$/).map((k) => Buffer.from(k));
const keys = fc
  .uniqueArray(key, { maxLength: 20, selector: (k) => k.toString() })
  .map((ks) => ks.sort(Buffer.compare));

const arbitraries: Record<TextReplyKind, fc.Arbitrary<Reply>> = {
  ok: fc.constant({ type: 'ok' }),
  pong: fc.constant({ type: 'pong' }),
  removed: fc.constantFrom<Reply>({ type: 'ok' }, { type: 'not_found' }),
  value: fc.oneof(
    fc.constant<Reply>({ type: 'not_found' }),
    value.map((v): Reply => ({ type: 'value', value: v })),
  ),
  keys: keys.map((ks): Reply => ({ type: 'keys', keys: ks, paged: false, next: null })),
  paged: fc
    .tuple(keys, fc.option(key, { nil: null }))
    .map(([ks, next]): Reply => ({ type: 'keys', keys: ks, paged: true, next })),
  info: fc
    .string({ maxLength: 60 })
    .filter((t) => !/[\r\n]/.test(t) && !t.startsWith('ERR '))
    .map((text): Reply => ({ type: 'info', text })),
  integer: fc.integer({ min: -2, max: 2 ** 40 }).map((v): Reply => ({ type: 'integer', value: v })),
};

describe('text replies: decode(encode(r)) = r', () => {
  for (const [kind, arb] of Object.entries(arbitraries) as [TextReplyKind, fc.Arbitrary<Reply>][]) {
    it(`${kind} replies, and errors in their place`, () => {
      fc.assert(
        fc.property(fc.oneof(arb, error), (reply) => {
          expect(roundTrip(kind, reply)).toEqual(reply);
        }),
        { numRuns: RUNS },
      );
    });
  }

  it('a value a line cannot carry (LF, or a final CR) is NOT_REPRESENTABLE, never another value', () => {
    const anyValue = fc
      .uint8Array({ maxLength: 40 })
      .map((a) => Buffer.from(a))
      .filter(
        (v) => v.toString('latin1') !== 'NOT_FOUND' && !v.toString('latin1').startsWith('ERR '),
      );
    const withCr = anyValue.map((v) => Buffer.concat([v, Buffer.from('\r')]));
    fc.assert(
      fc.property(fc.oneof(anyValue, withCr), (v) => {
        const back = roundTrip('value', { type: 'value', value: v });
        if (v.includes(0x0a) || v.at(-1) === 0x0d) {
          expect(back).toMatchObject({ type: 'error', code: 'KV_ERR_NOT_REPRESENTABLE' });
        } else expect(back).toEqual({ type: 'value', value: v });
      }),
      { numRuns: RUNS },
    );
  });

  it('refuses a line that is no answer of the kind asked', () => {
    const bad =
      (kind: TextReplyKind, first: string, second: string | null = null) =>
      () =>
        decodeTextReply(kind, Buffer.from(first), second === null ? null : Buffer.from(second));
    expect(bad('ok', 'NOT_FOUND')).toThrow(/is no ok reply/);
    expect(bad('pong', 'OK')).toThrow(/is no pong reply/);
    expect(bad('integer', '1.5')).toThrow(/is no integer reply/);
    expect(bad('paged', 'a b', 'MORE ')).toThrow(/END\/MORE/);
    expect(bad('paged', 'a b')).toThrow(/lacks END\/MORE/);
  });
});
