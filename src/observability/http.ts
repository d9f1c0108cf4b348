// The HTTP port: /metrics (Prometheus text exposition), /healthz (alive), /readyz (serving),
// admin JSON routes and static pages (the console).

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname } from 'node:os';
import { Counter, type Registry } from 'prom-client';
import { listen } from '../net/index.ts';
import { crossSite, hostOf, reboundHost } from './http-origin.ts';
import { admit, shared } from './http-pipeline.ts';
import type { Logger } from './logger.ts';
import { LogThrottle } from './throttle.ts';

/**
 * node:crypto, loaded at the first call: a node that never needs it does not load it (with
 * OpenSSL's set-up, about 1 MiB of RSS; docs/memory.md).
 */
const nodeCrypto = () => process.getBuiltinModule('node:crypto');

// Not `import { createServer } from 'node:http'`: an ES module import of node:http reads every
// export, and its lazy WebSocket/CloseEvent/MessageEvent getters load Node's bundled undici
// (about 3 MiB of RSS in every node, measured; the node never uses it).
const { createServer } = process.getBuiltinModule('node:http');

const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 60_000;
/** How often those two are checked (Node's default: 30 s). */
const CHECK_INTERVAL_MS = 2000;
const DEFAULT_MAX_CONNECTIONS = 256;

export interface HttpOptions {
  readonly host: string;
  readonly port: number;
  /**
   * Most connections at once (default 256): past it, the one waiting longest for a request is
   * closed, or the new one when every open one serves a request (boundConnections).
   */
  readonly maxConnections?: number;
  readonly registry: Registry;
  /**
   * Whether the process should be sent clients now, and why not (or what it cannot do although
   * ready): /readyz answers 200 `ready`, 200 `degraded: <reason>`, or 503 `not ready[: <reason>]`.
   */
  readonly readiness: () => Readiness;
  readonly logger: Logger;
  /** Extra JSON endpoints by `METHOD /path` (admin calls); they answer `{ status, body }`. */
  readonly routes?: Readonly<Record<string, AdminRoute>>;
  /** Admin endpoints that read the request and write the response themselves (backups). */
  readonly streams?: Readonly<Record<string, StreamRoute>>;
  /**
   * Static pages by path, served to GET and HEAD without authorization (they hold no data: what
   * they show comes from the routes). Sent with a Content-Security-Policy that allows only this
   * origin's scripts and styles, and no framing.
   */
  readonly pages?: Readonly<Record<string, StaticPage>>;
  /**
   * Checks a route call's Authorization header against the method and the request target (path
   * and query as sent); a refusal answers 401 with the challenge `challenge(stale)` gives (a new
   * nonce) and the route does not run. `GET /admin/nonce` answers `{"nonce": nonce()}` to anyone
   * (`{"nonce": null}` without this). Absent: routes are open. /metrics, /healthz and /readyz
   * are always open (probes and Prometheus).
   */
  readonly authorize?: {
    readonly check: (method: string, target: string, header: string | undefined) => AuthCheck;
    readonly nonce: () => string;
    readonly challenge: (stale: boolean) => string;
    /** A proved call whose body was not the one its proof covers (counted as a failure). */
    readonly bodyRefused: () => void;
  };
}

/**
 * /readyz's answer: `ready` false answers 503 (`not ready: <reason>`, or `not ready` when the
 * reason is null); true answers 200, `degraded: <reason>` when there is a reason (what the node
 * refuses or cannot do although it serves), else `ready`.
 */
export interface Readiness {
  readonly ready: boolean;
  readonly reason: string | null;
}

/**
 * An authorization check: `ok` with the SHA-256 (hex) of the body the proof covers, or refused;
 * `stale` when the proof was right but its nonce cannot be used (a new one is offered).
 */
export type AuthCheck =
  | { readonly ok: true; readonly bodySha256: string }
  | { readonly ok: false; readonly stale: boolean };

/** The path where anyone gets a nonce to sign admin calls with. */
const NONCE_PATH = '/admin/nonce';

/**
 * An admin endpoint: returns the HTTP status and a JSON body. `query` is the URL's query (its
 * values decoded as UTF-8), `rawQuery` the query as sent (for queryBytes).
 */
export type AdminRoute = (request: {
  readonly query: URLSearchParams;
  readonly rawQuery: string;
}) => { status: number; body: unknown } | Promise<{ status: number; body: unknown }>;

/**
 * The exact bytes of the first `name=` value of a raw query string: percent-escapes decoded to
 * bytes, `+` to a space, as URLSearchParams decodes them, except that the bytes are never read as
 * UTF-8 (where `%ff` would become U+FFFD). Null when the query has no such parameter.
 */
export function queryBytes(rawQuery: string, name: string): Buffer | null {
  for (const pair of rawQuery.split('&')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (decodeQueryPart(key).toString('utf8') !== name) continue;
    return decodeQueryPart(eq < 0 ? '' : pair.slice(eq + 1));
  }
  return null;
}

/** Percent-decodes one query part to bytes (`+` is a space; a `%` not followed by two hex digits is kept). */
function decodeQueryPart(part: string): Buffer {
  const out: number[] = [];
  const bytes = Buffer.from(part.replaceAll('+', ' '), 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x25 && i + 2 < bytes.length && isHex(bytes[i + 1]!) && isHex(bytes[i + 2]!)) {
      out.push(Number.parseInt(String.fromCharCode(bytes[i + 1]!, bytes[i + 2]!), 16));
      i += 2;
    } else out.push(b);
  }
  return Buffer.from(out);
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** A static page: its content type and bytes. */
export interface StaticPage {
  readonly type: string;
  readonly body: string | Buffer;
}

const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/**
 * An admin endpoint that handles the request itself (a streamed body either way). A rejection
 * before it wrote anything answers 500 with the error; after that, the connection is closed.
 * It reads a request body only through `body`.
 */
export type StreamRoute = (
  req: IncomingMessage,
  res: ServerResponse,
  query: URLSearchParams,
  body: BodyReader,
) => Promise<void>;

/**
 * Reads the whole request body, at most `max` bytes. Null when it answered instead: 413 past
 * `max`, 401 when the body is not the one the call's proof covers (its SHA-256).
 */
export type BodyReader = (max: number) => Promise<Buffer | null>;

interface Proved {
  /** The SHA-256 (hex) of the body the call's proof covers. */
  readonly sha256: string;
  /** Counts a body that is not that one, and returns the 401's challenge. */
  readonly refused: () => string;
}

/**
 * The body reader of one call. A client that goes away before its body ended (or is timed out
 * by REQUEST_TIMEOUT_MS) is no failure of the node: it is logged as a warning without a stack,
 * and the route sees null (answered). Before, each such call logged 'admin call failed' as an
 * error with Node's 'aborted' stack.
 */
function bodyReader(
  req: IncomingMessage,
  res: ServerResponse,
  proved: Proved | null,
  gone: () => void,
): BodyReader {
  const reply = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    res
      .writeHead(status, { 'content-type': 'application/json', ...headers })
      .end(`${JSON.stringify(body)}\n`);
  return async (max) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const hash = proved === null ? null : nodeCrypto().createHash('sha256');
    try {
      for await (const c of req as AsyncIterable<Buffer>) {
        n += c.length;
        if (n > max) {
          reply(413, { error: `admin: request body over ${max} bytes` });
          return null;
        }
        chunks.push(c);
        hash?.update(c);
      }
    } catch (err) {
      if (!req.destroyed || req.complete) throw err;
      gone();
      res.destroy();
      return null;
    }
    if (proved !== null && hash!.digest('hex') !== proved.sha256) {
      const challenge = proved.refused();
      reply(
        401,
        { error: 'admin: the body is not the one the proof covers' },
        { 'www-authenticate': challenge },
      );
      return null;
    }
    return Buffer.concat(chunks);
  };
}

/** A started HTTP server; `port` is the bound port (useful when 0 was asked). */
export interface HttpEndpoint {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts the HTTP server. Resolves once it listens; rejects if it cannot bind. */
export async function startHttp(opts: HttpOptions): Promise<HttpEndpoint> {
  const metrics = shared(() => opts.registry.metrics());
  const localNames = new Set(['localhost', hostname().toLowerCase()]);
  const server: Server = createServer(
    { connectionsCheckingInterval: CHECK_INTERVAL_MS },
    (req, res) => {
      if (!admit(req, res)) return;
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q < 0 ? url : url.slice(0, q);
      const rawQuery = q < 0 ? '' : url.slice(q + 1);
      const query = new URLSearchParams(rawQuery);
      const name = `${req.method} ${path}`;
      const route = opts.routes && Object.hasOwn(opts.routes, name) ? opts.routes[name] : undefined;
      const stream = opts.streams && Object.hasOwn(opts.streams, name) ? opts.streams[name] : null;
      if ((route || stream) && crossSite(req)) {
        res
          .writeHead(403, { 'content-type': 'application/json' })
          .end(`${JSON.stringify({ error: 'admin: cross-site request refused' })}\n`);
        return;
      }
      if ((route || stream) && reboundHost(req, localNames)) {
        const error = `admin: a page's call to this node by the name '${hostOf(req.headers.host)}' is refused (another site's name made to point here: DNS rebinding); open the console by IP address or localhost`;
        res
          .writeHead(403, { 'content-type': 'application/json' })
          .end(`${JSON.stringify({ error })}\n`);
        return;
      }
      if (name === `GET ${NONCE_PATH}`) {
        const nonce = opts.authorize ? opts.authorize.nonce() : null;
        res
          .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
          .end(`${JSON.stringify({ nonce })}\n`);
        return;
      }
      let proved: Proved | null = null;
      if ((route || stream) && opts.authorize) {
        const auth = opts.authorize;
        const check = auth.check(req.method!, url, req.headers.authorization);
        if (!check.ok) {
          const error = check.stale
            ? 'admin: the proof was made with a nonce this node no longer accepts (too old, used, or not issued by this node): sign again with the new one'
            : 'admin: authentication required (cluster secret)';
          res
            .writeHead(401, {
              'content-type': 'application/json',
              'www-authenticate': auth.challenge(check.stale),
              'cache-control': 'no-store',
            })
            .end(`${JSON.stringify({ error })}\n`);
          return;
        }
        proved = {
          sha256: check.bodySha256,
          refused: () => {
            auth.bodyRefused();
            return auth.challenge(false);
          },
        };
      }
      if (stream) {
        const gone = () =>
          opts.logger.warn({ path }, 'admin call ended: the client went away before its body');
        stream(req, res, query, bodyReader(req, res, proved, gone)).catch((err: unknown) => {
          opts.logger.error({ err, path }, 'admin call failed');
          if (res.headersSent) return void res.destroy();
          const message = err instanceof Error ? err.message : String(err);
          res
            .writeHead(500, { 'content-type': 'application/json' })
            .end(`${JSON.stringify({ error: message })}\n`);
        });
        return;
      }
      if (route) {
        Promise.resolve({ query, rawQuery })
          .then(route)
          .then(
            ({ status, body }) =>
              res
                .writeHead(status, { 'content-type': 'application/json' })
                .end(`${JSON.stringify(body)}\n`),
            (err: unknown) => {
              opts.logger.error({ err, path }, 'admin call failed');
              const message = err instanceof Error ? err.message : String(err);
              res
                .writeHead(500, { 'content-type': 'application/json' })
                .end(`${JSON.stringify({ error: message })}\n`);
            },
          );
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      const page = opts.pages?.[path];
      if (page) {
        res.writeHead(200, { 'content-type': page.type, ...PAGE_HEADERS });
        res.end(req.method === 'HEAD' ? undefined : page.body);
        return;
      }
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const { ready, reason } = opts.readiness();
        const body = !ready
          ? `not ready${reason === null ? '' : `: ${reason}`}\n`
          : reason === null
            ? 'ready\n'
            : `degraded: ${reason}\n`;
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(body);
      } else if (path === '/metrics') {
        metrics().then(
          (text) => res.writeHead(200, { 'content-type': opts.registry.contentType }).end(text),
          (err: unknown) => {
            opts.logger.error({ err }, 'metrics collection failed');
            res.writeHead(500).end();
          },
        );
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    },
  );
  server.keepAliveTimeout = 5000;
  // Every call here is short or streams a response: a client gets 10 s for its headers and a
  // minute for a whole request (a restore batch is 256 KiB), not Node's 60 s and 5 minutes,
  // and at most `max` are open at once (boundConnections). Unbounded, 20,000 connections that never
  // finished their headers (renewed each minute) took every descriptor of a node whose limit
  // is 20,000: its client and peer ports stopped accepting.
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  const max = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const drops = new Counter({
    name: 'kvstore_http_connections_dropped_total',
    help: 'Connections to the HTTP port closed because --max-http-connections were open: the one waiting longest for a request, or a new one when every open one was serving a request.',
    registers: [opts.registry],
  });
  const throttle = new LogThrottle();
  boundConnections(server, max, (closed) => {
    drops.inc();
    const since = throttle.take();
    if (since < 0) return;
    opts.logger.warn(
      { max, closed, since },
      'HTTP connection limit reached (--max-http-connections): connection closed',
    );
  });
  await listen(server, opts.port, opts.host);
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Holds at most `max` connections on `server`. A connection accepted past it closes the one that
 * has waited longest for a request (accepted, or done with its last one, and not yet sent a whole
 * request's headers: a slow or idle client), or itself when every open one is serving a request
 * (`closed`: 'waiting' or 'new'). Node's own maxConnections closes the new one always: clients
 * that open connections and never finish a request then held every slot, and /healthz and
 * /readyz went unanswered (a kubelet's probes failed: the pod restarted and left its Service)
 * for as long as they kept it up.
 */
function boundConnections(
  server: Server,
  max: number,
  onClose: (closed: 'waiting' | 'new') => void,
): void {
  const open = new Set<Socket>();
  // Waiting for a request, longest first (a Set iterates in insertion order).
  const waiting = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    if (open.size >= max) {
      const oldest = waiting.values().next().value;
      if (oldest === undefined) {
        socket.destroy();
        onClose('new');
        return;
      }
      open.delete(oldest);
      waiting.delete(oldest);
      oldest.destroy();
      onClose('waiting');
    }
    open.add(socket);
    waiting.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      waiting.delete(socket);
    });
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    waiting.delete(socket);
    res.once('close', () => {
      if (open.has(socket)) waiting.add(socket); // waits again, the newest
    });
  });
}
