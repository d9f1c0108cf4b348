// A disk whose reads hang (powerlossfs `hang reads`: a hard-mounted dead volume) holds the thread
// that reads it, and a read the page cache does not answer is made by the event loop's own thread
// at times: the start's synchronous reads (the LMDB file's meta pages, LMDB's open) and, once
// serving, every LMDB read that faults in a page of its map. The event loop then stops (no
// probe, no client, no signal handler answers); the watchdog thread says so, naming the stage,
// and a SIGTERM the loop cannot take ends the process within the stop bound (one a disk slow to
// answer holds, each read answered, takes it once its reads are done). A disk whose syncs
// hang while the start cuts a damaged log (--wal-truncate-corrupt) holds no thread the signal
// needs: that start ends at SIGTERM like any other.

import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import {
  type NodeProcess,
  type SpawnedNode,
  spawnNodeProcess,
  startNodeProcess,
} from '../helpers/node-process.ts';
import { diskWithDataDir, PowerlossDisk, usePowerlossfs } from '../helpers/powerloss.ts';
import { THIEF_ENV, THIEF_LINE } from '../helpers/signal-thief.ts';
import { until } from '../helpers/write-log.ts';

/** test/helpers/slow-reads-child.ts: a loop a slow disk holds, with the node's watchdog. */
const SLOW_READS_CHILD = join(import.meta.dirname, '../helpers/slow-reads-child.ts');

const binary = usePowerlossfs();

const KEYS = 2000;
const VALUE = 'v'.repeat(4000);
/** The stop bound: --shutdown-timeout-ms (the watchdog's grace is within it). */
const SHUTDOWN_MS = 2000;
/**
 * How long a wait on the node may take (its start, the watchdog's line, a read once the disk
 * answers): a bound for a hang, not a speed (20 s ran out for a start at load average 28).
 */
const WAIT_MS = 90_000;
/** How the stores are written (a loaded machine's LMDB commit may take over a second). */
const WRITE_ARGS = ['--wal-segment-bytes', String(64 << 20)];
const ARGS = [
  ...WRITE_ARGS,
  '--shutdown-timeout-ms',
  String(SHUTDOWN_MS),
  // The watchdog logs a loop blocked this long (the stall timeout, at least 1 s).
  '--storage-stall-timeout-ms',
  '1000',
];

/** A data directory on powerlossfs holding KEYS writes, left by `stop` (a crash, or a clean stop). */
async function store(
  stop: 'SIGKILL' | 'SIGTERM',
): Promise<{ disk: PowerlossDisk; dataDir: string }> {
  const { disk, dataDir } = await diskWithDataDir(binary());
  const node = await startNodeProcess({ dataDir, args: WRITE_ARGS });
  const c = await LineClient.connect(node.port);
  defer(() => c.socket.destroy());
  c.send(Array.from({ length: KEYS }, (_, i) => `PUT k${i} ${VALUE}-${i}\r\n`).join(''));
  expect(new Set(await c.lines(KEYS, 60_000))).toEqual(new Set(['OK']));
  c.socket.destroy();
  expect(await node.stop(stop)).toBe(stop === 'SIGKILL' ? 'SIGKILL' : 0);
  // The page cache goes with the mount: every read of the next start reaches the disk.
  await disk.unmount();
  await disk.mount();
  return { disk, dataDir };
}

const line = (node: NodeProcess | SpawnedNode, msg: string) => node.logs.find((l) => l.msg === msg);

/**
 * Sends SIGTERM and waits for the exit: its code or signal, or 'still running' after WAIT_MS (a
 * hang). How the stop ended (the watchdog's SIGKILL at its grace, the start's own stop, not the
 * backstop's exit 1) shows it kept to its bound; its wall time would measure the load.
 */
async function stopped(node: NodeProcess | SpawnedNode): Promise<unknown> {
  node.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise((r) => {
    timer = setTimeout(() => r('still running'), WAIT_MS);
  });
  try {
    return await Promise.race([node.exited, hung]);
  } finally {
    clearTimeout(timer);
  }
}

const FATAL = 'stop signal not taken: the event loop is blocked: exiting';
type Fields = 'stopGraceMs' | 'pendingMs' | 'stuckMs' | 'looks' | 'lookMs';

/**
 * The watchdog's fatal line says the SIGKILL kept to the stop bound: it waited for its grace,
 * which is within --shutdown-timeout-ms, and killed at the first of its looks past it (a look
 * late on a loaded machine makes fewer looks, never more). Read from what the process logged,
 * not a wall time of the test's: a watchdog killing 30 s after the signal logs some 120 looks.
 */
function expectKilledAtGrace(node: NodeProcess | SpawnedNode, stage: string): void {
  const fatal = line(node, FATAL);
  const n = expect.any(Number);
  expect(fatal).toMatchObject({
    level: 60,
    stage,
    stopGraceMs: n,
    pendingMs: n,
    stuckMs: n,
    looks: n,
    lookMs: n,
  });
  const { stopGraceMs, pendingMs, stuckMs, looks, lookMs } = fatal as Record<Fields, number>;
  expect(stopGraceMs).toBeGreaterThan(0);
  expect(stopGraceMs).toBeLessThanOrEqual(SHUTDOWN_MS);
  // Ended for a grace with no wait of the held thread ending (a hung disk).
  expect(stuckMs).toBeGreaterThanOrEqual(stopGraceMs);
  expect(pendingMs).toBeGreaterThanOrEqual(stuckMs);
  // The first look that saw the signal and those every lookMs after it, to the grace (a
  // millisecond of clock between timer and Date.now() may add one).
  expect(looks).toBeLessThanOrEqual(Math.ceil(stopGraceMs / lookMs) + 2);
}

/**
 * Waits for the watchdog's line saying the event loop is blocked on the disk in `stage`, then
 * sends SIGTERM: the process must end by the watchdog's SIGKILL within the stop bound, having
 * said why. Before the watchdog nothing was logged and the signal was never taken.
 */
async function blockedThenStopped(node: NodeProcess | SpawnedNode, stage: string): Promise<void> {
  await until(() => line(node, 'event loop blocked') !== undefined, WAIT_MS, 'the watchdog line');
  expect(line(node, 'event loop blocked')).toMatchObject({
    level: 50,
    node: 'test-node',
    stage,
    state: 'D',
  });
  expect(await stopped(node)).toBe('SIGKILL');
  expectKilledAtGrace(node, stage);
}

/**
 * A node serving a store left by a clean stop on a new mount (an empty page cache), whose disk's
 * reads then hang, sent a GET of every key (k<(i * 7919) % KEYS> for the i-th): most values'
 * pages are not in the page cache, so a GET of one of them faults on the event loop's thread,
 * which the disk holds.
 */
async function getsOnHungReads(): Promise<{
  disk: PowerlossDisk;
  node: NodeProcess;
  client: LineClient;
}> {
  const { disk, dataDir } = await store('SIGTERM');
  const node = await startNodeProcess({ dataDir, args: ARGS });
  const client = await LineClient.connect(node.port);
  defer(() => client.socket.destroy());
  await disk.hang('reads');
  client.send(Array.from({ length: KEYS }, (_, i) => `GET k${(i * 7919) % KEYS}\r\n`).join(''));
  return { disk, node, client };
}

describe('a disk whose reads hang', { timeout: 240_000 }, () => {
  it("the start's synchronous reads: the watchdog names the stage and SIGTERM ends the process", async () => {
    const { disk, dataDir } = await store('SIGKILL');
    await disk.hang('reads');
    const node = spawnNodeProcess({ dataDir, args: ARGS });
    await blockedThenStopped(node, 'starting: checking the LMDB file');
    expect(line(node, 'storage: opened')).toBeUndefined();

    // Nothing was changed: once the disk answers, the next start replays the log and serves.
    await disk.resume();
    const again = await startNodeProcess({ dataDir, args: ARGS });
    expect(line(again, 'storage: opened')?.replayed).toBeGreaterThanOrEqual(KEYS);
  });

  // A container restarted on the same host finds LMDB's meta pages in the page cache (every commit
  // of the process before wrote them): main.ts's read of them answers though the disk does not.
  // Before: that answer deferred the watchdog to serving or a timer of the event loop, which the
  // start's next read of the hung disk held: no line in 90 s, and the SIGTERM was never taken.
  it("the start's synchronous reads with LMDB's meta pages in the page cache: the watchdog runs and SIGTERM ends the process", async () => {
    const { disk, dataDir } = await store('SIGKILL');
    const lmdb = await open(join(dataDir, 'data.mdb'), 'r');
    await lmdb.read(Buffer.alloc(8192), 0, 8192, 0);
    await lmdb.close();
    await disk.hang('reads');
    defer(() => disk.resume());
    const node = spawnNodeProcess({ dataDir, args: ARGS });
    await blockedThenStopped(node, 'starting: checking the LMDB file');
    expect(line(node, 'storage: opened')).toBeUndefined();
  });

  // The kernel leaves a process-directed signal in the shared pending set only until a thread that
  // does not block it passes its signal check: V8's threads and the watchdog's own do after their
  // first wait on a lock (abseil sets their signal mask back then), glibc's thread creation and
  // libuv's fork too. That thread runs libuv's handler, which writes the signal to the main loop's
  // pipe: the blocked loop never reads it, and the signal is pending nowhere. Before: the watchdog
  // saw a stop only while pending, so this one never (a full `npm test`: the name-lookup start
  // below logged no fatal line in 90 s); the thief (test/helpers/signal-thief.ts) forces the
  // hand-off the moment SIGTERM is pending, which the kernel makes at random.
  it('a SIGTERM another thread of the process takes off the pending set: the watchdog still ends the process at its grace', async () => {
    const { disk, dataDir } = await store('SIGKILL');
    await disk.hang('reads');
    defer(() => disk.resume());
    const node = spawnNodeProcess({ dataDir, args: ARGS, env: THIEF_ENV });
    await blockedThenStopped(node, 'starting: checking the LMDB file');
    expect(node.stderr()).toContain(THIEF_LINE);
    expect(line(node, FATAL)).toMatchObject({ seen: 'taken by another thread' });
  });

  // Before: main.ts asked whether LMDB's file was there with a stat on the event loop, before the
  // watchdog ran: on a disk whose lookups hang too, nothing was logged and SIGTERM was never taken.
  it('a start on a disk whose name lookups hang too: the watchdog runs, names the stage, and ends the process at SIGTERM once the kernel lets it', async () => {
    const { disk, dataDir } = await store('SIGKILL');
    await disk.hang('lookups');
    // A test that fails lets the process go (the kernel holds it while the lookup hangs).
    defer(() => disk.resume());
    const node = spawnNodeProcess({ dataDir, args: ARGS });
    const stage = 'starting: making and locking the data directory';
    await until(() => line(node, 'event loop blocked') !== undefined, WAIT_MS, 'the watchdog line');
    expect(line(node, 'event loop blocked')).toMatchObject({ level: 50, stage, state: 'D' });
    node.child.kill('SIGTERM');
    await until(() => line(node, FATAL) !== undefined, WAIT_MS, 'the SIGKILL');
    expectKilledAtGrace(node, stage);
    // The event loop's thread waits for the directory's lock, held by the lookup that does not
    // return (the check of LMDB's file, in the thread pool): no signal ends that wait. Once the
    // disk answers, the SIGKILL does.
    await disk.resume();
    expect(await node.exited).toBe('SIGKILL');
    expect(line(node, 'storage: opened')).toBeUndefined();
  });

  it('a GET that faults in a page of a hung disk: the watchdog says so and SIGTERM ends the process', async () => {
    const { node } = await getsOnHungReads();
    await blockedThenStopped(node, 'serving');
  });

  it('a GET held so is answered once the disk answers, and the watchdog says the loop turns again', async () => {
    const { disk, node, client } = await getsOnHungReads();
    await until(() => line(node, 'event loop blocked') !== undefined, WAIT_MS, 'the watchdog line');
    // No stop signal: the watchdog only watches, and the node goes on where the disk held it.
    await disk.resume();
    // Each GET gets its value, or the stall's refusal: the disk probe's sync hung too, and the
    // stall watch may judge it before it sees the sync return.
    const got = await client.lines(KEYS, 60_000);
    const wrong = got.filter(
      (v, i) => v !== `${VALUE}-${(i * 7919) % KEYS}` && !v.startsWith('ERR STORAGE_STALLED'),
    );
    expect(wrong).toEqual([]);
    // Once the disk answers, every key reads back.
    await until(
      async () => {
        client.send('GET k0\r\n');
        return (await client.lines(1))[0] === `${VALUE}-0`;
      },
      WAIT_MS,
      'GET k0 answered',
      200,
    );
    client.send(Array.from({ length: KEYS }, (_, i) => `GET k${i}\r\n`).join(''));
    const again = await client.lines(KEYS, 60_000);
    expect(again.filter((v, i) => v !== `${VALUE}-${i}`)).toEqual([]);
    await until(() => line(node, 'event loop answers again') !== undefined, WAIT_MS, 'the line');
    expect(line(node, 'event loop answers again')).toMatchObject({ level: 30, stage: 'serving' });
    expect(node.child.exitCode).toBeNull();
  });

  it('a start cutting a damaged log (--wal-truncate-corrupt) on a disk whose syncs hang ends at SIGTERM', async () => {
    const { disk, dataDir } = await store('SIGKILL');
    const wal = join(dataDir, 'wal');
    const segment = join(wal, readdirSync(wal).find((n) => /^\d{16}\.wal$/.test(n))!);
    const bytes = readFileSync(segment);
    bytes[100] = bytes[100]! ^ 0xff; // inside the first group
    writeFileSync(segment, bytes);
    await disk.sync();
    await disk.hang();
    const node = spawnNodeProcess({
      dataDir,
      args: [...ARGS, '--wal-truncate-corrupt', 'true'],
    });
    await until(
      async () => Object.keys(await disk.syncs()).some((p) => p.endsWith('.wal')),
      WAIT_MS,
      "the cut's sync, which the hang holds",
    );
    // The event loop is free: the HTTP port, up before the storage opens, says alive and why not
    // ready (before, the port opened only after the storage).
    const httpPort = line(node, 'http listening: alive, not ready until started')?.httpPort;
    const get = (path: string) =>
      fetch(`http://127.0.0.1:${httpPort}${path}`, { signal: AbortSignal.timeout(5000) }).then(
        async (r) => [r.status, await r.text()],
      );
    expect(await get('/healthz')).toEqual([200, expect.any(String)]);
    expect(await get('/readyz')).toEqual([
      503,
      'not ready: opening its storage: cutting the damaged write-ahead log\n',
    ]);
    // Before: the cut synced on the event loop's thread, and the signal was never taken. Exit 0
    // with the start's own message: the stop ended by itself, not by the backstop (exit 1).
    expect(await stopped(node)).toBe(0);
    expect(node.stderr()).toBe('kvstore: SIGTERM while starting: stopped\n');
    expect(line(node, 'stopped while starting')).toMatchObject({
      phase: 'cutting the damaged write-ahead log',
    });
  });

  // A disk slow to answer, not hung: each read of the event loop's thread ends within the grace,
  // and the loop takes the signal once they are all done. Before 2026-12-07 the grace counted
  // from the signal whatever the disk did, and the watchdog killed such a loop: a start checking
  // its LMDB trees on a disk whose reads took 150 ms (stop 42's CI failure).
  it('a loop a disk slow to answer holds, each read within the grace: the loop takes the SIGTERM, not the watchdog', async () => {
    const disk = await PowerlossDisk.create(binary());
    const file = disk.path('pages');
    const reads = 40;
    // Sparse: the page read from each MiB is one read the disk makes wait.
    writeFileSync(file, '');
    truncateSync(file, reads << 20);
    await disk.sync();
    await disk.unmount();
    await disk.mount();
    await disk.slowReads(150);
    const node = spawnNodeProcess({
      main: SLOW_READS_CHILD,
      env: { KV_TEST_SLOW_READS_FILE: file, KV_TEST_SLOW_READS: String(reads) },
    });
    await until(() => line(node, 'reading') !== undefined, WAIT_MS, 'the reads to start');
    node.child.kill('SIGTERM');
    expect(await node.exited).toBe(0);
    expect(line(node, FATAL)).toBeUndefined();
    expect(line(node, 'read')).toMatchObject({ reads });
    expect(line(node, 'stopped')).toMatchObject({ signal: 'SIGTERM' });
  });
});
