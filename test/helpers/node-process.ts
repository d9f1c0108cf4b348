// Starts real kvstore processes for tests and cleans them (and their data) up, even on failure.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { COMPILE_CACHE } from './compile-cache.ts';
import { runDeferred } from './deferred.ts';
import { releaseLoopbackBlocks } from './loopback.ts';
import { BUNDLE_ENV } from './node-bundle.ts';
import { until } from './write-log.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
/** The pinned Node 24 binary (vitest may itself run on another node). */
export const NODE = join(ROOT, 'node_modules/.bin/node');
export const MAIN = join(ROOT, 'src/main.ts');
/**
 * What a test's node runs unless told otherwise: the sources bundled by test/global-setup.ts
 * (test/helpers/node-bundle.ts), or MAIN when there is no bundle (KVSTORE_TEST_SOURCES=1).
 */
export const NODE_MAIN = process.env[BUNDLE_ENV] ?? MAIN;

export interface NodeProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly httpPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  /** Every JSON log line the node printed so far. */
  readonly logs: Record<string, unknown>[];
  /** What the node wrote to stderr so far. */
  stderr(): string;
  /** Sends a signal and resolves with the exit code (or the signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  /** Resolves with the exit code (or the signal name) once the process exited. */
  readonly exited: Promise<number | string>;
}

/** A test node's name and free loopback ports. */
const LOOPBACK_ARGS = [
  '--node-name',
  'test-node',
  '--host',
  '127.0.0.1',
  '--port',
  '0',
  '--http-port',
  '0',
  '--peer-port',
  '0',
];

const live = new Set<ChildProcess>();
const dirs = new Set<string>();

/** A fresh temporary directory, removed by cleanup(). */
export function tempDir(prefix = 'kvstore-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

/** A node process spawned, not necessarily listening yet (see spawnNodeProcess). */
export interface SpawnedNode {
  readonly child: ChildProcess;
  readonly dataDir: string;
  /** Every JSON log line the node printed so far. */
  readonly logs: Record<string, unknown>[];
  /** What the node wrote to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or the signal name) once the process exited. */
  readonly exited: Promise<number | string>;
  /** Resolves once the node logged "node listening"; rejects if it exits first. */
  readonly listening: Promise<NodeProcess>;
}

/**
 * Starts `node src/main.ts` on free ports (port 0) with `extraArgs`, waits for its
 * "node listening" log line and returns the bound ports. `command` is a prefix that runs the
 * node, e.g. `['ip', 'netns', 'exec', ns]` (it must exec the node, so the child is the node).
 */
export function startNodeProcess(opts: SpawnOptions = {}): Promise<NodeProcess> {
  return spawnNodeProcess(opts).listening;
}

export interface SpawnOptions {
  dataDir?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  command?: readonly string[];
  /** The entry module instead of src/main.ts (e.g. a compiled one, or a bin shim). */
  main?: string;
}

/** How long after a child's exit its output may still arrive before exited() resolves anyway. */
const OUTPUT_AFTER_EXIT_MS = 2000;

/**
 * Resolves with a child's exit code and signal once it exited and its stdout and stderr were read
 * to their end ('close'): a child's 'exit' may come before the last lines it wrote arrive through
 * the pipes, and a test that reads the log or stderr on exit would miss them. A pipe that some
 * other process still holds open does not keep it waiting past OUTPUT_AFTER_EXIT_MS.
 */
function outputComplete(child: ChildProcess): Promise<[number | null, string | null]> {
  return new Promise((res) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      const done = () => res([code, signal]);
      child.once('close', done);
      setTimeout(done, OUTPUT_AFTER_EXIT_MS).unref();
    });
  });
}

/** Like startNodeProcess, without waiting: for a node that may not listen (yet). */
export function spawnNodeProcess(opts: SpawnOptions = {}): SpawnedNode {
  const dataDir = opts.dataDir ?? tempDir();
  const args = [
    opts.main ?? NODE_MAIN,
    ...LOOPBACK_ARGS,
    '--data-dir',
    dataDir,
    ...(opts.args ?? []),
  ];
  const [cmd, ...prefix] = [...(opts.command ?? []), NODE];
  const child = spawn(cmd!, [...prefix, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { NODE_COMPILE_CACHE: COMPILE_CACHE, ...process.env, ...opts.env },
  });
  live.add(child);
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = outputComplete(child).then(([code, signal]) => code ?? signal ?? -1);
  const started = new Promise<Record<string, unknown>>((res, rej) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'node listening') res(entry);
    });
    exited.then((code) => rej(new Error(`kvstore exited (${code}) before listening: ${stderr}`)));
  });
  const listening = started.then((entry) => ({
    child,
    port: entry.port as number,
    httpPort: entry.httpPort as number,
    peerPort: entry.peerPort as number,
    dataDir,
    logs,
    stderr: () => stderr,
    exited,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  }));
  listening.catch(() => {}); // a caller that never waits for it is told by `exited`
  return { child, dataDir, logs, stderr: () => stderr, exited, listening };
}

/** Runs what the test deferred, then kills every process started here and removes every temporary directory. */
export async function cleanup(): Promise<void> {
  // What the test deferred (clients, servers) goes first, then the nodes; the nodes go even when
  // a deferred cleanup failed.
  try {
    await runDeferred();
  } finally {
    await stopAll();
  }
}

async function stopAll(): Promise<void> {
  const waits = [...live].map(
    (c) =>
      new Promise<void>((res) => {
        c.once('exit', () => res());
        c.kill('SIGKILL');
      }),
  );
  await Promise.all(waits);
  releaseLoopbackBlocks();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/**
 * Runs `node src/main.ts` with `args` until it exits (for start-ups that must fail) and returns
 * the exit code, the signal, the JSON log lines and stderr. Killed by cleanup() if it hangs.
 */
export async function runNodeToExit(args: readonly string[]): Promise<{
  code: number | null;
  signal: string | null;
  logs: Record<string, unknown>[];
  stderr: string;
}> {
  const child = spawn(NODE, [NODE_MAIN, ...LOOPBACK_ARGS, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const [code, signal] = await outputComplete(child);
  const logs: Record<string, unknown>[] = [];
  for (const line of stdout.split('\n')) {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not a log line
    }
  }
  return { code, signal, logs, stderr };
}

/**
 * The first log line of `proc` that `match` takes (a message, or a predicate), waited for: a
 * line comes through the node's stdout pipe, which can reach the test after a reply or an HTTP
 * answer the node gave later, so a line read right after one may not be there yet.
 */
export async function logged(
  proc: { readonly logs: readonly Record<string, unknown>[] },
  match: string | ((line: Record<string, unknown>) => boolean),
  ms = 10_000,
): Promise<Record<string, unknown>> {
  const take = typeof match === 'string' ? (l: Record<string, unknown>) => l.msg === match : match;
  const what = typeof match === 'string' ? `the log line '${match}'` : 'a matching log line';
  await until(() => proc.logs.some(take), ms, what, 20);
  return proc.logs.find(take)!;
}
