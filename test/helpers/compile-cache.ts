// Where every process the tests start keeps Node's module compile cache: one name for
// vitest.config.ts (vitest's workers and what they start) and node-process.ts (the nodes it
// starts, also from `npm run chaos`).

import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Node's compile cache of the processes tests start (type stripping's output and V8's code of
 * each of the ~480 modules a node loads from the sources), unless the caller's environment names
 * its own or sets NODE_DISABLE_COMPILE_CACHE: a start then spends 0.3 CPU-seconds before its
 * first log line instead of 0.8, which on a loaded machine (the chaos runs at load 40) was 7 to
 * 11 s. Each entry is checked against its file's content at load.
 */
export const COMPILE_CACHE = join(tmpdir(), 'kvstore-test-compile-cache');
