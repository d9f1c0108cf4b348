// Disks that lose what was not synced when the power is cut: powerlossfs (test/powerloss/go), a
// FUSE filesystem, mounted by tests and unmounted again, even on failure.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { promisify } from 'node:util';
import { afterEach, beforeAll } from 'vitest';
import { runBuildScript } from './build-script.ts';
import { cleanup } from './node-process.ts';

const run = promisify(execFile);

/** Builds powerlossfs (cached outside the clone; minutes when cold) and returns its path. */
export async function buildPowerlossfs(): Promise<string> {
  return (await runBuildScript('test/powerloss/build-powerlossfs.sh', 900_000)).trim();
}

/**
 * For a test file on powerlossfs: builds it once (beforeAll) and, after each test, stops the
 * test's node processes (their files are on the disks) and destroys its disks. Returns the
 * binary's path (valid once beforeAll ran).
 */
export function usePowerlossfs(): () => string {
  let binary = '';
  beforeAll(async () => {
    binary = await buildPowerlossfs();
  }, 900_000);
  afterEach(async () => {
    await cleanup();
    await destroyDisks();
  });
  return () => binary;
}

/** What a power cut took back (see test/powerloss/go/journal.go). */
export interface CutReport {
  readonly opsUndone: number;
  readonly opsKept: number;
  readonly pagesReverted: number;
  readonly pagesKept: number;
  readonly filesResized: number;
  readonly errors: string[];
}

/** The filesystem's counters. */
export interface DiskStats {
  readonly writes: number;
  /** Read requests that reached the filesystem (the kernel's page cache did not answer them). */
  readonly reads: number;
  readonly dsyncWrites: number;
  readonly fileSyncs: number;
  readonly dirSyncs: number;
  readonly unsyncedPages: number;
  readonly unsyncedOps: number;
  /** Operations (reads, syncs, name lookups) waiting for resume() now: those hang() holds. */
  readonly held: number;
}

const disks = new Set<PowerlossDisk>();

/** One disk: a store directory, mounted at `mountPoint` by a powerlossfs process while up. */
export class PowerlossDisk {
  readonly store: string;
  readonly mountPoint: string;
  readonly #binary: string;
  #proc: ChildProcess | null = null;
  #lines: Interface | null = null;
  #replies: ((line: string) => void)[] = [];
  #exited: Promise<void> = Promise.resolve();

  private constructor(binary: string, store?: string) {
    this.#binary = binary;
    this.store = store ?? mkdtempSync(join(tmpdir(), 'kvstore-powerloss-'));
    this.mountPoint = join(this.store, 'mnt');
    mkdirSync(join(this.store, 'disk'));
    mkdirSync(this.mountPoint);
  }

  /**
   * A new, empty disk, mounted; its store (the backing files and the mount point) in `store`
   * (an existing, empty directory; default: a new one under the temporary directory).
   */
  static async create(binary: string, store?: string): Promise<PowerlossDisk> {
    const disk = new PowerlossDisk(binary, store);
    disks.add(disk);
    await disk.mount();
    return disk;
  }

  /** A path on the mounted disk. */
  path(...parts: string[]): string {
    return join(this.mountPoint, ...parts);
  }

  /** Mounts the disk (the machine coming back after a cut). */
  async mount(): Promise<void> {
    if (this.#proc) throw new Error('powerlossfs: already mounted');
    const proc = spawn(
      this.#binary,
      ['-store', join(this.store, 'disk'), '-mount', this.mountPoint],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    this.#proc = proc;
    this.#exited = new Promise((res) => proc.once('exit', () => res()));
    this.#lines = createInterface({ input: proc.stdout! });
    this.#lines.on('line', (line) => this.#replies.shift()?.(line));
    const ready = new Promise<string>((res) => this.#replies.push(res));
    const failed = this.#exited.then(() => {
      throw new Error(`powerlossfs exited before mounting: ${stderr}`);
    });
    const line = await Promise.race([ready, failed]);
    if (!(JSON.parse(line) as { ready?: boolean }).ready) throw new Error(`powerlossfs: ${line}`);
  }

  async #command<T>(line: string): Promise<T> {
    const proc = this.#proc;
    if (!proc) throw new Error('powerlossfs: not mounted');
    const reply = new Promise<string>((res) => this.#replies.push(res));
    proc.stdin!.write(`${line}\n`);
    const text = await Promise.race([
      reply,
      this.#exited.then(() => {
        throw new Error(`powerlossfs exited during "${line}"`);
      }),
    ]);
    const parsed = JSON.parse(text) as T & { error?: string };
    if (parsed.error) throw new Error(`powerlossfs ${line}: ${parsed.error}`);
    return parsed;
  }

  /** Makes everything written so far durable (a clean shutdown), e.g. after setting up. */
  async sync(): Promise<void> {
    await this.#command('sync');
  }

  /**
   * Makes the disk slow (0: fast again): every sync waits `ms` first, fsync and fdatasync of a
   * file or directory, and each write call on an O_DSYNC descriptor (a degraded disk or a
   * throttled volume: the data gets there, late).
   */
  async slow(ms: number): Promise<void> {
    await this.#command(`slow ${Math.round(ms)}`);
  }

  /**
   * Makes reads slow (0: fast again): every read the kernel's page cache does not answer waits
   * `ms` first (a cold network volume). The cache is empty after a mount.
   */
  async slowReads(ms: number): Promise<void> {
    await this.#command(`slowread ${Math.round(ms)}`);
  }

  /**
   * Hangs the disk: every sync from now on (fsync, fdatasync, the sync of each write on an
   * O_DSYNC descriptor) blocks until resume(), as on a dead network volume; reads and unsynced
   * writes go on. With 'reads', every read the page cache does not answer blocks too, whatever
   * signal the reader gets short of a fatal one (a hard-mounted dead volume: a page fault there
   * holds the thread). With 'lookups', as 'reads', and every name lookup the kernel's cache does
   * not answer blocks too (a stat of a file not looked up since the mount). Unmounting resumes it.
   */
  async hang(what: 'syncs' | 'reads' | 'lookups' = 'syncs'): Promise<void> {
    await this.#command(what === 'syncs' ? 'hang' : `hang ${what}`);
  }

  /**
   * Makes every sync fail with EIO (true) until errors(false): fsync, fdatasync, a directory's,
   * and each write call on an O_DSYNC descriptor (the call fails). Nothing becomes durable
   * meanwhile; reads and unsynced writes go on (a disk whose writes fail). 'dsync': only the
   * write calls on O_DSYNC descriptors fail (fsync and fdatasync work).
   */
  async errors(on: boolean | 'dsync'): Promise<void> {
    await this.#command(`errors ${on === 'dsync' ? 'dsync' : on ? 'on' : 'off'}`);
  }

  /** Lets the hung syncs go on (see hang). */
  async resume(): Promise<void> {
    await this.#command('resume');
  }

  async stats(): Promise<DiskStats> {
    return this.#command<DiskStats>('stats');
  }

  /**
   * Syncs asked of each file and directory so far, by path on the disk (as named when each
   * came; "." is the root): fsync and fdatasync, and each write call on an O_DSYNC descriptor.
   */
  async syncs(): Promise<Record<string, number>> {
    return this.#command<Record<string, number>>('syncs');
  }

  /**
   * Cuts the power: every operation on the disk fails from now on, and what was not synced is
   * lost (keep 0), or each unsynced page write survives with probability `keep` (seeded).
   * Kill the processes using the disk, then unmount() and mount() to bring it back.
   */
  async cut(seed: number, keep = 0): Promise<CutReport> {
    const report = await this.#command<CutReport>(`cut ${seed} ${keep}`);
    if (report.errors.length > 0) throw new Error(`powerlossfs cut: ${report.errors.join('; ')}`);
    return report;
  }

  /** Unmounts (lazily if files are still open) and waits for powerlossfs to exit. */
  async unmount(): Promise<void> {
    const proc = this.#proc;
    if (!proc) return;
    await this.resume().catch(() => {});
    proc.stdin!.end();
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
    this.#lines?.close();
    this.#proc = null;
    this.#replies = [];
    await detach(this.mountPoint);
  }

  /** Unmounts and deletes the disk. */
  async destroy(): Promise<void> {
    await this.unmount();
    disks.delete(this);
    rmSync(this.store, { recursive: true, force: true });
  }
}

/** `umount -l` of `mountPoint` if it is still mounted (powerlossfs died, or was killed). */
async function detach(mountPoint: string): Promise<void> {
  const mounts = readFileSync('/proc/mounts', 'utf8');
  if (mounts.split('\n').some((l) => l.split(' ')[1] === mountPoint)) {
    await run('umount', ['-l', mountPoint]);
  }
}

/** Unmounts and deletes every disk made here (kill the processes using them first). */
export async function destroyDisks(): Promise<void> {
  for (const d of [...disks]) await d.destroy();
}

/** A mounted disk (PowerlossDisk.create) with an empty, synced data directory `data` on it. */
export async function diskWithDataDir(
  binary: string,
): Promise<{ disk: PowerlossDisk; dataDir: string }> {
  const disk = await PowerlossDisk.create(binary);
  const dataDir = disk.path('data');
  mkdirSync(dataDir);
  await disk.sync();
  return { disk, dataDir };
}
