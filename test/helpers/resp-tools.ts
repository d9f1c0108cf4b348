// Real Redis clients for tests: redis-cli, redis-benchmark, ioredis, and a raw RESP socket.

import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';

/** Where a RESP client connects: one node's client address. */
export interface Target {
  readonly host: string;
  readonly port: number;
}

export interface ToolResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const children = new Set<ReturnType<typeof spawn>>();
const clients = new Set<Redis>();
const sockets = new Set<Socket>();

/** Runs a tool to completion (killed after `timeoutMs`), feeding `input` to its stdin. */
export function runTool(
  cmd: string,
  args: readonly string[],
  input = '',
  timeoutMs = 60_000,
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/** `redis-cli -h host -p port args...` (one-shot) or, with `input`, its commands from stdin. */
export function redisCli(host: string, port: number, args: string[], input = '') {
  return runTool('redis-cli', ['-h', host, '-p', String(port), ...args], input);
}

/** An ioredis client that fails fast instead of reconnecting; closed by closeResp(). */
export async function ioredis(host: string, port: number, opts: RedisOptions = {}): Promise<Redis> {
  const r = new Redis({
    host,
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    ...opts,
  });
  r.on('error', () => {});
  clients.add(r);
  await r.connect();
  return r;
}

/** A raw socket that collects every byte the node sends, and whether it closed. */
export class RawResp {
  readonly socket: Socket;
  data = Buffer.alloc(0);
  closed = false;
  #waiters: (() => void)[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.data = Buffer.concat([this.data, d]);
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    socket.on('error', () => {});
  }

  static open(host: string, port: number): Promise<RawResp> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port }, () => {
        s.off('error', reject);
        resolve(new RawResp(s));
      });
      sockets.add(s);
      s.once('error', reject);
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Waits until `done()` holds (rejects after `ms`). */
  async until(done: () => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; got ${JSON.stringify(this.data.toString())}`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  /** Waits for at least `n` bytes and returns them all as latin1 text. */
  async text(n: number): Promise<string> {
    await this.until(() => this.data.length >= n || this.closed);
    return this.data.toString('latin1');
  }
}

/** Closes every client and kills every tool started here. */
export function closeResp(): void {
  for (const r of clients) r.disconnect();
  clients.clear();
  for (const s of sockets) s.destroy();
  sockets.clear();
  for (const c of children) c.kill('SIGKILL');
  children.clear();
}
