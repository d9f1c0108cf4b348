// What a client GET costs the node above the store: how many times its key is placed on the ring
// (hashing it and walking the ring, a few percent of a replicated GET each) and how many LMDB
// lookups it makes, on a real KvServer over a real ClusterCoordinator, and that a GET waiting on
// its peers still counts this node's copy in the reply budget while it waits.

import { connect, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterCoordinator } from '../../src/coordinator/index.ts';
import { Topology } from '../../src/membership/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import { Replicas } from '../../src/replica/index.ts';
import { KvServer } from '../../src/server/server.ts';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

afterEach(() => cleanup());

const VALUE = Buffer.alloc(3000, 'v');

/** A node n1 serving a cluster of `members`, its peers never answering until the test ends. */
async function node(members: string[]) {
  const storage = Storage.open({ path: tempDir(), nodeName: 'n1' });
  defer(() => storage.close());
  await storage.apply(Buffer.from('k'), {
    version: { wall: Date.now(), logical: 0, node: 'n1' },
    tombstone: false,
    value: VALUE,
  });
  const released: (() => void)[] = [];
  defer(() => {
    for (const r of released) r();
  });
  const peers = () =>
    new Promise<never>((_, reject) => released.push(() => reject(new Error('test over'))));
  const topology = new Topology(members, null, 3);
  let placed = 0;
  const place = topology.place.bind(topology);
  topology.place = (key) => {
    placed++;
    return place(key);
  };
  const registry = new Registry();
  const coordinator = new ClusterCoordinator({
    storage,
    topology,
    replicas: new Replicas('n1', storage, peers),
    isUp: () => true,
    hint: () => Promise.resolve(),
    info: () => ({}),
    readQuorum: 2,
    writeQuorum: 2,
    readRepairChance: 0,
    readSpeculateMs: 60_000,
    maxScanKeys: 100,
    registry: new Registry(),
  });
  let sized = 0;
  const sizeHere = coordinator.sizeHere.bind(coordinator);
  coordinator.sizeHere = (key) => {
    sized++;
    return sizeHere(key);
  };
  const server = await KvServer.start({
    host: '127.0.0.1',
    port: 0,
    limits: { maxKeyBytes: 64, maxValueBytes: 1024 * 1024, maxScanKeys: 100 },
    maxLineBytes: 4096,
    maxPipeline: 64,
    maxConnections: 10,
    coordinator,
    registry,
    logger: createLogger('silent', {}),
  });
  defer(() => server.shutdown(100));
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect(server.port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  defer(() => socket.destroy());
  const reserved = async () => {
    const m = await registry.getSingleMetricAsString('kvstore_client_reply_reserved_bytes');
    return Number(/ (\d+)$/m.exec(m)?.[1]);
  };
  return { socket, reserved, counts: () => ({ placed, sized }) };
}

describe('a GET on a node that is not the key’s only replica', () => {
  for (const [protocol, request] of [
    ['text', 'GET k\r\n'],
    ['RESP', '*2\r\n$3\r\nGET\r\n$1\r\nk\r\n'],
  ] as const) {
    it(`places its key no more than it must on the ${protocol} protocol, and counts this node's copy while it waits on its peers`, async () => {
      const n = await node(['n1', 'n2', 'n3']);
      n.socket.write(request);
      // Waiting for n2 and n3: the reply budget holds this node's copy until they answer.
      await until(async () => (await n.reserved()) >= VALUE.length, 10_000, 'the copy reserved');
      expect(await n.reserved()).toBe(VALUE.length);
      // One placement to route it (execute), and on RESP one more for the shortcut that answers
      // a key this node alone holds (getNow); one lookup of the copy here, for the budget.
      expect(n.counts()).toEqual({ placed: protocol === 'RESP' ? 2 : 1, sized: 1 });
    });
  }
});

describe('a GET on a node that is the key’s only replica', () => {
  it('makes no lookup for the reply budget before its read on the text protocol', async () => {
    const n = await node(['n1']);
    const replies: Buffer[] = [];
    n.socket.on('data', (c) => replies.push(c));
    n.socket.write('GET k\r\nGET k\r\n');
    await until(() => Buffer.concat(replies).length >= 2 * VALUE.length, 10_000, 'both replies');
    expect(n.counts().sized).toBe(0);
    expect(await n.reserved()).toBe(0);
  });
});
