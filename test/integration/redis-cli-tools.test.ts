// redis-cli's own tools (--stat, --bigkeys, --memkeys, --latency) and the commands they and
// operators use (INFO, TYPE, STRLEN, MEMORY USAGE, OBJECT ENCODING, CLIENT LIST/KILL), with the
// real Debian redis-cli, against one node and against a 3-node cluster.

import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterNode, startStaticCluster } from '../helpers/cluster.ts';
import { cleanup, startNodeProcess } from '../helpers/node-process.ts';
import { closeResp, ioredis, RawResp, redisCli, type Target } from '../helpers/resp-tools.ts';

afterAll(async () => {
  closeResp();
  await cleanup();
});

/** The keys every target gets: 29 small values and one big one. */
const SMALL = Array.from({ length: 29 }, (_, i) => [
  `tool:${String(i).padStart(2, '0')}`,
  'x'.repeat(i + 1),
]);
const BIG: [string, string] = ['tool:big', 'b'.repeat(5000)];
/** MEMORY USAGE's per-key overhead (protocol/resp-inspect.ts RECORD_OVERHEAD). */
const OVERHEAD = 48;

/**
 * Runs `redis-cli --stat` (line-buffered through stdbuf, since its stdout is a pipe) until it
 * printed `lines` data lines, then stops it. Returns the data lines, split into columns.
 */
function statLines(t: Target, lines: number): Promise<string[][]> {
  return new Promise((resolve, reject) => {
    const child = spawn('stdbuf', [
      '-oL',
      'redis-cli',
      '-h',
      t.host,
      '-p',
      String(t.port),
      '--stat',
      '-i',
      '0.2',
    ]);
    let out = '';
    const done = (err?: Error) => {
      child.kill('SIGKILL');
      if (err) return reject(err);
      const data = out.split('\n').filter((l) => /^\d/.test(l));
      resolve(data.slice(0, lines).map((l) => l.trim().split(/\s+/)));
    };
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.split('\n').filter((l) => /^\d/.test(l)).length >= lines) done();
    });
    child.once('error', done);
    child.once('close', () => done(new Error(`redis-cli --stat ended: ${out}`)));
  });
}

async function fill(t: Target): Promise<void> {
  const r = await ioredis(t.host, t.port);
  expect(await r.mset(...SMALL.flat(), ...BIG)).toBe('OK');
  r.disconnect();
}

/** What every target must show; `keys` is what DBSIZE and INFO report. */
async function checkTools(t: Target): Promise<void> {
  const cli = (...args: string[]) => redisCli(t.host, t.port, args);
  expect((await cli('TYPE', 'tool:big')).stdout).toBe('string\n');
  expect((await cli('TYPE', 'tool:none')).stdout).toBe('none\n');
  expect((await cli('STRLEN', 'tool:big')).stdout).toBe('5000\n');
  expect((await cli('STRLEN', 'tool:none')).stdout).toBe('0\n');
  expect((await cli('MEMORY', 'USAGE', 'tool:big')).stdout).toBe(`${8 + 5000 + OVERHEAD}\n`);
  expect((await cli('MEMORY', 'USAGE', 'tool:big', 'SAMPLES', '0')).stdout).toBe(
    `${8 + 5000 + OVERHEAD}\n`,
  );
  expect((await cli('MEMORY', 'USAGE', 'tool:none')).stdout).toBe('\n');
  expect((await cli('OBJECT', 'ENCODING', 'tool:big')).stdout).toBe('raw\n');

  const info = (await cli('INFO')).stdout;
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)\\r?$`, 'm').exec(info)?.[1]);
  expect(field('used_memory')).toBeGreaterThan(1024 * 1024);
  expect(field('used_memory_rss')).toBeGreaterThanOrEqual(field('used_memory') / 4);
  expect(field('total_commands_processed')).toBeGreaterThan(8);
  expect(field('total_connections_received')).toBeGreaterThan(8);
  expect(field('connected_clients')).toBeGreaterThanOrEqual(1);
  expect(info).toMatch(/^instantaneous_ops_per_sec:\d+\r$/m);
  expect(info).toMatch(/^db0:keys=30,expires=\d+,avg_ttl=\d+\r$/m);

  const big = await cli('--bigkeys');
  expect(big.code).toBe(0);
  expect(big.stdout).toContain('Sampled 30 keys in the keyspace!');
  expect(big.stdout).toContain(`Biggest string found '"tool:big"' has 5000 bytes`);
  expect(big.stdout).toMatch(/30 strings with 5435 bytes \(100\.00% of keys/);
  expect(big.stdout).not.toMatch(/ERR|Error/);

  const mem = await cli('--memkeys');
  expect(mem.code).toBe(0);
  expect(mem.stdout).toContain(
    `Biggest string found '"tool:big"' has ${8 + 5000 + OVERHEAD} bytes`,
  );
  expect(mem.stdout).not.toMatch(/ERR|Error/);

  // --latency with --raw pings for a second, then prints min, max, avg and the sample count.
  const lat = await cli('--latency', '--raw');
  expect(lat.code).toBe(0);
  const [min, max, avg, samples] = lat.stdout.trim().split(' ').map(Number);
  expect(samples).toBeGreaterThan(0);
  expect(min).toBeLessThanOrEqual(avg!);
  expect(avg).toBeLessThanOrEqual(max!);

  // --stat: keys, memory, clients, blocked, requests (+delta), connections.
  const stat = await statLines(t, 3);
  for (const [keys, memory, clients, blocked, requests, delta, connections] of stat) {
    expect(keys).toBe('30');
    expect(memory).toMatch(/^\d+(\.\d+)?[KMG]$/);
    expect(Number(clients)).toBeGreaterThanOrEqual(1);
    expect(blocked).toBe('0');
    expect(Number(requests)).toBeGreaterThan(0);
    expect(delta).toMatch(/^\(\+\d+\)$/);
    expect(Number(connections)).toBeGreaterThan(0);
  }
  expect(Number(stat[2]![4])).toBeGreaterThan(Number(stat[0]![4]));
}

/** CLIENT LIST shows a named client with its RESP version; CLIENT KILL closes it. */
async function checkClients(t: Target): Promise<void> {
  const raw = await RawResp.open(t.host, t.port);
  raw.socket.write(
    '*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$6\r\nvictim\r\n*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n',
  );
  await raw.until(() => /\+OK\r\n:\d+\r\n$/.test(raw.data.toString()));
  const id = /:(\d+)\r\n$/.exec(raw.data.toString())![1]!;
  const list = (await redisCli(t.host, t.port, ['CLIENT', 'LIST'])).stdout;
  const line = list.split('\n').find((l) => l.startsWith(`id=${id} `));
  expect(line).toMatch(
    new RegExp(
      `^id=${id} addr=127\\.[\\d.]+:\\d+ laddr=${t.host.replace(/\./g, '\\.')}:${t.port} .*name=victim .*multi=-1 .*cmd=client .*resp=3 `,
    ),
  );
  expect(list).toMatch(/ cmd=client .*resp=2 /); // redis-cli's own connection
  const addr = /addr=(\S+)/.exec(line!)![1]!;
  expect((await redisCli(t.host, t.port, ['CLIENT', 'KILL', 'ID', '999999'])).stdout).toBe('0\n');
  expect((await redisCli(t.host, t.port, ['CLIENT', 'KILL', 'ADDR', addr, 'ID', id])).stdout).toBe(
    '1\n',
  );
  await raw.until(() => raw.closed);
  expect((await redisCli(t.host, t.port, ['CLIENT', 'KILL', addr])).stdout).toBe(
    'ERR No such client\n\n',
  );
  // Bad filters answer in Redis 7's words (redis-server 7.0's replies, side by side).
  const refusals: [string[], string][] = [
    [['CLIENT', 'KILL', 'ID', 'abc'], 'ERR client-id should be greater than 0'],
    [['CLIENT', 'KILL', 'ID', '0'], 'ERR client-id should be greater than 0'],
    [['CLIENT', 'KILL', 'MAXAGE', '-1'], 'ERR syntax error'],
    [['CLIENT', 'KILL', 'MAXAGE', 'abc'], 'ERR syntax error'],
    [['CLIENT', 'LIST', 'TYPE', 'foo'], "ERR Unknown client type 'foo'"],
    [['CLIENT', 'LIST', 'ID', 'abc'], 'ERR Invalid client ID'],
  ];
  for (const [args, line] of refusals) {
    expect((await redisCli(t.host, t.port, args)).stdout.trim(), args.join(' ')).toBe(line);
  }
  // An id that cannot exist matches no client.
  expect((await redisCli(t.host, t.port, ['CLIENT', 'LIST', 'ID', '0'])).stdout.trim()).toBe('');
}

describe('redis-cli tools on one node', () => {
  let target: Target;

  beforeAll(async () => {
    const node = await startNodeProcess({});
    target = { host: '127.0.0.1', port: node.port };
    await fill(target);
  });

  it('TYPE, STRLEN, MEMORY USAGE, OBJECT ENCODING, INFO, --bigkeys, --memkeys, --latency, --stat', {
    timeout: 60_000,
  }, async () => {
    await checkTools(target);
  });

  it('CLIENT LIST and CLIENT KILL', async () => {
    await checkClients(target);
  });
});

describe('redis-cli tools on a 3-node cluster', () => {
  let nodes: ClusterNode[];

  beforeAll(async () => {
    nodes = await startStaticCluster(3);
    await fill({ host: nodes[0]!.host, port: nodes[0]!.proc.port });
  }, 60_000);

  it('every tool works through any node and sees the whole cluster', {
    timeout: 120_000,
  }, async () => {
    // RF=3 on 3 nodes: every node holds every key once the third replica caught up.
    for (const n of nodes) {
      await expect
        .poll(async () => (await redisCli(n.host, n.proc.port, ['DBSIZE'])).stdout, {
          timeout: 10_000,
        })
        .toBe('30\n');
    }
    for (const n of [nodes[1]!, nodes[2]!]) await checkTools({ host: n.host, port: n.proc.port });
  });

  it('CLIENT LIST and CLIENT KILL act on the node asked', async () => {
    await checkClients({ host: nodes[0]!.host, port: nodes[0]!.proc.port });
  });
});
