// RESP3 after HELLO 3 (with AUTH and SETNAME), and MULTI/EXEC/DISCARD that never half-apply:
// raw sockets for the exact bytes, ioredis and redis-cli as real clients.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';
import { closeResp, ioredis, RawResp, redisCli } from '../helpers/resp-tools.ts';

const HOST = '127.0.0.1';
const PASSWORD = 's3cret';

afterAll(async () => {
  closeResp();
  await cleanup();
});

/** `*n` RESP request bytes for each command. */
function req(...commands: string[][]): string {
  return commands
    .map((c) => `*${c.length}\r\n${c.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`)
    .join('');
}

/** Sends the commands in one write and returns everything the node answered once `want` matched. */
async function exchange(port: number, commands: string[][], want: RegExp): Promise<string> {
  const c = await RawResp.open(HOST, port);
  c.socket.write(req(...commands));
  await c.until(() => want.test(c.data.toString('latin1')) || c.closed);
  c.socket.destroy();
  return c.data.toString('latin1');
}

const AUTH3 = ['HELLO', '3', 'AUTH', 'default', PASSWORD];
/** HELLO's map after `proto`, as a regular expression. */
const HELLO_TAIL =
  '\\$2\r\nid\r\n:\\d+\r\n\\$4\r\nmode\r\n\\$10\r\nstandalone\r\n\\$4\r\nrole\r\n\\$6\r\nmaster\r\n\\$7\r\nmodules\r\n\\*0\r\n';

describe('RESP3 and transactions on one node with a password', () => {
  let node: NodeProcess;

  beforeAll(async () => {
    node = await startNodeProcess({ args: ['--password', PASSWORD] });
  });

  afterAll(async () => {
    await node.stop();
  });

  it('HELLO 3 needs AUTH first or inside it; a wrong password switches nothing; CLIENT LIST/KILL and ECHO need AUTH', async () => {
    const text = await exchange(
      node.port,
      [
        ['HELLO', '3'],
        ['HELLO', '3', 'AUTH', 'default', 'wrong'],
        ['HELLO', '3', 'AUTH', 'alice', PASSWORD],
        ['GET', 'absent'],
        ['CLIENT', 'LIST'],
        ['CLIENT', 'KILL', 'ID', '1'],
        ['ECHO', 'x'],
        ['PING'],
      ],
      /PONG/,
    );
    expect(text).toBe(
      '-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n' +
        '-WRONGPASS invalid username-password pair or user is disabled.\r\n' +
        '-WRONGPASS invalid username-password pair or user is disabled.\r\n' +
        '-NOAUTH Authentication required.\r\n'.repeat(4) +
        '+PONG\r\n',
    );
  });

  it('HELLO 3 AUTH SETNAME switches this connection from that reply on; HELLO 2 switches back', async () => {
    const text = await exchange(
      node.port,
      [
        ['AUTH', PASSWORD],
        ['GET', 'absent'],
        [...AUTH3, 'SETNAME', 'app'],
        ['GET', 'absent'],
        ['MGET', 'absent', 'absent'],
        ['CONFIG', 'GET', 'save'],
        ['COMMAND', 'INFO', 'get'],
        ['CLIENT', 'GETNAME'],
        ['HELLO', '2'],
        ['GET', 'absent'],
      ],
      /\*14\r\n[\s\S]*\$-1\r\n$/,
    );
    const expected = new RegExp(
      '^\\+OK\r\n\\$-1\r\n' +
        `%7\r\n\\$6\r\nserver\r\n\\$7\r\nkvstore\r\n\\$7\r\nversion\r\n\\$[0-9]+\r\n[^\r]+\r\n\\$5\r\nproto\r\n:3\r\n${HELLO_TAIL}` +
        '_\r\n\\*2\r\n_\r\n_\r\n%1\r\n\\$4\r\nsave\r\n\\$0\r\n\r\n' +
        '\\*1\r\n\\*10\r\n\\$3\r\nget\r\n:2\r\n~2\r\n\\+readonly\r\n\\+fast\r\n:1\r\n:1\r\n:1\r\n\\*0\r\n\\*0\r\n\\*0\r\n\\*0\r\n' +
        '\\$3\r\napp\r\n' +
        `\\*14\r\n[\\s\\S]*\\$5\r\nproto\r\n:2\r\n${HELLO_TAIL}` +
        '\\$-1\r\n$',
    );
    expect(text).toMatch(expected);
  });

  it('MULTI queues, EXEC runs in order with one array; DISCARD and a dropped connection apply nothing', async () => {
    const text = await exchange(
      node.port,
      [
        ['AUTH', PASSWORD],
        ['MULTI'],
        ['SET', 'tx:a', '1'],
        ['GET', 'tx:a'],
        ['ECHO', 'hi'],
        ['DEL', 'tx:a', 'tx:none'],
        ['EXEC'],
        ['MULTI'],
        ['SET', 'tx:b', '1'],
        ['DISCARD'],
        ['GET', 'tx:b'],
        ['EXEC'],
        ['DISCARD'],
        ['MULTI'],
        ['MULTI'],
        ['SET', 'tx:c', '1'],
      ],
      /nested\r\n\+QUEUED\r\n$/,
    );
    expect(text).toBe(
      '+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n' +
        '*4\r\n+OK\r\n$1\r\n1\r\n$2\r\nhi\r\n:1\r\n' +
        '+OK\r\n+QUEUED\r\n+OK\r\n$-1\r\n' +
        '-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n' +
        '+OK\r\n-ERR MULTI calls can not be nested\r\n+QUEUED\r\n',
    );
    // That connection closed inside MULTI, before EXEC: tx:c was never applied.
    const after = await exchange(
      node.port,
      [
        ['AUTH', PASSWORD],
        ['GET', 'tx:c'],
      ],
      /\r\n.*\r\n/,
    );
    expect(after).toBe('+OK\r\n$-1\r\n');
  });

  it('an error while queueing aborts the whole transaction: EXECABORT, nothing applied', async () => {
    const text = await exchange(
      node.port,
      [
        ['AUTH', PASSWORD],
        ['MULTI'],
        ['SET', 'tx:d', '1'],
        ['INCR', 'tx:counter'],
        ['SET', 'tx:e'],
        ['CLIENT', 'KILL', 'ID', '1'],
        ['NOSUCH'],
        ['SET', 'tx:f', '1'],
        ['EXEC'],
        ['MGET', 'tx:d', 'tx:f'],
      ],
      /\*2\r\n\$-1\r\n\$-1\r\n$/,
    );
    expect(text).toBe(
      '+OK\r\n+OK\r\n+QUEUED\r\n' +
        '-ERR NOT_ATOMIC protocol: INCR needs an atomic read-modify-write, which kvstore (leaderless, last-write-wins) cannot give without consensus; nothing was applied. See docs/redis.md#conditional-writes\r\n' +
        "-ERR wrong number of arguments for 'set' command\r\n" +
        "-ERR Command not allowed inside a transaction: 'client|kill'\r\n" +
        "-ERR unknown command 'NOSUCH', with args beginning with: \r\n" +
        '+QUEUED\r\n-EXECABORT Transaction discarded because of previous errors.\r\n' +
        '*2\r\n$-1\r\n$-1\r\n',
    );
  });

  it('CLIENT SETNAME/SETINFO change nothing before AUTH or in a discarded MULTI; at EXEC they do', async () => {
    const text = await exchange(
      node.port,
      [
        ['CLIENT', 'SETNAME', 'stranger'],
        ['CLIENT', 'SETINFO', 'LIB-NAME', 'stranger-lib'],
        ['AUTH', PASSWORD],
        ['CLIENT', 'INFO'],
        ['MULTI'],
        ['CLIENT', 'SETNAME', 'dropped'],
        ['DISCARD'],
        ['MULTI'],
        ['CLIENT', 'SETINFO', 'LIB-VER', '9'],
        ['GET', ''],
        ['EXEC'],
        ['CLIENT', 'GETNAME'],
        ['MULTI'],
        ['CLIENT', 'SETNAME', 'kept'],
        ['CLIENT', 'SETINFO', 'LIB-NAME', 'lib'],
        ['EXEC'],
        ['CLIENT', 'INFO'],
      ],
      /lib-name=lib lib-ver=\n\r\n$/,
    );
    const info = (name: string, lib: string) =>
      `id=\\d+ name=${name} db=0 lib-name=${lib} lib-ver=\n`;
    expect(text).toMatch(
      new RegExp(
        '^' +
          '-NOAUTH Authentication required.\r\n'.repeat(2) +
          '\\+OK\r\n' +
          `\\$\\d+\r\n${info('', '')}\r\n` +
          '\\+OK\r\n\\+QUEUED\r\n\\+OK\r\n' +
          '\\+OK\r\n\\+QUEUED\r\n-ERR INVALID_KEY [^\r]*\r\n-EXECABORT [^\r]*\r\n' +
          '\\$-1\r\n' +
          '\\+OK\r\n\\+QUEUED\r\n\\+QUEUED\r\n\\*2\r\n\\+OK\r\n\\+OK\r\n' +
          `\\$\\d+\r\n${info('kept', 'lib')}\r\n$`,
      ),
    );
  });

  it('MULTI before AUTH is NOAUTH; in RESP3 EXEC answers RESP3 replies', async () => {
    const text = await exchange(
      node.port,
      [['MULTI'], AUTH3, ['MULTI'], ['GET', 'absent'], ['EXEC']],
      /\*1\r\n_\r\n$/,
    );
    expect(text).toMatch(
      /^-NOAUTH Authentication required\.\r\n%7\r\n[\s\S]*\+OK\r\n\+QUEUED\r\n\*1\r\n_\r\n$/,
    );
  });

  it('ioredis multi(): EXEC applies all; a refused command rejects the whole transaction', async () => {
    const r = await ioredis(HOST, node.port, { password: PASSWORD });
    expect(await r.multi().set('io:m', 'v').get('io:m').exec()).toEqual([
      [null, 'OK'],
      [null, 'v'],
    ]);
    await expect(r.multi().set('io:n', 'v').incr('io:count').exec()).rejects.toThrow(/EXECABORT/);
    expect(await r.get('io:n')).toBeNull();
    expect(await r.exists('io:count')).toBe(0);
  });

  it('redis-cli: MULTI/EXEC from a script; SETNX refused with the reason', async () => {
    const res = await redisCli(
      HOST,
      node.port,
      ['-a', PASSWORD, '--no-auth-warning'],
      'MULTI\nSET cli:tx 1\nGET cli:tx\nEXEC\nSETNX cli:tx 2\nGET cli:tx\n',
    );
    expect(res.stdout.split('\n')).toEqual([
      'OK',
      'QUEUED',
      'QUEUED',
      'OK',
      '1',
      expect.stringMatching(/^ERR NOT_ATOMIC protocol: SETNX needs an atomic/),
      '',
      '1',
      '',
    ]);
  });
});
