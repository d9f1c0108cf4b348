// SIGKILL during heavy pipelined writes, repeatedly: every restart opens and holds every acknowledged write.

import { afterEach, describe, expect, it } from 'vitest';
import { KvClient } from '../../src/client/index.ts';
import { metric, restart, startStaticCluster, waitAllUp } from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, type NodeProcess, startNodeProcess, tempDir } from '../helpers/node-process.ts';
import { readAll, until, WriteLog, writeLoad } from '../helpers/write-log.ts';

afterEach(cleanup);

async function client(host: string, port: number): Promise<KvClient> {
  const c = await KvClient.connect({ host, port, timeoutMs: 10_000 });
  defer(() => c.destroy());
  return c;
}

// How long the load may take to reach a count, and a whole test: hang detectors sized for a
// busy 2-core machine (a round took over 20 s at load average 40), not speed claims.
const WAIT_MS = 120_000;
const TEST_MS = 600_000;

const keysOf = (writer: number, n: number) =>
  Array.from({ length: n }, (_, i) => `crash:${writer}:${String(i).padStart(3, '0')}`);

describe('crash recovery', () => {
  it(
    'a single node killed during heavy pipelined writes, 5 times, keeps every acknowledged write',
    async () => {
      const dataDir = tempDir();
      let node: NodeProcess = await startNodeProcess({ dataDir });
      const log = new WriteLog();
      const writers = [0, 1, 2, 3].map((w) => keysOf(w, 200));
      for (let round = 0; round < 5; round++) {
        const conns = await Promise.all(writers.map(() => client('127.0.0.1', node.port)));
        const loads = conns.map((c, w) => writeLoad(c, writers[w]!, log, 64));
        // Kill at a different point each round, but only once the load is heavy.
        const target = log.acks + 2000 + round * 1500;
        await until(
          () => log.acks >= target,
          WAIT_MS,
          () => log.awaiting(target),
        );
        // The kill lands with writes in flight (the load keeps 4 x 64 going).
        const inFlight = log.inFlight;
        expect(await node.stop('SIGKILL')).toBe('SIGKILL');
        expect(inFlight).toBeGreaterThan(0);
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
      expect(log.errors).toBeGreaterThan(0); // the writes in flight at the kills failed
    },
    TEST_MS,
  );

  it(
    'a 3-node cluster with one node killed mid-load, 5 times, keeps every acknowledged write',
    async () => {
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
          await until(
            () => log.acks >= target,
            WAIT_MS,
            () => log.awaiting(target),
          );
          expect(await victim.proc.stop('SIGKILL')).toBe('SIGKILL');
          // The other two keep acknowledging writes (W=2) while the victim is down.
          const during = log.acks + 500;
          await until(() => log.acks >= during, WAIT_MS, 'writes while a node is down');
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
    },
    TEST_MS,
  );
});
