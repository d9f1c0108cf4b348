// `npm run build` (scripts/build.ts): the compiled JavaScript runs the node, kvctl and its offline verify through the bin shims, with no .ts beside it.

import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, NODE, ROOT, startNodeProcess } from '../helpers/node-process.ts';

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
      'src/cli/main.js',
      'src/storage/verify-lmdb.js',
      'operator/main.js',
      'src/console/assets/index.html',
      'operator/crd/kvclusters.kvstore.dev.yaml',
      'package.json',
    ])
      expect(files, f).toContain(f);
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
