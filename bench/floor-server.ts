// `node bench/floor-server.ts`: the floor of a Node.js server under redis-benchmark, to measure
// side by side with a kvstore node and Redis (`node bench/ab.ts --a bench/floor-server.ts ...`).
//
// It does what every kvstore node must do for a GET or a durable SET and nothing else: read the
// socket, parse RESP, answer GET from a Map (each value kept as its reply), append each turn's
// SETs to a log opened O_DSYNC in one write (one write in flight; SETs arriving meanwhile form the
// next group) and answer them once that write returned. Replies keep request order; each socket
// is written once at the end of the turn, all together (as the node's Output does), or when its
// log group returned. No storage engine, versions, replication, metrics or limits. What a kvstore
// node costs above it is the node's own; what it costs against Redis is Node's (the event loop,
// the stream machinery, a socket write from JavaScript). It takes a kvstore node's flags
// (bench/procs.ts starts it like one), uses --host, --port and --data-dir, and prints the `node
// listening` line.

import { closeSync, constants, mkdirSync, openSync, writev } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    'data-dir': { type: 'string' },
  },
  strict: false,
});
const dataDir = typeof o['data-dir'] === 'string' ? o['data-dir'] : null;
if (dataDir === null) throw new Error('floor-server: --data-dir is required');
mkdirSync(dataDir, { recursive: true });
const { O_WRONLY, O_CREAT, O_APPEND, O_DSYNC } = constants;
const log = openSync(join(dataDir, 'floor.log'), O_WRONLY | O_CREAT | O_APPEND | O_DSYNC);

const OK = Buffer.from('+OK\r\n');
const NIL = Buffer.from('$-1\r\n');
const PONG = Buffer.from('+PONG\r\n');
const EMPTY_ARRAY = Buffer.from('*0\r\n');
const CRLF = Buffer.from('\r\n');

/** A reply waiting for the log group `group` to be on disk (0: none) before it may be written. */
interface Pending {
  readonly group: number;
  readonly bytes: Buffer;
}

interface Conn {
  readonly socket: Socket;
  /** Bytes of an incomplete frame carried to the next read. */
  rest: Buffer | null;
  readonly out: Pending[];
  /** The client ended its side: end ours once every reply is written. */
  ended: boolean;
}

/** Each key's value as its GET reply (`$<length>\r\n<value>\r\n`). */
const data = new Map<string, Buffer>();
let collecting = 1; // the group the SETs of this turn join
let durable = 0; // the newest group on disk
let inFlight = false;
let groupParts: Buffer[] = [];
let flushScheduled = false;
const waiting = new Set<Conn>();
const dirty = new Set<Conn>();
let drainScheduled = false;

function drainDirty(): void {
  drainScheduled = false;
  for (const c of dirty) drain(c);
  dirty.clear();
}

/** Writes the replies at the head of `c.out` whose groups are on disk, in one socket write. */
function drain(c: Conn): void {
  let n = 0;
  while (n < c.out.length && c.out[n]!.group <= durable) n++;
  if (n === 0) {
    if (c.ended && c.out.length === 0) c.socket.end();
    return;
  }
  const parts = c.out.splice(0, n).map((p) => p.bytes);
  if (!c.socket.destroyed) c.socket.write(n === 1 ? parts[0]! : Buffer.concat(parts));
  if (c.out.length > 0) return;
  waiting.delete(c);
  if (c.ended) c.socket.end();
}

function flushGroup(): void {
  flushScheduled = false;
  if (inFlight || groupParts.length === 0) return;
  const parts = groupParts;
  const group = collecting++;
  groupParts = [];
  inFlight = true;
  writev(log, parts, (err) => {
    if (err) throw err; // a floor: a failed log write ends it
    inFlight = false;
    durable = group;
    for (const c of waiting) drain(c);
    if (groupParts.length > 0) flushGroup();
  });
}

/** Index just past the CRLF ending the line at `from`, or -1. */
function lineEnd(buf: Buffer, from: number): number {
  const i = buf.indexOf(13, from);
  return i === -1 || i + 1 >= buf.length ? -1 : i + 2;
}

/** Parses one RESP array of bulk strings at `at`: [args, next offset], or null if incomplete. */
function parseFrame(buf: Buffer, at: number): [Buffer[], number] | null {
  if (buf[at] !== 42) throw new Error('floor-server: only RESP arrays are spoken here');
  let end = lineEnd(buf, at);
  if (end === -1) return null;
  const count = Number(buf.toString('latin1', at + 1, end - 2));
  const args: Buffer[] = [];
  let pos = end;
  for (let i = 0; i < count; i++) {
    if (pos >= buf.length) return null;
    if (buf[pos] !== 36) throw new Error('floor-server: only bulk strings are spoken here');
    end = lineEnd(buf, pos);
    if (end === -1) return null;
    const len = Number(buf.toString('latin1', pos + 1, end - 2));
    if (end + len + 2 > buf.length) return null;
    args.push(buf.subarray(end, end + len));
    pos = end + len + 2;
  }
  return [args, pos];
}

function bulk(value: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`$${value.length}\r\n`), value, CRLF]);
}

function execute(c: Conn, args: Buffer[], frame: Buffer): void {
  const name = args[0]?.toString('latin1').toUpperCase();
  if (name === 'GET' && args.length === 2) {
    c.out.push({ group: 0, bytes: data.get(args[1]!.toString('latin1')) ?? NIL });
  } else if (name === 'SET' && args.length === 3) {
    data.set(args[1]!.toString('latin1'), bulk(args[2]!)); // kept as its GET reply
    groupParts.push(frame);
    c.out.push({ group: collecting, bytes: OK });
    waiting.add(c);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushGroup);
    }
  } else if (name === 'PING') c.out.push({ group: 0, bytes: PONG });
  else if (name === 'CONFIG') c.out.push({ group: 0, bytes: EMPTY_ARRAY });
  else c.out.push({ group: 0, bytes: Buffer.from(`-ERR unknown command '${name}'\r\n`) });
}

const server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
  const c: Conn = { socket, rest: null, out: [], ended: false };
  socket.on('data', (chunk: Buffer) => {
    const buf = c.rest === null ? chunk : Buffer.concat([c.rest, chunk]);
    let at = 0;
    try {
      while (at < buf.length) {
        const parsed = parseFrame(buf, at);
        if (parsed === null) break;
        execute(c, parsed[0], buf.subarray(at, parsed[1]));
        at = parsed[1];
      }
    } catch (err) {
      socket.destroy(err as Error);
      return;
    }
    c.rest = at === buf.length ? null : Buffer.from(buf.subarray(at));
    // Replies go out at the end of the turn, all sockets together (as the node's Output does:
    // a client woken once per turn, not between the reads).
    dirty.add(c);
    if (!drainScheduled) {
      drainScheduled = true;
      setImmediate(drainDirty);
    }
  });
  socket.on('end', () => {
    c.ended = true;
    drain(c);
  });
  socket.on('error', () => {});
  socket.on('close', () => waiting.delete(c));
});

server.listen(Number(o.port), String(o.host), () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ msg: 'node listening', port })}\n`);
});

process.on('SIGTERM', () => {
  server.close();
  closeSync(log);
  process.exit(0);
});
