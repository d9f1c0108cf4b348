// A disk whose syncs fail (EIO) under load. A failed sync of LMDB's file ends the node by its own
// decision: logged, exit code 3 (EXIT_STORAGE_FAILED), no drain; a restart replays the log and
// loses no acknowledged write. Before, LMDB's failed synchronous meta write left its environment
// failed for good (MDB_PANIC) and lmdb-js crashed the process inside its writer and its reads:
// SIGSEGV or SIGABRT ("corrupted double-linked list"), 5 runs of 5 (chaos seed 26008,
// --disk-errors). Failing only the O_DSYNC writes (the log's; LMDB's meta page until
// noMetaSync) must not crash it either.

import { expect, it } from 'vitest';
import { KvClient } from '../../src/client/index.ts';
import { EXIT_STORAGE_FAILED } from '../../src/lifecycle/index.ts';
import { defer } from '../helpers/defer.ts';
import { type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';
import { diskWithDataDir, usePowerlossfs } from '../helpers/powerloss.ts';
import { readAll, until, WriteLog, writeLoad } from '../helpers/write-log.ts';

const binary = usePowerlossfs();
const FATAL = 'storage: LMDB failed for good: exiting without a drain (a restart replays the log)';

async function client(node: NodeProcess): Promise<KvClient> {
  const c = await KvClient.connect({ host: '127.0.0.1', port: node.port, timeoutMs: 10_000 });
  defer(() => c.destroy());
  return c;
}

/** Starts a node on `dataDir` and checks that it reads back every acknowledged write. */
async function startChecked(dataDir: string, log: WriteLog, round: number) {
  const node = await startNodeProcess({ dataDir });
  let exit: number | string | null = null;
  void node.exited.then((e) => {
    exit = e;
  });
  expect({ round, bad: log.check(await readAll(await client(node), log)) }).toEqual({
    round,
    bad: [],
  });
  return { node, exit: () => exit };
}

it('a disk whose syncs fail under load: the node exits 3 by its own decision when a sync of LMDB fails, never by a signal, and a restart loses no acknowledged write', async () => {
  const { disk, dataDir } = await diskWithDataDir(binary());
  const log = new WriteLog();
  const keys = Array.from({ length: 200 }, (_, i) => `eio:${String(i).padStart(3, '0')}`);
  // 'on': every sync fails (fsync, fdatasync, O_DSYNC writes), as chaos's disk-errors fault.
  // 'dsync': only O_DSYNC write calls fail (what crashed the node through LMDB's meta write).
  const modes = ['on', 'dsync', 'on', 'dsync'] as const;
  const outcomes: string[] = [];
  for (const [round, mode] of modes.entries()) {
    const { node, exit } = await startChecked(dataDir, log, round);
    const conns = await Promise.all([0, 1].map(() => client(node)));
    const loads = conns.map((c, w) =>
      writeLoad(
        c,
        keys.filter((_, i) => i % 2 === w),
        log,
        16,
      ),
    );
    const acked = log.acks;
    await until(() => log.acks >= acked + 300, 30_000, 'writes before the errors');
    await disk.errors(mode === 'on' ? true : 'dsync');
    if (mode === 'on') {
      // LMDB commits within a second of the writes queued to it; its fdatasync fails.
      await until(() => exit() !== null, 15_000, 'the node to exit');
    } else {
      // Writes fail (the log's O_DSYNC writes), LMDB's commits go on: the node stays up.
      const errors = log.errors;
      await until(() => log.errors > errors || exit() !== null, 10_000, 'a refused write');
    }
    await disk.errors(false);
    if (exit() === null) {
      const after = log.acks;
      await until(() => log.acks >= after + 300 || exit() !== null, 30_000, 'writes again');
    }
    await Promise.all(loads.map((l) => l.stop()));
    const code = exit();
    outcomes.push(`${mode}: ${code ?? 'up'}`);
    if (code === null) await node.stop('SIGKILL');
    else {
      // The node's own exit, said in its log: never a signal (a crash in a native library).
      expect({ round, mode, code, stderr: node.stderr().slice(-2000) }).toMatchObject({
        code: EXIT_STORAGE_FAILED,
      });
      expect(node.logs.some((l) => l.msg === FATAL)).toBe(true);
    }
  }
  // A last start on the disk: everything acknowledged in the last round is there too.
  const { node } = await startChecked(dataDir, log, modes.length);
  await node.stop();
  // Every round with every sync failing ended in the node's exit; the others kept it up.
  expect(outcomes).toEqual(['on: 3', 'dsync: up', 'on: 3', 'dsync: up']);
}, 240_000);

it('a node stopping on SIGTERM whose LMDB fails for good meanwhile exits 3, at once, not 0 after the drain', async () => {
  const { disk, dataDir } = await diskWithDataDir(binary());
  // A long drain: the client below keeps a write in flight, so the stop waits for it.
  const node = await startNodeProcess({ dataDir, args: ['--shutdown-timeout-ms', '30000'] });
  const c = await client(node);
  await c.put('before', 'v');
  await disk.hang();
  // Decided and queued to LMDB; its log group waits in the hung sync, so it does not answer.
  const inFlight = c.put('during', 'v').catch((err: unknown) => err);
  void node.child.kill('SIGTERM');
  await until(() => node.logs.some((l) => l.msg === 'node stopping'), 10_000, 'the stop');
  await disk.errors(true);
  await disk.resume();
  const code = await node.exited;
  await inFlight;
  expect({ code, stderr: node.stderr().slice(-2000) }).toMatchObject({ code: EXIT_STORAGE_FAILED });
  expect(node.logs.some((l) => l.msg === FATAL)).toBe(true);
  // At once, not after the drain: the drain did not run out its 30 s bound (the failed store
  // gets nothing more to do). Its log says so; a wall time would measure the machine's load.
  expect(node.logs.map((l) => l.msg)).not.toContain('shutdown timed out');
  await disk.errors(false);
  // The restart replays the log: the acknowledged write is there.
  const again = await startNodeProcess({ dataDir });
  expect(await (await client(again)).get('before')).toBe('v');
  await again.stop();
}, 120_000);
