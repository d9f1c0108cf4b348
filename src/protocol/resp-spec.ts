// Shapes shared by the RESP2 command table: requests, specs, per-connection session, errors.

import type { Command, CommandLimits } from './command.ts';
import type { Reply, RespVersion } from './reply.ts';
import type { ClientRegistry } from './resp-inspect.ts';

/** What one RESP request becomes. */
export type RespRequest =
  /** Run `cmd` through the coordinator; `shape`, when set, rewrites its (non-error) reply. */
  | { readonly kind: 'command'; readonly cmd: Command; readonly shape?: (r: Reply) => Reply }
  /**
   * Answered on the spot (connection-local commands: CLIENT, ECHO, SELECT, ...). `effect`, the
   * change to the connection's own state (CLIENT SETNAME/SETINFO), is made when the request runs
   * in its turn: never before AUTH, and at EXEC inside MULTI (never for a discarded one).
   */
  | { readonly kind: 'reply'; readonly reply: Reply; readonly effect?: () => void }
  /** Answered by the connection, whose state it reads or changes (HELLO, MULTI, EXEC, ...). */
  | { readonly kind: 'session'; readonly op: SessionOp };

/** A request about the connection itself, which the server answers. */
export type SessionOp =
  /**
   * HELLO: authenticate when `password` is set (user `default` only), then switch to `proto`
   * (null: keep), set the client name (null: keep), answer the server map (helloReply).
   */
  | {
      readonly op: 'hello';
      readonly proto: RespVersion | null;
      readonly user: string | null;
      readonly password: Buffer | null;
      readonly name: string | null;
    }
  /** MULTI: queue the following commands until EXEC or DISCARD. */
  | { readonly op: 'multi' }
  /** EXEC: run the queued commands in order, one array of their replies. */
  | { readonly op: 'exec' }
  /** DISCARD: drop the queued commands. */
  | { readonly op: 'discard' }
  /**
   * CLIENT LIST / CLIENT KILL: they read or close other connections, so they run only on an
   * authenticated connection, in their turn (not when decoded), and not inside MULTI.
   */
  | { readonly op: 'clients'; readonly name: string; readonly run: () => Reply };

/** Per-connection state RESP commands read and change. */
export interface RespSession {
  /** CLIENT ID: unique per node while it runs. */
  readonly id: number;
  /** CLIENT SETNAME (null when unset). */
  name: string | null;
  /** CLIENT SETINFO LIB-NAME / LIB-VER. */
  libName: string | null;
  libVer: string | null;
  /** The RESP version replies are encoded in: 2 until `HELLO 3`. */
  proto: RespVersion;
  /** The last command's name (lower case), for CLIENT LIST. */
  lastCommand: string;
}

/** Facts about the node for INFO and HELLO, read when a command is answered. */
export interface ServerFacts {
  readonly version: string;
  readonly port: number;
  readonly connectedClients: number;
  readonly uptimeSeconds: number;
  /** Connections accepted since start. */
  readonly totalConnections: number;
  /** Connections refused by --max-connections since start. */
  readonly rejectedConnections: number;
  /** Requests answered since start, over every connection. */
  readonly totalCommands: number;
  /** Requests answered per second, recently. */
  readonly opsPerSec: number;
  /** Bytes of replies written to client sockets since start, over every connection. */
  readonly netOutputBytes: number;
  /** Records the node's scans read from its storage and merged since start (ScanWork). */
  readonly scanRecords: number;
  /** Process memory in bytes: `used` heap and buffers, `rss` resident, `peak` highest rss seen. */
  readonly memory: { readonly used: number; readonly rss: number; readonly peak: number };
}

/** SCAN's cursors: clients parse them as integers, so they stand for resume keys kept aside. */
export interface ScanCursors {
  /** A decimal token (never `0`) for resuming strictly after `key`. */
  issue(key: Buffer): string;
  /** The key a token stands for; undefined when unknown or expired. */
  resolve(token: string): Buffer | undefined;
}

export interface RespContext {
  readonly limits: CommandLimits;
  readonly session: RespSession;
  readonly server: () => ServerFacts;
  readonly cursors: ScanCursors;
  readonly clients: ClientRegistry;
}

/** One command: Redis's arity convention (n exact, -n at least n, the name counted). */
export interface RespSpec {
  readonly arity: number;
  /** COMMAND's flags (`readonly`, `write`, `fast`). */
  readonly flags: readonly string[];
  /** COMMAND's first key, last key (-1: the last argument), step; 0 0 0 without keys. */
  readonly keys: readonly [number, number, number];
  readonly run: (args: readonly Buffer[], ctx: RespContext) => RespRequest;
}

/** A decimal integer argument, or null when it is not one. */
export function integerArg(raw: Buffer | undefined): number | null {
  const text = raw?.toString('latin1') ?? '';
  return /^-?[0-9]{1,15}$/.test(text) ? Number(text) : null;
}

/** An argument's keyword form (upper case), '' when absent. */
export function keyword(raw: Buffer | undefined): string {
  return raw?.toString('latin1').toUpperCase() ?? '';
}

export const reply = (r: Reply): RespRequest => ({ kind: 'reply', reply: r });
export const bulk = (value: Buffer | string): Reply => ({
  type: 'value',
  value: typeof value === 'string' ? Buffer.from(value) : value,
});
export const status = (text: string): Reply => ({ type: 'status', text });
export const integer = (value: number): Reply => ({ type: 'integer', value });
export const array = (items: readonly Reply[]): Reply => ({ type: 'array', items });
