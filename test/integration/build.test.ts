// `npm run build` (scripts/build.ts): the compiled JavaScript runs the node (bundled, with its code cache), kvctl and its offline verify through the bin shims, with no .ts beside it.

import { execFile } from 'node:child_process';
import {
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import {
  cleanup,
  NODE,
  type NodeProcess,
  ROOT,
  startNodeProcess,
} from '../helpers/node-process.ts';

const run = promisify(execFile);
let out = '';

beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), 'kvstore-build-'));
  await run(NODE, [join(ROOT, 'scripts/build.ts'), '--out-dir', out]);
  // As in the image: the bin shims next to the compiled modules, the dependencies beside them.
  cpSync(join(ROOT, 'bin'), join(out, 'bin'), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'), 'dir');
}, 600_000);
afterAll(() => rmSync(out, { recursive: true, force: true }));
afterEach(cleanup);

describe('the compiled build', () => {
  it('mirrors src/ and operator/ as .js, with the assets and manifests, and no TypeScript', () => {
    const files = readdirSync(out, { recursive: true, encoding: 'utf8' }).filter(
      (f) => !f.startsWith('node_modules'),
    );
    expect(files.filter((f) => f.endsWith('.ts'))).toEqual([]);
    for (const f of [
      'src/main.js',
      'src/main.bundle.cjs',
      'src/main.bundle.cjs.cache',
      'src/main.bundle.cjs.map',
      'src/cli/main.js',
      'src/storage/verify-lmdb.js',
      'operator/main.js',
      'src/console/assets/index.html',
      'operator/crd/kvclusters.kvstore.dev.yaml',
      'package.json',
    ])
      expect(files, f).toContain(f);
  });

  it('bundles the node: one strict ASCII file, class names as in the sources, and a code cache that V8 accepts', async () => {
    const bytes = readFileSync(join(out, 'src/main.bundle.cjs'));
    expect(bytes.every((b) => b < 0x80)).toBe(true);
    const bundle = bytes.toString('latin1');
    // The directive comes first, or the whole bundle runs in sloppy mode.
    expect(bundle.startsWith("'use strict';")).toBe(true);
    // pino logs an error's constructor name (`type`): a class of src/ that the bundle renamed
    // (esbuild appends a number where two modules use one name) would log the new name.
    const classes = new Set<string>();
    for (const f of readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })) {
      if (!f.endsWith('.ts')) continue;
      for (const m of readFileSync(join(ROOT, 'src', f), 'utf8').matchAll(/\bclass (\w+)/g))
        classes.add(m[1]!);
    }
    expect(classes.size).toBeGreaterThan(20);
    for (const c of classes) expect(bundle, c).not.toMatch(new RegExp(`\\b${c}\\d+\\b`));
    expect(bundle).toMatch(/\bKvError=class extends Error\b/);
    // Native addons stay in node_modules, loaded by require at run time.
    expect(bundle).toContain('require("lmdb")');
    // Run as the image runs it: the bin shim as a program, with the V8 flags of its #! line,
    // under which the build made the cache (one of them changes V8's code).
    const { stderr } = await run(join(out, 'bin/kvstore.js'), ['--help'], {
      env: {
        ...process.env,
        PATH: `${dirname(NODE)}:${process.env.PATH}`,
        KVSTORE_CODE_CACHE_CHECK: '1',
      },
    });
    expect(stderr).toBe('kvstore: code cache accepted\n');
  });

  it('maps the bundle back to src/ lines (main.bundle.cjs.map), and runs from it with source maps on', async () => {
    const bundle = readFileSync(join(out, 'src/main.bundle.cjs'), 'utf8');
    expect(bundle.trimEnd().endsWith('//# sourceMappingURL=main.bundle.cjs.map')).toBe(true);
    const map = new SourceMap(
      JSON.parse(readFileSync(join(out, 'src/main.bundle.cjs.map'), 'utf8')) as SourceMapPayload,
    );
    // The map holds paths and lines, not the sources' text.
    expect(map.payload.sourcesContent ?? []).toEqual([]);
    // zod is tree-shaken to the schemas the node builds (src/ imports it as `* as z`): through
    // zod's `z` namespace export the bundle kept all of zod, its 60-odd locales and its JSON
    // Schema parser (0.4 MB more source in every node's heap, about 3 MiB more RSS).
    const zod = map.payload.sources.filter((s) => s.includes('node_modules/zod/'));
    expect(zod.length).toBeGreaterThan(0);
    expect(zod.filter((s) => /\/locales\/(?!en\.js$)|from-json-schema/.test(s))).toEqual([]);
    // Where a class of src/ starts in the bundle is where it starts in its file.
    const wal = readFileSync(join(ROOT, 'src/storage/wal.ts'), 'utf8').split('\n');
    const walLine = wal.findIndex((l) => l.startsWith('export class WriteAheadLog'));
    const lines = bundle.split('\n');
    const line = lines.findIndex((l) => l.includes('WriteAheadLog=class'));
    expect(line).toBeGreaterThanOrEqual(0);
    const entry = map.findEntry(line, lines[line]!.indexOf('WriteAheadLog=class'));
    expect(entry).toMatchObject({ originalLine: walLine });
    expect((entry as { originalSource: string }).originalSource).toMatch(/src\/storage\/wal\.ts$/);
    // NODE_OPTIONS=--enable-source-maps: required instead of compiled with the cache, so that
    // Node applies the map to stack traces.
    const { stdout, stderr } = await run(
      NODE,
      ['--enable-source-maps', join(out, 'src/main.js'), '--help'],
      { env: { ...process.env, KVSTORE_CODE_CACHE_CHECK: '1' } },
    );
    expect(stderr).toBe('kvstore: code cache not used (source maps on)\n');
    expect(stdout).toMatch(/^Usage: kvstore/);
  });

  it('starts without the builtin modules a node needs only when asked (TLS, crypto), once it stores data (worker threads) or never (https), and serves its default metrics', async () => {
    // Each builtin a node loads keeps its compiled code and its part of the node binary resident
    // (docs/memory.md). The list is written when the process exits.
    const list = join(out, 'module-load-list.json');
    const preload = join(out, 'module-load-list.mjs');
    writeFileSync(
      preload,
      `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(list)}, JSON.stringify(process.moduleLoadList)));\n`,
    );
    const start = () =>
      startNodeProcess({
        main: join(out, 'bin/kvstore.js'),
        env: { NODE_OPTIONS: `--import=${pathToFileURL(preload).href}` },
      });
    const loadedBy = async (node: NodeProcess) => {
      expect(await node.stop()).toBe(0);
      return JSON.parse(readFileSync(list, 'utf8')) as string[];
    };
    const builtin = (names: string[], loaded: string[]) =>
      loaded.filter((m) => names.some((u) => m === `NativeModule ${u}`));
    // An empty node runs no watchdog thread (docs/operations.md): worker_threads is loaded at
    // its store's first write, not through an import at start.
    const empty = await start();
    const e = await LineClient.connect(empty.port);
    expect(await e.call('PING')).toBe('PONG');
    e.socket.destroy();
    // Nor the @node-rs/xxhash addon (the ring's ids are xxh64 in TypeScript): its allocator kept
    // 2 MiB of a 32 MiB reservation and 0.5 MiB of its library resident (docs/memory.md).
    const addons = readFileSync(`/proc/${empty.child.pid}/maps`, 'utf8')
      .split('\n')
      .filter((l) => l.endsWith('.node'))
      .map((l) => l.slice(l.indexOf('/')));
    expect(addons.some((a) => a.includes('/lmdb'))).toBe(true);
    expect(addons.filter((a) => a.includes('xxhash'))).toEqual([]);
    expect(builtin(['worker_threads'], await loadedBy(empty))).toEqual([]);
    const node = await start();
    const c = await LineClient.connect(node.port);
    defer(() => c.socket.destroy());
    c.send('PUT lazy yes\r\nGET lazy\r\n');
    expect(await c.lines(2)).toEqual(['OK', 'yes']);
    // prom-client's parts (scripts/bundle-node.ts, BUNDLE_SHIMS): its default metrics are all there.
    const metrics = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'process_open_fds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_gc_duration_seconds_count',
      'nodejs_heap_space_size_used_bytes',
      'nodejs_version_info',
      'kvstore_client_buffered_bytes',
    ])
      expect(metrics, name).toMatch(new RegExp(`^${name}[{ ]`, 'm'));
    const loaded = await loadedBy(node);
    expect(loaded).toContain('NativeModule http');
    // (node:cluster is not in the list: Node's net module loads it once a connection is served.)
    expect(builtin(['tls', 'crypto', 'https', 'assert'], loaded)).toEqual([]);
    // Nor do their sources sit in the bundle.
    const map = JSON.parse(readFileSync(join(out, 'src/main.bundle.cjs.map'), 'utf8')) as {
      sources: string[];
    };
    const left =
      /prom-client\/lib\/(pushgateway|cluster|summary)|node_modules\/(@opentelemetry|thread-stream)/;
    expect(map.sources.filter((s) => left.test(s))).toEqual([]);
  });

  it('serves through bin/kvstore.js, kvctl answers through bin/kvctl.js, and kvctl verify checks the data dir', async () => {
    const node = await startNodeProcess({ main: join(out, 'bin/kvstore.js') });
    const c = await LineClient.connect(node.port);
    defer(() => c.socket.destroy());
    c.send('PUT built yes\r\nGET built\r\n');
    expect(await c.lines(2)).toEqual(['OK', 'yes']);
    const kvctl = join(out, 'bin/kvctl.js');
    const ping = await run(NODE, [kvctl, '--port', String(node.port), 'ping']);
    expect(ping.stdout).toBe('PONG\n');
    expect(await node.stop()).toBe(0);
    // verify reads LMDB in a child process: verify-lmdb.js, beside the compiled verify module.
    const verified = await run(NODE, [kvctl, 'verify', node.dataDir]);
    expect(verified.stdout).toMatch(/^OK$/m);
  });
});
