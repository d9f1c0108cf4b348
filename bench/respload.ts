// Fast RESP bulk loader (pipelined SET/MSET of distinct `key:%012d` keys) and a one-shot RESP call.

import { connect, type Socket } from 'node:net';

/** redis-benchmark's key for index i with `-r`: `key:` and 12 zero-padded digits. */
export function rbKey(i: number): string {
  return `key:${String(i).padStart(12, '0')}`;
}

/** redis-benchmark's default SET payload: `-d n` bytes of 'x'. */
export function rbValue(bytes: number): Buffer {
  return Buffer.alloc(bytes, 'x');
}

export interface LoadSpec {
  readonly host: string;
  readonly port: number;
  /** Keys rbKey(from) .. rbKey(to - 1), each written once. */
  readonly from: number;
  readonly to: number;
  readonly valueBytes: number;
  readonly connections: number;
  /** Commands outstanding per connection. */
  readonly depth: number;
  /** Key-value pairs per command: 1 sends SET, more send MSET. */
  readonly pairs: number;
}

export interface LoadResult {
  readonly keys: number;
  readonly commands: number;
  readonly errors: number;
  readonly firstError: string | null;
  readonly ms: number;
}

const header = (s: string) => Buffer.from(s, 'latin1');

/** Encodes one SET (pairs = 1) or MSET command for keys [from, to) into a fresh buffer. */
function encode(from: number, to: number, value: Buffer): Buffer {
  const n = to - from;
  const valueBulk = Buffer.concat([header(`$${value.length}\r\n`), value, header('\r\n')]);
  const parts: Buffer[] = [
    header(n === 1 ? '*3\r\n$3\r\nSET\r\n' : `*${1 + 2 * n}\r\n$4\r\nMSET\r\n`),
  ];
  for (let i = from; i < to; i++) {
    const key = rbKey(i);
    parts.push(header(`$${key.length}\r\n${key}\r\n`), valueBulk);
  }
  return Buffer.concat(parts);
}

/** Writes every key once over `connections` pipelined connections; replies must be `+OK`. */
export async function respLoad(spec: LoadSpec): Promise<LoadResult> {
  const value = rbValue(spec.valueBytes);
  const t0 = performance.now();
  let next = spec.from;
  let commands = 0;
  let errors = 0;
  let firstError: string | null = null;
  const take = (): Buffer | null => {
    if (next >= spec.to) return null;
    const from = next;
    next = Math.min(spec.to, next + spec.pairs);
    commands++;
    return encode(from, next, value);
  };
  const one = (socket: Socket) =>
    new Promise<void>((resolve, reject) => {
      let outstanding = 0;
      let carry = '';
      const fill = () => {
        const out: Buffer[] = [];
        while (outstanding < spec.depth) {
          const cmd = take();
          if (cmd === null) break;
          out.push(cmd);
          outstanding++;
        }
        if (out.length > 0) socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
        if (outstanding === 0) {
          socket.end();
          resolve();
        }
      };
      socket.on('data', (chunk: Buffer) => {
        const lines = (carry + chunk.toString('latin1')).split('\r\n');
        carry = lines.pop()!;
        for (const line of lines) {
          outstanding--;
          if (line !== '+OK') {
            errors++;
            firstError ??= line.slice(0, 200);
          }
        }
        fill();
      });
      socket.once('error', reject);
      socket.once('close', () => {
        if (outstanding > 0 || next < spec.to)
          reject(new Error(`respload: ${spec.host}:${spec.port} closed the connection`));
      });
      fill();
    });
  const sockets = await Promise.all(
    Array.from({ length: spec.connections }, () => open(spec.host, spec.port)),
  );
  try {
    await Promise.all(sockets.map(one));
  } finally {
    for (const s of sockets) s.destroy();
  }
  return { keys: spec.to - spec.from, commands, errors, firstError, ms: performance.now() - t0 };
}

function open(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** The RESP2 reply at the start of `buf` (an Error for `-`), or undefined while it is incomplete. */
function parseReply(buf: Buffer): unknown {
  const nl = buf.indexOf('\r\n');
  if (nl === -1) return undefined;
  const line = buf.toString('latin1', 1, nl);
  switch (String.fromCharCode(buf[0]!)) {
    case '+':
      return line;
    case '-':
      return new Error(line);
    case ':':
      return Number(line);
    case '$': {
      const n = Number(line);
      if (n < 0) return null;
      if (buf.length < nl + 2 + n + 2) return undefined;
      return buf.toString('utf8', nl + 2, nl + 2 + n);
    }
    default:
      throw new Error(`respload: unexpected reply ${buf.toString('latin1', 0, 80)}`);
  }
}

/** Sends one command over a fresh connection and resolves with its (non-array) reply. */
export function respCall(host: string, port: number, args: string[], timeoutMs = 5000) {
  const frame = [`*${args.length}\r\n`, ...args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`)];
  return new Promise<unknown>((resolve, reject) => {
    const socket = connect({ host, port }, () => socket.write(frame.join('')));
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error(`respload: ${args[0]} timed out`)), timeoutMs);
    const finish = (err: Error | null, reply?: unknown) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(reply);
    };
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      try {
        const reply = parseReply(buf);
        if (reply !== undefined) finish(null, reply);
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.once('error', (err) => finish(err));
    socket.once('close', () => finish(new Error(`respload: ${args[0]}: connection closed`)));
  });
}
