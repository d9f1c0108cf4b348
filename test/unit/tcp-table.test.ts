// tcpLine (peer/tcp-table.ts) reads a TCP table only up to the lines it looks for, in pieces,
// one scan at a time per file: a table that never ends (a FIFO) still answers, a line cut
// between two reads is found whole, and many sockets asked for at once each get their own line.

import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { procNetAddress } from '../../src/net/address.ts';
import { tcpLine } from '../../src/peer/tcp-table.ts';
import { defer } from '../helpers/defer.ts';

const HEADER =
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
/** A line of /proc/net/tcp for `local` and `remote`, with `tx` unacknowledged bytes. */
const row = (n: number, local: string, remote: string, tx = 0) =>
  `${String(n).padStart(4)}: ${local} ${remote} 01 ${tx.toString(16).toUpperCase().padStart(8, '0')}:00000000 00:00000000 00000000  1000        0 ${1000 + n} 1 0000000000000000 20 4 30 10 -1\n`;

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kv-tcp-table-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('tcpLine', () => {
  it('answers at the line it looks for, without reading to the end of the table', async () => {
    // A FIFO whose writer never closes: a read to the end would wait for ever (as reading the
    // whole file did, before).
    const fifo = join(tempDir(), 'tcp');
    execFileSync('mkfifo', [fifo]);
    const asked = tcpLine(fifo, '0100007F:1F91', '0200007F:D431');
    const writer = await open(fifo, 'w');
    defer(() => writer.close());
    await writer.write(
      HEADER +
        row(0, '0100007F:1F90', '00000000:0000') +
        row(1, '0100007F:1F91', '0200007F:D431', 42),
    );
    const fields = await Promise.race([
      asked,
      new Promise((r) => setTimeout(() => r('still reading'), 10_000).unref()),
    ]);
    expect(fields).toEqual(expect.arrayContaining(['0100007F:1F91', '0200007F:D431', '01']));
    expect((fields as string[])[3]).toBe('0000002A:00000000');
  });

  it('finds a line cut between two reads, and says null of one not listed and of no file', async () => {
    const file = join(tempDir(), 'tcp');
    let text = HEADER;
    for (let n = 0; text.length < 60 * 1024; n++)
      text += row(
        n,
        '0100007F:9000',
        `0300007F:${(n + 1).toString(16).toUpperCase().padStart(4, '0')}`,
      );
    // The wanted line's addresses cross the first 64 KiB read: it starts 12 bytes before it.
    text += `${' '.repeat(64 * 1024 - 12 - text.length - 1)}\n`;
    text += row(9999, '0100007F:1F91', '0200007F:D431', 7);
    expect(text.indexOf('0100007F:1F91')).toBeLessThan(64 * 1024);
    expect(text.indexOf('0200007F:D431')).toBeGreaterThan(64 * 1024);
    writeFileSync(file, text + row(10000, '0100007F:1F92', '0200007F:D431'));
    const [found, absent] = await Promise.all([
      tcpLine(file, '0100007F:1F91', '0200007F:D431'),
      tcpLine(file, '0100007F:1F93', '0200007F:D431'),
    ]);
    expect(found?.slice(0, 4)).toEqual([
      '0100007F:1F91',
      '0200007F:D431',
      '01',
      '00000007:00000000',
    ]);
    expect(absent).toBeNull();
    expect(await tcpLine(join(tempDir(), 'none'), '0100007F:1F91', '0200007F:D431')).toBeNull();
  });

  it('gives each of many sockets asked for at once its own line of /proc/net/tcp', async () => {
    const server = createServer((s) => defer(() => s.destroy()));
    defer(() => new Promise<void>((r) => server.close(() => r())));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const sockets = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const s = connect(port, '127.0.0.1');
        defer(() => s.destroy());
        await once(s, 'connect');
        return s;
      }),
    );
    const ends = (s: Socket) =>
      [
        procNetAddress(s.localAddress!, s.localPort!),
        procNetAddress(s.remoteAddress!, s.remotePort!),
      ] as const;
    const lines = await Promise.all(sockets.map((s) => tcpLine('/proc/net/tcp', ...ends(s))));
    for (const [i, s] of sockets.entries())
      expect(lines[i]?.slice(0, 3)).toEqual([...ends(s), '01']);
  });
});
