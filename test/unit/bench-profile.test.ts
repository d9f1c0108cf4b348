// The goal profiles' arithmetic (bench/profile.ts): self time from V8's CPU profile format, native
// frames named after their caller, threads' CPU from /proc. The profiles themselves are taken
// from real nodes by the bench smoke test (test/integration/bench-smoke.test.ts).

import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseCell, summarize, threadTicks, type V8Profile } from '../../bench/profile.ts';
import { ROOT } from '../helpers/node-process.ts';

const src = (path: string) => pathToFileURL(`${ROOT}/${path}`).href;

/**
 * root -> (idle); root -> onData (src/server/connection.ts) -> getBinaryFast (lmdb) -> native;
 * root -> writeAll (src/server/output.ts) -> Socket.write (node:net) -> writeBuffer (native);
 * root -> (garbage collector).
 */
const nodes: V8Profile['nodes'] = [
  { id: 1, children: [2, 3, 6, 9], callFrame: { functionName: '(root)', url: '', lineNumber: -1 } },
  { id: 2, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
  {
    id: 3,
    children: [4],
    callFrame: { functionName: '#onData', url: src('src/server/connection.ts'), lineNumber: 229 },
  },
  {
    id: 4,
    children: [5],
    callFrame: {
      functionName: 'getBinaryFast',
      url: src('node_modules/lmdb/read.js'),
      lineNumber: 80,
    },
  },
  { id: 5, callFrame: { functionName: 'xxh32', url: '', lineNumber: -1 } },
  {
    id: 6,
    children: [7],
    callFrame: { functionName: 'writeAll', url: src('src/server/output.ts'), lineNumber: 122 },
  },
  {
    id: 7,
    children: [8],
    callFrame: { functionName: 'Socket.write', url: 'node:net', lineNumber: 900 },
  },
  { id: 8, callFrame: { functionName: 'writeBuffer', url: '', lineNumber: -1 } },
  { id: 9, callFrame: { functionName: '(garbage collector)', url: '', lineNumber: -1 } },
];

/** Samples with the time each one stands for (V8 stores the time before each sample). */
function profile(samples: [id: number, us: number][]): V8Profile {
  const timeDeltas = [0, ...samples.map(([, us]) => us)];
  return {
    nodes,
    startTime: 0,
    endTime: samples.reduce((s, [, us]) => s + us, 0),
    samples: [...samples.map(([id]) => id), 2],
    timeDeltas,
  };
}

describe('summarize', () => {
  it('shares busy time by function, leaves idle out, names native frames after their caller', () => {
    // 400 idle, 600 busy: the addon's lookup 300, the socket write 150, onData itself 90, GC 60.
    const p = profile([
      [2, 400],
      [5, 300],
      [8, 150],
      [3, 90],
      [9, 60],
    ]);
    const { top, busyPct } = summarize([p]);
    expect(busyPct).toBeCloseTo(60, 5);
    expect(top).toEqual([
      // Called straight from a package's script: one `(native)` entry for that caller.
      { fn: '(native)', where: '<- getBinaryFast node_modules/lmdb/read.js:81', pct: 50 },
      // Through Node's own modules: the binding's name, the caller outside them.
      { fn: 'writeBuffer (native)', where: '<- writeAll src/server/output.ts:123', pct: 25 },
      { fn: '#onData', where: 'src/server/connection.ts:230', pct: 15 },
      { fn: '(garbage collector)', where: '', pct: 10 },
    ]);
  });

  it('sums several processes, averages their busy shares, and keeps the top n', () => {
    const a = profile([
      [2, 500],
      [5, 500],
    ]);
    const b = profile([
      [2, 900],
      [3, 100],
    ]);
    const { top, busyPct } = summarize([a, b], 1);
    expect(busyPct).toBeCloseTo(30, 5); // (50% + 10%) / 2
    expect(top).toHaveLength(1);
    expect(top[0]!.pct).toBeCloseTo((100 * 500) / 600, 5);
  });
});

describe('threadTicks', () => {
  it("groups this process's threads, the main thread among them, and counts their CPU", () => {
    let x = 0;
    for (let i = 0; i < 3e7; i++) x += i % 7; // about 50 ms of CPU on the main thread
    expect(x).toBeGreaterThan(0);
    const ticks = threadTicks(process.pid);
    const main = ticks.get('main thread');
    expect(main).toBeDefined();
    expect(main!.user + main!.system).toBeGreaterThan(0);
    expect(threadTicks(2 ** 22 + 1).size).toBe(0); // no such process
  });
});

describe('parseCell', () => {
  it('reads the cells the bench profiles and refuses others', () => {
    expect(parseCell('get:16')).toEqual({ kind: 'rb', target: 'kvstore', op: 'get', pipeline: 16 });
    expect(parseCell('cluster-set:1')).toEqual({
      kind: 'rb',
      target: 'cluster',
      op: 'set',
      pipeline: 1,
    });
    expect(parseCell('storeload-get')).toEqual({ kind: 'storeload', op: 'get' });
    expect(() => parseCell('get:8')).toThrow(/unknown cell 'get:8'/);
  });
});
