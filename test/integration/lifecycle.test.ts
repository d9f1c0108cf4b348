import { execFile } from 'node:child_process';
import {
  chmodSync,
  constants,
  existsSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, MAIN, NODE, startNodeProcess, tempDir } from '../helpers/node-process.ts';

const run = promisify(execFile);

afterEach(cleanup);

describe('durability', () => {
  it('keeps every acknowledged write after SIGKILL right after the acknowledgements', async () => {
    const dataDir = tempDir();
    const first = await startNodeProcess({ dataDir });
    const c = await LineClient.connect(first.port);
    const n = 3000;
    const lines = [];
    for (let i = 0; i < n; i++) lines.push(`PUT durable:${i} value-${i}`);
    lines.push('REMOVE durable:7');
    c.send(`${lines.join('\n')}\n`);
    const replies = await c.lines(n + 1);
    expect(replies.every((r) => r === 'OK')).toBe(true);
    expect(await first.stop('SIGKILL')).toBe('SIGKILL');
    c.close();

    const second = await startNodeProcess({ dataDir });
    const d = await LineClient.connect(second.port);
    d.send(`${Array.from({ length: n }, (_, i) => `GET durable:${i}`).join('\n')}\n`);
    const values = await d.lines(n);
    for (let i = 0; i < n; i++) {
      expect(values[i]).toBe(i === 7 ? 'NOT_FOUND' : `value-${i}`);
    }
    d.close();
  });
});

describe('logs', () => {
  it('stdout stays in blocking mode with the watchdog thread running: a full pipe is waited for, not retried every 100 ms', async () => {
    const dataDir = tempDir();
    const first = await startNodeProcess({ dataDir });
    expect(await first.stop('SIGTERM')).toBe(0);
    // LMDB's file is there now: the watchdog runs from the start (main.ts), its Worker's
    // stdout piped to process.stdout, which opens the descriptor the logger writes synchronously.
    expect(existsSync(join(dataDir, 'data.mdb'))).toBe(true);
    const second = await startNodeProcess({ dataDir });
    await expect.poll(() => watchdogRunning(second.child.pid!), { timeout: 10_000 }).toBe(true);
    const fdinfo = readFileSync(`/proc/${second.child.pid}/fdinfo/1`, 'latin1');
    const flags = Number.parseInt(/^flags:\s*([0-7]+)/m.exec(fdinfo)![1]!, 8);
    expect(flags & constants.O_NONBLOCK).toBe(0);
  });
});

/** Whether `pid` runs a worker thread (Node names it WorkerThread): the watchdog, in a node. */
function watchdogRunning(pid: number): boolean {
  return readdirSync(`/proc/${pid}/task`).some((t) => {
    try {
      return readFileSync(`/proc/${pid}/task/${t}/comm`, 'latin1').trim() === 'WorkerThread';
    } catch {
      return false; // ended meanwhile
    }
  });
}

describe('the watchdog thread', () => {
  // Before: a node started on a new directory ran none until its disk stalled, however much it
  // stored meanwhile, while the same node restarted on that directory ran it at once.
  it('a node on a new directory runs none while its store is empty, and from its first write on', async () => {
    const node = await startNodeProcess();
    const c = await LineClient.connect(node.port);
    expect(await c.call('PING')).toBe('PONG');
    expect(watchdogRunning(node.child.pid!)).toBe(false);
    expect(await c.call('PUT first v')).toBe('OK');
    await expect.poll(() => watchdogRunning(node.child.pid!), { timeout: 10_000 }).toBe(true);
    c.close();
  });

  it('a node restarted on its directory runs it from its start, before any write', async () => {
    const dataDir = tempDir();
    const first = await startNodeProcess({ dataDir });
    expect(await first.stop('SIGTERM')).toBe(0);
    const again = await startNodeProcess({ dataDir });
    await expect.poll(() => watchdogRunning(again.child.pid!), { timeout: 10_000 }).toBe(true);
  });

  // A thread the system refuses (a pod at its pids limit: EAGAIN) is thrown by Worker's
  // constructor, not emitted. Before: thrown into the store's first write, which was applied and
  // answered `ERR INTERNAL server: EAGAIN` (and on a restart, thrown out of main: no start).
  it('a thread the system refuses fails no write: the first write is answered, and the node says it runs no watchdog', async () => {
    // A user of its own, whose processes and threads are this node's alone (RLIMIT_NPROC counts
    // them per user); root is not held to the limit.
    const uid = 40_000 + (process.pid % 20_000);
    const dataDir = tempDir();
    chmodSync(dataDir, 0o777);
    const command = ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
    const node = await startNodeProcess({ dataDir, command });
    const pid = node.child.pid!;
    const c = await LineClient.connect(node.port);
    expect(await c.call('PING')).toBe('PONG');
    // No thread more than it runs now (set by its own user: another may not lower its limits).
    const threads = readdirSync(`/proc/${pid}/task`).length;
    const [setpriv, ...as] = command;
    await run(setpriv!, [...as, 'prlimit', '--pid', String(pid), `--nproc=${threads}:${threads}`]);
    expect(await c.call('PUT first v')).toBe('OK');
    expect(await c.call('GET first')).toBe('v');
    expect(watchdogRunning(pid)).toBe(false);
    expect(node.logs.find((l) => l.msg === 'watchdog thread not started')).toMatchObject({
      level: 40,
      err: { message: expect.stringContaining('EAGAIN') },
    });
    c.close();
  });

  it('none with --storage-stall-timeout-ms 0, restarted and written to', async () => {
    const args = ['--storage-stall-timeout-ms', '0'];
    const dataDir = tempDir();
    const first = await startNodeProcess({ dataDir, args });
    expect(await first.stop('SIGTERM')).toBe(0);
    const again = await startNodeProcess({ dataDir, args });
    const c = await LineClient.connect(again.port);
    expect(await c.call('PUT first v')).toBe('OK');
    c.close();
    expect(watchdogRunning(again.child.pid!)).toBe(false);
  });
});

describe('shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal}: stops accepting, answers in-flight commands, flushes and exits 0`, async () => {
      const dataDir = tempDir();
      const node = await startNodeProcess({ dataDir });
      const c = await LineClient.connect(node.port);
      const n = 2000;
      c.send(`${Array.from({ length: n }, (_, i) => `PUT inflight:${i} v${i}`).join('\n')}\n`);
      await c.lines(1); // the node is working on the batch
      const exited = node.stop(signal);
      const rest = await c.lines(n - 1);
      expect(rest.every((r) => r === 'OK')).toBe(true);
      expect(await exited).toBe(0);
      await expect(LineClient.connect(node.port)).rejects.toThrow(/ECONNREFUSED/);
      const msgs = node.logs.map((l) => l.msg);
      expect(msgs).toContain('node stopped');

      const again = await startNodeProcess({ dataDir });
      const d = await LineClient.connect(again.port);
      expect(await d.call(`GET inflight:${n - 1}`)).toBe(`v${n - 1}`);
      d.close();
      c.close();
    });
  }

  it('closes idle connections and exits without waiting for them', async () => {
    const node = await startNodeProcess();
    const idle = await LineClient.connect(node.port);
    expect(await node.stop('SIGTERM')).toBe(0);
    // The drain closed the idle connection: it did not wait it out to its bound (10 s, then
    // 'shutdown timed out'). What shows it, not a wall time, which measures the machine.
    const msgs = node.logs.map((l) => l.msg);
    expect(msgs).toContain('node stopped');
    expect(msgs).not.toContain('shutdown timed out');
    await expect(idle.lines(1, 2000)).rejects.toThrow(/closed/);
  });
});

describe('configuration', () => {
  it('exits 2 and says what is wrong for invalid configuration', async () => {
    const err = await run(NODE, [MAIN, '--port', 'seventy', '--data-dir', tempDir()]).catch(
      (e) => e,
    );
    expect(err.code).toBe(2);
    expect(err.stderr).toContain('--port (KV_PORT)');
    const fromEnv = await run(NODE, [MAIN], {
      env: { ...process.env, KV_MAX_VALUE_BYTES: '-1' },
    }).catch((e) => e);
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toContain('KV_MAX_VALUE_BYTES');
  });

  it('starts with quorums that do not overlap, and warns that a read may miss an acknowledged write', async () => {
    const msg = /^read and write quorums do not overlap .*a read may miss an acknowledged write$/;
    const weak = await startNodeProcess({ args: ['--read-quorum', '1', '--write-quorum', '2'] });
    const warned = weak.logs.filter((l) => msg.test(String(l.msg)));
    expect(warned).toEqual([
      expect.objectContaining({ level: 40, replicationFactor: 3, readQuorum: 1, writeQuorum: 2 }),
    ]);
    // The defaults (2 + 2 > 3) overlap: nothing said.
    const sound = await startNodeProcess();
    expect(sound.logs.filter((l) => msg.test(String(l.msg)))).toEqual([]);
  });

  it('prints every option with its default for --help', async () => {
    const { stdout } = await run(NODE, [MAIN, '--help']);
    expect(stdout).toContain('--max-scan-keys');
    expect(stdout).toMatch(/--port <v>\s+KV_PORT\s+.*\(default 8081\)/);
  });

  it('fails on a taken client, HTTP or peer port before it creates its data directory', async () => {
    // Before, each of them failed only after the data directory, its identity and storage were
    // made (the HTTP and peer ports once the node had opened storage, the client port last).
    const a = await startNodeProcess();
    const ports = { '--port': a.port, '--http-port': a.httpPort, '--peer-port': a.peerPort };
    for (const [option, port] of Object.entries(ports)) {
      const dir = join(tempDir(), 'new');
      const args = {
        '--port': '0',
        '--http-port': '0',
        '--peer-port': '0',
        [option]: String(port),
      };
      const err = await run(NODE, [MAIN, ...Object.entries(args).flat(), '--data-dir', dir]).catch(
        (e) => e,
      );
      expect(existsSync(dir), `${option}: ${dir} exists`).toBe(false);
      expect(err.code, option).toBe(1);
      expect(err.stderr).toContain(`kvstore: ${option} ${port}: listen EADDRINUSE`);
    }
  });

  it('fails clearly when the port is taken', async () => {
    const a = await startNodeProcess();
    const dir = tempDir();
    writeFileSync(join(dir, 'x'), '');
    const err = await run(NODE, [
      MAIN,
      '--port',
      String(a.port),
      '--http-port',
      '0',
      '--data-dir',
      dir,
    ]).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toContain('EADDRINUSE');
  });
});
