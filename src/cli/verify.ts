// kvctl verify <data-dir>: checks a node's data directory offline and says what is wrong.

import { validStateDoc, verifyStore } from '../storage/index.ts';
import type { CliOutput } from './commands.ts';

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);
const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;

/** Each metadata document the node writes, with what a valid one looks like. */
const METADATA: readonly {
  match: (key: string) => boolean;
  valid: (v: unknown, key: string) => boolean;
}[] = [
  {
    match: (k) => k === 'state',
    valid: (v) =>
      isObject(v) &&
      count(v.liveKeys) &&
      count(v.tombstones) &&
      isObject(v.hlc) &&
      count(v.hlc.wall) &&
      count(v.hlc.logical) &&
      typeof v.hlc.node === 'string',
  },
  // The node's own documents (x:<key>), each checked by the schema the node reads it with.
  {
    match: (k) => k.startsWith('x:') && validStateDoc(k.slice(2), undefined) !== null,
    valid: (v, k) => validStateDoc(k.slice(2), v) === true,
  },
];

/**
 * Prints what `dir` holds and every problem; resolves with the exit code: 0 when the node can
 * start on it as it is, 1 when it cannot (or would lose acknowledged writes).
 */
export async function verify(dir: string, out: CliOutput): Promise<number> {
  const check = await verifyStore(dir);
  const problems = [...check.problems];
  const notes = [...check.notes];
  if (check.metadata !== null) {
    const keys = Object.keys(check.metadata);
    for (const key of keys) {
      const kind = METADATA.find((m) => m.match(key));
      if (kind === undefined) notes.push(`metadata: unrecognized key '${key}'`);
      else if (!kind.valid(check.metadata[key], key))
        problems.push(`metadata: '${key}' does not parse`);
    }
    notes.push(`metadata: ${keys.length} keys (${keys.join(', ')})`);
  }
  for (const n of notes) out.stdout.write(`${n}\n`);
  for (const p of problems) out.stdout.write(`PROBLEM ${p}\n`);
  out.stdout.write(problems.length === 0 ? 'OK\n' : `${problems.length} problems\n`);
  return problems.length === 0 ? 0 : 1;
}
