// /readyz while a node refuses client work: 503 with the reason while the reason is this node's own
// and another member may take the clients instead (a restart whose peers have not compared clocks
// with it yet), 200 when no other member could (alone, or every peer down), and said the same way
// by CLUSTER, kvctl status and INFO. Real node processes on loopback addresses.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  dnsDiscoveryArgs,
  loopbackBlock,
  openClient,
  peersOf,
  restart,
  startMember,
  startStaticCluster,
  waitAllUp,
  waitSettled,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, NODE, ROOT, startNodeProcess } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

const KVCTL = join(ROOT, 'src/cli/main.ts');
const NO_ANSWER = /^clock: no peer has answered this node's probes since it started/;
const NOT_READY_NO_ANSWER = /^not ready: clock: no peer has answered this node's probes since/;
const SERVICE = 'kvstore-headless.test.local';

/** GET /readyz on `host:port`: its status and body. */
async function readyz(host: string, port: number): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${host}:${port}/readyz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text() };
}

const readyzOf = (n: ClusterNode) => readyz(n.host, n.proc.httpPort);

/** kvctl's exit code and output. */
function kvctl(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(NODE, [KVCTL, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

/**
 * The lines of INFO's replication section, asked on a connection of its own over RESP (INFO has
 * no text-protocol form, and a connection's first byte decides its protocol).
 */
async function infoReplication(n: ClusterNode): Promise<string[]> {
  const c = await openClient(n);
  c.send('*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n');
  const [head] = await c.lines(1);
  const lines: string[] = [];
  // A bulk string of `$<bytes>`: its lines (each with its \r\n) until that many bytes.
  for (let left = Number(head!.slice(1)); left > 0; ) {
    const [line] = await c.lines(1);
    lines.push(line!);
    left -= line!.length + 1;
  }
  return lines;
}

/** The node's CLUSTER answer's `refusing` (what it refuses, why, and whether it says ready). */
async function refusingOf(n: ClusterNode): Promise<unknown> {
  const c = await openClient(n);
  return (JSON.parse(await c.call('CLUSTER')) as { refusing?: unknown }).refusing;
}

describe('/readyz of a node that refuses writes', { timeout: 120_000 }, () => {
  it('is 503 with the reason while a restarted member waits for its peers to answer, 200 once they do', async () => {
    const nodes = await startStaticCluster(3);
    // Started together, every member compared clocks with the others: all ready.
    for (const n of nodes) expect(await readyzOf(n)).toEqual({ status: 200, body: 'ready\n' });
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    // c restarts while a and b do not answer (paused: a loaded host, a slow network); many failed
    // probes before they count as down, so c waits for them for the whole test.
    await c.proc.stop('SIGKILL');
    for (const n of [a, b]) n.proc.child.kill('SIGSTOP');
    defer(() => {
      for (const n of [a, b]) n.proc.child.kill('SIGCONT');
    });
    await restart(c, ['--peers', peersOf(nodes), '--probe-failures', '1000']);
    const cc = await openClient(c);
    expect(await cc.call('PUT k v')).toMatch(/^ERR CLOCK_OFFSET clock: no peer has answered /);
    // Before: 200 'ready' while it refused every write: a Service sent clients to it, and a
    // rolling restart that waits for Ready went on to the next pod.
    const waiting = await readyzOf(c);
    expect(waiting.status).toBe(503);
    expect(waiting.body).toMatch(/^not ready: clock: no peer has answered this node's probes/);
    expect(await refusingOf(c)).toMatchObject({ commands: 'writes', ready: false });
    const status = await kvctl(['--host', c.host, '--http-port', '9090', 'status']);
    expect(status.out).toMatch(
      /this node refuses writes: clock: no peer has answered .* not ready/,
    );
    expect(await infoReplication(c)).toContain('kvstore_refusing:writes\r');

    for (const n of [a, b]) n.proc.child.kill('SIGCONT');
    await until(
      async () => (await readyzOf(c)).body === 'ready\n',
      30_000,
      'c ready once its peers answer',
      100,
    );
    expect(await refusingOf(c)).toBeNull();
    // (A write may still wait for a peer's answer to the requests queued while it was paused.)
    await until(async () => (await cc.call('PUT k w')) === 'OK', 30_000, 'c takes writes', 100);
  });

  it('is 200, saying it refuses writes, once every other member is down', async () => {
    const nodes = await startStaticCluster(3);
    const [a, , c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    for (const n of nodes) await n.proc.stop('SIGKILL');
    // c comes back alone: its peers' ports refuse, so they are down after three probes. Unready
    // for good, it would hold back whatever waits for it to be ready (a StatefulSet started
    // OrderedReady, a rollout), and take its reads out of the Service too.
    await restart(c, ['--peers', peersOf(nodes)]);
    await until(
      async () => (await readyzOf(c)).status === 200,
      30_000,
      'c ready with every peer down',
      100,
    );
    const { body } = await readyzOf(c);
    // Before: 'ready', with nothing to say that it refused every write.
    expect(body).toMatch(/^degraded: clock: no peer has answered /);
    const cc = await openClient(c);
    expect(await cc.call('PUT k v')).toMatch(/^ERR CLOCK_OFFSET /);
    const refusing = (await refusingOf(c)) as { reason: string };
    expect(refusing).toMatchObject({ commands: 'writes', ready: true });
    expect(refusing.reason).toMatch(NO_ANSWER);

    // A peer back: it answers c's probes, c compares clocks with it and takes writes.
    await restart(a, ['--peers', peersOf(nodes)]);
    await until(
      async () => (await readyzOf(c)).body === 'ready\n',
      30_000,
      'c ready once a answers',
      100,
    );
    await until(async () => (await cc.call('PUT k w')) === 'OK', 30_000, 'c takes writes', 100);
  });
});

describe('/readyz of a member whose DNS has not answered since it restarted', {
  timeout: 120_000,
}, () => {
  it('is 503 while members that probe it serve its clients, 200 once none does', async () => {
    const dns = await startDnsServer();
    defer(() => dns.close());
    const block = loopbackBlock();
    const hosts = [1, 2, 3].map((i) => `${block}.${i}`);
    const names = ['kvstore-0', 'kvstore-1', 'kvstore-2'];
    // A records only: each member asks the addresses their names.
    dns.setA(SERVICE, hosts);
    const nodes = await Promise.all(
      [0, 1, 2].map((i) => startMember(names[i]!, hosts[i]!, dnsDiscoveryArgs(dns.port, SERVICE))),
    );
    await waitAllUp(nodes);
    await waitSettled(nodes, names);
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];

    // c restarts while its DNS server fails: it routes by its saved ring, knows no member (no
    // quorum of owners it can reach, no clock to compare with) and refuses writes. a and b, whose
    // DNS lists it, probe it and say they serve.
    await c.proc.stop('SIGKILL');
    const failing = await startDnsServer();
    defer(() => failing.close());
    failing.fail(SERVICE, 'SERVFAIL');
    await restart(c, dnsDiscoveryArgs(failing.port, SERVICE));
    const cc = await openClient(c);
    expect(await cc.call('PUT k v')).toMatch(/^ERR CLOCK_OFFSET clock: no peer has answered /);
    // Before: 200 `degraded` throughout: a Service sent clients to it, which it could not serve,
    // and a rollout waiting for it to be Ready went on to the next pod.
    await until(
      async () => (await readyzOf(c)).status === 503,
      20_000,
      'c not ready while a and b serve',
      100,
    );
    expect((await readyzOf(c)).body).toMatch(NOT_READY_NO_ANSWER);
    for (const n of [a, b]) expect(await readyzOf(n)).toEqual({ status: 200, body: 'ready\n' });

    // a and b gone: nobody probes c, and it is the only member that can take clients.
    for (const n of [a, b]) await n.proc.stop('SIGKILL');
    await until(
      async () => (await readyzOf(c)).status === 200,
      30_000,
      'c ready once no member probes it',
      100,
    );
    expect((await readyzOf(c)).body).toMatch(/^degraded: clock: no peer has answered /);
  });
});

describe('/readyz of a node with no other member', () => {
  it('is 200 at once, and the node takes writes', async () => {
    const node = await startNodeProcess();
    // The single-node quick start: nothing to compare clocks with, nothing to wait for.
    expect(await readyz('127.0.0.1', node.httpPort)).toEqual({ status: 200, body: 'ready\n' });
    const c = await LineClient.connect(node.port, '127.0.0.1');
    defer(() => c.close());
    expect(await c.call('PUT k v')).toBe('OK');
  }, 60_000);
});
