// `npm run build`: src/ and operator/ compiled to JavaScript in dist/ (tsc, tsconfig.build.json),
// and the node's entry bundled into one file with its V8 code cache (esbuild).
//
// Node 24 runs the .ts sources directly, but its type stripping keeps a WebAssembly compiler in
// every process (about 28 MiB more RSS for an empty node, measured by `npm run bench`). The image
// runs this output (the Dockerfile copies dist/src over src/, where the bin shims look first);
// development and the repository's bins run the sources, the tests' nodes the sources bundled
// (test/helpers/node-bundle.ts). The layout mirrors the sources (dist/src, dist/operator,
// dist/package.json), with the files that are not TypeScript (console assets, operator
// manifests) copied beside the compiled modules, so relative paths still hold.
//
// The node (src/main.ts) is then bundled (scripts/bundle-node.ts): dist/src/main.bundle.cjs holds
// it and every dependency without native parts (zod, pino, prom-client), minified but for the
// names (stack traces, error classes), ASCII only (V8 keeps the source at one byte a character;
// zod's files would be two).
// Beside it, main.bundle.cjs.cache is V8's code cache of its top level, made here by the same
// Node, and dist/src/main.js (which the bin shim runs) is replaced by a loader that compiles the
// bundle with that cache. Bundled without the cache the node measured no smaller (parsing one
// large script grows glibc's heap by what the smaller V8 heap saves); with it, 5 MiB less RSS at
// start and 4 MiB after a load (bench/results/2026-12-05-bundle-rss.md). kvctl, the operator and
// the rest of dist/ stay tsc's modules. `--no-bundle`: tsc's output only (the node as before).
//
// Usage: node scripts/build.ts [--out-dir DIR] [--no-bundle]   (default dist/; DIR is replaced)

import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { bundleNode } from './bundle-node.ts';

const ROOT = resolve(import.meta.dirname, '..');
const USAGE = `Usage: node scripts/build.ts [--out-dir DIR] [--no-bundle]   (npm run build)
  Compiles src/ and operator/ to JavaScript in DIR (default dist/, replaced) with tsc
  (tsconfig.build.json) and copies the files that are not TypeScript beside them. Then bundles
  the node (src/main.ts) into DIR/src/main.bundle.cjs with its V8 code cache, and makes
  DIR/src/main.js load it; --no-bundle leaves tsc's main.js.`;
const { values } = parseArgs({
  options: {
    'out-dir': { type: 'string' },
    'no-bundle': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const out = resolve(values['out-dir'] ?? join(ROOT, 'dist'));

/** The loader that replaces dist/src/main.js (an ES module: package.json says "type": "module"). */
const LOADER = `// kvstore node entry, written by scripts/build.ts: compiles main.bundle.cjs (the node and its
// dependencies in one file) with V8's code cache of it, made by the build, and runs it as a
// CommonJS module. A cache that V8 rejects (another Node or V8 flags) only costs the parse.
// With source maps on (NODE_OPTIONS=--enable-source-maps) it is required instead, without the
// cache, so that stack traces name src/*.ts lines through main.bundle.cjs.map (Node maps the
// code require() compiles, not what node:vm compiles).
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileFunction } from 'node:vm';

const filename = fileURLToPath(new URL('./main.bundle.cjs', import.meta.url));
// The bundle's text, read 128 KiB at a time. readFileSync(filename, 'utf8') reads the whole file
// into one buffer that glibc serves with mmap, and freeing it raises glibc's mmap and trim
// thresholds to its size: from then on, freed heap memory below that stays resident (about
// 0.6 MiB more RSS). The bundle is ASCII (the build checks it): latin1 decodes it exactly.
const readSource = (path) => {
  const chunk = Buffer.allocUnsafe(1 << 17);
  const fd = openSync(path, 'r');
  let text = '';
  try {
    for (let n; (n = readSync(fd, chunk)) > 0; ) text += chunk.toString('latin1', 0, n);
  } finally {
    closeSync(fd);
  }
  return text;
};
const check = (what) => {
  if (process.env.KVSTORE_CODE_CACHE_CHECK === '1') process.stderr.write(\`kvstore: code cache \${what}\\n\`);
};
if (process.sourceMapsEnabled) {
  check('not used (source maps on)');
  createRequire(filename)(filename);
} else {
  let cachedData;
  try {
    cachedData = readFileSync(\`\${filename}.cache\`);
  } catch {}
  const params = ['exports', 'require', 'module', '__filename', '__dirname'];
  const run = compileFunction(readSource(filename), params, { filename, cachedData });
  check(cachedData === undefined ? 'missing' : run.cachedDataRejected ? 'rejected' : 'accepted');
  const module = { exports: {}, filename, id: '.' };
  run(module.exports, createRequire(filename), module, filename, dirname(filename));
}
`;

/** V8's code cache of the bundle's top level, compiled the way the loader compiles it. */
function writeCodeCache(dir: string): number {
  const filename = join(dir, 'main.bundle.cjs');
  const script = `
    const { readFileSync, writeFileSync } = require('node:fs');
    const { compileFunction } = require('node:vm');
    const filename = ${JSON.stringify(filename)};
    const params = ['exports', 'require', 'module', '__filename', '__dirname'];
    const fn = compileFunction(readFileSync(filename, 'utf8'), params, { filename, produceCachedData: true });
    if (!fn.cachedDataProduced) throw new Error('build: V8 produced no code cache');
    writeFileSync(filename + '.cache', fn.cachedData);
    process.stdout.write(String(fn.cachedData.length));`;
  // A fresh process with the V8 flags of bin/kvstore.js's #! line, which the node runs with: the
  // cache holds a hash of the flags that change V8's code (--no-allocation-site-pretenuring
  // does), and V8 rejects it under others.
  const first = readFileSync(join(ROOT, 'bin/kvstore.js'), 'utf8').split('\n', 1)[0]!;
  const flags = first.split(' ').filter((f) => f.startsWith('--'));
  return Number(execFileSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8' }));
}

rmSync(out, { recursive: true, force: true });
const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out], {
  stdio: 'inherit',
});
let copied = 0;
for (const top of ['src', 'operator']) {
  for (const f of readdirSync(join(ROOT, top), { recursive: true, withFileTypes: true })) {
    if (!f.isFile() || f.name.endsWith('.ts')) continue;
    const from = join(f.parentPath, f.name);
    cpSync(from, join(out, relative(ROOT, from)));
    copied++;
  }
}
let bundled = 'not bundled';
if (!values['no-bundle']) {
  const inputs = await bundleNode(join(out, 'src/main.bundle.cjs'));
  const cacheBytes = writeCodeCache(join(out, 'src'));
  writeFileSync(join(out, 'src/main.js'), LOADER);
  bundled = `node bundled from ${inputs} files, code cache ${Math.round(cacheBytes / 1024)} KiB`;
}
process.stdout.write(
  `build: ${relative(process.cwd(), out) || '.'} (tsc, ${copied} other files, ${bundled})\n`,
);
