// The Dockerfile's build steps and entry points, run outside Docker: same files, same npm ci, same commands.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  contextFiles,
  copyFromContext,
  copySpec,
  execForm,
  last,
  readDockerfile,
  runCommands,
  type Stage,
  stageEnv,
  symlinks,
} from '../helpers/dockerfile.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, NODE, ROOT, tempDir } from '../helpers/node-process.ts';

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const dockerfile = readDockerfile(ROOT);
const runtime = dockerfile.stages.at(-1)!;

/** The emulated image: /app, /usr/local/bin and /data as temporary directories. */
interface Image {
  app: string;
  bin: string;
  data: string;
  env: Record<string, string>;
}
let image: Image;
let npmLog = '';
const children: ChildProcess[] = [];

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
    srv.on('error', rej);
  });
}

/** Maps a path inside the image to its temporary directory. */
function hostPath(img: Image, p: string): string {
  if (p.startsWith('/app/') || p === '/app') return join(img.app, p.slice('/app'.length));
  if (p.startsWith('/usr/local/bin/')) return join(img.bin, p.slice('/usr/local/bin/'.length));
  if (p === '/data') return img.data;
  throw new Error(`dockerfile.test.ts: no temporary directory for image path ${p}`);
}

/** Runs a stage's instructions into `dir` (its WORKDIR, which must be /app). */
async function buildStage(stage: Stage, img: Image, stageDirs: Map<string, string>): Promise<void> {
  expect(last(stage, 'WORKDIR')?.rest).toBe('/app');
  const files = contextFiles(ROOT);
  for (const ins of stage.instructions) {
    if (ins.keyword === 'COPY') {
      const { from, sources, dest } = copySpec(ins);
      const destDir = join(img.app, dest);
      if (from === null) copyFromContext(ROOT, files, sources, destDir);
      else {
        const fromDir = stageDirs.get(from);
        if (!fromDir) throw new Error(`COPY --from=${from}: unknown stage`);
        for (const s of sources)
          cpSync(join(fromDir, s.replace(/^\/app\/?/, '')), destDir, { recursive: true });
      }
    } else if (ins.keyword === 'RUN') {
      for (const cmd of ins.rest.split('&&').map((c) => c.trim())) await runStep(cmd, img);
    }
  }
}

/**
 * One RUN command. npm runs for real in the stage directory on the pinned Node 24; system setup
 * (apt, users, links, /data) is emulated, and any other command fails the test so that a new
 * Dockerfile step gets an emulation here.
 */
async function runStep(cmd: string, img: Image): Promise<void> {
  if (cmd.startsWith('npm ')) {
    const nodeDir = tempDir('kvstore-docker-node-');
    symlinkSync(NODE, join(nodeDir, 'node'));
    const { stdout, stderr } = await run('sh', ['-c', cmd], {
      cwd: img.app,
      // This machine's settings (registry CA, proxy) but not npm's own variables from `npm test`.
      env: {
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))),
        PATH: `${nodeDir}:${process.env.PATH}`,
      },
      maxBuffer: 64 * 1024 * 1024,
    });
    npmLog += stdout + stderr;
  } else if (cmd.startsWith('apt-get install')) {
    // The packages must exist on this machine (.ci/run installs them from Debian as well).
    for (const p of cmd
      .split(/\s+/)
      .slice(2)
      .filter((w) => !w.startsWith('-'))) {
      await run('sh', ['-c', `command -v ${p}`]).catch(() => {
        throw new Error(`the image installs '${p}': install it here too (apt-get install ${p})`);
      });
    }
  } else if (/^ln -sf? /.test(cmd)) {
    const [, , target, link] = cmd.split(/\s+/);
    symlinkSync(hostPath(img, target!), hostPath(img, link!));
  } else if (cmd === 'mkdir -p /data') {
    mkdirSync(img.data, { recursive: true });
  } else if (
    !/^(apt-get update|rm -rf \/var\/lib\/apt\/lists\/\*|chown [\d:a-z]+ \/data)$/.test(cmd)
  ) {
    throw new Error(`dockerfile.test.ts does not know how to run the Dockerfile step: ${cmd}`);
  }
}

/** Runs a command as `docker run IMAGE <cmd>` would: ENTRYPOINT + cmd, image env, cwd /app. */
function dockerRun(img: Image, cmd: string[], env: Record<string, string> = {}): ChildProcess {
  const argv = [...execForm(last(runtime, 'ENTRYPOINT')), ...cmd];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: img.app,
    env: { ...img.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  return child;
}

function finished(
  child: ChildProcess,
  ms = 20_000,
): Promise<{ code: number | string; out: string }> {
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`still running after ${ms} ms: ${out}`)), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(t);
      res({ code: code ?? signal ?? -1, out });
    });
  });
}

beforeAll(async () => {
  const root = tempDir('kvstore-docker-');
  image = {
    app: join(root, 'app'),
    bin: join(root, 'usr-local-bin'),
    data: join(root, 'data'),
    env: {},
  };
  mkdirSync(image.bin);
  const stageDirs = new Map<string, string>();
  for (const stage of dockerfile.stages) {
    // Each stage has its own /app; the last one is the image.
    const app = stage === runtime ? join(root, 'app') : join(root, `stage-${stage.name}`);
    mkdirSync(app, { recursive: true });
    await buildStage(stage, { ...image, app }, stageDirs);
    if (stage.name) stageDirs.set(stage.name, app);
  }
  // The image's environment: ENV (with /data mapped), PATH with /usr/local/bin and Node 24.
  const env = stageEnv(runtime);
  for (const [k, v] of Object.entries(env)) if (v === '/data') env[k] = image.data;
  // Outside a container tini is not PID 1; as a child subreaper it behaves the same (no warning).
  const path = `${image.bin}:${join(ROOT, 'node_modules/.bin')}:/usr/bin:/bin`;
  image.env = { ...env, PATH: path, TINI_SUBREAPER: '1' };
}, 600_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await cleanup();
});

describe('Dockerfile', () => {
  it('uses Node 24 slim for every stage, the same major as the pinned node devDependency', () => {
    const major = pkg.devDependencies.node!.split('.')[0];
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    for (const s of dockerfile.stages)
      expect(s.image).toMatch(new RegExp(`^node:${major}-[a-z]+-slim$`));
  });

  it('declares a non-root user, /data, the ports, a protocol healthcheck and tini as PID 1', () => {
    const user = last(runtime, 'USER')!.rest;
    expect(user).toMatch(/^\d+(:\d+)?$/); // numeric, so Kubernetes' runAsNonRoot can check it
    expect(Number(user.split(':')[0])).toBeGreaterThan(0);
    expect(stageEnv(runtime)).toMatchObject({ KV_HOST: '0.0.0.0', KV_DATA_DIR: '/data' });
    expect(last(runtime, 'VOLUME')!.rest).toBe('["/data"]');
    expect(last(runtime, 'EXPOSE')!.rest.split(/\s+/).sort()).toEqual(['7946', '8081', '9090']);
    expect(last(runtime, 'HEALTHCHECK')!.rest).toMatch(/CMD .*kvctl .*ping/);
    expect(execForm(last(runtime, 'ENTRYPOINT'))).toEqual(['tini', '--']);
    expect(execForm(last(runtime, 'CMD'))).toEqual(['kvstore']);
  });

  it('installs production dependencies only (npm ci --omit=dev), with their native binaries', () => {
    const deps = dockerfile.stages[0]!;
    expect(runCommands(deps)).toContain('npm ci --omit=dev --no-audit --no-fund');
    const modules = join(image.app, 'node_modules');
    for (const d of Object.keys(pkg.dependencies))
      expect(existsSync(join(modules, d)), d).toBe(true);
    // Packages the lock file marks dev-only (the runtime `node`, vitest, typescript...) are absent.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages).filter(([p, v]) => p !== '' && v.dev === true);
    expect(devOnly.map(([p]) => p)).toContain('node_modules/node');
    for (const [p] of devOnly) expect(existsSync(join(image.app, p)), p).toBe(false);
    expect(npmLog).not.toMatch(/gyp|prebuild-install|ERR!/);
  });

  it('links every npm bin onto PATH, executable', () => {
    const links = symlinks(runtime).map((l) => l.link.replace('/usr/local/bin/', ''));
    expect(links.sort()).toEqual(Object.keys(pkg.bin).sort());
    for (const [name, file] of Object.entries(pkg.bin)) {
      expect(readdirSync(image.bin)).toContain(name);
      expect(statSync(join(image.app, file)).mode & 0o111, file).not.toBe(0);
    }
  });

  it('runs kvctl, kvstore and kvstore-operator from the image (--help)', async () => {
    for (const bin of Object.keys(pkg.bin)) {
      const { code, out } = await finished(dockerRun(image, [bin, '--help']));
      expect({ bin, code }).toEqual({ bin, code: 0 });
      expect(out.length, bin).toBeGreaterThan(50);
    }
  });

  it('starts the node by default, answers PING and the healthcheck, and exits 0 on SIGTERM', async () => {
    const [port, httpPort, peerPort] = [await freePort(), await freePort(), await freePort()];
    const env = {
      KV_HOST: '127.0.0.1', // as `docker run -e`: the test binds loopback, not every interface
      KV_PORT: String(port),
      KV_HTTP_PORT: String(httpPort),
      KV_PEER_PORT: String(peerPort),
      KV_NODE_NAME: 'docker-test',
    };
    const node = dockerRun(image, execForm(last(runtime, 'CMD')), env);
    const exit = finished(node, 60_000);
    const deadline = Date.now() + 20_000;
    let reply = '';
    while (reply !== 'PONG') {
      if (Date.now() > deadline || node.exitCode !== null) throw new Error(`no PONG: ${reply}`);
      reply = await LineClient.connect(port)
        .then(async (c) => {
          const r = await c.call('PING');
          c.close();
          return r;
        })
        .catch((e: Error) => e.message);
      if (reply !== 'PONG') await new Promise((r) => setTimeout(r, 100));
    }
    const health = execForm({
      keyword: 'CMD',
      rest: last(runtime, 'HEALTHCHECK')!.rest.replace(/^.*?CMD /, ''),
    });
    const check = () =>
      run(health[0]!, health.slice(1), { cwd: image.app, env: { ...image.env, ...env } });
    expect((await check()).stdout.trim()).toBe('PONG');
    // kvctl from the production install writes and reads through the node; the data lands in /data.
    const kvctl = (...a: string[]) =>
      run('kvctl', ['--port', String(port), ...a], { env: image.env });
    expect((await kvctl('put', 'docker:1', 'hello image')).stdout.trim()).toBe('OK');
    expect((await kvctl('get', 'docker:1')).stdout.trim()).toBe('hello image');
    expect(readdirSync(image.data).length).toBeGreaterThan(0);

    // The compose `client` service's command, from the image (one node standing in for three).
    const nodes = Array.from({ length: 3 }, () => `127.0.0.1:${port}`).join(',');
    const plan = await finished(
      dockerRun(image, [
        'node',
        'scripts/seed-test-plan.ts',
        '--nodes',
        nodes,
        '--wait-ms',
        '10000',
      ]),
    );
    expect(plan).toMatchObject({ code: 0, out: expect.stringContaining('seed test plan: passed') });

    node.kill('SIGTERM'); // to tini, which forwards it to the node
    expect((await exit).code).toBe(0);
    await expect(check()).rejects.toThrow(); // the healthcheck fails once the node is gone
  }, 120_000);
});
