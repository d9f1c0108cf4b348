// `node bench/tree-check.ts`: the start-up tree check (src/storage/lmdb-tree.ts) on a big LMDB
// file whose pages are not in the page cache (what a node meets after a power cut), with and
// without reading ahead, alternating in one process: how the check's read-ahead is measured.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { open } from 'lmdb';
import { LMDB_ENV_OPTIONS, lmdbFileCheck } from '../src/storage/lmdb-check.ts';
import { lmdbTreeProblem } from '../src/storage/lmdb-tree.ts';

const USAGE = `Usage: node bench/tree-check.ts --dir DIR [options]
  --dir DIR        where the LMDB file is made (kept: made once per --keys and --order)
  --keys N         keys, \`key:%012d\` with 130-byte values (default 3000000)
  --order O        in (keys inserted in order: a file laid out in tree order) or random
                   (default in)
  --rounds N       rounds of A (no read-ahead) and B (read-ahead), in turn, every other round
                   B first (default 5)
  --read-ahead N   B's reads under way ahead of the pass (default 2, the check's default)
  --warm           leave the page cache as it is (default: drop the file's pages before each
                   timing, with \`dd iflag=nocache count=0\`)
Prints each timing, then the median B/A of the rounds.`;

const { values: v } = parseArgs({
  options: {
    dir: { type: 'string' },
    keys: { type: 'string', default: '3000000' },
    order: { type: 'string', default: 'in' },
    rounds: { type: 'string', default: '5' },
    'read-ahead': { type: 'string', default: '2' },
    warm: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (v.help || v.dir === undefined || !['in', 'random'].includes(v.order)) {
  console.log(USAGE);
  process.exit(v.help ? 0 : 2);
}
const keys = Number(v.keys);
const depth = Number(v['read-ahead']);
const dir = join(v.dir, `tree-${keys}-${v.order}`);
const file = join(dir, 'data.mdb');

/** Writes `keys` keys into a new store at `dir`, in order or in a random order. */
async function make(): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const root = open({ path: dir, ...LMDB_ENV_OPTIONS });
  const data = root.openDB({ name: 'data', encoding: 'binary', keyEncoding: 'binary' });
  const order = Array.from({ length: keys }, (_, i) => i);
  if (v.order === 'random') {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
  }
  const value = Buffer.alloc(130, 7);
  for (let at = 0; at < keys; at += 100_000) {
    await data.transaction(() => {
      for (const i of order.slice(at, at + 100_000)) {
        data.put(Buffer.from(`key:${String(i).padStart(12, '0')}`), value);
      }
    });
  }
  await root.close();
}

function dropCache(): void {
  if (v.warm) return;
  const r = spawnSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error('dd iflag=nocache failed');
}

function time(readAhead: number): number {
  const check = lmdbFileCheck(file);
  if (check.problem !== null || check.opened === null) throw new Error(`not a good file: ${file}`);
  dropCache();
  const t0 = performance.now();
  const problem = lmdbTreeProblem(file, check.opened, { readAhead });
  const ms = performance.now() - t0;
  if (problem !== null) throw new Error(problem);
  return ms;
}

if (!existsSync(file)) await make();
const mib = Math.round(statSync(file).size / 2 ** 20);
console.log(
  `${file}: ${mib} MiB, ${keys} keys inserted ${v.order === 'in' ? 'in order' : 'in random order'}, page cache ${v.warm ? 'warm' : 'dropped before each timing'}, load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
const ratios: number[] = [];
for (let r = 0; r < Number(v.rounds); r++) {
  const bFirst = r % 2 === 1;
  const first = time(bFirst ? depth : 0);
  const second = time(bFirst ? 0 : depth);
  const [a, b] = bFirst ? [second, first] : [first, second];
  ratios.push(b / a);
  console.log(
    `round ${r}: A (no read-ahead) ${a.toFixed(1)} ms, B (read-ahead) ${b.toFixed(1)} ms, B/A ${(b / a).toFixed(2)}x`,
  );
}
ratios.sort((x, y) => x - y);
console.log(
  `median B/A ${ratios[Math.floor(ratios.length / 2)]!.toFixed(2)}x; load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
