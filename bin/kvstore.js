#!/usr/bin/env -S node --max-semi-space-size=16 --no-parallel-scavenge --no-allocation-site-pretenuring
// npm bin shim: the compiled JavaScript beside the sources when it is there (the image: `npm run
// build` output, no TypeScript type stripping, about 28 MiB less RSS), else the TypeScript
// sources run directly by Node 24 (type stripping, development).
//
// --max-semi-space-size=16: V8 sizes the young generation from the memory it sees, and in a
// container that is the cgroup's limit: the chart's 512 MiB pod got a 1 MiB semi-space (2 MiB
// of young generation), a 24 GiB host 64 MiB. Each collection of it stops the node, and at 1 MiB
// a write-heavy node stopped 35-60 times as often as on the host (docs/performance.md, GC and
// the young generation). Fixed here so that every node runs the one size measured; it only caps
// how far the young generation grows under load (an empty node starts at 1 MiB).
// --no-parallel-scavenge: the main thread collects the young generation alone. In parallel, V8
// woke its worker threads about ten times per collection, on the cores the node's clients and
// the machine's other work need, and a worker switched out mid-collection held the stopped main
// thread until it ran again (GET P1 on 2 cores, 7 runs each: 28 of 96 collections over 3 ms, up
// to 187 ms, against 2 of 97; bench/results/2026-12-07-s34-get-p1-tail.md).
// --no-allocation-site-pretenuring: V8 never decides from one collection that an array or object
// literal's objects live long and allocates them in the old generation from then on. A request's
// objects (a read's order of replicas, its reply's record) all survive a collection that comes
// while a burst of them is in flight, and V8 then tenured that literal for good: each of them
// dead in the old generation, holding its young parts through every young collection, until
// major collections. One 3-node coordinator in 4-5 fell into it at random: 3-4.5x the time per
// young collection, 160-250 B promoted per GET against 10-20, GET P16 1.5x the CPU
// (bench/results/2026-12-07-s37-h5-pretenuring.md). bench/procs.ts starts its nodes with the
// flags of this line, scripts/build.ts makes the bundle's code cache under them.
import { existsSync } from 'node:fs';
import { enableCompileCache } from 'node:module';

const js = new URL('../src/main.js', import.meta.url);
if (!existsSync(js)) {
  // The sources: Node's compile cache (under the temporary directory, or NODE_COMPILE_CACHE)
  // keeps type stripping's output and V8's code of every module, so that a restart compiles none
  // of them again (src/main.ts writes it once the node started). It never throws.
  enableCompileCache();
}
await import(existsSync(js) ? js.href : new URL('../src/main.ts', import.meta.url).href);
