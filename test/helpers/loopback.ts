// Loopback blocks (127.a.b.0/24) for test clusters, each held by one test process at a time.

import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One file per block held, named by the block and holding the holder's pid. */
const HELD_DIR = join(tmpdir(), 'kvstore-test-loopback');
const held = new Set<string>();

/**
 * A 127.a.b.0/24 block no other test process holds, and not handed out before in this one. Its
 * members listen on fixed ports (8081, 9090, 7946), so two files running side by side (vitest's
 * workers, or another checkout's run) must never share one: a block picked at random alone was
 * the same block for two live clusters now and then (a few hundred clusters a run), and a member
 * then failed to bind or, worse, answered for the other file's cluster. The block stays held
 * until cleanup() has stopped the test's processes (releaseLoopbackBlocks) or this process
 * exits; a holder that died without releasing it (vitest ends its workers by a signal) is
 * taken over.
 */
export function loopbackBlock(): string {
  mkdirSync(HELD_DIR, { recursive: true });
  for (;;) {
    const a = 1 + Math.floor(Math.random() * 250);
    const b = 1 + Math.floor(Math.random() * 250);
    const block = `127.${a}.${b}`;
    if (!held.has(block) && hold(block)) return block;
  }
}

/** Takes `block` for this process: true when it was free or its holder is gone. */
function hold(block: string): boolean {
  const file = join(HELD_DIR, block);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      if (held.size === 0) process.once('exit', releaseLoopbackBlocks);
      held.add(block);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (holderAlive(file)) return false;
    try {
      unlinkSync(file); // its holder died: taken over (a race with another taker: one wins 'wx')
    } catch {
      // another process removed it first
    }
  }
  return false;
}

function holderAlive(file: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(file, 'utf8'));
  } catch {
    return false; // removed meanwhile
  }
  // A file being written (empty for a moment) counts as held.
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Releases every block this process holds: once nothing of the test listens on them. */
export function releaseLoopbackBlocks(): void {
  process.off('exit', releaseLoopbackBlocks);
  for (const block of held) {
    try {
      unlinkSync(join(HELD_DIR, block));
    } catch {
      // already gone
    }
  }
  held.clear();
}
