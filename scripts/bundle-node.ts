// The node (src/main.ts) bundled by esbuild into one CommonJS file with every dependency that has
// no native part (zod, pino, prom-client): what `npm run build` puts in the image (scripts/build.ts)
// and what the tests' nodes run (test/helpers/node-bundle.ts), a start then loading one file
// instead of about 500 modules.

import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';

const ROOT = resolve(import.meta.dirname, '..');

/**
 * Packages the bundle leaves to `require`: native addons (.node files found by their loaders at
 * run time) and the packages that load them.
 */
export const BUNDLE_EXTERNAL = ['lmdb', 'msgpackr', 'fs-native-extensions'];

/**
 * Each kvstore module keeps its own `import.meta` inside the bundle: its URL beside the bundle's
 * base (`__kvBundleUrl`, see bundleNode's `sources`) with `ext` for `.ts`: the URL it has in tsc's
 * output (src/console/index.ts reads ./assets/ beside it, src/storage/verify.ts spawns
 * verify-lmdb.js beside it), computed from the bundle's place in dist/src; or, for a bundle of the
 * sources run where they are (the tests), the source file's own URL.
 */
function keepImportMeta(ext: '.js' | '.ts'): Plugin {
  return {
    name: 'kvstore-import-meta',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        const rel = relative(join(ROOT, 'src'), args.path);
        if (!text.includes('import.meta') || rel.startsWith('..')) return undefined;
        const url = `new URL(${JSON.stringify(`./${rel.replace(/\.ts$/, ext)}`)}, __kvBundleUrl)`;
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
}

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

/**
 * Bundles src/main.ts into `outfile`; returns the bundled input files' count. By default the
 * bundle is dist/src's (its modules' `import.meta` beside it, as tsc's `.js`); with `sources` it
 * runs as if it were src/main.ts from any directory of the repository (the packages it leaves out
 * are required from node_modules), its modules' `import.meta` the sources' own.
 */
export async function bundleNode(outfile: string, sources = false): Promise<number> {
  const base = sources
    ? JSON.stringify(pathToFileURL(join(ROOT, 'src/main.ts')).href)
    : "require('node:url').pathToFileURL(__filename).href";
  const result = await build({
    entryPoints: [join(ROOT, 'src/main.ts')],
    outfile,
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
    // The tests' bundle has none (stack traces name its functions as the sources do).
    sourcemap: sources ? false : 'linked',
    sourcesContent: false,
    external: BUNDLE_EXTERNAL,
    // First the directive: a "use strict" after the banner's statements would not be one, and
    // the whole bundle would run in sloppy mode.
    banner: {
      js: [
        "'use strict';",
        `const __kvBundleUrl = ${base};`,
        "const __kvBundleFile = (u) => require('node:url').fileURLToPath(u);",
        "const __kvBundleDir = (u) => require('node:path').dirname(__kvBundleFile(u));",
      ].join(' '),
    },
    plugins: [keepImportMeta(sources ? '.ts' : '.js'), shims],
    metafile: true,
    logLevel: 'silent',
  });
  if (result.warnings.length > 0) {
    throw new Error(`build: esbuild warned:\n${result.warnings.map((w) => w.text).join('\n')}`);
  }
  // The loader decodes the bundle as latin1 (LOADER): right only for ASCII.
  if (readFileSync(outfile).some((c) => c >= 0x80)) {
    throw new Error('build: main.bundle.cjs is not ASCII');
  }
  return Object.keys(result.metafile.inputs).length;
}
