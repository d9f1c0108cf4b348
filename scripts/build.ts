// `npm run build`: src/ and operator/ compiled to JavaScript in dist/ (tsc, tsconfig.build.json),
// and the node's entry bundled into one file with its V8 code cache (esbuild).
//
// Node 24 runs the .ts sources directly, but its type stripping keeps a WebAssembly compiler in
// every process (about 28 MiB more RSS for an empty node, measured by `npm run bench`). The image
// runs this output (the Dockerfile copies dist/src over src/, where the bin shims look first);
// development, tests and the repository's bins run the sources. The layout mirrors the sources
// (dist/src, dist/operator, dist/package.json), with the files that are not TypeScript (console
// assets, operator manifests) copied beside the compiled modules, so relative paths still hold.
//
// The node (src/main.ts) is then bundled: dist/src/main.bundle.cjs holds it and every dependency
// without native parts (zod, pino, prom-client), minified but for the names (stack traces, error
// classes), ASCII only (V8 keeps the source at one byte a character; zod's files would be two).
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
import { build, type Plugin } from 'esbuild';

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

/**
 * Packages the bundle leaves to `require`: native addons (.node files found by their loaders at
 * run time) and the packages that load them.
 */
const BUNDLE_EXTERNAL = ['lmdb', 'msgpackr', '@node-rs/xxhash', 'fs-native-extensions'];

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

/**
 * Each kvstore module keeps its own `import.meta` inside the bundle: the URL it has in tsc's
 * output (src/console/index.ts reads ./assets/ beside it, src/storage/verify.ts spawns
 * verify-lmdb.js beside it), computed from the bundle's place in dist/src.
 */
const keepImportMeta: Plugin = {
  name: 'kvstore-import-meta',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const rel = relative(join(ROOT, 'src'), args.path);
      if (!text.includes('import.meta') || rel.startsWith('..')) return undefined;
      const url = `new URL(${JSON.stringify(`./${rel.replace(/\.ts$/, '.js')}`)}, __kvBundleUrl)`;
      const contents = text
        .replaceAll('import.meta.url', `${url}.href`)
        .replaceAll('import.meta.dirname', `__kvBundleDir(${url})`)
        .replaceAll('import.meta.filename', `__kvBundleFile(${url})`);
      if (contents.includes('import.meta')) {
        throw new Error(`build: ${rel} uses import.meta in a way the bundle does not rewrite`);
      }
      return { contents, loader: 'ts' };
    });
  },
};

/**
 * What the bundle takes instead of a dependency's module, each a part of it the node never runs
 * (and a builtin module it would load at start): every node holds its modules' source and
 * compiled top level in memory, and the builtins' too (docs/memory.md).
 * `from`: only where that file imports it.
 */
const BUNDLE_SHIMS: readonly { name: string; from?: RegExp; contents: string }[] = [
  {
    // prom-client's index also loads its Pushgateway (node:http, https, zlib, url and with them
    // tls and crypto), the cluster aggregator (node:cluster) and Summary (tdigest, bintrees).
    // src/ imports only these: a name missing here fails the build (no matching export).
    name: 'prom-client',
    from: /\/src\//,
    contents: `
      export { default as Registry } from 'prom-client/lib/registry.js';
      export { default as Counter } from 'prom-client/lib/counter.js';
      export { default as Gauge } from 'prom-client/lib/gauge.js';
      export { default as Histogram } from 'prom-client/lib/histogram.js';
      export { default as collectDefaultMetrics } from 'prom-client/lib/defaultMetrics.js';`,
  },
  {
    // Read by prom-client's CPU counters only with exemplars on (the node never turns them on):
    // without a registered tracer the API finds no active span, and neither does this.
    name: '@opentelemetry/api',
    contents: `
      export const context = { active: () => undefined };
      export const trace = { getSpan: () => undefined };`,
  },
  {
    // pino's transports (a worker thread per destination); the node logs to a stream.
    name: 'thread-stream',
    contents: `
      export default class ThreadStream {
        constructor() { throw new Error('kvstore bundle: pino transports are not included'); }
      }`,
  },
  {
    // pino reads isMainThread at load (node:worker_threads and its 4 modules): the bundle runs
    // only as the process's entry (dist/src/main.js), on the main thread.
    name: 'worker_threads',
    from: /\/pino\/lib\/tools\.js$/,
    contents: 'export const isMainThread = true;',
  },
  {
    // sonic-boom checks one argument with assert (node:assert and its 5 modules): the same check,
    // and node:assert's own error when it fails.
    name: 'assert',
    from: /\/sonic-boom\/index\.js$/,
    contents: `
      export default function assert(ok, message) {
        if (!ok) require('node:assert')(ok, message);
      }`,
  },
];

const shims: Plugin = {
  name: 'kvstore-shims',
  setup(b) {
    const names = new Set(BUNDLE_SHIMS.map((s) => s.name));
    b.onResolve({ filter: /^[@a-z]/ }, (args) => {
      if (!names.has(args.path) || args.namespace === 'kvstore-shim') return undefined;
      const shim = BUNDLE_SHIMS.find(
        (s) => s.name === args.path && (s.from?.test(args.importer) ?? true),
      );
      return shim ? { path: shim.name, namespace: 'kvstore-shim' } : undefined;
    });
    b.onLoad({ filter: /.*/, namespace: 'kvstore-shim' }, (args) => ({
      contents: BUNDLE_SHIMS.find((s) => s.name === args.path)!.contents,
      resolveDir: ROOT,
      loader: 'js',
    }));
  },
};

/** Bundles src/main.ts into `dir`/main.bundle.cjs; returns the bundled input files' count. */
async function bundleNode(dir: string): Promise<number> {
  const result = await build({
    entryPoints: [join(ROOT, 'src/main.ts')],
    outfile: join(dir, 'main.bundle.cjs'),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    // Whitespace and syntax only: the names stay, so stack traces read as the sources and
    // pino's logged error `type` (the constructor's name) is the class's. Not keepNames: its
    // __name call on every function made each closure created per request cost a property
    // definition (about 10% more node CPU a request); minified names would save 1.7 MiB more.
    minifyWhitespace: true,
    minifySyntax: true,
    charset: 'ascii',
    legalComments: 'none',
    // main.bundle.cjs.map beside it, read only with source maps on (see LOADER): the sources'
    // paths and lines, not their text (sourcesContent), so the image grows by the map alone.
    sourcemap: 'linked',
    sourcesContent: false,
    external: BUNDLE_EXTERNAL,
    // First the directive: a "use strict" after the banner's statements would not be one, and
    // the whole bundle would run in sloppy mode.
    banner: {
      js: [
        "'use strict';",
        "const __kvBundleUrl = require('node:url').pathToFileURL(__filename).href;",
        "const __kvBundleFile = (u) => require('node:url').fileURLToPath(u);",
        "const __kvBundleDir = (u) => require('node:path').dirname(__kvBundleFile(u));",
      ].join(' '),
    },
    plugins: [keepImportMeta, shims],
    metafile: true,
    logLevel: 'silent',
  });
  if (result.warnings.length > 0) {
    throw new Error(`build: esbuild warned:\n${result.warnings.map((w) => w.text).join('\n')}`);
  }
  // The loader decodes the bundle as latin1 (LOADER): right only for ASCII.
  if (readFileSync(join(dir, 'main.bundle.cjs')).some((c) => c >= 0x80)) {
    throw new Error('build: main.bundle.cjs is not ASCII');
  }
  return Object.keys(result.metafile.inputs).length;
}

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
  // A fresh process with no flags: the cache holds V8's flags, and the node runs with none.
  return Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
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
  const inputs = await bundleNode(join(out, 'src'));
  const cacheBytes = writeCodeCache(join(out, 'src'));
  writeFileSync(join(out, 'src/main.js'), LOADER);
  bundled = `node bundled from ${inputs} files, code cache ${Math.round(cacheBytes / 1024)} KiB`;
}
process.stdout.write(
  `build: ${relative(process.cwd(), out) || '.'} (tsc, ${copied} other files, ${bundled})\n`,
);
