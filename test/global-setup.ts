// Runs once before any test file: the tests run on the pinned Node (package.json's `node` devDependency), or not at all.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

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

export default function setup(): void {
  checkNode();
}
