// The operator's admin client against a real HTTP server: the cluster-secret proof it sends.

import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  cachedSecretReader,
  createNodeAdmin,
  type PodAddress,
} from '../../operator/controller/index.ts';
import {
  type AdminCheck,
  AdminGuard,
  adminChallenge,
  EMPTY_BODY_SHA256,
  legacyAdminAuthorization,
} from '../../src/auth/index.ts';
import { defer } from '../helpers/defer.ts';

/**
 * A node stand-in that records each request's headers and answers `status`; with `secret`, it
 * hands out nonces as a node does and records whether each call proved the secret.
 */
async function node(
  status = 200,
  secret?: string,
  predatesNonces = false,
  body: unknown = { ring: { moving: false }, members: [], status: 'active' },
) {
  const version = { predatesNonces };
  const guard = secret === undefined ? null : new AdminGuard(secret);
  const seen: {
    method: string;
    path: string;
    headers: IncomingHttpHeaders;
    auth: AdminCheck | null;
  }[] = [];
  const server = createServer((req, res) => {
    if (req.url === '/admin/nonce') {
      if (version.predatesNonces) res.writeHead(404).end('not found\n');
      else res.writeHead(200).end(JSON.stringify({ nonce: guard?.issue() ?? null }));
      return;
    }
    const auth = version.predatesNonces
      ? null
      : (guard?.check(req.method!, req.url!, req.headers.authorization) ?? null);
    seen.push({ method: req.method!, path: req.url!, headers: req.headers, auth });
    // A proof that does not hold is refused as a node does (a call without one is answered, to
    // see what the client sends without a secret).
    if (auth?.ok === false && req.headers.authorization !== undefined) {
      const challenge = adminChallenge(guard!.issue(), auth.stale);
      res.writeHead(401, { 'www-authenticate': challenge }).end('{}');
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  defer(() => new Promise((r) => server.close(r)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { seen, version, port: (server.address() as AddressInfo).port };
}

function address(port: number, secret: boolean): PodAddress {
  return {
    pod: 'kv-0',
    headless: 'kv-headless',
    namespace: 'ns',
    cluster: 'kv',
    httpPort: port,
    clusterDomain: 'cluster.local',
    clusterSecret: secret ? { name: 'kv-secret', key: 'cluster-secret' } : null,
  };
}

describe('node admin client', () => {
  it('proves the cluster secret on every call when the KVCluster names one', async () => {
    const n = await node(200, 'sekret\n');
    const reads: string[] = [];
    const admin = createNodeAdmin('http://127.0.0.1:{httpPort}', 2000, async (ns, ref) => {
      reads.push(`${ns}/${ref.name}/${ref.key}`);
      return 'sekret\n';
    });
    await admin.cluster(address(n.port, true));
    await admin.decommission(address(n.port, true));
    expect(reads).toEqual(['ns/kv-secret/cluster-secret', 'ns/kv-secret/cluster-secret']);
    const [get, post] = n.seen;
    expect(get).toMatchObject({ method: 'GET', path: '/admin/cluster', auth: { ok: true } });
    expect(post).toMatchObject({ method: 'POST', path: '/admin/decommission', auth: { ok: true } });
    // One nonce, two counters.
    expect(get!.headers.authorization).toMatch(/ nonce=([^,]+),nc=1,/);
    const nonce = / nonce=([^,]+),/.exec(get!.headers.authorization!)![1];
    expect(post!.headers.authorization).toContain(` nonce=${nonce},nc=2,`);
    // Without a secret in the spec: no header, no Secret read.
    await admin.cluster(address(n.port, false));
    expect(n.seen[2]!.headers.authorization).toBeUndefined();
    expect(reads).toHaveLength(2);
  });

  it("keeps what a node and its members refuse (the rollout's gate reads it), and takes a node that says nothing of it", async () => {
    const refusing = { commands: 'writes', reason: 'clock: stepped', ready: true };
    const members = [
      { name: 'kv-0', state: 'up', storageNotWritable: true, address: 'a:1' },
      { name: 'kv-1', state: 'up', clockRefusing: true, storageStalled: false },
    ];
    const body = { status: 'active', ring: { moving: false }, members, refusing };
    const n = await node(200, undefined, false, { ...body, notWritable: 'disk full' });
    const admin = createNodeAdmin('http://127.0.0.1:{httpPort}', 2000, async () => '');
    // Before, the client's schema dropped all of this: the gate saw a healthy node.
    expect(await admin.cluster(address(n.port, false))).toEqual({
      status: 'active',
      ring: { moving: false },
      refusing,
      notWritable: 'disk full',
      members: [
        { name: 'kv-0', state: 'up', storageNotWritable: true },
        { name: 'kv-1', state: 'up', clockRefusing: true, storageStalled: false },
      ],
    });
    // A node of an older version: none of these fields, and no failure.
    const older = await node(200, undefined, false, {
      status: 'active',
      ring: { moving: false },
      members: [{ name: 'kv-0', state: 'up' }],
    });
    expect(await admin.cluster(address(older.port, false))).toEqual({
      status: 'active',
      ring: { moving: false },
      members: [{ name: 'kv-0', state: 'up' }],
    });
  });

  it('recommission: POST /admin/recommission, proved; a 409 is a refusal with the reason', async () => {
    const n = await node(200, 'sekret');
    const admin = createNodeAdmin('http://127.0.0.1:{httpPort}', 2000, async () => 'sekret');
    expect(await admin.recommission(address(n.port, true))).toEqual({ accepted: true });
    const [post] = n.seen;
    expect(post).toMatchObject({ method: 'POST', path: '/admin/recommission', auth: { ok: true } });
    const refusing = await node(409);
    expect(await admin.recommission(address(refusing.port, false))).toEqual({
      accepted: false,
      error: 'refused',
    });
  });

  it('proves the secret as a node that predates nonces wants it (a rolling upgrade)', async () => {
    const n = await node(200, 'sekret', true);
    const admin = createNodeAdmin('http://127.0.0.1:{httpPort}', 2000, async () => 'sekret');
    await admin.cluster(address(n.port, true));
    const header = n.seen[0]!.headers.authorization!;
    const t = Number(/^KVSTORE-HMAC t=(\d+),mac=[0-9a-f]{64}$/.exec(header)?.[1]);
    expect(header).toBe(legacyAdminAuthorization('sekret', 'GET', '/admin/cluster', t));
    // No node of this version takes it: once the pod runs one, the client takes the nonce its
    // 401 offers, and the call succeeds.
    n.version.predatesNonces = false;
    await admin.cluster(address(n.port, true));
    expect(n.seen.slice(1).map((r) => r.auth)).toEqual([
      { ok: false, stale: false },
      { ok: true, bodySha256: EMPTY_BODY_SHA256 },
    ]);
  });

  it('says the cluster secret differs when the node answers 401', async () => {
    const n = await node(401);
    const admin = createNodeAdmin('http://127.0.0.1:{httpPort}', 2000, async () => 'old');
    await expect(admin.cluster(address(n.port, true))).rejects.toThrow(
      /401: the cluster secret differs/,
    );
  });
});

describe('cachedSecretReader', () => {
  it('reads a Secret key once per ttl, as stored, and names a missing key', async () => {
    let calls = 0;
    const core = {
      readNamespacedSecret: async ({ name, namespace }: { name: string; namespace: string }) => {
        calls++;
        return { data: { key: Buffer.from(`${namespace}/${name}\n`).toString('base64') } };
      },
    } as unknown as Parameters<typeof cachedSecretReader>[0];
    const read = cachedSecretReader(core, 60_000);
    expect(await read('ns', { name: 's', key: 'key' })).toBe('ns/s\n');
    expect(await read('ns', { name: 's', key: 'key' })).toBe('ns/s\n');
    expect(calls).toBe(1);
    await expect(read('ns', { name: 's', key: 'other' })).rejects.toThrow(
      'Secret ns/s has no key other',
    );
    const fresh = cachedSecretReader(core, 0);
    await fresh('ns', { name: 's', key: 'key' });
    await fresh('ns', { name: 's', key: 'key' });
    expect(calls).toBe(4);
  });
});
