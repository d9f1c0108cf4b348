// Runs once before any test file: the tests run on the pinned Node (package.json's `node` devDependency), or not at all,
// and the nodes they start run the sources bundled (test/helpers/node-bundle.ts).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { BUNDLE_ENV, buildTestBundle } from './helpers/node-bundle.ts';

const ROOT = join(import.meta.dirname, '..');

/**
 * Throws (vitest stops before running any test) when this is not the Node that package.json
 * pins: `vitest` started directly runs on whatever `node` is first on PATH, and some suites
 * then fail in ways that say nothing about the cause.
 */
export function checkNode(version: string = process.versions.node): void {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    devDependencies: Record<string, string>;
  };
  const pinned = pkg.devDependencies.node;
  if (version === pinned) return;
  throw new Error(
    `tests run on the pinned Node ${pinned} (node_modules/.bin/node), not Node ${version} (${process.execPath}). ` +
      'Run them through npm, which puts node_modules/.bin first on PATH: `npm test`, `npm run test:local`, or `npx vitest run <file>`.',
  );
}

export default async function setup(project: TestProject): Promise<void> {
  checkNode();
  // The workers, forked after this, inherit the environment. Made again before each rerun in
  // watch mode, so that the nodes run the sources as they are then.
  const bundle = async () => {
    const main = await buildTestBundle();
    if (main !== null) process.env[BUNDLE_ENV] = main;
  };
  await bundle();
  project.onTestsRerun(bundle);
}
