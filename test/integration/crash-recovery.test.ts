// SIGKILL during heavy pipelined writes, repeatedly: every restart opens and holds every acknowledged write.

import { afterEach, describe, expect, it } from 'vitest';
import { KvClient } from '../../src/client/index.ts';
import { metric, restart, startStaticCluster, waitAllUp } from '../helpers/cluster.ts';
import { cleanup, type NodeProcess, startNodeProcess, tempDir } from '../helpers/node-process.ts';

const clients: KvClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await cleanup();
});

async function client(host: string, port: number): Promise<KvClient> {
  const c = await KvClient.connect({ host, port, timeoutMs: 10_000 });
  clients.push(c);
  return c;
}

/**
 * Every operation sent per key, in send order (null = REMOVE), and the highest index acknowledged.
 * Each key is written over one connection only, so its operations take effect in send order: after
 * a crash the key must hold the result of the last acknowledged operation or of a later one.
 */
class WriteLog {
  readonly keys = new Map<string, { ops: (string | null)[]; acked: number }>();
  acks = 0;
  errors = 0;

  sent(key: string, value: string | null): number {
    const k = this.keys.get(key) ?? { ops: [], acked: -1 };
    this.keys.set(key, k);
    return k.ops.push(value) - 1;
  }

  ack(key: string, index: number): void {
    const k = this.keys.get(key)!;
    k.acked = Math.max(k.acked, index);
    this.acks++;
  }

  /** The acknowledged index of every key now (for reads made while writes go on). */
  snapshot(): Map<string, number> {
    return new Map([...this.keys].map(([key, k]) => [key, k.acked]));
  }

  /**
   * Keys whose value read is not the last acknowledged one (as of `ackedBefore`, the reads'
   * start, when writes went on during them) or a later one.
   */
  check(read: ReadonlyMap<string, string | null>, ackedBefore?: Map<string, number>): string[] {
    const bad: string[] = [];
    for (const [key, { ops, acked: now }] of this.keys) {
      const acked = ackedBefore ? (ackedBefore.get(key) ?? -1) : now;
      const got = read.get(key) ?? null;
      const allowed = acked === -1 ? [null, ...ops] : ops.slice(acked);
      if (!allowed.includes(got)) {
        const last = acked === -1 ? 'none' : JSON.stringify(ops[acked]);
        bad.push(`${key}: read ${JSON.stringify(got)}, last acknowledged ${last} (#${acked})`);
      }
    }
    return bad;
  }
}

/**
 * Keeps `depth` writes in flight on `c` over `keys` (90% PUT of a unique value of 100..1100
 * bytes, 10% REMOVE) until `stop()`; errors (the node was killed) are counted, never retried.
 */
function writeLoad(c: KvClient, keys: readonly string[], log: WriteLog, depth: number) {
  let stopped = false;
  let seq = 0;
  const pad = 'x'.repeat(1100);
  const lane = async (): Promise<void> => {
    while (!stopped) {
      const key = keys[Math.floor(Math.random() * keys.length)]!;
      const remove = Math.random() < 0.1;
      const value = remove ? null : `${key}#${seq++}:${pad.slice(0, 100 + (seq % 1000))}`;
      const index = log.sent(key, value);
      try {
        if (value === null) await c.remove(key);
        else await c.put(key, value);
        log.ack(key, index);
      } catch {
        log.errors++;
        await new Promise((r) => setTimeout(r, 20)); // the node is down: do not spin
      }
    }
  };
  const lanes = Array.from({ length: depth }, lane);
  return {
    async stop(): Promise<void> {
      stopped = true;
      await Promise.all(lanes);
    },
  };
}

/** Reads every key of the log through `c`, pipelined. */
async function readAll(c: KvClient, log: WriteLog): Promise<Map<string, string | null>> {
  const keys = [...log.keys.keys()];
  const values = await Promise.all(keys.map((k) => c.get(k)));
  return new Map(keys.map((k, i) => [k, values[i]!]));
}

/** Polls until `cond` holds (at most `ms`). */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const keysOf = (writer: number, n: number) =>
  Array.from({ length: n }, (_, i) => `crash:${writer}:${String(i).padStart(3, '0')}`);

describe('crash recovery', () => {
  it('a single node killed during heavy pipelined writes, 5 times, keeps every acknowledged write', async () => {
    const dataDir = tempDir();
    let node: NodeProcess = await startNodeProcess({ dataDir });
    const log = new WriteLog();
    const writers = [0, 1, 2, 3].map((w) => keysOf(w, 200));
    for (let round = 0; round < 5; round++) {
      const conns = await Promise.all(writers.map(() => client('127.0.0.1', node.port)));
      const loads = conns.map((c, w) => writeLoad(c, writers[w]!, log, 64));
      // Kill at a different point each round, but only once the load is heavy.
      const target = log.acks + 2000 + round * 1500;
      await until(() => log.acks >= target, 30_000, `${target} acknowledgements`);
      expect(await node.stop('SIGKILL')).toBe('SIGKILL');
      await Promise.all(loads.map((l) => l.stop()));
      node = await startNodeProcess({ dataDir });
      const reader = await client('127.0.0.1', node.port);
      const read = await readAll(reader, log);
      expect(log.check(read)).toEqual([]);
      // The live-key counter is kept in the data's own transactions: exact after a crash too.
      const live = [...read.values()].filter((v) => v !== null).length;
      const metrics = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
      expect(metrics).toMatch(new RegExp(`^kvstore_storage_keys ${live}$`, 'm'));
    }
    expect(log.acks).toBeGreaterThan(10_000);
    expect(log.errors).toBeGreaterThan(0); // writes were in flight at every kill
  }, 120_000);

  it('a 3-node cluster with one node killed mid-load, 5 times, keeps every acknowledged write', async () => {
    const nodes = await startStaticCluster(3);
    const log = new WriteLog();
    // One writer per node, each on its own keys: a key's writes go through one coordinator.
    const writers = nodes.map((_, w) => keysOf(w, 100));
    const conns = await Promise.all(nodes.map((n) => client(n.host, n.proc.port)));
    const loads = conns.map((c, w) => writeLoad(c, writers[w]!, log, 32));
    const peers = ['--peers', nodes.map((m) => `${m.name}=${m.host}:7946`).join(',')];
    try {
      for (let round = 0; round < 5; round++) {
        const victim = nodes[round % 3]!;
        const target = log.acks + 1500;
        await until(() => log.acks >= target, 30_000, `${target} acknowledgements`);
        expect(await victim.proc.stop('SIGKILL')).toBe('SIGKILL');
        // The other two keep acknowledging writes (W=2) while the victim is down.
        const during = log.acks + 500;
        await until(() => log.acks >= during, 30_000, 'writes while a node is down');
        await restart(victim, peers);
        await waitAllUp(nodes, 20_000);
        // Every write acknowledged so far is readable through the restarted node.
        const acked = log.snapshot();
        const read = await readAll(await client(victim.host, victim.proc.port), log);
        expect(log.check(read, acked)).toEqual([]);
      }
    } finally {
      await Promise.all(loads.map((l) => l.stop()));
    }
    for (const n of nodes) {
      const read = await readAll(await client(n.host, n.proc.port), log);
      expect({ node: n.name, bad: log.check(read) }).toEqual({ node: n.name, bad: [] });
    }
    expect(await metric(nodes[0]!, 'kvstore_storage_keys')).toBeGreaterThan(0);
  }, 150_000);
});
