// Multi-key commands (DEL, EXISTS, MGET, MSET) as concurrent single-key commands, and INFO's data.

import type { Refusal } from '../admin/index.ts';
import { KvError } from '../errors/index.ts';
import type { Topology } from '../membership/index.ts';
import type { Command, InfoSection, Reply } from '../protocol/index.ts';

type MultiCommand = Extract<Command, { type: 'del' | 'exists' | 'mget' | 'mset' }>;

/** Runs one single-key command (the coordinator's own execute). */
type Run = (cmd: Command) => Reply | Promise<Reply>;

/**
 * Runs every part concurrently; answers synchronously when every part did (a node that is
 * each key's only replica), else once all settled. Any failure fails the whole command with the
 * first error; parts already applied stay applied (these commands are not atomic).
 */
function all(
  parts: (Reply | Promise<Reply>)[],
  merge: (r: Reply[]) => Reply,
): Reply | Promise<Reply> {
  if (parts.every((p) => !(p instanceof Promise))) return merge(parts as Reply[]);
  return Promise.all(parts).then(merge);
}

/**
 * Reads one key for a multi-key read: GET's reply (a value or not_found). For EXISTS it may
 * answer a value without its bytes (only whether there is one counts).
 */
type Read = (key: Buffer) => Reply | Promise<Reply>;

/** Runs one part; a synchronous throw becomes a rejection, so no other part's is left unhandled. */
function attempt<A>(run: (a: A) => Reply | Promise<Reply>, arg: A): Reply | Promise<Reply> {
  try {
    return run(arg);
  } catch (err) {
    return Promise.reject(err);
  }
}

function count(replies: readonly Reply[], type: Reply['type']): Reply {
  return { type: 'integer', value: replies.filter((r) => r.type === type).length };
}

/**
 * The default of --max-multi-read-bytes: bytes of values one MGET or EXISTS may read (and MGET
 * answer), the RESP request limit. Its
 * request is small (3,000 key names are 40 KB) while each key may hold a value of
 * --max-value-bytes: an MGET naming 300 keys of 1 MiB ten times each made one node hold 8.7 GB
 * for a client that did not read its answer.
 */
export const MULTI_READ_BYTES = 64 * 1024 * 1024;

/** How a multi-key read is bounded: MULTI_READ_BYTES, read `chunkKeys` keys at a time. */
export interface MultiReadBounds {
  readonly maxBytes: number;
  /** Keys read at once: maxBytes over the largest value, so a round holds at most maxBytes more. */
  readonly chunkKeys: number;
}

export function multiReadBounds(
  maxValueBytes: number,
  maxBytes = MULTI_READ_BYTES,
): MultiReadBounds {
  return { maxBytes, chunkKeys: Math.max(1, Math.floor(maxBytes / Math.max(1, maxValueBytes))) };
}

function overBudget(what: string, max: number): KvError {
  return new KvError(
    'KV_ERR_LIMIT_EXCEEDED',
    `coordinator: ${what} reads more than ${max} bytes of values; ask for fewer keys at a time`,
  );
}

/**
 * GET of each key, `chunkKeys` at a time (each chunk concurrently), failing with LIMIT_EXCEEDED
 * once the values read pass `maxBytes`. Synchronous while every part is (one node holding every
 * key), as `all` is.
 */
function boundedReads(
  what: string,
  keys: readonly Buffer[],
  read: Read,
  bounds: MultiReadBounds,
  merge: (r: Reply[]) => Reply,
): Reply | Promise<Reply> {
  const out: Reply[] = [];
  let bytes = 0;
  const take = (replies: readonly Reply[]) => {
    for (const r of replies) if (r.type === 'value') bytes += r.value.length;
    if (bytes > bounds.maxBytes) throw overBudget(what, bounds.maxBytes);
    out.push(...replies);
  };
  const from = (start: number): Reply | Promise<Reply> => {
    for (let i = start; i < keys.length; i += bounds.chunkKeys) {
      const parts = keys.slice(i, i + bounds.chunkKeys).map((key) => attempt(read, key));
      if (parts.some((p) => p instanceof Promise)) {
        const next = i + bounds.chunkKeys;
        return Promise.all(parts).then((replies) => {
          take(replies);
          return from(next);
        });
      }
      take(parts as Reply[]);
    }
    return merge(out);
  };
  try {
    return from(0);
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * DEL: REMOVE of each distinct key, the count of keys that were live. EXISTS: GET of each key,
 * the count found (a key named twice counts twice, as in Redis). MGET: GET of each key, an array
 * with not_found (RESP null) for absent keys. MSET: PUT of each pair; OK when all are durable.
 * Versions are taken in argument order, so a key set twice in one MSET keeps the later value.
 * MGET and EXISTS read their keys a chunk at a time and fail with LIMIT_EXCEEDED past
 * `bounds.maxBytes` of values (MULTI_READ_BYTES): their request is small, their values need not be.
 * `exists` reads EXISTS's keys (default: GET): the coordinator's reads only their versions.
 */
export function executeMulti(
  cmd: MultiCommand,
  run: Run,
  bounds: MultiReadBounds = multiReadBounds(1024 * 1024),
  exists?: Read,
): Reply | Promise<Reply> {
  const get: Read = (key) => run({ type: 'get', key });
  switch (cmd.type) {
    case 'del': {
      const distinct = new Map(cmd.keys.map((k) => [k.toString('latin1'), k]));
      const parts = [...distinct.values()].map((key) => attempt(run, { type: 'remove', key }));
      return all(parts, (r) => count(r, 'ok'));
    }
    case 'exists':
      return boundedReads('EXISTS', cmd.keys, exists ?? get, bounds, (r) => count(r, 'value'));
    case 'mget':
      return boundedReads('MGET', cmd.keys, get, bounds, (items) => ({ type: 'array', items }));
    case 'mset':
      return all(
        cmd.entries.map(([key, value]) => attempt(run, { type: 'put', key, value })),
        () => ({ type: 'ok' }),
      );
    default: {
      const never: never = cmd;
      throw new Error(`coordinator: unhandled command ${JSON.stringify(never)}`);
    }
  }
}

/** What INFO and DBSIZE read from the node. */
export interface KeyspaceSource {
  readonly self: string;
  readonly topology: Topology;
  readonly isUp: (name: string) => boolean;
  readonly liveKeys: () => number;
  /** Live keys with an expiry (INFO's `expires`), counted like liveKeys. */
  readonly expiringKeys: () => number;
  readonly readQuorum: number;
  readonly writeQuorum: number;
  /** What the node refuses of its clients' commands now, and why (INFO's kvstore_refusing). */
  readonly refusing?: () => Refusal | null;
}

const shareCache = new WeakMap<object, number>();

/**
 * The cluster's live keys, estimated from this node alone: its live keys divided by the
 * fraction of the ring it replicates. Exact on one node and whenever every member holds every
 * key (members <= RF, all replicas caught up); otherwise it assumes keys hash evenly. Keys this
 * node still holds for a range it is handing off count too, until they are cleaned up. `count`
 * (default: liveKeys) is the local number to scale.
 */
export function estimateKeys(o: KeyspaceSource, count: () => number = o.liveKeys): number {
  const ring = o.topology.target;
  let share = shareCache.get(ring);
  if (share === undefined) {
    share = ring.share(o.self, o.topology.rf(ring));
    shareCache.set(ring, share);
  }
  const live = count();
  return share > 0 ? Math.round(live / share) : live;
}

/** INFO's kvstore_refusing (none, writes or all) and, when it refuses, kvstore_refusing_reason. */
function refusingFields(r: Refusal | null): [string, string][] {
  if (r === null) return [['kvstore_refusing', 'none']];
  return [
    ['kvstore_refusing', r.commands],
    ['kvstore_refusing_reason', r.reason],
  ];
}

/** INFO's `replication` (the cluster, in Redis's shape) and `keyspace` sections. */
export function infoSections(o: KeyspaceSource, want: readonly string[]): Reply {
  const all = want.length === 0 || want.some((w) => ['all', 'everything', 'default'].includes(w));
  const sections: InfoSection[] = [];
  const t = o.topology;
  if (all || want.includes('replication')) {
    const members = t.allMembers();
    sections.push({
      name: 'replication',
      fields: [
        ['role', 'master'],
        ['connected_slaves', 0],
        ['kvstore_node', o.self],
        ['kvstore_members', members.length],
        ['kvstore_members_up', members.filter((m) => m === o.self || o.isUp(m)).length],
        ['kvstore_member_names', members.join(',')],
        ['kvstore_ring', t.target.id],
        ['kvstore_ring_settled', t.settled.id],
        ['kvstore_ring_moving', t.moving ? 1 : 0],
        ['kvstore_replication_factor', t.rf(t.target)],
        ['kvstore_read_quorum', Math.min(o.readQuorum, t.rf(t.target))],
        ['kvstore_write_quorum', Math.min(o.writeQuorum, t.rf(t.target))],
        ...refusingFields(o.refusing?.() ?? null),
      ],
    });
  }
  if (all || want.includes('keyspace')) {
    sections.push({
      name: 'keyspace',
      fields: [
        ['db0', `keys=${estimateKeys(o)},expires=${estimateKeys(o, o.expiringKeys)},avg_ttl=0`],
      ],
    });
  }
  return { type: 'sections', sections };
}
