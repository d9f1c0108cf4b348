// The node the tests start: src/main.ts bundled into one file (scripts/bundle-node.ts), built once
// per vitest run by test/global-setup.ts, or the sources themselves with KVSTORE_TEST_SOURCES=1.
//
// A node from src/main.ts loads about 500 modules (the sources, zod, pino, prom-client): 0.37
// CPU-seconds to "node listening" at load 55, against 0.17 for the bundle (2026-12-07), and the
// suites start well over a thousand nodes. The bundle is the same code: the sources as they are
// when the run starts, their `import.meta` their own (console assets, verify-lmdb.ts).

import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

/** Set by test/global-setup.ts for the workers (they inherit its environment): the bundle's path. */
export const BUNDLE_ENV = 'KVSTORE_TEST_NODE_MAIN';

/**
 * Inside the repository, so that the packages the bundle leaves out (native ones) are found in
 * node_modules above it; one path, so that Node's compile cache keeps its entry across runs.
 */
const BUNDLE = join(ROOT, 'test/.node-bundle/main.cjs');

/**
 * Bundles the sources into BUNDLE and returns its path, or null with KVSTORE_TEST_SOURCES=1. Written
 * to a file of its own and renamed over BUNDLE: a vitest run beside this one (npm test runs two)
 * may be starting nodes from it, and sees the old file or the new one whole.
 */
export async function buildTestBundle(): Promise<string | null> {
  if (process.env.KVSTORE_TEST_SOURCES === '1') return null;
  mkdirSync(join(ROOT, 'test/.node-bundle'), { recursive: true });
  const tmp = `${BUNDLE}.${process.pid}.tmp`;
  try {
    // Loaded here: the workers import this file for BUNDLE_ENV alone, and esbuild is not for them.
    const { bundleNode } = await import('../../scripts/bundle-node.ts');
    await bundleNode(tmp, true);
    renameSync(tmp, BUNDLE);
  } finally {
    rmSync(tmp, { force: true });
  }
  return BUNDLE;
}
