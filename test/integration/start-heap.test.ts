// An empty node collects its start-up garbage before it listens (heap-trim.ts, `atStart`), not at
// its heap trimmer's first idle interval: that came 2 s after the start or later on a busy
// machine, and until then the node held 8 MiB more (V8 heap pages), so its measured RSS was one of
// two values by the machine's load (docs/memory.md).

import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, startNodeProcess } from '../helpers/node-process.ts';

afterAll(cleanup);

describe('start-up garbage', () => {
  it('is collected before the node listens, and the heap shrinks by it', async () => {
    const node = await startNodeProcess({ args: ['--log-level', 'info'] });
    const at = (msg: string) => node.logs.findIndex((l) => l.msg === msg);
    const listening = at('node listening');
    const collected = at('start: heap collected');
    expect(collected, JSON.stringify(node.logs)).toBeGreaterThanOrEqual(0);
    expect(collected).toBeLessThan(listening);
    const [before, after] = node.logs[collected]!.heapTotalMiB as [number, number];
    expect(after).toBeLessThan(before);
    await node.stop();
  });
});
