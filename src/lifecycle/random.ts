// Random ids without node:crypto, for ids made at every start.

import { closeSync, openSync, readSync } from 'node:fs';

/**
 * `bytes` random bytes as hex, from the kernel's random source (/dev/urandom, what
 * crypto.randomBytes draws on too) when it is there: node:crypto would load OpenSSL's set-up and
 * 17 modules (about 1 MiB of RSS) into every new node for a few random bytes
 * (a data directory's incarnation, a process's id in peer answers).
 */
export function randomHex(bytes: number): string {
  const b = Buffer.alloc(bytes);
  let fd: number | null = null;
  try {
    fd = openSync('/dev/urandom', 'r');
    if (readSync(fd, b) === bytes) return b.toString('hex');
  } catch {
    // No /dev/urandom (an unusual sandbox): node:crypto below.
  } finally {
    if (fd !== null) closeSync(fd);
  }
  return process.getBuiltinModule('node:crypto').randomBytes(bytes).toString('hex');
}
