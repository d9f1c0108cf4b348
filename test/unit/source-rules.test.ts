// Rules on the sources that no linter checks: patterns that broke a node at run time.

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

/** Every .ts file under `dir`, recursively. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

describe('sources', () => {
  it('declare no static private member (`static #`): Node 24 compile cache breaks their brand check', () => {
    // Session 37: with Storage's `static #openLmdb` and a few more private members, every node
    // started from Node's compile cache (NODE_COMPILE_CACHE, as the tests and bin/kvstore.js
    // start them) died from its second start on, with V8's "TypeError: Receiver must be class
    // #handing" at the call or SIGSEGV, while the same sources ran without the cache (V8's
    // cached code read the wrong context slot). A module function does the same without it.
    const found: string[] = [];
    for (const file of sources(join(ROOT, 'src'))) {
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, i) => {
        if (/^\s*(\/\/|\*)/.test(line)) return; // comments
        if (/\bstatic\s+(?:async\s+|get\s+|set\s+|\*\s*)*#/.test(line)) {
          found.push(`${relative(ROOT, file)}:${i + 1}: ${line.trim()}`);
        }
      });
    }
    expect(found).toEqual([]);
  });
});
