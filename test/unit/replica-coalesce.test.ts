// Single-entry applies to one member made in the same turn go out as one request, succeed or
// fail together, and stay within bounds; so do the gets of one turn (getMany), with a fallback
// to single gets for a member from before getMany. The peer is a real replica handler on a real
// store, reached through an in-process PeerCall (the socket path is covered by the cluster
// tests).

import { afterEach, describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { copyTimeoutMs } from '../../src/rebalance/index.ts';
import {
  type ApplyRequest,
  createReplicaHandler,
  type HelloReply,
  METHODS,
  Replicas,
  type WireEntry,
} from '../../src/replica/index.ts';
import { encodeRecord, Storage } from '../../src/storage/index.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const b = (s: string) => Buffer.from(s);
const opened: Storage[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await cleanup();
});

/** This node's store, the peer's, and the peer's replica handler (incarnation peer-1). */
function stores() {
  const local = Storage.open({ path: tempDir(), nodeName: 'me' });
  const peer = Storage.open({ path: tempDir(), nodeName: 'peer' });
  opened.push(local, peer);
  const handler = createReplicaHandler({
    storage: peer,
    hello: () => ({}) as HelloReply,
    incarnation: 'peer-1',
    maxScanEntries: 100,
  });
  return { local, peer, handler };
}

function setup(fail: KvError | null = null) {
  const { local, peer, handler } = stores();
  const requests: { method: string; entries: number; p?: string }[] = [];
  const replicas = new Replicas('me', local, async (_name, method, body) => {
    const { e, p } = body as ApplyRequest;
    requests.push(
      p === undefined ? { method, entries: e.length } : { method, entries: e.length, p },
    );
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

  it("keeps applies placed under other rings out of each other's request, each with its rings", async () => {
    const { replicas, requests, entry } = setup();
    await Promise.all([
      replicas.apply('peer', [entry()], undefined, { rings: 'r1' }),
      replicas.apply('peer', [entry()], undefined, { rings: 'r1' }),
      // The rings changed within the turn: what was placed under r1 goes at once.
      replicas.apply('peer', [entry()], undefined, { rings: 'r2' }),
      replicas.apply('peer', [entry()]),
      replicas.apply('peer', [entry(), entry()], undefined, { rings: 'r2' }),
    ]);
    expect(requests).toEqual([
      { method: 'apply', entries: 2, p: 'r1' },
      { method: 'apply', entries: 1, p: 'r2' },
      { method: 'apply', entries: 2, p: 'r2' },
      { method: 'apply', entries: 1 },
    ]);
  });

  it('sends a write passed on with the deadline its coordinator set, on its own', async () => {
    const { local } = stores();
    const bodies: ApplyRequest[] = [];
    const timeoutMs = 2000;
    const replicas = new Replicas(
      'me',
      local,
      async (_name, _method, body) => {
        bodies.push(body as ApplyRequest);
        return { n: 1 };
      },
      undefined,
      undefined,
      timeoutMs,
    );
    const raw = encodeRecord({ version: local.clock.now(), tombstone: false, value: b('v') });
    const deadline = Date.now() + 50;
    await Promise.all([
      replicas.apply('peer', [[b('mine'), raw]]),
      replicas.apply('peer', [[b('passed-on'), raw]], undefined, { deadline }),
    ]);
    const byKey = new Map(bodies.map((x) => [x.e.map(([k]) => k.toString()).join(), x.d]));
    expect([...byKey.keys()].sort()).toEqual(['mine', 'passed-on']);
    expect(byKey.get('passed-on')).toBe(deadline);
    expect(byKey.get('mine')).toBeGreaterThan(deadline + timeoutMs / 2);
  });

  // A copy of a client write had the peer timeout (2 s) however large: a 4 MiB copy that took
  // longer (over 8 Mbit/s, on a loaded machine) failed the write whenever the write needed it.
  it('gives an apply the peer timeout plus time for its bytes, short of the tombstone grace', async () => {
    const { local } = stores();
    const sent: { bytes: number; window: number; timeoutMs: number | undefined }[] = [];
    const grace = { ms: 3_600_000 };
    const replicas = new Replicas(
      'me',
      local,
      async (_name, _method, body, opts) => {
        const { e, d } = body as ApplyRequest;
        const bytes = e.reduce((n, [k, raw]) => n + k.length + raw.length, 0);
        sent.push({ bytes, window: d! - Date.now(), timeoutMs: opts?.timeoutMs });
        return { n: e.length };
      },
      undefined,
      undefined,
      (bytes) => copyTimeoutMs(2000, grace.ms - 500, bytes),
    );
    const raw = (n: number) =>
      encodeRecord({ version: local.clock.now(), tombstone: false, value: Buffer.alloc(n) });
    await replicas.apply('peer', [[b('small'), raw(100)]]);
    await replicas.apply('peer', [[b('big'), raw(4 * 1024 * 1024)]]);
    // Under a tombstone grace of 2.6 s (the tests' FAST_GC), no copy may land 2.1 s after it went.
    grace.ms = 2600;
    await replicas.apply('peer', [[b('big'), raw(4 * 1024 * 1024)]]);
    const [small, big, capped] = sent;
    // 2 s plus the bytes at 512 KiB/s: 2001 ms for a small value, about 10 s for 4 MiB.
    expect(small!.timeoutMs).toBe(2000 + Math.ceil((small!.bytes * 1000) / (512 * 1024)));
    expect(big!.timeoutMs).toBe(2000 + Math.ceil((big!.bytes * 1000) / (512 * 1024)));
    expect(big!.timeoutMs).toBeGreaterThan(10_000);
    expect(capped!.timeoutMs).toBe(2099);
    // The deadline the replica judges it by is the same window.
    for (const s of sent) {
      expect(s.window).toBeLessThanOrEqual(s.timeoutMs!);
      expect(s.window).toBeGreaterThan(s.timeoutMs! - 1000);
    }
  });

  it('applies to this node at once, in its own store', async () => {
    const { local, replicas, requests, entry } = setup();
    const e = entry();
    await replicas.apply('me', [e]);
    expect(requests).toEqual([]);
    expect(local.getRaw(e[0])?.equals(e[1])).toBe(true);
  });
});

/**
 * A replica that records what it is asked. `older` makes it a member from before `getMany`: it
 * answers that method as such a member's handler does (KV_ERR_UNKNOWN_COMMAND), so the fallback
 * is shown without running an older build.
 */
function getSetup(
  opts: { older?: boolean; reply?: (body: unknown) => unknown; throws?: Error } = {},
) {
  const { local, peer, handler } = stores();
  const requests: { method: string; keys: number }[] = [];
  const replicas = new Replicas(
    'me',
    local,
    (_name, method, body) => {
      if (opts.throws) throw opts.throws;
      return answer(method, body);
    },
    () => ({ i: 'peer-1' }),
  );
  async function answer(method: string, body: unknown) {
    const b = body as { k?: Buffer; ks?: Buffer[] };
    requests.push({ method, keys: b.ks?.length ?? 1 });
    if (opts.older && method === METHODS.getMany) {
      throw new KvError('KV_ERR_UNKNOWN_COMMAND', `replica: unknown peer method '${method}'`);
    }
    return opts.reply ? opts.reply(body) : handler(method, body);
  }
  const put = async (k: string, value: Buffer | null, wall?: number) => {
    const version = wall === undefined ? peer.clock.now() : { wall, logical: 0, node: 'peer' };
    const record = { version, tombstone: value === null, value: value ?? Buffer.alloc(0) };
    await peer.apply(Buffer.from(k), record);
    return encodeRecord(record);
  };
  return { peer, replicas, requests, put };
}

describe('Replicas.get from another member', () => {
  it('asks for the gets of one turn in one getMany; each caller gets its own record', async () => {
    const { replicas, requests, put } = getSetup();
    const a = await put('a', Buffer.from('one'));
    const gone = await put('gone', null);
    const got = await Promise.all(['a', 'missing', 'gone'].map((k) => replicas.get('peer', b(k))));
    expect(requests).toEqual([{ method: 'getMany', keys: 3 }]);
    expect(got[0]!.equals(a)).toBe(true);
    expect(got[1]).toBeNull();
    expect(got[2]!.equals(gone)).toBe(true);
    // One get in a turn is a plain get, as any member version understands.
    expect((await replicas.get('peer', b('a')))!.equals(a)).toBe(true);
    expect(requests.at(-1)).toEqual({ method: 'get', keys: 1 });
  });

  it('falls back to single gets on a member that does not know getMany, and keeps to them', async () => {
    const { replicas, requests, put } = getSetup({ older: true });
    const a = await put('a', Buffer.from('one'));
    const got = await Promise.all(['a', 'b', 'a'].map((k) => replicas.get('peer', b(k))));
    expect(got.map((r) => r?.equals(a) ?? null)).toEqual([true, null, true]);
    expect(requests.map((r) => r.method)).toEqual(['getMany', 'get', 'get', 'get']);
    await Promise.all(['a', 'b'].map((k) => replicas.get('peer', b(k))));
    expect(requests.slice(4).map((r) => r.method)).toEqual(['get', 'get']);
  });

  it('asks again for what a reply left out (a reply stops past 4 MiB of records)', async () => {
    const { replicas, requests, put } = getSetup();
    const big = Buffer.alloc(1024 * 1024, 1);
    const raws = await Promise.all(Array.from({ length: 6 }, (_, i) => put(`big${i}`, big)));
    const got = await Promise.all(raws.map((_, i) => replicas.get('peer', b(`big${i}`))));
    for (let i = 0; i < 6; i++) expect(got[i]!.equals(raws[i]!)).toBe(true);
    // Four records reach 4 MiB; the other two are asked for again, together.
    expect(requests).toEqual([
      { method: 'getMany', keys: 6 },
      { method: 'getMany', keys: 2 },
    ]);
  });

  it('keeps a request to 256 keys', async () => {
    const { replicas, requests } = getSetup();
    const got = await Promise.all(
      Array.from({ length: 300 }, (_, i) => replicas.get('peer', b(`k${i}`))),
    );
    expect(got.every((r) => r === null)).toBe(true);
    expect(requests.map((r) => r.keys)).toEqual([256, 44]);
  });

  it('refuses only the record whose version is too far ahead; a bad reply fails every caller', async () => {
    const { replicas, put } = getSetup();
    const ok = await put('ok', Buffer.from('fine'));
    await put('ahead', Buffer.from('from the future'), Date.now() + 3_600_000);
    const [first, second] = await Promise.allSettled([
      replicas.get('peer', b('ok')),
      replicas.get('peer', b('ahead')),
    ]);
    expect(first).toEqual({ status: 'fulfilled', value: ok });
    expect(second).toMatchObject({ status: 'rejected', reason: { code: 'KV_ERR_CLOCK_OFFSET' } });

    const bad = getSetup({ reply: () => ({ rs: [null, null, null] }) });
    const outcomes = await Promise.allSettled(
      ['x', 'y'].map((k) => bad.replicas.get('peer', b(k))),
    );
    for (const o of outcomes) {
      expect(o).toMatchObject({ status: 'rejected', reason: { code: 'KV_ERR_PEER_PROTOCOL' } });
    }
  });

  it('turns a call that throws at once into a rejection for each caller', async () => {
    const { replicas } = getSetup({ throws: new KvError('KV_ERR_INTERNAL', 'boom') });
    for (const n of [1, 3]) {
      const outcomes = await Promise.allSettled(
        Array.from({ length: n }, (_, i) => replicas.get('peer', b(`k${i}`))),
      );
      for (const o of outcomes)
        expect(o).toMatchObject({ status: 'rejected', reason: { message: 'boom' } });
    }
  });

  it('serves getMany as a replica: checks the body and the incarnation', async () => {
    const { handler } = stores();
    for (const body of [{}, { ks: [] }, { ks: 'a' }, { ks: Array(257).fill(b('k')) }]) {
      await expect(handler(METHODS.getMany, body)).rejects.toMatchObject({
        code: 'KV_ERR_INVALID_ARGUMENT',
      });
    }
    await expect(handler(METHODS.getMany, { ks: [b('')] })).rejects.toMatchObject({
      code: 'KV_ERR_INVALID_KEY',
    });
    await expect(handler(METHODS.getMany, { ks: [b('a')], i: 'other' })).rejects.toMatchObject({
      code: 'KV_ERR_WRONG_INCARNATION',
    });
  });
});

describe('a replica handed writes placed under other rings', () => {
  function rerouting(rings: string | undefined) {
    const { local, peer } = stores();
    const passedOn: string[] = [];
    const handler = createReplicaHandler({
      storage: peer,
      hello: () => ({}) as HelloReply,
      incarnation: 'peer-1',
      maxScanEntries: 100,
      reroute: {
        rings: () => rings,
        write: async (entries, deadline) => {
          for (const e of entries) passedOn.push(`${e.key} by ${deadline}`);
        },
      },
    });
    const apply = (key: string, p?: string, d?: number) => {
      const raw = encodeRecord({ version: local.clock.now(), tombstone: false, value: b('v') });
      const body: ApplyRequest = {
        e: [[b(key), raw]],
        ...(p === undefined ? {} : { p }),
        ...(d === undefined ? {} : { d }),
      };
      return handler(METHODS.apply, body) as Promise<{ n: number }>;
    };
    return { peer, passedOn, apply };
  }

  it('stores a write placed under its own rings, or under none (hint, repair, stream)', async () => {
    const { peer, passedOn, apply } = rerouting('s:t');
    expect(await apply('same', 's:t')).toEqual({ n: 1 });
    expect(await apply('none')).toEqual({ n: 1 });
    expect(passedOn).toEqual([]);
    expect(peer.get(b('same'))).toBeDefined();
    expect(peer.get(b('none'))).toBeDefined();
  });

  it('passes a write placed under other rings to its owners here instead of only storing it', async () => {
    const { peer, passedOn, apply } = rerouting('s:t');
    const d = Date.now() + 2000;
    expect(await apply('moved', 's:s', d)).toEqual({ n: 1 });
    expect(await apply('old-sender', 's:s')).toEqual({ n: 1 });
    // The copies carry the request's deadline: they land no later than the write could have.
    expect(passedOn).toEqual([`moved by ${d}`, 'old-sender by undefined']);
    // Stored only by the reroute, and only if this node is an owner under its own rings.
    expect(peer.get(b('moved'))).toBeUndefined();
  });

  it('stores it as it is while it has no rings yet (starting up)', async () => {
    const { peer, passedOn, apply } = rerouting(undefined);
    expect(await apply('early', 's:s')).toEqual({ n: 1 });
    expect(passedOn).toEqual([]);
    expect(peer.get(b('early'))).toBeDefined();
  });
});
