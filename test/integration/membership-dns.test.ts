// The DNS peer source against a real UDP DNS server whose records change between resolve() calls.

import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { type DnsSourceOptions, dnsSource } from '../../src/membership/dns-source.ts';
import type { MemberAddress } from '../../src/membership/sources.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';

const ZONE = 'kvstore-headless.default.svc.cluster.local';
let server: TestDnsServer;

beforeAll(async () => {
  server = await startDnsServer();
});
afterAll(async () => {
  await server?.close();
});

function source(name: string, extra: Partial<DnsSourceOptions> = {}) {
  return dnsSource({
    name,
    defaultPeerPort: 7946,
    servers: [`127.0.0.1:${server.port}`],
    timeoutMs: 2000,
    ...extra,
  });
}

const member = (name: string, host: string, peerPort = 7946): MemberAddress => ({
  name,
  host,
  peerPort,
});
const pod = (i: number, zone = ZONE) => ({ target: `kvstore-${i}.${zone}`, port: 7946 });

/** The rejection of a promise, which must be a KvError. */
async function rejection(p: Promise<unknown>): Promise<KvError> {
  const err = await p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KvError);
  return err as KvError;
}

describe('dnsSource with SRV records', () => {
  it('names members by the first label of each target', async () => {
    server.setSrv(ZONE, [pod(2), pod(0), pod(1)]);
    server.setA(`kvstore-0.${ZONE}`, ['127.0.0.10']);
    expect(await source(ZONE).resolve()).toEqual([
      member('kvstore-0', `kvstore-0.${ZONE}`),
      member('kvstore-1', `kvstore-1.${ZONE}`),
      member('kvstore-2', `kvstore-2.${ZONE}`),
    ]);
    server.clear(ZONE);
  });

  it('queries the given name itself, and a _service name gets no A fallback', async () => {
    const name = `_peer._tcp.${ZONE}`;
    server.setSrv(name, [{ target: `kvstore-0.${ZONE}`, port: 7000 }]);
    expect(await source(name).resolve()).toEqual([member('kvstore-0', `kvstore-0.${ZONE}`, 7000)]);
    server.clear(name);
    server.setA(name, ['127.0.0.10']);
    const before = server.queries.length;
    expect(await source(name).resolve()).toEqual([]);
    expect(server.queries.slice(before)).toEqual([{ name, type: 'SRV' }]);
    server.clear(name);
  });

  it('keeps the record with the peer port when a target has several ports', async () => {
    server.setSrv(ZONE, [
      { target: `kvstore-0.${ZONE}`, port: 8081 },
      { target: `kvstore-0.${ZONE}`, port: 7946 },
      { target: `kvstore-0.${ZONE}`, port: 9090 },
    ]);
    expect(await source(ZONE).resolve()).toEqual([member('kvstore-0', `kvstore-0.${ZONE}`)]);
    server.clear(ZONE);
  });

  it('follows records that change between two resolve() calls', async () => {
    const s = source(ZONE);
    server.setSrv(ZONE, [pod(0), pod(1), pod(2)]);
    expect((await s.resolve()).map((m) => m.name)).toEqual(['kvstore-0', 'kvstore-1', 'kvstore-2']);
    server.setSrv(ZONE, [pod(0), pod(2), pod(3)]);
    expect((await s.resolve()).map((m) => m.name)).toEqual(['kvstore-0', 'kvstore-2', 'kvstore-3']);
    server.clear(ZONE);
    expect(await s.resolve()).toEqual([]);
  });
});

describe('dnsSource with A records', () => {
  const name = 'kvstore.compose.test';

  it('names addresses by PTR, preferring PTR names under the queried name', async () => {
    server.setA(name, ['127.0.0.12', '127.0.0.11']);
    server.setPtr('127.0.0.11', ['aaa.other.test', `kvstore-0.${name}`, 'zzz.other.test']);
    server.setPtr('127.0.0.12', 'kvstore-1.other.test.');
    const before = server.queries.length;
    expect(await source(name).resolve()).toEqual([
      member('kvstore-0', '127.0.0.11'),
      member('kvstore-1', '127.0.0.12'),
    ]);
    const asked = server.queries.slice(before).map((q) => `${q.type} ${q.name}`);
    expect(asked.slice(0, 1)).toEqual([`SRV ${name}`]);
    expect(asked).toContain('PTR 11.0.0.127.in-addr.arpa');
    server.clear('127.0.0.11');
    server.clear('127.0.0.12');
    server.clear(name);
  });

  it('asks identify for addresses without PTR, and skips those it cannot name', async () => {
    server.setA(name, ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24', '::1']);
    server.setPtr('127.0.0.21', `kvstore-0.${name}`);
    const asked: string[] = [];
    const names: Record<string, string | null> = {
      '127.0.0.22': 'kvstore-1',
      '127.0.0.23': null,
      '::1': 'kvstore-6',
    };
    const identify = async (host: string, port: number) => {
      asked.push(`${host}:${port}`);
      if (host === '127.0.0.24') throw new Error('connection refused');
      return names[host] ?? null;
    };
    const s = source(name, { identify });
    expect(await s.resolve()).toEqual([
      member('kvstore-0', '127.0.0.21'),
      member('kvstore-1', '127.0.0.22'),
      member('kvstore-6', '::1'),
    ]);
    // The two it skipped are counted: a node with no ring founds none without them.
    expect(s.unnamed?.()).toBe(2);
    expect(asked.sort()).toEqual([
      '127.0.0.22:7946',
      '127.0.0.23:7946',
      '127.0.0.24:7946',
      '::1:7946',
    ]);
    expect(await source(name).resolve()).toEqual([member('kvstore-0', '127.0.0.21')]);
    server.clear('127.0.0.21');
    server.clear(name);
  });

  it('follows addresses that change between two resolve() calls', async () => {
    const s = source(name, { identify: async (host) => `node-${host.split('.')[3]}` });
    server.setA(name, ['127.0.0.31', '127.0.0.32']);
    expect((await s.resolve()).map((m) => m.name)).toEqual(['node-31', 'node-32']);
    server.setA(name, ['127.0.0.32', '127.0.0.33']);
    expect((await s.resolve()).map((m) => m.name)).toEqual(['node-32', 'node-33']);
    server.clear(name);
  });

  it('keeps the name of a listed address that stops answering identify, until it is unlisted', async () => {
    // A paused or partitioned member is still listed: it must stay a member (down), not leave.
    const answering = new Set(['127.0.0.61', '127.0.0.62']);
    const identify = async (host: string) =>
      answering.has(host) ? `node-${host.split('.')[3]}` : null;
    const s = source(name, { identify });
    server.setA(name, ['127.0.0.61', '127.0.0.62']);
    expect((await s.resolve()).map((m) => m.name)).toEqual(['node-61', 'node-62']);
    answering.delete('127.0.0.62');
    expect((await s.resolve()).map((m) => m.name)).toEqual(['node-61', 'node-62']);
    server.setA(name, ['127.0.0.61']);
    expect((await s.resolve()).map((m) => m.name)).toEqual(['node-61']);
    // Listed again but never named since it was unlisted: skipped until it answers.
    server.setA(name, ['127.0.0.61', '127.0.0.62']);
    expect((await s.resolve()).map((m) => m.name)).toEqual(['node-61']);
    expect(s.unnamed?.()).toBe(1);
    answering.add('127.0.0.62');
    expect((await s.resolve()).map((m) => m.name)).toEqual(['node-61', 'node-62']);
    expect(s.unnamed?.()).toBe(0);
    server.clear(name);
  });

  it('names a listed address from the saved names after a restart, and saves what it learns', async () => {
    // A node restarted while a peer is down: identify fails, only the saved name names it.
    const saved: Map<string, string>[] = [];
    const names = {
      load: () => new Map([['127.0.0.72', 'node-72']]),
      save: (m: ReadonlyMap<string, string>) => saved.push(new Map(m)),
    };
    const answering = new Set(['127.0.0.71']);
    const identify = async (host: string) =>
      answering.has(host) ? `node-${host.split('.')[3]}` : null;
    server.setA(name, ['127.0.0.71', '127.0.0.72', '127.0.0.73']);
    const s = source(name, { identify, names });
    expect((await s.resolve()).map((m) => m.name)).toEqual(['node-71', 'node-72']);
    expect(saved.at(-1)).toEqual(
      new Map([
        ['127.0.0.72', 'node-72'],
        ['127.0.0.71', 'node-71'],
      ]),
    );
    // Nothing new: nothing saved. Unlisted: forgotten, and saved so.
    const count = saved.length;
    await s.resolve();
    expect(saved.length).toBe(count);
    server.setA(name, ['127.0.0.71']);
    expect((await s.resolve()).map((m) => m.name)).toEqual(['node-71']);
    expect(saved.at(-1)).toEqual(new Map([['127.0.0.71', 'node-71']]));
    server.clear(name);
  });

  it('drops a saved name that a listed address was just given by its owner', async () => {
    // node-82 moved from .81 (now silent) to .82: the remembered .81 is not a second node-82.
    const names = { load: () => new Map([['127.0.0.81', 'node-82']]), save: () => {} };
    const identify = async (host: string) => (host === '127.0.0.82' ? 'node-82' : null);
    server.setA(name, ['127.0.0.81', '127.0.0.82']);
    expect(await source(name, { identify, names }).resolve()).toEqual([
      member('node-82', '127.0.0.82'),
    ]);
    server.clear(name);
  });

  it('treats a failing PTR query as no PTR', async () => {
    server.setA(name, ['127.0.0.41']);
    server.fail('127.0.0.41', 'SERVFAIL');
    const s = source(name, { identify: async () => 'kvstore-4' });
    expect(await s.resolve()).toEqual([member('kvstore-4', '127.0.0.41')]);
    server.clear('127.0.0.41');
    server.clear(name);
  });
});

describe('dnsSource failures', () => {
  it('resolves [] for NXDOMAIN and for a name without records', async () => {
    expect(await source('missing.test').resolve()).toEqual([]);
    server.setPtr('127.0.0.51', 'only-a-ptr.test');
    expect(await source('51.0.0.127.in-addr.arpa').resolve()).toEqual([]);
    server.clear('127.0.0.51');
  });

  it('rejects on SERVFAIL of the SRV query and of the A query', async () => {
    server.fail(ZONE, 'SERVFAIL');
    const err = await rejection(source(ZONE).resolve());
    // A failure outside the node, not an internal error (KV_ERR_INTERNAL buried real ones in logs).
    expect(err.code).toBe('KV_ERR_DISCOVERY');
    expect(err.message).toBe(`membership: dns:${ZONE}: SRV query for ${ZONE} failed (ESERVFAIL)`);
    expect((err.cause as { code?: string }).code).toBe('ESERVFAIL');
    server.clear(ZONE);
    server.fail('a-fails.test', 'REFUSED', 'A');
    const refused = await rejection(source('a-fails.test').resolve());
    expect(refused.code).toBe('KV_ERR_DISCOVERY');
    expect(refused.message).toBe(
      'membership: dns:a-fails.test: A query for a-fails.test failed (EREFUSED)',
    );
    server.clear('a-fails.test');
  });

  it('rejects within the timeout when the server does not answer', async () => {
    server.fail(ZONE, 'drop');
    // The timeout given is what ends it (not the 5 s default, not a hang): a source given 600 ms
    // gives up before one given four times as long and asked first. An order, not a wall time,
    // which the machine's load would stretch: with the option ignored, both would take the
    // default and the one asked first would end first.
    const ended: number[] = [];
    const ask = (timeoutMs: number) =>
      rejection(source(ZONE, { timeoutMs }).resolve()).then((err) => {
        ended.push(timeoutMs);
        return err;
      });
    const [, err] = await Promise.all([ask(2400), ask(600)]);
    expect(ended).toEqual([600, 2400]);
    expect(err.code).toBe('KV_ERR_DISCOVERY');
    expect(err.message).toContain(`SRV query for ${ZONE} failed (ETIMEOUT)`);
    server.clear(ZONE);
  });

  it('rejects within the timeout when the server port is closed', async () => {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const port = socket.address().port;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
    const started = Date.now();
    const s = source(ZONE, { servers: [`127.0.0.1:${port}`], timeoutMs: 600 });
    const err = await rejection(s.resolve());
    // Bounded well below the 5 s default: the 600 ms given is what ends it, not a hang.
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err.code).toBe('KV_ERR_DISCOVERY');
    expect(err.message).toMatch(/SRV query for .* failed \((ECONNREFUSED|ETIMEOUT)\)$/);
  });
});
