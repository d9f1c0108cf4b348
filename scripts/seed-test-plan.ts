// The seed's test plan against a running 3-node cluster with the kvstore client; exit 0 = passed.
//
// usage: node scripts/seed-test-plan.ts [--nodes host:port,host:port,host:port] [--wait-ms N]
//   --nodes    (env SEED_NODES, default 127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083): the
//              nodes' client addresses; each step uses a different node than the write it reads.
//   --wait-ms  (env SEED_WAIT_MS, default 60000): how long to wait for every node to answer and
//              see all members up before the plan starts.
// The plan owns the keys `session:user*` of the cluster it runs on (it expects no others).

import { KvClient } from '../src/client/index.ts';

interface Options {
  readonly nodes: { host: string; port: number }[];
  readonly waitMs: number;
}

class PlanFailure extends Error {}

function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): Options {
  let nodes = env.SEED_NODES || '127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083';
  let wait = env.SEED_WAIT_MS || '60000';
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    const eq = word.indexOf('=');
    const flag = eq === -1 ? word : word.slice(0, eq);
    const value = eq === -1 ? argv[++i] : word.slice(eq + 1);
    if (flag === '--nodes' && value) nodes = value;
    else if (flag === '--wait-ms' && value) wait = value;
    else throw new PlanFailure(`usage: unknown or incomplete option '${word}'`);
  }
  const parsed = nodes.split(',').map((addr) => {
    const m = /^(.+):(\d+)$/.exec(addr.trim());
    if (!m) throw new PlanFailure(`usage: node address '${addr}' is not host:port`);
    return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) };
  });
  if (parsed.length < 3) throw new PlanFailure('usage: the plan needs 3 nodes (--nodes a,b,c)');
  if (!/^\d+$/.test(wait)) throw new PlanFailure(`usage: --wait-ms '${wait}' is not a number`);
  return { nodes: parsed, waitMs: Number(wait) };
}

interface ClusterView {
  members: { name: string; state: string }[];
  ring: { moving: boolean };
}

/** Polls until every node answers PING and sees all its members up with a settled ring. */
async function waitForCluster(clients: readonly KvClient[], waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  let last = '';
  for (;;) {
    try {
      for (const c of clients) {
        await c.ping();
        const view = JSON.parse(await c.raw('CLUSTER')) as ClusterView;
        const notUp = view.members.filter((m) => m.state !== 'up').map((m) => m.name);
        if (notUp.length > 0) throw new Error(`${c.address} sees ${notUp.join(', ')} not up`);
        if (view.ring.moving) throw new Error(`${c.address}: the ring is still moving`);
      }
      return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      throw new PlanFailure(`cluster not ready after ${waitMs} ms: ${last}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function expectEqual(step: string, got: unknown, want: unknown): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new PlanFailure(`${step}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  }
  process.stdout.write(`ok   ${step} -> ${typeof got === 'string' ? got : JSON.stringify(got)}\n`);
}

async function runPlan(clients: readonly KvClient[]): Promise<void> {
  const [a, b, c] = clients as [KvClient, KvClient, KvClient];
  const at = (k: KvClient) => `@${k.address}`;
  const sessions: [string, string, KvClient][] = [
    ['session:user1', '{token:xyz123}', a],
    ['session:user2', '{token:abc456}', b],
    ['session:user3', '{token:def789}', c],
  ];
  // 1. Key distribution: each key written through a different node.
  for (const [key, value, node] of sessions) {
    await node.put(key, value); // resolves on OK, rejects on any ERR
    expectEqual(`1 PUT ${key} ${value} ${at(node)}`, 'OK', 'OK');
  }
  // 2. Request forwarding: read each key through a node other than the one that took the write.
  for (const [i, [key, value]] of sessions.entries()) {
    const other = clients[(i + 1) % 3]!;
    expectEqual(`2 GET ${key} ${at(other)}`, await other.get(key), value);
  }
  const all = sessions.map(([key]) => key);
  // 3. Range query (inclusive on both ends).
  const range = await b.range('session:user1', 'session:user3');
  expectEqual(`3 RANGE session:user1 session:user3 ${at(b)}`, range.keys, all);
  // 4. Prefix scan.
  const prefix = await c.prefix('session:user');
  expectEqual(`4 PREFIX session:user ${at(c)}`, prefix.keys, all);
  // 5. Deletion: REMOVE answers OK, then the key is NOT_FOUND on every node.
  const removed = (await a.remove('session:user2')) ? 'OK' : 'NOT_FOUND';
  expectEqual(`5 REMOVE session:user2 ${at(a)}`, removed, 'OK');
  for (const node of clients) {
    const got = await node.get('session:user2');
    expectEqual(`5 GET session:user2 ${at(node)}`, got ?? 'NOT_FOUND', 'NOT_FOUND');
  }
}

async function main(): Promise<number> {
  const clients: KvClient[] = [];
  try {
    const opts = parseOptions(process.argv.slice(2), process.env);
    for (const n of opts.nodes) clients.push(await connectWithin(n.host, n.port, opts.waitMs));
    await waitForCluster(clients, opts.waitMs);
    await runPlan(clients);
    process.stdout.write('seed test plan: passed\n');
    return 0;
  } catch (err) {
    process.stderr.write(`seed test plan: FAILED: ${err instanceof Error ? err.message : err}\n`);
    return 1;
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
  }
}

/** Connects, retrying refused connections (the node is still starting) until `waitMs`. */
async function connectWithin(host: string, port: number, waitMs: number): Promise<KvClient> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      return await KvClient.connect({ host, port, timeoutMs: 5000 });
    } catch (err) {
      if (Date.now() > deadline) {
        throw new PlanFailure(`cannot connect to ${host}:${port}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

process.exitCode = await main();
