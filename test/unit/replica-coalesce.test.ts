// Single-entry applies to one member made in the same turn go out as one request, succeed or
// fail together, and stay within bounds. The peer is a real replica handler on a real store,
// reached through an in-process PeerCall (the socket path is covered by the cluster tests).

import { afterEach, describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import {
  type ApplyRequest,
  createReplicaHandler,
  type HelloReply,
  Replicas,
  type WireEntry,
} from '../../src/replica/index.ts';
import { encodeRecord, Storage } from '../../src/storage/index.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const opened: Storage[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await cleanup();
});

function setup(fail: KvError | null = null) {
  const local = Storage.open({ path: tempDir(), nodeName: 'me' });
  const peer = Storage.open({ path: tempDir(), nodeName: 'peer' });
  opened.push(local, peer);
  const handler = createReplicaHandler({
    storage: peer,
    hello: () => ({}) as HelloReply,
    incarnation: 'peer-1',
    maxScanEntries: 100,
  });
  const requests: { method: string; entries: number }[] = [];
  const replicas = new Replicas('me', local, async (_name, method, body) => {
    requests.push({ method, entries: (body as ApplyRequest).e.length });
    if (fail) throw fail;
    return handler(method, body);
  });
  let n = 0;
  const entry = (valueBytes = 10): WireEntry => {
    const record = {
      version: local.clock.now(),
      tombstone: false,
      value: Buffer.alloc(valueBytes),
    };
    return [Buffer.from(`k${n++}`), encodeRecord(record)];
  };
  return { local, peer, replicas, requests, entry };
}

describe('Replicas.apply to another member', () => {
  it('sends the single-entry applies of one turn as one request, each durable there', async () => {
    const { peer, replicas, requests, entry } = setup();
    await Promise.all(Array.from({ length: 5 }, () => replicas.apply('peer', [entry()])));
    expect(requests).toEqual([{ method: 'apply', entries: 5 }]);
    for (let i = 0; i < 5; i++) expect(peer.get(Buffer.from(`k${i}`))).toBeDefined();
    // A later turn is a request of its own.
    await replicas.apply('peer', [entry()]);
    expect(requests).toHaveLength(2);
  });

  it('rejects every apply of the request when it fails', async () => {
    const { replicas, entry } = setup(new KvError('KV_ERR_UNAVAILABLE', 'peer: down'));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 3 }, () => replicas.apply('peer', [entry()])),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const o of outcomes) {
      expect((o as PromiseRejectedResult).reason).toMatchObject({ code: 'KV_ERR_UNAVAILABLE' });
    }
  });

  it('keeps a request to 256 entries, and sends batches and large entries on their own', async () => {
    const { replicas, requests, entry } = setup();
    const calls = Array.from({ length: 300 }, () => replicas.apply('peer', [entry()]));
    calls.push(replicas.apply('peer', [entry(), entry()]));
    calls.push(replicas.apply('peer', [entry(64 * 1024)]));
    await Promise.all(calls);
    expect(requests.map((r) => r.entries).sort((a, b) => a - b)).toEqual([1, 2, 44, 256]);
  });

  it('applies to this node at once, in its own store', async () => {
    const { local, replicas, requests, entry } = setup();
    const e = entry();
    await replicas.apply('me', [e]);
    expect(requests).toEqual([]);
    expect(local.getRaw(e[0])?.equals(e[1])).toBe(true);
  });
});
