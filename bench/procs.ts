// Starts and stops the servers under test (kvstore nodes, redis-server), reads their CPU and RSS, cleans up.

import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  fdatasyncSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { get as httpGet } from 'node:http';
import { connect, createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = resolve(import.meta.dirname, '..');
/** The pinned Node 24 binary from devDependencies. */
export const NODE = join(ROOT, 'node_modules/.bin/node');
/**
 * The Node/V8 flags a node runs with: those of bin/kvstore.js's `#!/usr/bin/env -S node ...`
 * line (the image's and npm's launcher), so that the bench measures what ships.
 */
export const NODE_FLAGS: readonly string[] = launcherFlags();

function launcherFlags(): string[] {
  const first = readFileSync(join(ROOT, 'bin/kvstore.js'), 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env (?:-S )?node(.*)$/.exec(first);
  if (m === null) throw new Error(`bench: bin/kvstore.js does not start with node: ${first}`);
  return m[1]!.split(' ').filter((f) => f !== '');
}
/**
 * The glibc settings the image's `ENV` gives a node (the Dockerfile's `MALLOC_*=<number>`), so
 * that the bench's nodes allocate as the image's do (docs/operations.md, "Memory after a burst").
 */
export const IMAGE_MALLOC_ENV: Readonly<Record<string, string>> = imageMallocEnv();

function imageMallocEnv(): Record<string, string> {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const env = Object.fromEntries(
    [...dockerfile.matchAll(/^\s*(?:ENV\s+)?(MALLOC_[A-Z_]+)=(\d+)\b/gm)].map((m) => [
      m[1]!,
      m[2]!,
    ]),
  );
  if (Object.keys(env).length === 0)
    throw new Error('bench: the Dockerfile sets no MALLOC_* variable');
  return env;
}

/**
 * How long a server may take to start before the run gives up: it finds a hang, it does not judge
 * the start (readyMs reports that). A node started beside other work on 2 cores took over 15 s
 * (load average 30-40: the bench smoke tests failed there), so the bound leaves room for that.
 */
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 10_000;

/** A server process under test. */
export interface Server {
  readonly name: string;
  readonly child: ChildProcess;
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  /** performance.now() just before the process was spawned. */
  readonly spawnedAt: number;
  /** Milliseconds from spawn to ready: kvstore's `node listening` log line, Redis's first PONG. */
  readonly readyMs: number;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();

/** A fresh directory under `root`, removed by cleanupSync(). */
export function tempDir(root: string, prefix: string): string {
  const dir = mkdtempSync(join(root, prefix));
  dirs.add(dir);
  return dir;
}

/** Keeps `child` for cleanupSync(); resolves with how it exited and its last stderr. */
export function track(child: ChildProcess): Promise<string> {
  live.add(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  return new Promise((res) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      res(`exit ${code ?? signal}: ${stderr.trim()}`);
    });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`bench: ${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export interface KvstoreOptions {
  readonly name?: string;
  readonly host?: string;
  /** Client, HTTP and peer ports; 0 (the default) picks free ones. */
  readonly ports?: readonly [number, number, number];
  /** An existing data dir (a restart); otherwise a fresh temp dir under the root. */
  readonly dir?: string;
  /** Extra flags, e.g. `--peers ...` and the quorums. */
  readonly args?: readonly string[];
  /** Flags for node itself, before the script (e.g. `--inspect=...`). */
  readonly nodeArgs?: readonly string[];
  /** The entry module: src/main.ts (the default), or a compiled main.js (startup-memory.ts). */
  readonly script?: string;
}

/** A single node keeps one replica of each key: RF=1, W=1, R=1 (writes durable, the default). */
export const SINGLE_NODE_ARGS = [
  '--replication-factor',
  '1',
  '--write-quorum',
  '1',
  '--read-quorum',
  '1',
] as const;

/**
 * Starts `node src/main.ts` (or `opts.script`) with NODE_FLAGS and IMAGE_MALLOC_ENV at log level info, and reads the bound client port from its
 * `node listening` JSON log line. Writes stay durable (the node's defaults).
 */
export async function startKvstore(root: string, opts: KvstoreOptions = {}): Promise<Server> {
  const dir = opts.dir ?? tempDir(root, 'kvstore-bench-');
  const host = opts.host ?? '127.0.0.1';
  const [port, httpPort, peerPort] = (opts.ports ?? [0, 0, 0]).map(String);
  const name = opts.name ?? 'kvstore';
  const script = opts.script ?? join(ROOT, 'src/main.ts');
  const args = [...NODE_FLAGS, ...(opts.nodeArgs ?? []), script, '--node-name', name];
  args.push('--host', host, '--port', port!);
  args.push('--http-port', httpPort!, '--peer-port', peerPort!, '--data-dir', dir);
  args.push('--log-level', 'info', ...(opts.args ?? []));
  const spawnedAt = performance.now();
  const env = { ...process.env, ...IMAGE_MALLOC_ENV };
  const child = spawn(NODE, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT, env });
  const exited = track(child);
  const listening = new Promise<number>((res, rej) => {
    // Keep reading stdout for the whole run so the pipe never fills.
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const entry = JSON.parse(line) as { msg?: string; port?: number };
      if (entry.msg === 'node listening' && typeof entry.port === 'number') res(entry.port);
    });
    exited.then((why) => rej(new Error(`bench: kvstore ${name} ${why}`)));
  });
  const bound = await withTimeout(listening, START_TIMEOUT_MS, `kvstore ${name} start`);
  const readyMs = performance.now() - spawnedAt;
  return { name, child, host, port: bound, dir, spawnedAt, readyMs };
}

/** A port that was free a moment ago (redis-server cannot bind port 0 and report it). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

/** One RESP PING over a fresh connection (Redis and kvstore alike): true when the answer is `+PONG`. */
export function ping(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host, port }, () => s.write('*1\r\n$4\r\nPING\r\n'));
    const done = (ok: boolean) => {
      s.destroy();
      res(ok);
    };
    s.once('data', (d) => done(d.toString().startsWith('+PONG')));
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

/** Resolves once host:port answers PING; retries every `everyMs` until the deadline. */
export async function waitForPong(
  port: number,
  deadline: number,
  host = '127.0.0.1',
  everyMs = 50,
): Promise<void> {
  while (!(await ping(port, host))) {
    if (Date.now() > deadline) throw new Error(`bench: ${host}:${port} did not answer PING`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Starts redis-server on a free loopback port with a temp dir; `aof` turns on the append-only
 * file, fsynced once a second (`everysec`) or before every reply (`always`: OK means on disk).
 */
export async function startRedis(
  root: string,
  aof: boolean,
  fsync: 'everysec' | 'always' = 'everysec',
): Promise<Server> {
  const dir = tempDir(root, 'redis-bench-');
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir];
  args.push('--daemonize', 'no', '--logfile', '', '--loglevel', 'warning');
  args.push(...(aof ? ['--appendonly', 'yes', '--appendfsync', fsync] : ['--appendonly', 'no']));
  const spawnedAt = performance.now();
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = track(child);
  const failed = exited.then((why) => Promise.reject(new Error(`bench: redis-server ${why}`)));
  await Promise.race([waitForPong(port, Date.now() + START_TIMEOUT_MS), failed]);
  failed.catch(() => {});
  const readyMs = performance.now() - spawnedAt;
  const host = '127.0.0.1';
  const name = !aof ? 'redis' : fsync === 'always' ? 'redis-always' : 'redis-aof';
  return { name, child, host, port, dir, spawnedAt, readyMs };
}

/** SIGTERM, then SIGKILL after a grace period; resolves when the process has exited. */
export async function stopServer(server: Server): Promise<void> {
  const child = server.child;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** Kills every child still running and removes every temp dir; safe to call more than once. */
export function cleanupSync(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/**
 * The name and the user and system CPU time (clock ticks) in a `/proc/<pid>/stat` or
 * `/proc/<pid>/task/<tid>/stat` file; null when it is gone.
 */
export function procStat(path: string): { comm: string; user: number; system: number } | null {
  let stat: string;
  try {
    stat = readFileSync(path, 'latin1');
  } catch {
    return null;
  }
  const close = stat.lastIndexOf(')');
  const fields = stat.slice(close + 2).split(' ');
  return {
    comm: stat.slice(stat.indexOf('(') + 1, close),
    user: Number(fields[11]),
    system: Number(fields[12]),
  };
}

/** CPU time (user + system, ms) a process has used so far, from /proc/<pid>/stat; 0 if unknown. */
export function processCpuMs(pid: number | undefined, ticksPerSecond: number): number {
  const stat = pid === undefined ? null : procStat(`/proc/${pid}/stat`);
  return stat === null ? 0 : ((stat.user + stat.system) * 1000) / ticksPerSecond;
}

/**
 * Read and write system calls (sockets, files, pipes: read, write, writev, ...) a process and
 * its threads made so far, from /proc/<pid>/io; 0 if unknown.
 */
export function processSyscalls(pid: number | undefined): number {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'latin1');
    const field = (name: string) => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(io)?.[1] ?? 0);
    return field('syscr') + field('syscw');
  } catch {
    return 0;
  }
}

/** Resident memory of a process from /proc/<pid>/status, in bytes (0 when unknown). */
export interface Rss {
  readonly rss: number;
  readonly anon: number;
  readonly file: number;
  readonly peak: number;
}

export function processRss(pid: number | undefined): Rss {
  let status = '';
  try {
    status = pid === undefined ? '' : readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {}
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return {
    rss: kb('VmRSS') * 1024,
    anon: kb('RssAnon') * 1024,
    file: kb('RssFile') * 1024,
    peak: kb('VmHWM') * 1024,
  };
}

/** Latency of a 4 KiB write + fdatasync in `root`: what bounds every write-ahead log group commit. */
export interface FsyncProbe {
  readonly p50Us: number;
  readonly p99Us: number;
}

/** Times `count` small write + fdatasync rounds on a temp file under `root` (about 0.1-1 s). */
export function fsyncProbe(root: string, count = 100): FsyncProbe {
  const dir = mkdtempSync(join(root, 'fsync-probe-'));
  const page = Buffer.alloc(4096, 0x61);
  const times: number[] = [];
  const fd = openSync(join(dir, 'probe'), 'w');
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      writeSync(fd, page, 0, page.length, (i % 16) * page.length);
      fdatasyncSync(fd);
      times.push((performance.now() - t0) * 1000);
    }
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
  times.sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(times[Math.min(times.length - 1, Math.floor(q * times.length))]!);
  return { p50Us: at(0.5), p99Us: at(0.99) };
}

/** Cleans up (cleanupSync) when the process exits, and on SIGINT/SIGTERM before exiting 1. */
export function cleanupOnExit(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      cleanupSync();
      process.exit(1);
    });
  }
  process.once('exit', cleanupSync);
}

/** Writes progress lines to stderr, each stamped with the seconds since this call. */
export function progressLog(): (line: string) => void {
  const t0 = performance.now();
  return (line) =>
    process.stderr.write(
      `[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`,
    );
}

/**
 * The `kvstore_*` and `nodejs_*` samples of a node's /metrics; a labelled series is keyed with its
 * labels. Each scrape on a connection of its own: fetch's kept-alive one was found closed under
 * the node after a run ("other side closed", bench/ab.ts --nodes 3, 2026-12-07).
 */
export async function scrapeMetrics(host: string, httpPort: number): Promise<Map<string, number>> {
  const text = await new Promise<string>((res, rej) => {
    httpGet({ host, port: httpPort, path: '/metrics', agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (d: string) => {
        body += d;
      });
      r.on('end', () => res(body));
      r.on('error', rej);
    }).on('error', rej);
  });
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^((?:kvstore|nodejs)_[a-z_]+(?:\{[^}]*\})?) ([\d.e+-]+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Asks `ok` every 200 ms until it is true; throws `<tool>: <what> after <timeoutMs> ms`. */
export async function until(
  tool: string,
  what: string,
  timeoutMs: number,
  ok: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`${tool}: ${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A flag's value as a positive integer; throws `<tool>: --<flag> must be a positive integer`. */
export function positiveInt(tool: string, flag: string, raw: string): number {
  const x = Number(raw);
  if (!Number.isSafeInteger(x) || x < 1)
    throw new Error(`${tool}: --${flag} must be a positive integer, got '${raw}'`);
  return x;
}

/** Runs a bench's main: a failure prints its message, cleans up (cleanupSync) and exits 1. */
export function runBench(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    cleanupSync();
    process.exit(1);
  });
}
