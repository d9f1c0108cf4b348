// kvctl as a child process against a real node: outputs, exit codes, env fallbacks, the shell.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPki } from '../helpers/certs.ts';
import { type ClusterNode, peersOf, restart, startStaticCluster } from '../helpers/cluster.ts';
import {
  cleanup,
  NODE,
  type NodeProcess,
  ROOT,
  startNodeProcess,
} from '../helpers/node-process.ts';

const KVCTL = join(ROOT, 'src/cli/main.ts');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs kvctl with `args` (and `input` on stdin); env has no KVCTL_* unless given. */
function kvctl(
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; script?: string } = {},
): Promise<Run> {
  const env = { ...process.env, KVCTL_HOST: undefined, KVCTL_PORT: undefined, ...opts.env };
  const child = spawn(NODE, [opts.script ?? KVCTL, ...args], { env, stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  // A kvctl that exits before reading its input (most commands never read it) closes the pipe,
  // and the write fails with EPIPE: its exit code and output are what the tests look at, and an
  // 'error' without a listener would fail the whole run as an unhandled error.
  child.stdin.on('error', () => {});
  child.stdin.end(opts.input ?? '');
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A port nothing listens on: bound by us, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('kvctl', () => {
  let node: NodeProcess;
  let at: string[];

  beforeAll(async () => {
    node = await startNodeProcess({ args: ['--max-scan-keys', '100'] });
    at = ['--port', String(node.port)];
  });
  afterAll(cleanup);

  it('puts, gets and removes with exit codes', async () => {
    expect(await kvctl([...at, 'put', 'greeting', 'hello', 'big', 'world'])).toEqual({
      code: 0,
      stdout: 'OK\n',
      stderr: '',
    });
    expect(await kvctl([...at, 'get', 'greeting'])).toEqual({
      code: 0,
      stdout: 'hello big world\n',
      stderr: '',
    });
    expect(await kvctl([...at, 'remove', 'greeting'])).toMatchObject({ code: 0, stdout: 'OK\n' });
    expect(await kvctl([...at, 'get', 'greeting'])).toEqual({
      code: 1,
      stdout: '',
      stderr: '(not found)\n',
    });
    expect(await kvctl([...at, 'remove', 'greeting'])).toMatchObject({
      code: 1,
      stderr: '(not found)\n',
    });
    expect(await kvctl([...at, 'ping'])).toEqual({ code: 0, stdout: 'PONG\n', stderr: '' });
  });

  it('prints range and prefix keys one per line, with the next cursor when paged', async () => {
    for (const k of ['fruit:apple', 'fruit:banana', 'fruit:cherry', 'veg:leek']) {
      expect((await kvctl([...at, 'put', k, 'x'])).code).toBe(0);
    }
    const all = await kvctl([...at, 'prefix', 'fruit:']);
    expect(all).toEqual({
      code: 0,
      stdout: 'fruit:apple\nfruit:banana\nfruit:cherry\n',
      stderr: '',
    });
    const page = await kvctl([...at, 'range', 'fruit:', 'veg:', '--limit', '2']);
    expect(page).toEqual({
      code: 0,
      stdout: 'fruit:apple\nfruit:banana\n',
      stderr: 'next cursor: fruit:banana\n',
    });
    const rest = await kvctl([
      ...at,
      'range',
      'fruit:',
      'veg:',
      '--limit',
      '2',
      '--cursor',
      'fruit:banana',
    ]);
    expect(rest).toEqual({ code: 0, stdout: 'fruit:cherry\n', stderr: '' });
    expect(await kvctl([...at, 'prefix', 'nothing:'])).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('reads the address from KVCTL_HOST/KVCTL_PORT, and runs through bin/kvctl.js', async () => {
    const env = { KVCTL_HOST: '127.0.0.1', KVCTL_PORT: String(node.port) };
    expect(await kvctl(['ping'], { env })).toMatchObject({ code: 0, stdout: 'PONG\n' });
    const bin = await kvctl(['ping'], { env, script: join(ROOT, 'bin/kvctl.js') });
    expect(bin).toMatchObject({ code: 0, stdout: 'PONG\n' });
    // The flag wins over the environment.
    const wrong = { KVCTL_PORT: String(await closedPort()) };
    expect(await kvctl([...at, 'ping'], { env: wrong })).toMatchObject({ code: 0 });
  });

  it('exits 1 with kvctl: <message> on node and client errors', async () => {
    const cap = await kvctl([...at, 'prefix', 'fruit:', '--limit', '101']);
    expect(cap.code).toBe(1);
    expect(cap.stderr).toMatch(/^kvctl: protocol: LIMIT 101 is above .*\(INVALID_ARGUMENT\)\n$/);
    const badKey = await kvctl([...at, 'get', 'two words']);
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toMatch(/^kvctl: client: key has a control or whitespace character/);
    const refused = await kvctl(['--port', String(await closedPort()), 'ping']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^kvctl: client: cannot connect to 127\.0\.0\.1:\d+/);
  });

  it('exits 2 on usage mistakes and prints help', async () => {
    const bad = await kvctl(['frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("kvctl: unknown command 'frobnicate' (see kvctl --help)\n");
    expect((await kvctl([...at, 'get'])).code).toBe(2);
    expect((await kvctl(['--port', 'x', 'ping'])).code).toBe(2);
    const help = await kvctl(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^kvctl: command-line client/);
    expect(help.stdout).toMatch(/shell/);
  });

  it('runs a piped shell session in order and stops at exit', async () => {
    const input = [
      'PUT shell:a one two',
      'PUT shell:b 2',
      'get shell:a',
      '',
      'GET shell:none',
      'PREFIX shell: LIMIT 1',
      'BOGUS',
      'REMOVE shell:a',
      'PING',
      'exit',
      'PUT shell:after-exit x',
    ].join('\n');
    const run = await kvctl([...at, 'shell'], { input: `${input}\n` });
    expect(run).toEqual({
      code: 0,
      stdout: [
        'OK',
        'OK',
        'one two',
        'NOT_FOUND',
        'shell:a',
        'MORE shell:a',
        "ERR UNKNOWN_COMMAND protocol: unknown command 'BOGUS'",
        'OK',
        'PONG',
        '',
      ].join('\n'),
      stderr: '',
    });
    expect(await kvctl([...at, 'get', 'shell:after-exit'])).toMatchObject({ code: 1 });
  });

  it('ends the shell at end of input, even without a final newline', async () => {
    const run = await kvctl([...at, 'shell'], { input: 'PUT eof:b 2\nGET eof:b' });
    expect(run).toEqual({ code: 0, stdout: 'OK\n2\n', stderr: '' });
  });

  it('status --watch ends quietly, exit 0, when the reader of its output leaves (| head)', async () => {
    const child = spawn(NODE, [KVCTL, '--http-port', String(node.httpPort), 'status', '--watch'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
    const first = await new Promise<string>((resolve) =>
      child.stdout.once('data', (d: Buffer) => resolve(d.toString())),
    );
    expect(first).toContain('as seen by');
    // The reader goes away: the next table's write fails with EPIPE, 2 s later.
    child.stdout.destroy();
    expect(await closed).toBe(0);
    expect(stderr).toBe('');
  });
});

describe('kvctl status of a cluster', () => {
  afterAll(cleanup);

  it('says under the table which members list other members than the node (memberListsDiffer)', async () => {
    // The bound of MembershipCheck: 2 x (300 ms + 5 probes of 200 ms + 500 ms) = 3.6 s.
    const fast = ['--resolve-interval-ms', '300', '--peer-timeout-ms', '500'];
    const nodes = await startStaticCluster(3, fast);
    const [n0, , odd] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const status = ['--host', n0.host, '--http-port', String(n0.proc.httpPort), 'status'];
    expect((await kvctl(status)).stdout).not.toContain('member lists differ');
    await odd.proc.stop();
    await restart(odd, ['--peers', peersOf([n0, odd]), ...fast]);
    // Before, the table looked like any other: the mismatch showed only in the logs, a metric
    // and `status --json`.
    await expect
      .poll(async () => (await kvctl(status)).stdout.trim().split('\n').at(-1), {
        timeout: 30_000,
        interval: 500,
      })
      .toBe(
        'member lists differ: kvstore-2 lists kvstore-0,kvstore-2; this node lists kvstore-0,kvstore-1,kvstore-2: give every member the same --peers (or --discovery name), see docs/cluster.md',
      );
    const run = await kvctl(status);
    expect(run.code).toBe(0);
    expect(run.stdout.split('\n')[1]).toMatch(/^NAME +ADDRESS/);
  }, 90_000);
});

describe('kvctl over TLS', () => {
  afterAll(cleanup);

  it('talks to a TLS node, and says what is wrong when it cannot', {
    timeout: 120_000,
  }, async () => {
    const pki = createPki();
    const { cert, key } = pki.issue('kvstore', ['127.0.0.1']);
    const node = await startNodeProcess({ args: ['--tls-cert-file', cert, '--tls-key-file', key] });
    const at = ['--port', String(node.port)];
    const noTls = {
      KVCTL_TLS: undefined,
      KVCTL_TLS_CA_FILE: undefined,
      KVCTL_TLS_INSECURE: undefined,
    };
    const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      kvctl([...at, ...args], { env: { ...noTls, ...env } });
    expect(await run(['--tls-ca-file', pki.ca, 'put', 'tls:k', 'secret'])).toEqual({
      code: 0,
      stdout: 'OK\n',
      stderr: '',
    });
    expect(await run(['get', 'tls:k'], { KVCTL_TLS_CA_FILE: pki.ca })).toEqual({
      code: 0,
      stdout: 'secret\n',
      stderr: '',
    });
    expect(await run(['--tls-insecure', 'ping'])).toMatchObject({ code: 0, stdout: 'PONG\n' });
    // The system's CAs do not know the test CA: the certificate is refused, and it says so.
    const untrusted = await run(['--tls', 'ping']);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/^kvctl: .*certificate/);
    // Plain text to a TLS port: not "connection closed", but what to do about it.
    const plain = await run(['ping']);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toBe(
      `kvctl: 127.0.0.1:${node.port} serves TLS and closed this plain-text connection: use --tls with --tls-ca-file <ca.pem> (or KVCTL_TLS_CA_FILE)\n`,
    );
    expect(await run(['--tls-ca-file', '/nonexistent/ca.pem', 'ping'])).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'kvctl: config: cannot read --tls-ca-file (KVCTL_TLS_CA_FILE) /nonexistent/ca.pem (ENOENT)\n',
    });
  });
});
