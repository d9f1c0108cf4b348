// ring-bench: owners() throughput on 1M random keys (5 members, RF 3), and ring build time.
// Run: node bench/ring-bench.ts [vnodes]
import { DEFAULT_VNODES, Ring } from '../src/ring/index.ts';

const KEYS = 1_000_000;
const ROUNDS = 5;
const vnodes = Number(process.argv[2] ?? DEFAULT_VNODES);
const members = ['kvstore-0', 'kvstore-1', 'kvstore-2', 'kvstore-3', 'kvstore-4'];

/** mulberry32: a deterministic PRNG so runs are comparable. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const next = prng(1);
const keys: Buffer[] = [];
for (let i = 0; i < KEYS; i++) keys.push(Buffer.from(`user:${next().toString(36)}:${i}`));

const buildStart = process.hrtime.bigint();
const ring = new Ring(members, { vnodes });
const buildMs = Number(process.hrtime.bigint() - buildStart) / 1e6;
console.log(`ring build: ${members.length} members x ${vnodes} vnodes in ${buildMs.toFixed(2)} ms`);

let sink = 0;
const rates: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const start = process.hrtime.bigint();
  for (const key of keys) sink += ring.owners(key, 3).length;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  rates.push(KEYS / seconds);
}
rates.sort((a, b) => a - b);
const median = rates[Math.floor(ROUNDS / 2)]!;
console.log(
  `owners(key, 3): median ${(median / 1e6).toFixed(2)} M/s over ${ROUNDS} rounds of ${KEYS} keys ` +
    `(min ${(rates[0]! / 1e6).toFixed(2)}, max ${(rates[ROUNDS - 1]! / 1e6).toFixed(2)}; check ${sink})`,
);
