// kvstore entry point: parse configuration, start the node, drain it on SIGTERM/SIGINT.

import { open } from 'node:fs/promises';
import { flushCompileCache } from 'node:module';
import { join } from 'node:path';
import { loadConfig } from './config/index.ts';
import {
  armWatchdog,
  EXIT_STORAGE_FAILED,
  exitProcess,
  onStopSignals,
  startFailure,
  startWatchdog,
} from './lifecycle/index.ts';
import {
  countDiskOp,
  diskWorkOut,
  type KvNode,
  type NodeInternals,
  startNode,
} from './node/index.ts';

/** Past --shutdown-timeout-ms, the stop has this long before the process exits regardless. */
const BACKSTOP_MS = 900;
/** The watchdog logs an event loop blocked on the disk for --storage-stall-timeout-ms, at least this. */
const MIN_BLOCKED_MS = 1000;
/**
 * A stop signal the blocked event loop has not taken this long ends the process (the watchdog):
 * well inside --shutdown-timeout-ms plus the backstop.
 */
const STOP_GRACE_MS = 500;

async function main(): Promise<number> {
  const loaded = loadConfig(process.argv.slice(2), process.env);
  if (loaded.kind === 'help') {
    process.stdout.write(`${loaded.text}\n`);
    return 0;
  }
  if (loaded.kind === 'error') {
    process.stderr.write(`kvstore: ${loaded.text}\n`);
    return 2;
  }
  const { storageStallTimeoutMs: stallMs, shutdownTimeoutMs } = loaded.config;
  let node: KvNode | null = null;
  // Before the start touches the disk, so a signal during start-up is not the default immediate
  // exit: the start gives up where it is, closing what it opened (below). Until 2026-12-07 these
  // came after the read of LMDB's file below, which a disk that does not answer holds for the
  // bound: a SIGTERM then ended the process by the signal, saying nothing.
  const signalled = onStopSignals((kind, signal, count) => {
    const msg =
      kind === 'forced'
        ? 'signal received again, exiting now'
        : 'signal received again, still draining';
    if (node) node.logger.warn({ signal, count }, msg);
    else process.stderr.write(`kvstore: ${signal}: ${msg}\n`);
  });
  // Then: a start or a read held by a disk that does not answer blocks the event loop itself
  // (a synchronous read, a page fault in LMDB's map); the watchdog says so and ends the process
  // when a stop signal cannot reach it (docs/storage.md, "When the disk hangs"). Part of the
  // hung-disk detection, off with it (--storage-stall-timeout-ms 0). Its thread costs about
  // 10 MiB of anonymous memory and 50 ms of CPU to start, so it runs where the disk can hold the
  // loop: from the start when the data directory has LMDB's file (a restart: the start reads it
  // on the loop) or its disk does not answer a read of that file (or of its name) within the
  // bound, or fails it; on a new directory, from the store's first write (node/index.ts); and
  // wherever the storage judges its disk stalled. A restart's is not deferred to a timer or to
  // serving: a read the page cache answers says nothing of the disk (LMDB's meta pages are
  // rewritten by every commit, so a container restarted on the same host finds them cached), and
  // the start's next read of the disk holds the loop, and with it any timer that would start it.
  let watchFromStart = false;
  if (stallMs > 0) {
    const blockedMs = Math.max(MIN_BLOCKED_MS, stallMs);
    armWatchdog({
      base: { node: loaded.config.nodeName },
      blockedMs,
      stopGraceMs: Math.min(STOP_GRACE_MS, shutdownTimeoutMs),
      stopBoundMs: shutdownTimeoutMs + BACKSTOP_MS,
    });
    // A stop signal ends this wait at once (the read goes on; the process does not wait for it).
    const lmdb = await Promise.race([
      lmdbFileAnswers(join(loaded.config.dataDir, 'data.mdb'), blockedMs),
      signalled.then((signal) => ({ signal })),
    ]);
    if (typeof lmdb === 'object') {
      process.stderr.write(`kvstore: ${lmdb.signal} while starting: stopped\n`);
      return 0;
    }
    watchFromStart = lmdb !== 'absent';
  }
  // After the stop signals' handlers: the watchdog takes a copy of the signals the process
  // listens for when it starts.
  if (watchFromStart) {
    const err = startWatchdog();
    // (No logger yet: stderr, as the start's other words before the node.)
    if (err !== null)
      process.stderr.write(`kvstore: watchdog thread not started: ${err.message}\n`);
  }
  // A signal during the start ends it: a node with no saved ring may wait for its members
  // without bound (docs/cluster.md), and a stop must not wait for them.
  const stopStart = new AbortController();
  let startBackstop: NodeJS.Timeout | undefined;
  void signalled.then((signal) => {
    if (node) return;
    stopStart.abort(new Error(`${signal} while starting`));
    // As for a stop once started (below): a stage of the start that does not end at the signal
    // (a bug) must not hold the process until the kubelet's SIGKILL.
    startBackstop = setTimeout(() => {
      process.stderr.write(`kvstore: ${signal} while starting: the stop overran its deadline\n`);
      exitProcess(1, true);
    }, loaded.config.shutdownTimeoutMs + BACKSTOP_MS).unref();
  });
  // Storage that failed for good (logged by the node) ends the process at once, starting or
  // running, with no drain: a drain would give the failed store more to do (docs/storage.md).
  const failed = Promise.withResolvers<number>();
  try {
    const starting = startNode(
      loaded.config,
      undefined,
      testInternals(process.env),
      stopStart.signal,
      () => failed.resolve(EXIT_STORAGE_FAILED),
    );
    const first = await Promise.race([starting, failed.promise]);
    if (typeof first === 'number') return first;
    node = first;
  } catch (err) {
    if (err === stopStart.signal.reason && err instanceof Error) {
      process.stderr.write(`kvstore: ${err.message}: stopped\n`);
      return 0;
    }
    const { text, code } = startFailure('kvstore', err);
    process.stderr.write(`${text}\n`);
    return code;
  }
  clearTimeout(startBackstop);
  // With Node's compile cache on (NODE_COMPILE_CACHE, or bin/kvstore.js running the sources), what
  // the start compiled is written now: Node writes it at a clean exit only, so a node killed or
  // cut off (the restarts that matter) compiled all of it again at every start. From the sources,
  // about 480 modules: 0.8 CPU-seconds to the first log line without the cache, 0.3 with it (at a
  // tenth of a core, 8 s and 3 s). Nothing when the cache is off (the image's bundle has its own).
  flushCompileCache();
  const outcome = await Promise.race([signalled, failed.promise]);
  if (typeof outcome === 'number') return outcome;
  const signal = outcome;
  node.logger.info({ signal }, 'signal received');
  const started = node;
  // Every stage of stop() is bounded; this catches a stage that is not (a bug), so a pod stop
  // never waits for the kubelet's SIGKILL.
  setTimeout(() => {
    started.logger.error({}, 'shutdown overran its deadline, exiting');
    exitProcess(1, true);
  }, loaded.config.shutdownTimeoutMs + BACKSTOP_MS).unref();
  // Storage that fails for good during the stop (its drain, or the store's last flush) ends it
  // at once with the same code: the stop was not clean, and the restart replays the log.
  return await Promise.race([node.stop().then(() => 0), failed.promise]);
}

/**
 * Whether the disk answers a read of `file`'s first pages (LMDB's meta pages, which the start
 * reads on the event loop next) within `ms`: 'absent' (no such file: a new directory), 'read'
 * (it did), or 'unsure' (no answer in time, or an error other than ENOENT: a disk that fails
 * reads may hang the next one). Asked in the thread pool: a synchronous read (or
 * stat) of a dead volume would hold the event loop before the watchdog runs, and the start's own
 * synchronous steps after it (the data directory made and locked) with it.
 */
async function lmdbFileAnswers(file: string, ms: number): Promise<'absent' | 'read' | 'unsure'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'unsure'>((resolve) => {
    timer = setTimeout(() => resolve('unsure'), ms);
  });
  // Counted as disk work out: a read that never returns must not hold the process's exit.
  const read = countDiskOp(readHead(file, LMDB_META_BYTES)).then(
    () => 'read' as const,
    (err: NodeJS.ErrnoException) =>
      err.code === 'ENOENT' ? ('absent' as const) : ('unsure' as const),
  );
  try {
    return await Promise.race([read, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Bytes of LMDB's file lmdbFileAnswers reads: its two meta pages at the usual page size. */
const LMDB_META_BYTES = 8192;

/** Reads the first `length` bytes of `file` in the thread pool. */
async function readHead(file: string, length: number): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(length), 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Test-only settings (not documented options): a short admin nonce lifetime. */
function testInternals(env: NodeJS.ProcessEnv): NodeInternals {
  const ttl = Number(env.KV_TEST_ADMIN_NONCE_TTL_MS);
  return Number.isSafeInteger(ttl) && ttl > 0 ? { adminNonceTtlMs: ttl } : {};
}

main().then(
  // Exit now: a timer or socket some module left behind must not keep a stopped node alive, nor
  // a sync of a hung disk (exitProcess).
  (code) => exitProcess(code, diskWorkOut()),
  (err: unknown) => {
    process.stderr.write(`kvstore: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
