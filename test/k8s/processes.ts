// Processes for the test clusters: run a command to completion, start a long-running component in its own process group with a log file, wait for it, stop it.

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** Written to stdin. */
  readonly input?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Resolve with a non-zero exit code instead of rejecting. */
  readonly allowFailure?: boolean;
  /** Kill the command after this long (default 120 s). */
  readonly timeoutMs?: number;
  /** Working directory (default: this process's). */
  readonly cwd?: string;
  /** Where stderr goes while it runs, besides being collected (e.g. process.stderr). */
  readonly stderrTo?: NodeJS.WritableStream;
}

/** Runs a command to completion; rejects on a non-zero exit unless allowFailure. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => {
      err.push(d);
      opts.stderrTo?.write(d);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = {
        code: code ?? 128,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      };
      if (result.code !== 0 && !opts.allowFailure) {
        const how = signal ? `signal ${signal}` : `code ${code}`;
        reject(
          new Error(`${cmd} ${args.join(' ')} failed (${how}): ${result.stderr || result.stdout}`),
        );
      } else {
        resolvePromise(result);
      }
    });
    if (child.stdin) {
      // A command may exit without reading its input; its exit code tells what happened.
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });
}

/** A free TCP port on 127.0.0.1 (asked from the OS, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0 }, () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === 'object') resolvePromise(addr.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** A started component: its process group leader, log file and exit state. */
export interface Component {
  readonly name: string;
  readonly pid: number;
  readonly log: string;
  readonly child: ChildProcess;
  exited: string | undefined;
}

/** Last lines of a component's log, for error messages. */
export function tail(path: string, lines = 25): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export function startComponent(
  name: string,
  bin: string,
  args: readonly string[],
  logDir: string,
  env?: NodeJS.ProcessEnv,
): Component {
  const log = join(logDir, `${name}.log`);
  const fd = openSync(log, 'a');
  // Own process group (detached), so stop() reaches any children and `k8s:up` can exit and leave it running.
  const child = spawn(bin, args, {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: env ?? process.env,
  });
  closeSync(fd);
  child.unref();
  if (child.pid === undefined) throw new Error(`${name} did not start`);
  const c: Component = { name, pid: child.pid, log, child, exited: undefined };
  child.on('exit', (code, signal) => {
    c.exited = signal ? `signal ${signal}` : `code ${code}`;
  });
  child.on('error', (e) => {
    c.exited = e.message;
  });
  return c;
}

/** Whether pid is running; a zombie (exited, not yet reaped by its new parent) is not. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // Fields after the parenthesised command name: the first is the state.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * Stops recorded components in dependency order: clients of the apiserver first, then
 * kube-apiserver, then etcd (an apiserver without etcd shuts down slowly).
 */
export async function stopComponents(pids: Readonly<Record<string, number>>): Promise<void> {
  const last = ['kube-apiserver', 'etcd'];
  await killProcesses(
    Object.entries(pids)
      .filter(([name]) => !last.includes(name))
      .map(([, pid]) => pid),
  );
  for (const name of last) {
    const pid = pids[name];
    if (pid !== undefined) await killProcesses([pid]);
  }
}

/** SIGTERM each process group, then SIGKILL what is left after graceMs. */
export async function killProcesses(pids: readonly number[], graceMs = 5_000): Promise<void> {
  for (const pid of pids) signalGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await sleep(100);
  for (const pid of pids) if (alive(pid)) signalGroup(pid, 'SIGKILL');
  const hard = Date.now() + 5_000;
  while (pids.some(alive) && Date.now() < hard) await sleep(50);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface HttpsProbe {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

export function httpsGet(url: string, tls: HttpsProbe): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(
      url,
      // agent: false, a connection of its own: Node's global agent keeps connections alive, and
      // one the server closes as the next probe goes out fails that probe (test/fetch-setup.ts).
      { ...tls, rejectUnauthorized: tls.ca !== undefined, timeout: 5_000, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

/** Polls check() until it returns true; fails early when the component exits. */
export async function waitFor(
  what: string,
  component: Component | undefined,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (component?.exited) {
      throw new Error(
        `${component.name} exited (${component.exited}) while waiting for ${what}:\n${tail(component.log)}`,
      );
    }
    try {
      if (await check()) return;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) {
      const logs = component ? `\n${component.name} log:\n${tail(component.log)}` : '';
      throw new Error(`timed out waiting for ${what}${last ? ` (${last})` : ''}${logs}`);
    }
    await sleep(250);
  }
}
