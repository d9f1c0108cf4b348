// What a client GET costs the node above the store: how many times its key is placed on the ring
// (hashing it and walking the ring, a few percent of a replicated GET each) and how many LMDB
// lookups it makes, on a real KvServer over a real ClusterCoordinator, and that a GET waiting on
// its peers still counts this node's copy in the reply budget while it waits. Peers that answer
// are real replica handlers on their own stores, reached through an in-process PeerCall.

import { connect, type Socket } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterCoordinator } from '../../src/coordinator/index.ts';
import { Topology } from '../../src/membership/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import {
  createReplicaHandler,
  type HelloReply,
  type PeerCall,
  Replicas,
} from '../../src/replica/index.ts';
import { KvServer } from '../../src/server/server.ts';
import { Storage } from '../../src/storage/index.ts';
import { defer } from '../helpers/defer.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

afterEach(() => cleanup());

const VALUE = Buffer.alloc(3000, 'v');

/** A store on a temporary directory holding `k` = `value` (the same version on every store). */
async function store(name: string, value: Buffer, wall: number): Promise<Storage> {
  const storage = Storage.open({ path: tempDir(), nodeName: name });
  defer(() => storage.close());
  const version = { wall, logical: 0, node: 'n1' };
  await storage.apply(Buffer.from('k'), { version, tombstone: false, value });
  return storage;
}

/** Peers that never answer until the test ends. */
function silentPeers(): PeerCall {
  const released: (() => void)[] = [];
  defer(() => {
    for (const r of released) r();
  });
  return () =>
    new Promise<never>((_, reject) => released.push(() => reject(new Error('test over'))));
}

/** Every other member a real replica handler on its own store holding `k` as n1 does. */
async function answeringPeers(members: string[], value: Buffer, wall: number): Promise<PeerCall> {
  const handlers = new Map<string, ReturnType<typeof createReplicaHandler>>();
  for (const name of members.slice(1)) {
    const options = {
      storage: await store(name, value, wall),
      hello: () => ({}) as HelloReply,
      incarnation: `inc-${name}`,
      maxScanEntries: 100,
    };
    handlers.set(name, createReplicaHandler(options));
  }
  return async (name, method, body) => handlers.get(name)!(method, body);
}

/**
 * A node n1 serving a cluster of `members`, its peers never answering until the test ends, or
 * (`answering`) real replicas; `value` is what every store holds at `k`.
 */
async function node(members: string[], opts: { answering?: boolean; value?: Buffer } = {}) {
  const value = opts.value ?? VALUE;
  const wall = Date.now();
  const storage = await store('n1', value, wall);
  let lookups = 0;
  const withRaw = storage.withRaw.bind(storage);
  storage.withRaw = (key, use) => {
    lookups++;
    return withRaw(key, use);
  };
  const getRaw = storage.getRaw.bind(storage);
  storage.getRaw = (key) => {
    lookups++;
    return getRaw(key);
  };
  const peers = opts.answering ? await answeringPeers(members, value, wall) : silentPeers();
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
  return { socket, reserved, counts: () => ({ placed, sized }), lookups: () => lookups };
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

describe('a replicated GET (RF 3 of 3, both other owners answering)', () => {
  /** Sends `request` and resolves with the reply once `length` bytes are in. */
  async function ask(n: Awaited<ReturnType<typeof node>>, request: string, length: number) {
    const replies: Buffer[] = [];
    const onData = (c: Buffer) => replies.push(c);
    n.socket.on('data', onData);
    n.socket.write(request);
    await until(async () => Buffer.concat(replies).length >= length, 10_000, 'the reply');
    n.socket.off('data', onData);
    return Buffer.concat(replies).toString();
  }

  it("looks this node's copy of a small value up once: the reply budget's lookup is the read's", async () => {
    const n = await node(['n1', 'n2', 'n3'], { answering: true });
    const reply = await ask(n, '*2\r\n$3\r\nGET\r\n$1\r\nk\r\n', VALUE.length);
    expect(reply).toBe(`$${VALUE.length}\r\n${VALUE}\r\n`);
    expect(n.lookups()).toBe(1);
  });

  it('looks a large value up again for the read, not holding a copy while it waits', async () => {
    const big = Buffer.alloc(20 * 1024, 'b');
    const n = await node(['n1', 'n2', 'n3'], { answering: true, value: big });
    const reply = await ask(n, '*2\r\n$3\r\nGET\r\n$1\r\nk\r\n', big.length);
    expect(reply).toBe(`$${big.length}\r\n${big}\r\n`);
    expect(n.lookups()).toBe(2);
  });

  it('reads the write pipelined before it on its connection, not the copy counted before it ran', async () => {
    const n = await node(['n1', 'n2', 'n3'], { answering: true });
    const set = '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nnew\r\n';
    const get = '*2\r\n$3\r\nGET\r\n$1\r\nk\r\n';
    expect(await ask(n, set + get, '+OK\r\n$3\r\nnew\r\n'.length)).toBe('+OK\r\n$3\r\nnew\r\n');
  });
});
