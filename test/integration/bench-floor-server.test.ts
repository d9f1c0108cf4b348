// bench/floor-server.ts, the bare Node server `bench/ab.ts` measures a node against: it answers
// what redis-benchmark sends, in order, SETs only once their log write returned (its log made a
// FIFO the test holds full, so the write blocks until the test reads), and exits on SIGTERM. A
// floor that answered wrongly or early would make every ratio against it meaningless.

import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { defer } from '../helpers/defer.ts';
import { cleanup, ROOT, startNodeProcess, tempDir } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

const FLOOR = join(ROOT, 'bench/floor-server.ts');

const frame = (...args: string[]) =>
  `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

/** Sends `parts` one write each (frames split anywhere), ends, and resolves with all replies. */
function exchange(port: number, parts: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d) => {
      got += d.toString('latin1');
    });
    socket.on('end', () => resolve(got));
    socket.on('error', reject);
    socket.on('connect', async () => {
      for (const p of parts) {
        socket.write(p);
        await new Promise((r) => setTimeout(r, 20));
      }
      socket.end();
    });
  });
}

it('answers pipelined GET, SET, PING in order, across split frames', async () => {
  const floor = await startNodeProcess({ main: FLOOR });
  const requests =
    frame('SET', 'k', 'v 1') +
    frame('GET', 'k') +
    frame('GET', 'missing') +
    frame('PING') +
    frame('CONFIG', 'GET', 'save') +
    frame('FOO');
  // Split inside a bulk string's length line and inside its bytes.
  const replies = await exchange(floor.port, [
    requests.slice(0, 5),
    requests.slice(5, 23),
    requests.slice(23),
  ]);
  expect(replies).toBe("+OK\r\n$3\r\nv 1\r\n$-1\r\n+PONG\r\n*0\r\n-ERR unknown command 'FOO'\r\n");
  expect(readFileSync(join(floor.dataDir, 'floor.log'), 'latin1')).toBe(frame('SET', 'k', 'v 1'));
  expect(await floor.stop('SIGTERM')).toBe(0);
});

it('answers a SET only once its log write returned (a log that blocks: a full FIFO)', async () => {
  const dataDir = tempDir();
  const path = join(dataDir, 'floor.log');
  execFileSync('mkfifo', [path]);
  // The floor's open of its log waits for a reader: open ours first, without blocking.
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  defer(() => closeSync(reader));
  const filler = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  defer(() => closeSync(filler));
  // Fill the pipe: the floor's next write blocks until the test reads.
  let filled = 0;
  for (;;) {
    try {
      filled += writeSync(filler, Buffer.alloc(4096));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
      throw err;
    }
  }
  const floor = await startNodeProcess({ main: FLOOR, dataDir });
  const socket = connect(floor.port, '127.0.0.1');
  defer(() => socket.destroy());
  let got = '';
  socket.on('data', (d) => {
    got += d.toString('latin1');
  });
  socket.write(frame('SET', 'k', 'v') + frame('PING'));
  await new Promise((r) => setTimeout(r, 500));
  // Neither the OK nor the PING behind it while the write waits.
  expect(got).toBe('');
  const set = frame('SET', 'k', 'v');
  const drained = Buffer.alloc(filled + 4096);
  let read = 0;
  const drain = () => {
    try {
      read += readSync(reader, drained, read, drained.length - read, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
    return read >= filled + set.length && got.includes('+PONG');
  };
  await until(drain, 5000, 'the SET in the log and its replies');
  expect(got).toBe('+OK\r\n+PONG\r\n');
  expect(drained.subarray(filled, read).toString('latin1')).toBe(set);
});

it('keeps every SET of a pipelined burst, in order, and answers each once', async () => {
  const floor = await startNodeProcess({ main: FLOOR });
  const sets = Array.from({ length: 500 }, (_, i) => frame('SET', `key:${i}`, `value-${i}`));
  const gets = Array.from({ length: 500 }, (_, i) => frame('GET', `key:${i}`));
  const replies = await exchange(floor.port, [sets.join(''), gets.join('')]);
  const expected =
    '+OK\r\n'.repeat(500) +
    Array.from({ length: 500 }, (_, i) => `$${`value-${i}`.length}\r\nvalue-${i}\r\n`).join('');
  expect(replies).toBe(expected);
  expect(readFileSync(join(floor.dataDir, 'floor.log'), 'latin1')).toBe(sets.join(''));
});
