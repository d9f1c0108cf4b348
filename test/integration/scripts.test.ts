// The npm scripts that start processes, run as a user runs them: --help, Ctrl-C, a kill.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, NODE, ROOT, tempDir } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

let group: ChildProcess | null = null;
afterEach(async () => {
  // npm may be gone while the script and nodes it started live on in its process group.
  const pgid = group?.pid;
  group = null;
  if (pgid !== undefined) {
    const alive = () => {
      try {
        process.kill(-pgid, 0);
        return true;
      } catch {
        return false;
      }
    };
    if (alive()) process.kill(-pgid, 'SIGKILL');
    await expect.poll(alive, { timeout: 10_000 }).toBe(false);
  }
  await cleanup();
});

const random = (n: number) => Math.floor(Math.random() * n);

describe('npm run cluster', () => {
  it('drains every node on Ctrl-C: each logs "node stopped" and exits 0', async () => {
    // A loopback address and ports of its own, so other tests and a developer's cluster are safe.
    const host = `127.0.${1 + random(250)}.${1 + random(250)}`;
    const offset = 30_000 + random(20_000);
    const npm = spawn('npm', ['run', '-s', 'cluster'], {
      cwd: ROOT,
      detached: true, // a process group of its own, like a terminal's foreground job
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        KV_LOCAL_DATA: tempDir(),
        KV_LOCAL_HOST: host,
        KV_LOCAL_PORT_OFFSET: String(offset),
      },
    });
    group = npm;
    const lines: string[] = [];
    const rl = createInterface({ input: npm.stdout! });
    rl.on('line', (l) => lines.push(l));
    // npm (and its sh) die of the SIGINT at once, as they do in a terminal; the nodes and the
    // script go on draining, printing to the same pipe: it closes when the last of them exits.
    const allGone = new Promise<void>((resolve) => rl.once('close', resolve));
    const npmExited = new Promise((resolve) => npm.once('exit', resolve));
    const listening = () => lines.filter((l) => l.includes('"node listening"')).length;
    await expect.poll(listening, { timeout: 60_000, interval: 200 }).toBe(3);
    const c = await LineClient.connect(offset + 8081, host);
    // Listening is not yet writable: a node refuses writes until a peer has answered its probes
    // (its clock is not known to be in step before); that refusal, and only it, is retried.
    await until(
      async () => {
        const reply = await c.call('PUT ctrl-c drained');
        if (reply !== 'OK') expect(reply).toMatch(/^ERR CLOCK_OFFSET clock: no peer has answered/);
        return reply === 'OK';
      },
      30_000,
      'the cluster took a write',
      100,
    );
    c.close();

    process.kill(-npm.pid!, 'SIGINT');
    await Promise.all([allGone, npmExited]);
    for (const name of ['kvstore1', 'kvstore2', 'kvstore3']) {
      const mine = lines.filter((l) => l.startsWith(`${name.padEnd(9)}|`));
      expect(mine.some((l) => l.includes('"node stopped"'))).toBe(true);
      expect(mine).toContain(`${name.padEnd(9)}| exited (0)`);
    }
    expect(() => process.kill(-npm.pid!, 0)).toThrow(/ESRCH/); // nothing of the group is left
  }, 120_000);
});

const run = promisify(execFile);

describe('--help starts nothing', () => {
  // Every npm script that starts a process, with the words npm passes before `-- --help`.
  const scripts: [script: string, args: string[], usage: RegExp][] = [
    ['scripts/soak.ts', [], /^Usage: npm run soak/],
    ['scripts/local-cluster.ts', [], /^Usage: npm run cluster/],
    ['src/main.ts', [], /^Usage: kvstore /],
    ['operator/main.ts', [], /^Usage: kvstore-operator /],
    ['src/cli/main.ts', [], /^kvctl: command-line client/],
    ['bench/run.ts', [], /^Usage: node bench\/run.ts/],
    ['bench/connection-memory.ts', [], /^Usage: npm run bench:connections/],
    ['bench/memory.ts', [], /^Usage: node bench\/memory.ts/],
    ['scripts/build.ts', [], /^Usage: node scripts\/build.ts/],
    ['test/chaos/run.ts', [], /^Usage: npm run chaos/],
    ['scripts/console-screenshot.ts', [], /^Usage: node scripts\/console-screenshot.ts/],
    ['scripts/dashboard-render.ts', [], /^Usage: node scripts\/dashboard-render.ts/],
    ['test/k8s/control-plane.ts', ['up'], /^usage: node test\/k8s\/control-plane.ts/],
    ['test/k8s/control-plane.ts', ['down'], /^usage: node test\/k8s\/control-plane.ts/],
  ];
  for (const [script, args, usage] of scripts) {
    it(`${script} ${args.join(' ')}`, async () => {
      const tmp = tempDir();
      const { stdout } = await run(NODE, [join(ROOT, script), ...args, '--help'], {
        cwd: tmp,
        env: { ...process.env, TMPDIR: tmp, KV_LOCAL_DATA: join(tmp, 'cluster') },
        timeout: 30_000,
      });
      expect(stdout).toMatch(usage);
      expect(readdirSync(tmp)).toEqual([]); // no data directory, so no node started
    }, 60_000);
  }
  it('scripts/image.sh', async () => {
    const { stdout } = await run('bash', [join(ROOT, 'scripts/image.sh'), '--help'], {
      env: { ...process.env, KVSTORE_DOCKER: '/nonexistent/docker' }, // would fail if it built
      timeout: 30_000,
    });
    expect(stdout).toMatch(/^Builds the kvstore image/);
  });
  it("npm start runs the launcher: Node gets the flags of bin/kvstore.js's first line", async () => {
    // A preload reports the Node flags in effect; --help prints the usage and starts nothing.
    const tmp = tempDir();
    const report = join(tmp, 'report.json');
    const file = join(tmp, 'preload.mjs');
    writeFileSync(
      file,
      `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(report)}, JSON.stringify(process.execArgv));\n`,
    );
    const { stdout } = await run('npm', ['start', '-s', '--', '--help'], {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: `--import=${pathToFileURL(file).href}` },
      timeout: 30_000,
    });
    expect(stdout).toMatch(/^Usage: kvstore /);
    const first = readFileSync(join(ROOT, 'bin/kvstore.js'), 'utf8').split('\n', 1)[0]!;
    const flags = first.split(' ').filter((f) => f.startsWith('--'));
    expect(flags).toContain('--no-parallel-scavenge');
    expect(JSON.parse(readFileSync(report, 'utf8'))).toEqual(expect.arrayContaining(flags));
  });
});

describe('npm run soak', () => {
  it('stopped by SIGTERM, stops its nodes and removes its temporary directory', async () => {
    const tmp = tempDir();
    const soak = spawn(NODE, [join(ROOT, 'scripts/soak.ts'), '--minutes', '5'], {
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its group holds its nodes: afterEach can kill them all if this fails
    });
    group = soak;
    const exited = new Promise<number | string>((resolve) =>
      soak.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
    );
    let out = '';
    soak.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await expect.poll(() => out, { timeout: 60_000, interval: 200 }).toContain('ops/s');
    expect(readdirSync(tmp).filter((f) => f.startsWith('kvstore-soak-'))).toHaveLength(1);
    soak.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(readdirSync(tmp)).toEqual([]);
    await expect(LineClient.connect(18181)).rejects.toThrow(/ECONNREFUSED/); // its nodes are gone
  }, 120_000);
});
