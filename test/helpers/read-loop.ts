// A client reading random keys of known values in a loop, counting the answers that differ.

import type { LineClient } from './line-client.ts';

/**
 * Reads random keys of `values` through `c` in a loop until finish(); counts every read and
 * every answer that is not the key's value. A connection that fails ends the loop (counted as
 * one wrong answer: the node went away, or a failed test's cleanup stopped it).
 */
export function readLoop(c: LineClient, values: ReadonlyMap<string, string>) {
  const keys = [...values.keys()];
  let stop = false;
  let reads = 0;
  const wrong: string[] = [];
  const done = (async () => {
    while (!stop) {
      const k = keys[Math.floor(Math.random() * keys.length)]!;
      const got = await c.call(`GET ${k}`).catch((err: Error) => {
        stop = true;
        return `(${err.message})`;
      });
      reads++;
      if (got !== values.get(k)) wrong.push(`${k}: ${got}`);
    }
  })();
  return {
    async finish(): Promise<{ reads: number; wrong: string[] }> {
      stop = true;
      await done;
      return { reads, wrong };
    },
  };
}
