// Start-up failures: bad configuration and a data directory in use each say one line and exit 2.

import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, MAIN, NODE, ROOT, startNodeProcess, tempDir } from '../helpers/node-process.ts';

const run = promisify(execFile);
afterAll(cleanup);

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function outcome(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<Outcome> {
  try {
    const r = await run(NODE, [script, ...args], {
      env: { ...process.env, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** Exit 2 and exactly one stderr line that starts with `prefix` and contains `mentions`. */
function expectOneLine(o: Outcome, prefix: string, mentions: string): void {
  expect(o.code, o.stderr).toBe(2);
  expect(o.stderr.endsWith('\n')).toBe(true);
  expect(o.stderr.trimEnd().split('\n'), o.stderr).toHaveLength(1);
  expect(o.stderr.startsWith(prefix), o.stderr).toBe(true);
  expect(o.stderr).toContain(mentions);
  expect(o.stdout).not.toContain('node listening');
}

/** A file: a data directory below it cannot be made. */
const NOT_A_DIR = join(tempDir(), 'file');
writeFileSync(NOT_A_DIR, '');

const NODE_ARGS = ['--port', '0', '--http-port', '0', '--peer-port', '0'];

describe.concurrent('kvstore refuses bad configuration with one line and exit 2', () => {
  const cases: [string, string[], NodeJS.ProcessEnv, string][] = [
    [
      'a malformed --peers',
      ['--peers', 'foo'],
      {},
      "--peers (KV_PEERS) entry 1 'foo' is malformed",
    ],
    [
      'a missing TLS certificate',
      ['--tls-cert-file', '/nonexistent/c.pem', '--tls-key-file', '/nonexistent/k.pem'],
      {},
      '--tls-cert-file (KV_TLS_CERT_FILE) /nonexistent/c.pem (ENOENT)',
    ],
    [
      'a TLS certificate without its key',
      ['--tls-cert-file', '/nonexistent/c.pem'],
      {},
      '--tls-key-file',
    ],
    [
      'a missing peer CA',
      [
        '--peer-tls-cert-file',
        '/x',
        '--peer-tls-key-file',
        '/y',
        '--peer-tls-ca-file',
        '/nonexistent/ca.pem',
      ],
      {},
      '--peer-tls-cert-file (KV_PEER_TLS_CERT_FILE) /x',
    ],
    [
      'a missing password file',
      ['--password-file', '/nonexistent/pw'],
      {},
      '--password-file (KV_PASSWORD_FILE)',
    ],
    [
      'a missing cluster secret file',
      ['--cluster-secret-file', '/nonexistent/s'],
      {},
      '--cluster-secret-file (KV_CLUSTER_SECRET_FILE)',
    ],
    [
      'a data directory that cannot be made',
      ['--data-dir', join(NOT_A_DIR, 'data')],
      {},
      `--data-dir ${join(NOT_A_DIR, 'data')} (ENOTDIR)`,
    ],
    ['a non-numeric port', ['--port', 'seventy'], {}, '--port (KV_PORT)'],
    ['an unknown flag', ['--colour', 'blue'], {}, "unknown option '--colour'"],
    [
      'a flag without its value',
      ['--replication-factor'],
      {},
      '--replication-factor needs a value',
    ],
    ['a bad --discovery', ['--discovery', 'consul:x'], {}, '--discovery (KV_DISCOVERY)'],
    [
      'bad --dns-servers',
      ['--discovery', 'dns:kv.local', '--dns-servers', '10.0.0.300:53'],
      {},
      "--dns-servers (KV_DNS_SERVERS) '10.0.0.300:53' is not a list of ip:port",
    ],
    [
      'a quorum over the replication factor',
      ['--replication-factor', '1', '--write-quorum', '2'],
      {},
      '--write-quorum',
    ],
    ['a bad environment value', [], { KV_MAX_VALUE_BYTES: '-1' }, 'KV_MAX_VALUE_BYTES'],
    ['a bad idle timeout', ['--client-idle-timeout-ms', '-5'], {}, '--client-idle-timeout-ms'],
  ];
  for (const [what, args, env, mentions] of cases) {
    it(what, async () => {
      const dataDir = join(tempDir(), 'data');
      const o = await outcome(MAIN, [...NODE_ARGS, '--data-dir', dataDir, ...args], env);
      expectOneLine(o, 'kvstore: config: ', mentions);
      // Refused before anything is made: no data directory, no identity in it.
      expect(existsSync(dataDir)).toBe(false);
    }, 60_000);
  }
});

describe.concurrent('kvctl and kvstore-operator refuse bad configuration the same way', () => {
  const KVCTL = join(ROOT, 'src/cli/main.ts');
  const OPERATOR = join(ROOT, 'operator/main.ts');
  const cases: [string, string, string[], NodeJS.ProcessEnv, string, string][] = [
    [
      'kvctl: an unknown flag',
      KVCTL,
      ['--colour', 'ping'],
      {},
      'kvctl: ',
      "unknown option '--colour'",
    ],
    ['kvctl: a bad port variable', KVCTL, ['ping'], { KVCTL_PORT: 'x' }, 'kvctl: ', 'KVCTL_PORT'],
    [
      'kvctl: a missing CA file',
      KVCTL,
      ['--tls-ca-file', '/nonexistent/ca.pem', 'ping'],
      {},
      'kvctl: config: ',
      '(ENOENT)',
    ],
    [
      'operator: an unknown flag',
      OPERATOR,
      ['--colour', 'x'],
      {},
      'kvstore-operator: config: ',
      "'--colour'",
    ],
    [
      'operator: a bad port',
      OPERATOR,
      ['--http-port', 'x'],
      {},
      'kvstore-operator: config: ',
      '--http-port',
    ],
    [
      'operator: a missing kubeconfig',
      OPERATOR,
      ['--kubeconfig', '/nonexistent/kubeconfig', '--http-port', '0'],
      {},
      'kvstore-operator: config: ',
      '--kubeconfig /nonexistent/kubeconfig',
    ],
  ];
  for (const [what, script, args, env, prefix, mentions] of cases) {
    it(what, async () => {
      expectOneLine(await outcome(script, args, env), prefix, mentions);
    }, 60_000);
  }
});

describe('one node per data directory', () => {
  it('refuses a second node on the same directory, naming the holder; SIGKILL frees it', async () => {
    const dataDir = tempDir();
    const first = await startNodeProcess({ dataDir });
    const second = await outcome(MAIN, [...NODE_ARGS, '--data-dir', dataDir]);
    expectOneLine(
      second,
      `kvstore: storage: data directory ${dataDir} is in use by pid ${first.child.pid} `,
      'LOCK',
    );
    const c = await LineClient.connect(first.port);
    expect(await c.call('PUT owner first')).toBe('OK');
    c.close();
    expect(await first.stop('SIGKILL')).toBe('SIGKILL');
    const third = await startNodeProcess({ dataDir });
    const d = await LineClient.connect(third.port);
    expect(await d.call('GET owner')).toBe('first');
    d.close();
  }, 60_000);
});
