// Chaos clients: random PUT, GET, REMOVE, RANGE and PREFIX on a small key space, every operation recorded.

import { KvClient, KvClientError } from '../../src/client/index.ts';
import { type ChaosCluster, CLIENT_PORT } from './cluster.ts';
import type { History, Op, Outcome } from './history.ts';
import type { Rng } from './options.ts';

/** How long a client waits for a reply before the operation counts as indeterminate. */
export const CLIENT_TIMEOUT_MS = 3000;

const MIX = { put: 40, get: 30, remove: 15, range: 10, prefix: 5 } as const;
/** With expiring writes: the share of PUTs sent as SETEX, and the seconds they live. */
const EXPIRING_SHARE = 1 / 3;
const TTLS_S = [1, 2, 3] as const;

/**
 * Values as the clients send them: the operation's id (`c3-17`), or with `--value-bytes` the id,
 * a dot and a filling to that many bytes, the id repeated. History and checker see the
 * id alone: a value read back whose filling is not its id's (cut, mixed with another, or of
 * another length) is recorded as `<id>!corrupt`, which no client wrote.
 */
export class Values {
  readonly bytes: number;

  constructor(bytes = 0) {
    this.bytes = bytes;
  }

  pad(id: string): string {
    const n = this.bytes - id.length - 1;
    return n <= 0 ? id : `${id}.${filling(id, n)}`;
  }

  unpad(value: string): string {
    const dot = value.indexOf('.');
    if (this.bytes === 0 || dot < 0) return value;
    const id = value.slice(0, dot);
    return value.length === this.bytes &&
      value.slice(dot + 1) === filling(id, value.length - dot - 1)
      ? id
      : `${id}!corrupt`;
  }
}

function filling(id: string, n: number): string {
  const unit = `${id}|`;
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
}

/** Key `i` of the key space: k00, k01, ... (byte order = numeric order). */
export function keyName(i: number): string {
  return `k${String(i).padStart(2, '0')}`;
}

/** Connections by node, opened on first use; one per client and node. */
class Connections {
  readonly #clients = new Map<string, Promise<KvClient>>();
  /** The address each node's connection went to: a member back on a new one is connected anew. */
  readonly #ips = new Map<string, string>();

  get(node: string, ip: string): Promise<KvClient> {
    if (this.#ips.has(node) && this.#ips.get(node) !== ip) this.drop(node);
    let c = this.#clients.get(node);
    if (!c) {
      this.#ips.set(node, ip);
      c = KvClient.connect({ host: ip, port: CLIENT_PORT, timeoutMs: CLIENT_TIMEOUT_MS });
      // A failed connect is forgotten so that the next operation tries again.
      c.catch(() => this.#clients.delete(node));
      this.#clients.set(node, c);
    }
    return c;
  }

  /** Forgets a closed connection: the next operation connects anew (and a refusal is definite). */
  drop(node: string): void {
    const c = this.#clients.get(node);
    this.#clients.delete(node);
    c?.then(
      (k) => k.destroy(),
      () => {},
    );
  }

  closeAll(): void {
    for (const c of this.#clients.values())
      c.then(
        (k) => k.destroy(),
        () => {},
      );
    this.#clients.clear();
  }
}

/** Runs `clients` clients until stop() (which waits for their last operations). */
export function startWorkload(
  cluster: ChaosCluster,
  history: History,
  rng: Rng,
  clients: number,
  keys: number,
  values: Values = new Values(),
  expiring = false,
): { stop(): Promise<void> } {
  let stopped = false;
  const loops = Array.from({ length: clients }, (_, i) =>
    clientLoop(`c${i}`, rng.fork(), () => stopped),
  );
  async function clientLoop(id: string, r: Rng, done: () => boolean): Promise<void> {
    const conns = new Connections();
    let seq = 0;
    try {
      while (!done()) {
        const targets = cluster.clientTargets();
        if (targets.length === 0) {
          await new Promise((res) => setTimeout(res, 50));
          continue;
        }
        const slot = r.pick(targets);
        const type = r.weighted(MIX);
        const key = keyName(r.int(0, keys - 1));
        let op: Op;
        if (type === 'range') {
          const [a, b] = [r.int(0, keys - 1), r.int(0, keys - 1)].sort((x, y) => x - y);
          op = history.invoke({
            client: id,
            node: slot.host.name,
            type,
            key: keyName(a!),
            end: keyName(b!),
          });
        } else if (type === 'prefix') {
          const p = r.pick(['k', 'k0', 'k1', 'k2', `k${r.int(0, Math.floor((keys - 1) / 10))}`]);
          op = history.invoke({ client: id, node: slot.host.name, type, key: p });
        } else {
          const value = type === 'put' ? `${id}-${++seq}` : undefined;
          // With expiring writes, a share of the PUTs are SETEX (drawn only then: the other
          // runs' draws stay as they were).
          const ttlS = value && expiring && r.next() < EXPIRING_SHARE ? r.pick(TTLS_S) : undefined;
          op = history.invoke({
            client: id,
            node: slot.host.name,
            type,
            key,
            ...(value ? { value } : {}),
            ...(ttlS !== undefined ? { ttlS } : {}),
          });
        }
        await perform(op, conns, slot.host.ip, history, values);
        // An error from a node that is down comes back at once: do not spin on it.
        if (op.outcome === 'error' || op.outcome === 'timeout') {
          await new Promise((res) => setTimeout(res, r.int(5, 50)));
        }
      }
    } finally {
      conns.closeAll();
    }
  }
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Where perform gets its connection to a node. */
export interface ConnectionSource {
  get(node: string, ip: string): Promise<KvClient>;
  drop?(node: string): void;
}

/** Sends one operation and records its outcome. */
export async function perform(
  op: Op,
  conns: ConnectionSource,
  ip: string,
  history: History,
  values: Values = new Values(),
): Promise<void> {
  let c: KvClient;
  try {
    c = await conns.get(op.node, ip);
  } catch (err) {
    // Not connected: the operation was never sent, a definite failure.
    const code = err instanceof KvClientError ? err.code : String(err);
    history.complete(op, 'error', { error: `CONNECT_FAILED ${code}` });
    return;
  }
  try {
    switch (op.type) {
      case 'put':
        if (op.ttlS === undefined) await c.put(op.key, values.pad(op.value!));
        else await setex(c, op.key, op.ttlS, values.pad(op.value!));
        history.complete(op, 'ok');
        break;
      case 'get': {
        const v = await c.get(op.key);
        history.complete(op, v === null ? 'not_found' : 'value', {
          read: v === null ? null : values.unpad(v),
        });
        break;
      }
      case 'remove':
        history.complete(op, (await c.remove(op.key)) ? 'ok' : 'not_found');
        break;
      case 'range':
        history.complete(op, 'keys', { keys: (await c.range(op.key, op.end!)).keys });
        break;
      case 'prefix':
        history.complete(op, 'keys', { keys: (await c.prefix(op.key)).keys });
        break;
    }
  } catch (err) {
    const { outcome, code, detail } = classify(err);
    history.complete(op, outcome, { error: code, ...(detail ? { detail } : {}) });
    if (code === 'CONNECTION_CLOSED') conns.drop?.(op.node);
  }
}

/** `SETEX key ttlS value`: resolves on OK, rejects with the node's error as the client's calls do. */
async function setex(c: KvClient, key: string, ttlS: number, value: string): Promise<void> {
  const reply = await c.raw(`SETEX ${key} ${ttlS} ${value}`);
  if (reply === 'OK') return;
  const m = /^ERR (\S+) ?(.*)$/.exec(reply);
  if (m) throw new KvClientError(m[1]!, m[2]!, { remote: true });
  throw new Error(`chaos: SETEX answered ${JSON.stringify(reply)}`);
}

/** A node's `ERR <code>` is a definite answer; anything else leaves the operation indeterminate. */
function classify(err: unknown): { outcome: Outcome; code: string; detail?: string } {
  if (err instanceof KvClientError) {
    if (!err.remote) return { outcome: 'timeout', code: err.code };
    return { outcome: 'error', code: err.code, detail: err.message.slice(0, 300) };
  }
  return { outcome: 'timeout', code: err instanceof Error ? err.message : String(err) };
}
