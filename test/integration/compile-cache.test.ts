// A node run from the sources with Node's compile cache on writes it once started, so that its restart after a SIGKILL compiles none of its modules again.

import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, MAIN, startNodeProcess, tempDir } from '../helpers/node-process.ts';

/** Files under Node's compile cache directory `dir` (one per module and kind). */
function entries(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    .length;
}

describe("a node's compile cache", () => {
  afterEach(cleanup);

  // Node writes its compile cache at a clean exit only: a node killed (or cut off) compiled its
  // ~480 modules again at every start, 0.8 CPU-seconds before its first log line instead of 0.3
  // (7 to 11 s of a restart in chaos seed 28005, at load 40).
  it('is written once the node started: a restart after SIGKILL compiles no module again', async () => {
    const cache = tempDir('kvstore-compile-cache-');
    const env = { NODE_COMPILE_CACHE: cache, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' };
    // From the sources (the other tests' nodes run them bundled: test/helpers/node-bundle.ts).
    const first = await startNodeProcess({ env, main: MAIN });
    // The write follows 'node listening' in the same turn of the node's event loop: anything the
    // node answers after it was logged comes after the cache was written.
    expect((await fetch(`http://127.0.0.1:${first.httpPort}/healthz`)).status).toBe(200);
    expect(entries(cache)).toBeGreaterThan(100);
    await first.stop('SIGKILL');
    const second = await startNodeProcess({ env, main: MAIN, dataDir: first.dataDir });
    // Node says which modules it found no cache for; the sources' own must all have been found.
    const missed = second
      .stderr()
      .split('\n')
      .filter((l) => /no transpile cache for .*\/src\//.test(l));
    console.log(`${entries(cache)} entries; the restart missed ${missed.length} of the sources`);
    expect(missed).toEqual([]);
  }, 60_000);
});
