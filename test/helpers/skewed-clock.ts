// A node whose wall clock is off: preloaded with NODE_OPTIONS=--import=<this file>, it moves the
// process's Date (Date.now and new Date()) KV_TEST_CLOCK_SKEW_MS off the host's clock, as on a host
// that NTP no longer keeps in step; or, with KV_TEST_CLOCK_SKEW_FILE, by the number of ms in that
// file, read again every CLOCK_FILE_POLL_MS, so that a harness can step the clock while the node
// runs (a clock that jumps, then is stepped back). Imported without either variable (by a test), it
// changes nothing.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';

/** How often a node started with skewedClockFile reads its skew file again. */
export const CLOCK_FILE_POLL_MS = 20;

const skewVar = process.env.KV_TEST_CLOCK_SKEW_MS;
const skewFile = process.env.KV_TEST_CLOCK_SKEW_FILE;

if (skewVar !== undefined || skewFile !== undefined) {
  let skew = Number(skewVar ?? 0);
  if (skewFile !== undefined) {
    const read = () => {
      try {
        const n = Number(readFileSync(skewFile, 'utf8').trim());
        if (Number.isFinite(n)) skew = n;
      } catch {
        // No file (yet): the clock keeps the skew it had.
      }
    };
    read();
    setInterval(read, CLOCK_FILE_POLL_MS).unref();
  }
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  class SkewedDate extends RealDate {
    constructor(...args: [] | [string | number | Date]) {
      if (args.length === 0) super(realNow() + skew);
      else super(args[0]);
    }

    static override now(): number {
      return realNow() + skew;
    }
  }
  globalThis.Date = SkewedDate as DateConstructor;
}

/** The command prefix (startMember, restart) that starts a node with its clock `ms` off. */
export function skewedClock(ms: number): string[] {
  return ['env', `KV_TEST_CLOCK_SKEW_MS=${ms}`, `NODE_OPTIONS=--import=${import.meta.filename}`];
}

/**
 * The command prefix that starts a node whose clock is off by the ms written in `file` (see
 * setClockSkew), read again every CLOCK_FILE_POLL_MS while it runs.
 */
export function skewedClockFile(file: string): string[] {
  return [
    'env',
    `KV_TEST_CLOCK_SKEW_FILE=${file}`,
    `NODE_OPTIONS=--import=${import.meta.filename}`,
  ];
}

/** Steps the clock of every node started with skewedClockFile(file) to `ms` off the host's. */
export function setClockSkew(file: string, ms: number): void {
  writeFileSync(`${file}.tmp`, `${ms}\n`);
  // A rename, so a node never reads a half-written number.
  renameSync(`${file}.tmp`, file);
}
