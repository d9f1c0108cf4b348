// The operator's admin client against a real HTTP server: the cluster-secret proof it sends.

import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  cachedSecretReader,
  createNodeAdmin,
  type PodAddress,
} from '../../operator/controller/index.ts';
import { checkAdminAuthorization } from '../../src/auth/index.ts';
import { defer } from '../helpers/defer.ts';

/** A node stand-in that records each request's headers and answers `status`. */
async function node(status = 200) {
  const seen: { method: string; path: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method!, path: req.url!, headers: req.headers });
    res
      .writeHead(status, { 'content-type': 'application/json' })
      .end(JSON.stringify({ ring: { moving: false }, members: [], status: 'active' }));
  });
  defer(() => new Promise((r) => server.close(r)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { seen, port: (server.address() as AddressInfo).port };
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
    const n = await node();
    const reads: string[] = [];
    const admin = createNodeAdmin('http://127.0.0.1:{httpPort}', 2000, async (ns, ref) => {
      reads.push(`${ns}/${ref.name}/${ref.key}`);
      return 'sekret\n';
    });
    await admin.cluster(address(n.port, true));
    await admin.decommission(address(n.port, true));
    expect(reads).toEqual(['ns/kv-secret/cluster-secret', 'ns/kv-secret/cluster-secret']);
    const [get, post] = n.seen;
    expect(
      checkAdminAuthorization('sekret\n', get!.headers.authorization, 'GET', '/admin/cluster'),
    ).toBe(true);
    expect(
      checkAdminAuthorization(
        'sekret\n',
        post!.headers.authorization,
        'POST',
        '/admin/decommission',
      ),
    ).toBe(true);
    // Without a secret in the spec: no header, no Secret read.
    await admin.cluster(address(n.port, false));
    expect(n.seen[2]!.headers.authorization).toBeUndefined();
    expect(reads).toHaveLength(2);
  });

  it('recommission: POST /admin/recommission, proved; a 409 is a refusal with the reason', async () => {
    const n = await node();
    const admin = createNodeAdmin('http://127.0.0.1:{httpPort}', 2000, async () => 'sekret');
    expect(await admin.recommission(address(n.port, true))).toEqual({ accepted: true });
    const [post] = n.seen;
    expect(post).toMatchObject({ method: 'POST', path: '/admin/recommission' });
    const proof = post!.headers.authorization;
    expect(checkAdminAuthorization('sekret', proof, 'POST', '/admin/recommission')).toBe(true);
    const refusing = await node(409);
    expect(await admin.recommission(address(refusing.port, false))).toEqual({
      accepted: false,
      error: 'refused',
    });
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
