import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { adminAuthorization, peerProof } from '../../src/auth/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import { PeerClient } from '../../src/peer/index.ts';
import { createPki } from '../helpers/certs.ts';
import { type ClusterNode, connect, metric, startStaticCluster } from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, NODE, ROOT, startNodeProcess } from '../helpers/node-process.ts';

const run = promisify(execFile);
const PASSWORD = 'correct horse battery staple';
afterEach(cleanup);

async function line(port: number, host = '127.0.0.1'): Promise<LineClient> {
  const c = await LineClient.connect(port, host);
  defer(() => c.close());
  return c;
}

function peerClient(
  node: ClusterNode,
  extra: Partial<ConstructorParameters<typeof PeerClient>[0]> = {},
) {
  const c = new PeerClient({
    address: `${node.host}:7946`,
    logger: createLogger('silent', {}),
    registry: new Registry(),
    timeoutMs: 2000,
    ...extra,
  });
  defer(() => c.close());
  return c;
}

describe('AUTH', () => {
  it('refuses every command but AUTH, PING and QUIT until the password is given', async () => {
    const node = await startNodeProcess({ env: { KV_PASSWORD: PASSWORD } });
    const c = await line(node.port);
    expect(await c.call('PING')).toBe('PONG');
    expect(await c.call('PUT k v')).toBe('ERR NOAUTH server: authentication required');
    expect(await c.call('GET k')).toMatch(/^ERR NOAUTH /);
    expect(await c.call('AUTH wrong password')).toBe('ERR WRONGPASS server: invalid password');
    expect(await c.call('GET k')).toMatch(/^ERR NOAUTH /);
    expect(await c.call(`AUTH ${PASSWORD}`)).toBe('OK');
    expect(await c.call('PUT k v')).toBe('OK');
    expect(await c.call('GET k')).toBe('v');
    // Another connection starts unauthenticated.
    const other = await line(node.port);
    expect(await other.call('GET k')).toMatch(/^ERR NOAUTH /);
    const metrics = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^kvstore_auth_failures_total 1$/m);
    expect(JSON.stringify(node.logs)).not.toContain('horse');
    expect(JSON.stringify(node.logs)).not.toContain('wrong password');
  });

  it('speaks Redis AUTH to redis-cli', async () => {
    const node = await startNodeProcess({ env: { KV_PASSWORD: PASSWORD } });
    const cli = (...args: string[]) =>
      run('redis-cli', ['-h', '127.0.0.1', '-p', String(node.port), ...args]).then((r) =>
        r.stdout.trim(),
      );
    expect(await cli('SET', 'a', 'b')).toMatch(/^NOAUTH Authentication required/);
    expect(await cli('--no-auth-warning', '-a', 'nope', 'SET', 'a', 'b')).toMatch(
      /WRONGPASS|NOAUTH/,
    );
    expect(await cli('--no-auth-warning', '-a', PASSWORD, 'SET', 'a', 'b')).toBe('OK');
    expect(await cli('--no-auth-warning', '-a', PASSWORD, 'GET', 'a')).toBe('b');
  });

  it('reads the password from a file', async () => {
    const pki = createPki();
    const file = `${pki.dir}/password`;
    await run('bash', ['-c', `printf '%s\\n' "$1" > "$2"`, 'x', PASSWORD, file]);
    const node = await startNodeProcess({ args: ['--password-file', file] });
    const c = await line(node.port);
    expect(await c.call(`AUTH ${PASSWORD}`)).toBe('OK');
  });
});

describe('TLS on the client port', () => {
  it('serves the protocol over TLS and nothing in plain text', async () => {
    const pki = createPki();
    const { cert, key } = pki.issue('kvstore', ['127.0.0.1', 'localhost']);
    const node = await startNodeProcess({ args: ['--tls-cert-file', cert, '--tls-key-file', key] });
    const socket = tlsConnect({ host: '127.0.0.1', port: node.port, ca: readFileSync(pki.ca) });
    defer(() => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    socket.write('PUT tls:k over tls\nGET tls:k\n');
    let got = '';
    for await (const chunk of socket) {
      got += String(chunk);
      if (got.split('\n').length > 2) break;
    }
    expect(got).toBe('OK\nover tls\n');
    // A plain-text client gets no protocol reply: the handshake fails and the node hangs up.
    const plain = await line(node.port);
    plain.send('PING\n');
    await expect(plain.lines(1, 5000)).rejects.toThrow(/closed/);
  });
});

describe('peer authentication', () => {
  it('replicates between nodes that share the cluster secret, and refuses peers that do not', async () => {
    const nodes = await startStaticCluster(3, ['--cluster-secret', 'swordfish']);
    const c = await connect(nodes[0]!);
    defer(() => c.close());
    expect(await c.call('PUT s:1 v')).toBe('OK');
    for (const n of nodes)
      await expect.poll(() => metric(n, 'kvstore_storage_keys'), { timeout: 15_000 }).toBe(1);

    const anonymous = peerClient(nodes[1]!);
    await expect(anonymous.request('get', { k: Buffer.from('s:1') })).rejects.toMatchObject({
      code: 'KV_ERR_NOAUTH',
    });
    // A refused proof is answered NOAUTH, then the connection closes: what was sent after it
    // is never read.
    const impostor = peerClient(nodes[1]!, {
      handshake: () => ({ method: 'auth', body: peerProof('guess') }),
    });
    await expect(impostor.request('get', { k: Buffer.from('s:1') })).rejects.toMatchObject({
      code: expect.stringMatching(/^KV_ERR_(NOAUTH|PEER_UNAVAILABLE)$/),
    });
    expect(
      await metric(nodes[1]!, 'kvstore_peer_connections_rejected_total{reason="unauthenticated"}'),
    ).toBe(2);
    const member = peerClient(nodes[1]!, {
      handshake: () => ({ method: 'auth', body: peerProof('swordfish') }),
    });
    const got = (await member.request('get', { k: Buffer.from('s:1') })) as { r: Buffer | null };
    expect(got.r).not.toBeNull();
  });

  it('runs the peer port over mutual TLS', async () => {
    const pki = createPki();
    const { cert, key } = pki.issue('peer', ['127.0.0.1']);
    const tls = [
      '--peer-tls-cert-file',
      cert,
      '--peer-tls-key-file',
      key,
      '--peer-tls-ca-file',
      pki.ca,
    ];
    const nodes = await startStaticCluster(3, tls);
    const c = await connect(nodes[2]!);
    defer(() => c.close());
    expect(await c.call('PUT m:1 v')).toBe('OK');
    for (const n of nodes)
      await expect.poll(() => metric(n, 'kvstore_storage_keys'), { timeout: 15_000 }).toBe(1);
    // Without a client certificate from the cluster CA the peer port does not serve.
    const stranger = peerClient(nodes[0]!, {
      tls: { ca: readFileSync(pki.ca), checkServerIdentity: () => undefined },
    });
    await expect(stranger.request('hello', {})).rejects.toMatchObject({
      code: 'KV_ERR_PEER_UNAVAILABLE',
    });
    const plain = peerClient(nodes[0]!);
    await expect(plain.request('hello', {})).rejects.toHaveProperty('code');
  });
});

describe('admin endpoints', () => {
  it('require a proof of the cluster secret when one is set; metrics and probes stay open', async () => {
    const node = await startNodeProcess({ env: { KV_CLUSTER_SECRET: 'swordfish' } });
    const path = '/admin/decommission';
    const call = (authorization?: string, method = 'GET') =>
      fetch(`http://127.0.0.1:${node.httpPort}${path}`, {
        method,
        headers: authorization ? { authorization } : {},
      });
    const none = await call();
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('KVSTORE-HMAC');
    expect((await call(adminAuthorization('guess', 'GET', path))).status).toBe(401);
    // A proof is good for one method and path, for five minutes.
    expect((await call(adminAuthorization('swordfish', 'GET', path), 'POST')).status).toBe(401);
    const old = Date.now() - 6 * 60_000;
    expect((await call(adminAuthorization('swordfish', 'GET', path, old))).status).toBe(401);
    const ok = await call(adminAuthorization('swordfish', 'GET', path));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ status: 'active' });
    expect((await fetch(`http://127.0.0.1:${node.httpPort}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${node.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^kvstore_admin_auth_failures_total 4$/m);

    // kvctl proves it with KVCTL_CLUSTER_SECRET.
    const args = [join(ROOT, 'src/cli/main.ts'), '--http-port', String(node.httpPort)];
    const env = (secret: string) => ({ env: { ...process.env, KVCTL_CLUSTER_SECRET: secret } });
    const good = await run(NODE, [...args, 'decommission-status'], env('swordfish'));
    expect(good.stdout.trim()).toBe('active');
    await expect(run(NODE, [...args, 'decommission'], env(''))).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('set KVCTL_CLUSTER_SECRET'),
    });
    // The one member refuses to hand off: the POST got past authentication.
    await expect(run(NODE, [...args, 'decommission'], env('swordfish'))).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('decommission refused'),
    });
  });
});
