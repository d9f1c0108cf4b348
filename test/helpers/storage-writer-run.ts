// Runs test/helpers/storage-writer.ts (a child that writes into a Storage) through its phases.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect, onTestFinished } from 'vitest';
import { NODE, ROOT } from './node-process.ts';

const WRITER = join(ROOT, 'test/helpers/storage-writer.ts');

/**
 * Starts the writer on `dir` (killed when the test finishes) and resolves once its first `first`
 * writes are flushed; `afterFlush` runs then (to copy LMDB's file as it was synced, say). It then
 * writes its second phase (`second` keys, every tenth first-phase key removed), and once all are
 * acknowledged it is SIGKILLed: its log holds them, LMDB maybe not.
 */
export async function killedStorageWriter(
  dir: string,
  first: number,
  second: number,
  afterFlush: () => void = () => {},
): Promise<void> {
  const child = spawn(NODE, [WRITER, dir, String(first), String(second)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  const lines = createInterface({ input: child.stdout! });
  const next = () => new Promise<string>((r) => lines.once('line', r));
  expect(await next()).toBe('FLUSHED');
  afterFlush();
  child.stdin!.write('go\n');
  expect(await next()).toBe('ACKED');
  child.kill('SIGKILL');
  await once(child, 'exit');
}
