// kvstore entry point: parse configuration, start the node, drain it on SIGTERM/SIGINT.

import { access } from 'node:fs/promises';
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
import { diskWorkOut, type KvNode, type NodeInternals, startNode } from './node/index.ts';

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
  // First: a start or a read held by a disk that does not answer blocks the event loop itself
  // (a synchronous read, a page fault in LMDB's map); the watchdog says so and ends the process
  // when a stop signal cannot reach it (docs/storage.md, "When the disk hangs"). Part of the
  // hung-disk detection, off with it (--storage-stall-timeout-ms 0). Its thread costs about
  // 10 MiB of anonymous memory, so it runs where the disk can hold the loop: from the start when
  // the data directory already has LMDB's file (the start reads it on the event loop) or its disk
  // does not say whether it has within the bound, else from the store's first write or the first
  // time the storage judges its disk stalled, whichever comes first (node/index.ts).
  const { storageStallTimeoutMs: stallMs, shutdownTimeoutMs } = loaded.config;
  if (stallMs > 0) {
    const blockedMs = Math.max(MIN_BLOCKED_MS, stallMs);
    armWatchdog({
      base: { node: loaded.config.nodeName },
      blockedMs,
      stopGraceMs: Math.min(STOP_GRACE_MS, shutdownTimeoutMs),
    });
    if (await hasOrHangs(join(loaded.config.dataDir, 'data.mdb'), blockedMs)) startWatchdog();
  }
  let node: KvNode | null = null;
  // Before the node starts, so a signal during start-up is not the default immediate exit: the
  // start gives up where it is, closing what it opened (below).
  const signalled = onStopSignals((kind, signal, count) => {
    const msg =
      kind === 'forced'
        ? 'signal received again, exiting now'
        : 'signal received again, still draining';
    if (node) node.logger.warn({ signal, count }, msg);
    else process.stderr.write(`kvstore: ${signal}: ${msg}\n`);
  });
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
 * True when `file` exists or its disk does not answer within `ms`. Asked in the thread pool: a
 * synchronous stat of a dead volume (a name the kernel must read from it) would hold the event
 * loop before the watchdog runs, and the start's own synchronous steps after it (the data
 * directory made and locked) with it.
 */
async function hasOrHangs(file: string, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), ms);
  });
  try {
    return await Promise.race([
      access(file).then(
        () => true,
        () => false,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
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
