import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';

const run = promisify(execFile);
let node: NodeProcess;
const clients: LineClient[] = [];

async function client(): Promise<LineClient> {
  const c = await LineClient.connect(node.port);
  clients.push(c);
  return c;
}

/** The seed's manual test: one line through the real `nc`, which half-closes after stdin ends. */
async function nc(input: string): Promise<string> {
  const { stdout } = await run('bash', [
    '-c',
    `printf '%s' "$1" | nc -N 127.0.0.1 ${node.port}`,
    'nc',
    input,
  ]);
  return stdout;
}

beforeAll(async () => {
  node = await startNodeProcess({
    args: [
      '--max-key-bytes',
      '64',
      '--max-value-bytes',
      '256',
      '--max-line-bytes',
      '1024',
      '--max-scan-keys',
      '50',
    ],
  });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await cleanup();
});

describe('seed protocol over TCP', () => {
  it('answers the seed test plan through nc', async () => {
    expect(await nc('PUT session:user1 {token:xyz123}\n')).toBe('OK\n');
    expect(await nc('PUT session:user2 {token:abc456}\nPUT session:user3 {token:def789}\n')).toBe(
      'OK\nOK\n',
    );
    expect(await nc('GET session:user1\n')).toBe('{token:xyz123}\n');
    expect(await nc('RANGE session:user1 session:user3\n')).toBe(
      'session:user1 session:user2 session:user3\n',
    );
    expect(await nc('PREFIX session:user\n')).toBe('session:user1 session:user2 session:user3\n');
    expect(await nc('REMOVE session:user2\r\nGET session:user2\r\n')).toBe('OK\nNOT_FOUND\n');
    expect(await nc('REMOVE session:user2\n')).toBe('NOT_FOUND\n');
    expect(await nc('PREFIX session:user\n')).toBe('session:user1 session:user3\n');
    expect(await nc('PREFIX nothing-here\n')).toBe('\n');
  });

  it('pipelines: replies in order, and reads see the writes sent before them', async () => {
    const c = await client();
    const lines: string[] = [];
    const expected: string[] = [];
    for (let i = 0; i < 500; i++) {
      lines.push(`PUT pipe:${i} value ${i}`, `GET pipe:${i}`);
      expected.push('OK', `value ${i}`);
      if (i % 50 === 0) {
        lines.push(`REMOVE pipe:${i}`, `GET pipe:${i}`, `PUT pipe:${i} again ${i}`);
        expected.push('OK', 'NOT_FOUND', 'OK');
      }
    }
    lines.push('PREFIX pipe:49 LIMIT 50');
    expected.push(
      'pipe:49 pipe:490 pipe:491 pipe:492 pipe:493 pipe:494 pipe:495 pipe:496 pipe:497 pipe:498 pipe:499',
      'END',
    );
    c.send(`${lines.join('\n')}\n`);
    expect(await c.lines(expected.length)).toEqual(expected);
  });

  it('a read between writes sees exactly the writes before it', async () => {
    const c = await client();
    c.send(
      'PUT order:k one\nGET order:k\nPUT order:k two\nGET order:k\nREMOVE order:k\nGET order:k\n',
    );
    expect(await c.lines(6)).toEqual(['OK', 'one', 'OK', 'two', 'OK', 'NOT_FOUND']);
  });

  it('pages scans with LIMIT and CURSOR and refuses oversized uncapped scans', async () => {
    const c = await client();
    const puts = Array.from({ length: 60 }, (_, i) => `PUT big:${String(i).padStart(2, '0')} v`);
    c.send(`${puts.join('\n')}\n`);
    await c.lines(60);
    expect(await c.call('PREFIX big:')).toMatch(/^ERR LIMIT_EXCEEDED /);
    c.send('RANGE big:10 big:59 LIMIT 3\n');
    expect(await c.lines(2)).toEqual(['big:10 big:11 big:12', 'MORE big:12']);
    c.send('RANGE big:10 big:59 LIMIT 3 CURSOR big:57\n');
    expect(await c.lines(2)).toEqual(['big:58 big:59', 'END']);
  });

  it('echoes no control character of an unknown command: each is a space', async () => {
    // Before, `ERR UNKNOWN_COMMAND protocol: unknown command '\x1b[2J\x00'` cleared the
    // terminal of whoever read the reply (or a log holding it).
    const c = await client();
    c.send('\x1b[2J\x00\x7fX\rY away\nPING\n');
    expect(await c.lines(2)).toEqual([
      "ERR UNKNOWN_COMMAND protocol: unknown command ' [2J  X Y'",
      'PONG',
    ]);
  });

  it('ignores blank lines: only spaces or tabs, as RESP inline commands do', async () => {
    // Before, a line of tabs was `ERR UNKNOWN_COMMAND protocol: unknown command '\t'`.
    expect(await nc('\n   \n\t\n \t \r\nPING\n')).toBe('PONG\n');
  });

  it('answers PING and QUIT, then closes on QUIT', async () => {
    const c = await client();
    expect(await c.call('ping')).toBe('PONG');
    c.send('QUIT\nPING\n');
    expect(await c.lines(1)).toEqual(['OK']);
    await expect(c.lines(1, 2000)).rejects.toThrow(/closed/);
  });
});

describe('bad input', () => {
  const cases: [string, string | Buffer, RegExp][] = [
    ['unknown command', 'FLY away', /^ERR UNKNOWN_COMMAND /],
    ['wrong arity', 'GET a b', /^ERR WRONG_ARITY /],
    ['missing value', 'PUT onlykey', /^ERR WRONG_ARITY /],
    ['over-long key', `GET ${'k'.repeat(65)}`, /^ERR INVALID_KEY .*65 bytes, the limit is 64/],
    ['control character in key', 'GET bad\x07key', /^ERR INVALID_KEY /],
    ['value over the limit', `PUT k ${'v'.repeat(257)}`, /^ERR VALUE_TOO_LARGE /],
    [
      'invalid UTF-8',
      Buffer.from([0x50, 0x55, 0x54, 0x20, 0x6b, 0x20, 0xff, 0xfe]),
      /^ERR INVALID_UTF8 /,
    ],
    ['bad LIMIT', 'PREFIX a LIMIT -1', /^ERR INVALID_ARGUMENT /],
    ['LIMIT above the cap', 'PREFIX a LIMIT 51', /^ERR INVALID_ARGUMENT /],
  ];
  for (const [name, line, reply] of cases) {
    it(`${name}: one error line, and the connection keeps working`, async () => {
      const c = await client();
      c.send(
        Buffer.concat([Buffer.from(line), Buffer.from('\nPUT after:error ok\nGET after:error\n')]),
      );
      const [err, ok, value] = await c.lines(3);
      expect(err).toMatch(reply);
      expect([ok, value]).toEqual(['OK', 'ok']);
    });
  }

  it('discards an over-long line to its newline with one error, bounded, and goes on', async () => {
    const c = await client();
    const huge = Buffer.alloc(5 * 1024 * 1024, 0x61);
    c.send('PUT before:long yes\n');
    c.send(Buffer.concat([Buffer.from('PUT long '), huge, Buffer.from('\nGET before:long\n')]));
    const replies = await c.lines(3);
    expect(replies[0]).toBe('OK');
    expect(replies[1]).toMatch(
      /^ERR LINE_TOO_LONG protocol: line of \d+ bytes is over the limit of 1024$/,
    );
    expect(replies[2]).toBe('yes');
    const other = await client();
    expect(await other.call('GET long')).toBe('NOT_FOUND');
  });

  it('never applies a line cut off by a disconnect, but applies every full line before it', async () => {
    const c = await client();
    c.send('PUT cut:full complete\nPUT cut:partial half-writ');
    c.socket.end();
    const other = await client();
    // The full line may still be in flight when the other client asks: poll for it.
    await expect.poll(() => other.call('GET cut:full'), { timeout: 20_000 }).toBe('complete');
    expect(await other.call('GET cut:partial')).toBe('NOT_FOUND');
  });

  it('a client resetting mid-pipeline disturbs no one else', async () => {
    const bystander = await client();
    const rude = await client();
    const lines = Array.from({ length: 2000 }, (_, i) => `PUT rude:${i} x`).join('\n');
    rude.send(`${lines}\n`);
    rude.socket.resetAndDestroy();
    expect(await bystander.call('PUT calm k')).toBe('OK');
    expect(await bystander.call('GET calm')).toBe('k');
    expect(await bystander.call('PING')).toBe('PONG');
  });

  /** A node taking 2 client connections, and `n` clients of it (the first has sent a PING). */
  async function fullNode(n: number) {
    const small = await startNodeProcess({ args: ['--max-connections', '2'] });
    const open = async () => {
      const c = await LineClient.connect(small.port);
      clients.push(c);
      return c;
    };
    const got: LineClient[] = [];
    for (let i = 0; i < n; i++) got.push(await open());
    expect(await got[0]!.call('PING')).toBe('PONG');
    return { open, got };
  }

  it('refuses connections beyond --max-connections with an error, once every open one has sent a request', async () => {
    const { open, got } = await fullNode(2);
    const b = got[1]!;
    expect(await b.call('PING')).toBe('PONG');
    const c = await open();
    expect(await c.lines(1)).toEqual([expect.stringMatching(/^ERR MAX_CLIENTS /)]);
    expect(await b.call('PING')).toBe('PONG');
  });

  it('at --max-connections, closes the oldest connection that has sent nothing for a new one', async () => {
    // A silent connection (no password: no whole request yet) holds no slot against a client
    // that comes later (docs/security.md, the client port's limits).
    const { open, got } = await fullNode(2);
    const [a, silent] = got as [LineClient, LineClient];
    const c = await open();
    expect(await silent.lines(1)).toEqual([
      expect.stringMatching(/^ERR MAX_CLIENTS .*closed for a new one/),
    ]);
    expect(await c.call('PING')).toBe('PONG');
    expect(await a.call('PING')).toBe('PONG');
  });
});
