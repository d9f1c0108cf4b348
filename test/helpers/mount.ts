// Small real file systems for storage tests (tmpfs of a given size), unmounted even on failure.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const mounts = new Set<string>();

/** Mounts a tmpfs of `bytes` on a fresh directory and returns it (root only). */
export function mountTmpfs(bytes: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'kvstore-fs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'tmpfs', dir]);
  mounts.add(dir);
  return dir;
}

/** Unmounts and removes every mount made here; call after the processes using them are gone. */
export function unmountAll(): void {
  for (const dir of mounts) {
    try {
      execFileSync('umount', [dir]);
    } catch {
      execFileSync('umount', ['-l', dir]); // still busy: detach it now, freed once unused
    }
    rmSync(dir, { recursive: true, force: true });
  }
  mounts.clear();
}
