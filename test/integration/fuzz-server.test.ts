import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequestLine } from '../../src/protocol/index.ts';
import { fuzzRuns } from '../helpers/fuzz.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';

let node: NodeProcess;
beforeAll(async () => {
  node = await startNodeProcess({
    args: ['--max-line-bytes', '4096', '--max-value-bytes', '2048'],
  });
});
afterAll(cleanup);

/** A line of arbitrary bytes (no newline), sometimes starting like a real command. */
const lineArb = fc.oneof(
  fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b.filter((x) => x !== 0x0a))),
  fc
    .tuple(
      fc.constantFrom('PUT ', 'GET ', 'REMOVE ', 'RANGE ', 'PREFIX ', 'put ', 'PING'),
      fc.uint8Array({ maxLength: 30 }),
    )
    .map(([c, b]) => Buffer.concat([Buffer.from(c), Buffer.from(b.filter((x) => x !== 0x0a))])),
  fc.nat({ max: 9000 }).map((n) => Buffer.alloc(n, 0x61)),
);

/** Lines that get no reply: blank after spaces, tabs and one trailing CR are removed. */
function isBlank(line: Buffer): boolean {
  let end = line.length;
  if (end > 0 && line[end - 1] === 0x0d) end--;
  for (let i = 0; i < end; i++) if (line[i] !== 0x20 && line[i] !== 0x09) return false;
  return true;
}

/** Lines after which fewer lines come back: QUIT, a paged scan's two, an HTTP request's close. */
function wouldQuitOrPage(line: Buffer): boolean {
  const t = line.toString('latin1').trim().toUpperCase();
  return t === 'QUIT' || / LIMIT /.test(t) || httpRequestLine(line);
}

describe('text protocol fuzzing against a live node', () => {
  it('answers every non-blank line exactly once, whatever the bytes and splits; then PONG', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(lineArb, { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 6 }),
        async (lines, sizes) => {
          fc.pre(!lines.some(wouldQuitOrPage));
          // A first byte `*` selects RESP framing for the connection (tested below).
          fc.pre(lines[0]![0] !== 0x2a);
          const c = await LineClient.connect(node.port);
          try {
            const stream = Buffer.concat([
              ...lines.flatMap((l) => [l, Buffer.from('\n')]),
              Buffer.from('PING\n'),
            ]);
            for (let i = 0, k = 0; i < stream.length; k++) {
              const n = sizes[k % sizes.length]!;
              c.send(stream.subarray(i, i + n));
              i += n;
            }
            const expected = lines.filter((l) => !isBlank(l)).length + 1;
            const replies = await c.lines(expected, 10_000);
            expect(replies.at(-1)).toBe('PONG');
          } finally {
            c.close();
          }
        },
      ),
      { numRuns: fuzzRuns(30) },
    );
  }, 120_000);

  it('survives arbitrary bytes in RESP framing: a fresh connection still gets PONG', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (bytes) => {
        const c = await LineClient.connect(node.port);
        c.send(Buffer.concat([Buffer.from('*'), Buffer.from(bytes)]));
        c.socket.end();
        c.close();
        const probe = await LineClient.connect(node.port);
        try {
          expect(await probe.call('PING')).toBe('PONG');
        } finally {
          probe.close();
        }
      }),
      { numRuns: fuzzRuns(30) },
    );
  }, 120_000);
});
