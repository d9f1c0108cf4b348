// A test's GET (and HEAD) opens a connection of its own (vitest's setupFiles runs this first).
//
// With keep-alive (fetch's default), a request can go out on a kept connection just as the
// server closes it (a node's HTTP port closes one idle for 5 s; under load the client's own
// 4 s expiry runs late, or the server reads the request after its timer fired): that fetch
// fails with ECONNRESET or 'other side closed', a failure of no code under test. A connection
// per request cannot be closed under a request. Only GET and HEAD: a request with a body may be
// answered before its body is read (a 401), and on a connection that closes after the answer
// the rest of the body meets a closed socket (EPIPE); kept alive, the server reads past it.
// Node's fetch takes its dispatcher from this global (undici's setGlobalDispatcher sets the
// same symbol); compose() wraps it, and `reset` closes a request's connection after it.

const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

interface DispatchOptions {
  readonly method?: string;
  readonly reset?: boolean;
}
type Dispatch = (opts: DispatchOptions, handler: unknown) => boolean;
interface Dispatcher {
  compose(interceptor: (dispatch: Dispatch) => Dispatch): Dispatcher;
}

const slot = globalThis as unknown as Record<symbol, Dispatcher | undefined>;
// Node makes its Agent at the first fetch: one of a data: URL, which opens no connection.
await (await fetch('data:,')).arrayBuffer();
const agent = slot[GLOBAL_DISPATCHER];
if (agent === undefined) throw new Error('fetch-setup: Node has no global fetch dispatcher');
slot[GLOBAL_DISPATCHER] = agent.compose(
  (dispatch) => (opts, handler) =>
    dispatch(
      opts.method === 'GET' || opts.method === 'HEAD' ? { ...opts, reset: true } : opts,
      handler,
    ),
);
