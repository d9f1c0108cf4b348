// After the nemesis: heal, wait for a settled ring and a quiet period, read every key from every node and replica.

import { peerHandshake } from '../../src/auth/index.ts';
import { KvClient } from '../../src/client/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import { PeerClient } from '../../src/peer/index.ts';
import type { ScanReply } from '../../src/replica/index.ts';
import { Ring } from '../../src/ring/index.ts';
import { decodeRecord } from '../../src/storage/index.ts';
import {
  checkConvergence,
  checkReplicas,
  type FinalAnswers,
  type ReplicaRecord,
  type Violation,
} from './checker.ts';
import { type ChaosCluster, CLIENT_PORT, CLUSTER_SECRET, PEER_PORT, type Slot } from './cluster.ts';
import type { History, Op } from './history.ts';
import { CLIENT_TIMEOUT_MS, perform, type Values } from './workload.ts';

export interface FinalReport {
  readonly violations: Violation[];
  /** Seconds from the heal until every node reported the same settled ring, all up, no hints. */
  readonly settleS: number | null;
  /** Keys whose replicas differed before the final reads repaired them (a failed write is on some replicas only until read or hinted). */
  readonly divergentBeforeReads: number;
  /** Seconds the replicas took to agree after the final reads (read repair). */
  readonly repairS: number | null;
  readonly members: string[];
  /** Every member's records (tombstones included) before the final reads: node -> key -> record. */
  readonly storesBefore: Record<string, Record<string, ReplicaRecord>>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until every member answers CLUSTER with every member up, the same ring (and settled
 * epoch: nodes adopt the newest settled ring from each other), not moving and no hints left.
 * Resolves with null then, or with what was still missing after `timeoutMs`.
 */
export async function waitSettled(
  cluster: ChaosCluster,
  timeoutMs: number,
): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  let why = '';
  while (Date.now() < deadline) {
    const members = cluster.members();
    const names = members.map((s) => s.host.name).sort();
    const infos = await Promise.all(members.map((s) => cluster.info(s)));
    why = '';
    for (const [i, info] of infos.entries()) {
      const n = members[i]!.host.name;
      if (!info) why ||= `${n} does not answer`;
      else if (info.ring.moving) why ||= `${n} is moving data`;
      else if (info.ring.target !== infos[0]?.ring.target) why ||= `${n} has another ring`;
      else if (info.ring.epoch !== infos[0]?.ring.epoch) {
        why ||= `${n} has settled epoch ${info.ring.epoch}, ${infos[0]?.node} ${infos[0]?.ring.epoch}`;
      } else if (info.members.map((m) => m.name).join() !== names.join()) {
        why ||= `${info.node} sees members ${info.members.map((m) => m.name).join(',')}`;
      } else if (info.members.some((m) => m.state !== 'up'))
        why ||= `${info.node} sees a member down`;
      else if (info.hints > 0) why ||= `${info.node} holds ${info.hints} hints`;
    }
    if (!why) return null;
    await sleep(200);
  }
  return why;
}

/** Runs the final phase; the history gets the final reads. */
export async function finalPhase(
  cluster: ChaosCluster,
  history: History,
  keys: readonly string[],
  quietS: number,
  values: Values,
): Promise<FinalReport> {
  const violations: Violation[] = [];
  const healed = Date.now();
  await cluster.healAll();
  const unsettled = await waitSettled(cluster, 60_000);
  const settleS = unsettled === null ? (Date.now() - healed) / 1000 : null;
  if (unsettled !== null) {
    violations.push({
      kind: 'unsettled',
      key: '*',
      message: `the cluster did not settle within 60 s of the heal: ${unsettled}`,
      excerpt: [],
    });
  }
  await sleep(quietS * 1000); // the quiet period itself: nothing to wait for
  const members = cluster.members();
  const names = members.map((s) => s.host.name);
  const owners = ownersOf(names);
  const before = await replicaStores(members, keys, values);
  const divergentBeforeReads = checkReplicas(before, owners, keys).length;

  const answers: FinalAnswers[] = [];
  for (const s of members) answers.push(await finalReads(s, history, keys, values));
  violations.push(...checkConvergence(answers, keys));

  // Every owner answered the final reads: read repair must have left every replica equal.
  const repairStart = Date.now();
  let replicaViolations: Violation[] = [];
  let repairS: number | null = null;
  while (Date.now() - repairStart < 10_000) {
    replicaViolations = checkReplicas(await replicaStores(members, keys, values), owners, keys);
    if (replicaViolations.length === 0) {
      repairS = (Date.now() - repairStart) / 1000;
      break;
    }
    await sleep(200);
  }
  violations.push(...replicaViolations);
  const storesBefore = Object.fromEntries(
    [...before].map(([node, records]) => [node, Object.fromEntries(records)]),
  );
  return { violations, settleS, divergentBeforeReads, repairS, members: names, storesBefore };
}

/** Owners of a key in the ring of `names` (RF 3, clamped), as every node computes them. */
function ownersOf(names: readonly string[]): (key: string) => string[] {
  const ring = new Ring(names);
  const rf = Math.min(3, names.length);
  return (key) => ring.owners(Buffer.from(key), rf);
}

/**
 * Rounds of final GETs through a node of the keys it gave no answer at all (timed out, connection
 * lost): on a loaded machine a node may stall past CLIENT_TIMEOUT_MS (seed 29006: 100 GETs
 * through kv4, answered 3.0 s after they were sent, the last 26 past the timeout), and a stall
 * says nothing of what it holds. An answer does: an error code or a value is kept as it is.
 */
const FINAL_READ_ROUNDS = 3;

/** GET of every key and a RANGE over the key space through one node, recorded as final reads. */
async function finalReads(s: Slot, history: History, keys: readonly string[], values: Values) {
  const node = s.host.name;
  const gets = new Map<string, Op>();
  let unanswered: readonly string[] = keys;
  for (let round = 0; round < FINAL_READ_ROUNDS && unanswered.length > 0; round++) {
    const ops = unanswered.map((key) =>
      history.invoke({ client: 'final', node, type: 'get', key, final: true }),
    );
    await throughNode(s, (conns) =>
      Promise.all(ops.map((op) => perform(op, conns, s.host.ip, history, values))),
    );
    for (const op of ops) gets.set(op.key, op);
    unanswered = ops.filter((op) => op.outcome === 'timeout').map((op) => op.key);
  }
  const scan = history.invoke({
    client: 'final',
    node,
    type: 'range',
    key: 'k',
    end: 'l',
    final: true,
  });
  await throughNode(s, (conns) => perform(scan, conns, s.host.ip, history, values));
  const error = (code: string | undefined) => new Error(code ?? 'no answer');
  return {
    node,
    values: new Map(
      keys.map((key) => {
        const op = gets.get(key)!;
        return [
          key,
          op.outcome === 'value' ? op.read! : op.outcome === 'not_found' ? null : error(op.error),
        ];
      }),
    ),
    range: scan.outcome === 'keys' ? scan.keys! : error(scan.error),
  } satisfies FinalAnswers;
}

/** Runs `fn` with a client connection of its own to node `s`, closed after. */
async function throughNode<T>(
  s: Slot,
  fn: (conns: { get: () => Promise<KvClient> }) => Promise<T>,
): Promise<T> {
  const client = KvClient.connect({
    host: s.host.ip,
    port: CLIENT_PORT,
    timeoutMs: CLIENT_TIMEOUT_MS,
  });
  client.catch(() => {});
  try {
    return await fn({ get: () => client });
  } finally {
    await client.then(
      (c) => c.close(),
      () => {},
    );
  }
}

/** Each member's own records (tombstones included), read over the peer port with `scan`. */
async function replicaStores(members: readonly Slot[], keys: readonly string[], values: Values) {
  const logger = createLogger('silent', {});
  const stores = new Map<string, Map<string, ReplicaRecord>>();
  await Promise.all(
    members.map(async (s) => {
      const peer = new PeerClient({
        address: `${s.host.ip}:${PEER_PORT}`,
        logger,
        timeoutMs: 5000,
        handshake: peerHandshake(CLUSTER_SECRET),
      });
      const records = new Map<string, ReplicaRecord>();
      try {
        // Records whole, so in replies of at most SCAN_REPLY_BYTES: paged on from the last key.
        let after: Buffer | null = null;
        for (;;) {
          const body = {
            s: after ?? Buffer.from('k'),
            e: Buffer.from('l'),
            ie: true,
            xs: after !== null,
            l: keys.length + 10,
          };
          const reply: ScanReply = await peer.request<ScanReply>('scan', body);
          for (const [k, raw] of reply.e) {
            const rec = decodeRecord(Buffer.from(raw));
            const v = rec.version;
            // An expired record is absent wherever it is read, swept into a tombstone or not yet.
            const expired = rec.expiresAt !== undefined && rec.expiresAt <= Date.now();
            records.set(Buffer.from(k).toString(), {
              version: `${v.wall}.${v.logical}.${v.node}`,
              tombstone: rec.tombstone || expired,
              value: values.unpad(rec.value.toString()),
            });
          }
          if (!reply.more || reply.e.length === 0) break;
          after = Buffer.from(reply.e[reply.e.length - 1]![0]);
        }
      } catch {
        // A member that does not answer holds nothing we can see: the check reports its keys.
      } finally {
        await peer.close();
      }
      stores.set(s.host.name, records);
    }),
  );
  return stores;
}
