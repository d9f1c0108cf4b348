// readWaitMs: the longest a peer request is waited for while answers arrive past its timeout. A
// read repair writes back a record the read got: the read, the fetches of the newest record whole
// after it, and the copy must all fit in --tombstone-grace-ms minus --max-clock-offset-ms, or a
// value read just before a DEL could be written back after the DEL's tombstone was collected.

import { describe, expect, it } from 'vitest';
import { copyTimeoutMs, readWaitMs } from '../../src/rebalance/index.ts';

const MiB = 1024 * 1024;

describe('readWaitMs', () => {
  it('leaves a read repair, after the longest read, fetches and copy, inside the tombstone grace', () => {
    for (const graceMs of [2600, 10_000, 60_000, 600_000, 3_600_000]) {
      for (const offsetMs of [100, 500]) {
        for (const peerTimeoutMs of [500, 2000]) {
          if (graceMs <= peerTimeoutMs + offsetMs) continue; // refused by the config
          for (const valueBytes of [MiB, 64 * MiB - 64 * 1024]) {
            for (const hops of [2, 6, 14]) {
              const fresh = graceMs - offsetMs;
              const record = 1024 + valueBytes + 64;
              const wait = readWaitMs(peerTimeoutMs, fresh, hops, record);
              const copy = copyTimeoutMs(peerTimeoutMs, fresh, record);
              const at = { graceMs, offsetMs, peerTimeoutMs, valueBytes, hops, wait };
              // Waited for past its timeout only when the whole chain fits; otherwise as before.
              if (wait > peerTimeoutMs) {
                expect(hops * wait + copy, JSON.stringify(at)).toBeLessThan(fresh);
              } else {
                expect(wait, JSON.stringify(at)).toBe(peerTimeoutMs);
              }
            }
          }
        }
      }
    }
  });

  it('still waits minutes for answers under the default grace (1 h), RF 3 while data moves', () => {
    const wait = readWaitMs(2000, 3_600_000 - 500, 6, 1024 + MiB + 64);
    // A 64 MiB answer at 4 Mbit/s takes 128 s.
    expect(wait).toBeGreaterThan(128_000);
  });
});
