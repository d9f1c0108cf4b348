// The image, built by `npm run image` (scripts/image.sh) with the real Docker engine, run as containers: entry points, user, health, stop, volumes.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, type ExpectStatic, it } from 'vitest';
import {
  buildImage,
  docker,
  dockerResult,
  Made,
  publishedPort,
  requireEngine,
  SEED_PLAN_REPLIES,
  seedPlanWithNc,
  uniqueName,
  VERSION,
} from '../helpers/docker.ts';
import { ROOT } from '../helpers/node-process.ts';

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};
const made = new Made();
const name = uniqueName();
const image = `${name}:${VERSION}`;
let buildLog = '';

/** Docker's own health status of a container. */
async function health(container: string): Promise<string> {
  return (await docker(['inspect', '--format', '{{.State.Health.Status}}', container])).trim();
}

/**
 * The host pid of the container's node (PID 1 is tini: a SIGSTOP to it would stop tini, not the
 * node), which runs with bin/kvstore.js's Node flags (docs/configuration.md).
 */
async function nodePid(container: string): Promise<number> {
  const top = await docker(['top', container, '-eo', 'pid,args']);
  const line = top
    .split('\n')
    .find((l) =>
      / node --max-semi-space-size=16 --no-parallel-scavenge --no-allocation-site-pretenuring \/usr\/local\/bin\/kvstore$/.test(
        l.trim(),
      ),
    );
  if (!line) throw new Error(`no kvstore node process in ${container}:\n${top}`);
  return Number(line.trim().split(/\s+/)[0]);
}

/** The `msg` of every JSON log line a container printed (stdout and stderr). */
async function logMessages(container: string): Promise<string[]> {
  const r = await dockerResult(['logs', container]);
  return (r.stdout + r.stderr)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => (JSON.parse(l) as { msg: string }).msg);
}

/**
 * Starts the node as `docker run -d` would: read-only root, data in `volume`, client port on
 * loopback. `expect` is the calling test's (the tests run concurrently).
 */
async function startNode(container: string, volume: string, expect: ExpectStatic): Promise<number> {
  made.container(container);
  await docker([
    'run',
    '--detach',
    '--name',
    container,
    '--read-only',
    '--volume',
    `${volume}:/data`,
    '--publish',
    '127.0.0.1:0:8081',
    '--env',
    'KV_NODE_NAME=docker-test',
    // The image's own HEALTHCHECK command, checked every second (its default is every 10 s).
    '--health-interval',
    '1s',
    '--health-timeout',
    '10s',
    '--health-retries',
    '2',
    '--health-start-period',
    '30s',
    image,
  ]);
  await expect.poll(() => health(container), { timeout: 60_000, interval: 250 }).toBe('healthy');
  return publishedPort(container, 8081);
}

beforeAll(async () => {
  await requireEngine();
  made.image(image);
  const built = await buildImage(image);
  buildLog = built.log;
  if (built.code !== 0) throw new Error(`scripts/image.sh failed:\n${built.log}`);
}, 1_200_000);

afterAll(() => made.remove(), 600_000);

// The tests run side by side: each makes its own containers and volumes (named after the test),
// and most of their time is waiting on the engine (health checks every second, a stop's drain).
// Each takes the expect of its own test context (expect.poll needs it in a concurrent test).
describe.concurrent('the image (scripts/image.sh, the Dockerfile, the real engine)', () => {
  it('has production dependencies only and no npm, apt or compiler; runs as uid 1000', async ({
    expect,
  }) => {
    const cfg = JSON.parse(
      await docker(['image', 'inspect', '--format', '{{json .Config}}', image]),
    );
    expect(cfg.User).toBe('1000:1000');
    expect(cfg.Entrypoint).toEqual(['tini', '--']);
    expect(cfg.Cmd).toEqual(['kvstore']);
    expect(Object.keys(cfg.ExposedPorts).sort()).toEqual(['7946/tcp', '8081/tcp', '9090/tcp']);
    expect(cfg.Volumes).toEqual({ '/data': {} });
    // What is on the image's PATH and in node_modules, listed by the image's own node.
    const list = `const fs=require('fs');const d=['/usr/local/bin','/usr/bin','/bin','/usr/sbin','/sbin'];
      console.log(JSON.stringify({bins:d.flatMap(p=>{try{return fs.readdirSync(p)}catch{return []}}),
      mods:fs.readdirSync('/app/node_modules').flatMap(m=>m.startsWith('@')?fs.readdirSync('/app/node_modules/'+m).map(s=>m+'/'+s):[m]),
      uid:process.getuid(),compiled:['src/main.js','src/cli/main.js','operator/main.js'].filter(f=>fs.existsSync('/app/'+f))}))`;
    const inside = JSON.parse(await docker(['run', '--rm', image, 'node', '-e', list]));
    expect(inside.uid).toBe(1000);
    // The bins run the compiled modules (scripts/build.ts), not the .ts through type stripping.
    expect(inside.compiled).toEqual(['src/main.js', 'src/cli/main.js', 'operator/main.js']);
    // The node runs as one bundle with V8's code cache of it, made by the build stage's Node
    // (scripts/build.ts): the runtime's Node must accept it, or the node pays the parse in RSS.
    const cache = await dockerResult([
      'run',
      '--rm',
      '-e',
      'KVSTORE_CODE_CACHE_CHECK=1',
      image,
      'kvstore',
      '--help',
    ]);
    expect(cache.stderr).toBe('kvstore: code cache accepted\n');
    // NODE_OPTIONS=--enable-source-maps (debugging a crash): the bundle's map is in the image,
    // and the loader requires the bundle so that Node applies it.
    const mapped = await dockerResult([
      'run',
      '--rm',
      '-e',
      'KVSTORE_CODE_CACHE_CHECK=1',
      '-e',
      'NODE_OPTIONS=--enable-source-maps',
      image,
      'sh',
      '-c',
      'test -s /app/src/main.bundle.cjs.map && kvstore --help',
    ]);
    expect(mapped.stderr).toBe('kvstore: code cache not used (source maps on)\n');
    expect(mapped.stdout).toMatch(/^Usage: kvstore/);
    expect(inside.bins.sort()).toEqual(
      [...Object.keys(pkg.bin), 'env', 'node', 'sh', 'tini'].sort(),
    );
    for (const d of Object.keys(pkg.dependencies)) expect(inside.mods, d).toContain(d);
    for (const dev of ['node', 'vitest', 'typescript', 'esbuild', '@biomejs/biome', 'npm'])
      expect(inside.mods, dev).not.toContain(dev);
    // The CA the build trusted (a BuildKit secret, mounted for one RUN and never a layer) is named in no layer's history.
    const history = await docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', image]);
    expect(history).not.toMatch(/npm_ca|BEGIN CERTIFICATE/);
    expect(buildLog).toMatch(/built kvstore|built kvt-/);
  });

  it('serves the seed test plan on a published loopback port, read-only, data in its volume', async ({
    expect,
  }) => {
    const volume = made.volume(`${name}-plan`);
    const c = `${name}-plan`;
    const port = await startNode(c, volume, expect);
    expect(await seedPlanWithNc([port, port, port])).toEqual(SEED_PLAN_REPLIES);
    // Read-only root: the app files cannot be written; /data (the volume) is the node's.
    const write = (p: string) =>
      dockerResult(['exec', c, 'node', '-e', `require('fs').writeFileSync('${p}', 'x')`]);
    expect((await write('/app/x')).stderr).toContain('EROFS');
    expect((await write('/data/probe')).code).toBe(0);
  }, 120_000);

  it('turns unhealthy while the node is stopped (SIGSTOP) and healthy again after SIGCONT', async ({
    expect,
  }) => {
    const c = `${name}-health`;
    await startNode(c, made.volume(`${name}-health`), expect);
    const pid = await nodePid(c);
    process.kill(pid, 'SIGSTOP');
    try {
      await expect.poll(() => health(c), { timeout: 60_000, interval: 250 }).toBe('unhealthy');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await expect.poll(() => health(c), { timeout: 60_000, interval: 250 }).toBe('healthy');
  }, 180_000);

  it('drains and exits 0 on docker stop; a new container on the same named volume has the data', async ({
    expect,
  }) => {
    const volume = made.volume(`${name}-data`);
    const first = `${name}-first`;
    await startNode(first, volume, expect);
    const kvctl = (container: string, ...args: string[]) =>
      docker(['run', '--rm', '--network', `container:${container}`, image, 'kvctl', ...args]);
    expect((await kvctl(first, 'put', 'docker:1', 'hello image')).trim()).toBe('OK');
    expect((await kvctl(first, 'get', 'docker:1')).trim()).toBe('hello image');
    await docker(['stop', '--time', '20', first]);
    const state = JSON.parse(await docker(['inspect', '--format', '{{json .State}}', first]));
    expect({ exit: state.ExitCode, oom: state.OOMKilled }).toEqual({ exit: 0, oom: false });
    expect(await logMessages(first)).toEqual(
      expect.arrayContaining(['signal received', 'node stopping', 'node stopped']),
    );

    await docker(['rm', first]);
    const second = `${name}-second`;
    const port2 = await startNode(second, volume, expect);
    const { stdout } = await run('sh', [
      '-c',
      `echo "GET docker:1" | nc -N -w 10 127.0.0.1 ${port2}`,
    ]);
    expect(stdout.trim()).toBe('hello image');
    expect((await kvctl(second, 'get', 'docker:1')).trim()).toBe('hello image');
  }, 180_000);

  it('runs kvstore, kvctl and kvstore-operator as entry points; the operator stops cleanly on docker stop', async ({
    expect,
  }) => {
    for (const bin of Object.keys(pkg.bin)) {
      const r = await dockerResult(['run', '--rm', '--network', 'none', image, bin, '--help']);
      expect({ bin, code: r.code }).toEqual({ bin, code: 0 });
      expect((r.stdout + r.stderr).length, bin).toBeGreaterThan(50);
    }
    // Outside a cluster the operator runs and retries its API calls; SIGTERM through tini stops it.
    const op = made.container(`${name}-operator`);
    await docker(['run', '--detach', '--name', op, '--network', 'none', image, 'kvstore-operator']);
    await expect
      .poll(() => logMessages(op), { timeout: 60_000, interval: 250 })
      .toContain('operator listening');
    await docker(['stop', '--time', '20', op]);
    expect((await docker(['inspect', '--format', '{{.State.ExitCode}}', op])).trim()).toBe('0');
    expect(await logMessages(op)).toContain('operator stopped');
  }, 180_000);
});

// Two builds of their own, side by side.
describe.concurrent('build faults', () => {
  it('without registry access the build stops with a message that says what is needed', async ({
    expect,
  }) => {
    // npm gives up at the first failed request instead of backing off 70 s (2 retries).
    const r = await buildImage(`${name}-offline:${VERSION}`, {
      KVSTORE_BUILD_NETWORK: 'none',
      NPM_CONFIG_FETCH_RETRIES: '0',
    });
    made.image(`${name}-offline:${VERSION}`);
    expect(r.code).not.toBe(0);
    expect(r.log).toContain('kvstore image: npm ci failed');
    expect(r.log).toContain('The build needs the npm registry');
    expect(r.log).toContain('docker build of');
  }, 600_000);

  it('a base image that cannot be pulled is named in the error', async ({ expect }) => {
    const r = await buildImage(`${name}-nobase:${VERSION}`, {
      NODE_IMAGE: `${name}-no-such-base:24`,
    });
    expect(r.code).not.toBe(0);
    expect(r.log).toContain(`NODE_IMAGE=${name}-no-such-base:24 is not here and cannot be pulled`);
  }, 120_000);
});
