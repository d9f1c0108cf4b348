// Running out of file descriptors never leaves the log unable to write: a real node under a small
// RLIMIT_NOFILE, every descriptor taken by idle client connections, rotates its log segments and
// keeps acknowledging writes (the log holds the descriptors it needs), and all is well once the
// connections close. (That a failed log write recovers at the next write is tested in
// test/unit/wal.test.ts on a full tmpfs.)

import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';

afterEach(cleanup);

const VALUE = 'f'.repeat(4000);

async function ask(c: LineClient, line: string): Promise<string> {
  c.send(`${line}\r\n`);
  const [reply] = await c.lines(1);
  return reply!;
}

/** Opens idle connections until the node can no longer accept one (its descriptors are gone). */
async function exhaust(node: NodeProcess, max: number): Promise<LineClient[]> {
  const held: LineClient[] = [];
  for (let i = 0; i < max; i++) {
    const c = await LineClient.connect(node.port);
    defer(() => c.socket.destroy());
    const answer = await ask(c, 'PING').catch(() => null);
    if (answer !== 'PONG') return held; // accepted and closed at once: EMFILE
    held.push(c);
  }
  throw new Error(`the node still accepted connections after ${max}`);
}

const openFds = (node: NodeProcess) => readdirSync(`/proc/${node.child.pid}/fd`).length;

describe('file descriptor exhaustion', () => {
  it('the log writes again once descriptors are free, without a restart', async () => {
    // 64 KiB segments: a few hundred KiB of writes rotate the log several times.
    const node = await startNodeProcess({
      command: ['prlimit', '--nofile=160:160', '--'],
      args: ['--wal-segment-bytes', String(64 * 1024), '--max-connections', '10000'],
    });
    const c = await LineClient.connect(node.port);
    defer(() => c.socket.destroy());
    expect(await ask(c, 'PUT before 1')).toBe('OK');
    const held = await exhaust(node, 400);
    expect(held.length).toBeGreaterThan(20);
    expect(openFds(node)).toBeGreaterThanOrEqual(158);
    // Writes that need new log segments while no descriptor is free: the log rotates into its
    // reserved spare and recycles the segment it left, so it needs no new descriptor.
    const acked: string[] = [];
    for (let i = 0; i < 100; i++) {
      expect(await ask(c, `PUT k${i} ${VALUE}`)).toBe('OK');
      acked.push(`k${i}`);
    }
    expect(openFds(node)).toBeGreaterThanOrEqual(158);
    // The pressure ends: everything still works, new connections too.
    for (const h of held) h.socket.destroy();
    // A new connection each try: one accepted while the held sockets were still closing may be
    // closed at once for want of a descriptor (EMFILE), and a closed one never answers.
    await expect
      .poll(
        async () => {
          const fresh = await LineClient.connect(node.port);
          try {
            return await ask(fresh, 'PUT after 2');
          } finally {
            fresh.socket.destroy();
          }
        },
        { timeout: 20_000 },
      )
      .toBe('OK');
    for (let i = 0; i < 50; i++) expect(await ask(c, `PUT more${i} ${VALUE}`)).toBe('OK');
    for (const key of acked) expect(await ask(c, `GET ${key}`)).toBe(VALUE);
    expect(await node.stop()).toBe(0);
    // Everything acknowledged survived, the log replays cleanly.
    const again = await startNodeProcess({ dataDir: node.dataDir });
    const r = await LineClient.connect(again.port);
    defer(() => r.socket.destroy());
    for (const key of [...acked, 'before', 'after', 'more49']) {
      expect(await ask(r, `GET ${key}`)).not.toBe('NOT_FOUND');
    }
    expect(again.logs.some((l) => l.msg === 'storage: torn write-ahead log tail dropped')).toBe(
      false,
    );
  }, 120_000);
});
