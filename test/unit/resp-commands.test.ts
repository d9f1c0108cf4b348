import { describe, expect, it } from 'vitest';
import { executeMulti } from '../../src/coordinator/multi.ts';
import { KvError } from '../../src/errors/index.ts';
import {
  type Command,
  type CommandLimits,
  encodeRespReply,
  encodeTextReply,
  errorReply,
  helloReply,
  parseRespRequest,
  patternPrefix,
  RESP_COMMANDS,
  type Reply,
  type RespContext,
  type RespRequest,
  type RespVersion,
} from '../../src/protocol/index.ts';
import { ScanCursorTable } from '../../src/server/scan-cursors.ts';
import { respContext } from '../helpers/resp-context.ts';

const LIMITS: CommandLimits = { maxKeyBytes: 16, maxValueBytes: 32, maxScanKeys: 100 };

const cursors = new ScanCursorTable({ max: 100, ttlMs: 60_000 });

function ctx(): RespContext {
  return respContext(LIMITS, cursors);
}

const b = (s: string) => Buffer.from(s, 'latin1');
const parse = (c: RespContext, ...args: (string | Buffer)[]): RespRequest =>
  parseRespRequest(
    args.map((a) => (typeof a === 'string' ? b(a) : a)),
    c,
  );
const cmdOf = (...args: (string | Buffer)[]): Command => {
  const r = parse(ctx(), ...args);
  if (r.kind !== 'command') throw new Error('expected a command');
  return r.cmd;
};
/** A connection-local request's reply, with its effect made (as the connection runs it). */
const replyOf = (c: RespContext, ...args: string[]): Reply => {
  const r = parse(c, ...args);
  if (r.kind !== 'reply') throw new Error('expected a reply');
  r.effect?.();
  return r.reply;
};
function wire(reply: Reply, proto: RespVersion = 2): string {
  const out: Buffer[] = [];
  encodeRespReply(reply, out, proto);
  return Buffer.concat(out).toString('latin1');
}
/** The RESP error line a malformed request gets. */
function errorOf(...args: (string | Buffer)[]): string {
  try {
    parse(ctx(), ...args);
  } catch (err) {
    if (!(err instanceof KvError)) throw err;
    return wire(errorReply(err)).trimEnd();
  }
  throw new Error(`expected an error for ${args.join(' ')}`);
}

describe('parseRespRequest: data commands', () => {
  it('maps each command to the shared command table, names case-insensitive', () => {
    expect(cmdOf('get', 'k')).toEqual({ type: 'get', key: b('k') });
    expect(cmdOf('SET', 'k', 'v')).toEqual({ type: 'put', key: b('k'), value: b('v') });
    expect(cmdOf('PUT', 'k', 'v w')).toEqual({ type: 'put', key: b('k'), value: b('v w') });
    expect(cmdOf('Remove', 'k')).toEqual({ type: 'remove', key: b('k') });
    expect(cmdOf('DEL', 'a', 'b')).toEqual({ type: 'del', keys: [b('a'), b('b')] });
    expect(cmdOf('EXISTS', 'a', 'a')).toEqual({ type: 'exists', keys: [b('a'), b('a')] });
    expect(cmdOf('MGET', 'a', 'b')).toEqual({ type: 'mget', keys: [b('a'), b('b')] });
    expect(cmdOf('MSET', 'a', '1', 'b', '2')).toEqual({
      type: 'mset',
      entries: [
        [b('a'), b('1')],
        [b('b'), b('2')],
      ],
    });
    expect(cmdOf('DBSIZE')).toEqual({ type: 'dbsize' });
    expect(cmdOf('QUIT')).toEqual({ type: 'quit' });
    expect(cmdOf('CLUSTER')).toEqual({ type: 'cluster' });
    expect(cmdOf('RANGE', 'a', 'c', 'LIMIT', '5', 'CURSOR', 'b\x00')).toEqual({
      type: 'range',
      start: b('a'),
      end: b('c'),
      page: { limit: 5, cursor: b('b\x00') },
    });
    expect(cmdOf('PREFIX', 'p:')).toEqual({
      type: 'prefix',
      prefix: b('p:'),
      page: { limit: null, cursor: null },
    });
    expect(cmdOf('KEYS', '*')).toEqual({
      type: 'prefix',
      prefix: b(''),
      page: { limit: null, cursor: null },
    });
  });

  it('keys are binary-safe: any bytes, but non-empty and at most max-key-bytes', () => {
    expect(cmdOf('GET', b('a b\r\n\x00\xff'))).toEqual({ type: 'get', key: b('a b\r\n\x00\xff') });
    expect(errorOf('GET', '')).toBe('-ERR INVALID_KEY protocol: key is empty');
    expect(errorOf('GET', 'k'.repeat(17))).toMatch(/^-ERR INVALID_KEY .*17 bytes/);
    expect(errorOf('SET', 'k', 'v'.repeat(33))).toMatch(/^-ERR VALUE_TOO_LARGE /);
  });

  it('answers malformed requests in Redis form', () => {
    expect(errorOf('FLY', 'away', 'now')).toBe(
      "-ERR unknown command 'FLY', with args beginning with: 'away' 'now'",
    );
    expect(errorOf('GET')).toBe("-ERR wrong number of arguments for 'get' command");
    expect(errorOf('GET', 'a', 'b')).toBe("-ERR wrong number of arguments for 'get' command");
    expect(errorOf('MSET', 'a', '1', 'b')).toBe(
      "-ERR wrong number of arguments for 'mset' command",
    );
    expect(errorOf('PING', 'a', 'b')).toBe("-ERR wrong number of arguments for 'ping' command");
    expect(errorOf('SET', 'k', 'v', 'EX', '10', 'PX', '10')).toBe('-ERR syntax error');
    expect(errorOf('RANGE', 'a', 'b', 'LIMIT')).toBe('-ERR syntax error');
    expect(errorOf('RANGE', 'a', 'b', 'LIMIT', '0')).toMatch(/^-ERR INVALID_ARGUMENT /);
    // An empty bound is no key (the text protocol cannot send one: its fields are never empty).
    expect(errorOf('RANGE', 'a', '')).toMatch(/^-ERR INVALID_KEY protocol: end is empty/);
    expect(errorOf('RANGE', '', 'a')).toMatch(/^-ERR INVALID_KEY protocol: start is empty/);
    expect(errorOf('CLUSTER', 'INFO')).toBe('-ERR This instance has cluster support disabled');
  });

  it('refuses conditional and read-modify-write commands: NOT_ATOMIC, pointing to the docs', () => {
    for (const args of [
      ['SET', 'k', 'v', 'NX'],
      ['SET', 'k', 'v', 'xx'],
      ['SET', 'k', 'v', 'GET'],
      ['SETNX', 'k', 'v'],
      ['GETSET', 'k', 'v'],
      ['INCR', 'k'],
      ['INCRBY', 'k', '2'],
      ['DECR', 'k'],
      ['APPEND', 'k', 'v'],
      ['MSETNX', 'k', 'v'],
      ['WATCH', 'k'],
    ]) {
      const line = errorOf(...args);
      expect(line, args.join(' ')).toMatch(
        /^-ERR NOT_ATOMIC protocol: .*without consensus; nothing was applied\. See docs\/redis\.md#conditional-writes$/,
      );
    }
    expect(errorOf('SET', 'k', 'v', 'NX')).toContain('SET ... NX needs');
    expect(errorOf('incr', 'k')).toContain('INCR needs');
  });

  it('names the reason for each Redis command kvstore does not have; unknown names keep Redis form', () => {
    expect(errorOf('LPUSH', 'l', 'a')).toBe(
      "-ERR UNSUPPORTED protocol: 'lpush' is not supported: kvstore stores strings only (no lists, hashes, sets, sorted sets, streams, geo or HyperLogLog). See docs/redis.md#unsupported-commands",
    );
    expect(errorOf('SUBSCRIBE', 'c')).toMatch(/^-ERR UNSUPPORTED .*no publish\/subscribe/);
    expect(errorOf('EVAL', 'return 1', '0')).toMatch(/^-ERR UNSUPPORTED .*no scripts/);
    expect(errorOf('FLUSHALL')).toMatch(/^-ERR UNSUPPORTED .*destructive/);
    expect(errorOf('BGSAVE')).toMatch(/^-ERR UNSUPPORTED .*persists every write/);
    expect(errorOf('NOSUCHCMD', 'x')).toBe(
      "-ERR unknown command 'NOSUCHCMD', with args beginning with: 'x'",
    );
  });

  it('echoes no control or format character of the request in an error: each is a space', () => {
    // Before, ESC, NUL, DEL, C1 controls and bidirectional overrides went back as sent (only CR
    // and LF were replaced), to be shown by a terminal or a log viewer.
    expect(errorOf('\x1b[31mFLY', 'a\x00b\x7f', Buffer.from('c\u0085\u202ed\u2028'))).toBe(
      "-ERR unknown command ' [31mFLY', with args beginning with: 'a b ' 'c  d '",
    );
    expect(errorOf('CLIENT', 'NO\x1bPE')).toBe("-ERR unknown subcommand 'NO PE'. Try CLIENT HELP.");
    expect(errorOf('SET', 'k', 'v', '\x07X')).toBe('-ERR syntax error');
  });

  it('SCAN pages a prefix; its cursor is an integer token, "0" starts and ends', () => {
    const r = parse(ctx(), 'SCAN', '0', 'MATCH', 'user:*', 'COUNT', '1000');
    expect(r.kind === 'command' && r.cmd).toEqual({
      type: 'prefix',
      prefix: b('user:'),
      page: { limit: 100, cursor: null },
    });
    if (r.kind !== 'command' || r.shape === undefined) throw new Error('expected a shape');
    const more = r.shape({ type: 'keys', keys: [b('user:1')], paged: true, next: b('user:1') });
    const token = /^\*2\r\n\$\d+\r\n([1-9]\d*)\r\n\*1\r\n\$6\r\nuser:1\r\n$/.exec(wire(more))?.[1];
    expect(Number(token)).toBeLessThan(2 ** 48);
    const next = parse(ctx(), 'scan', token!, 'MATCH', 'user:*');
    expect(next.kind === 'command' && next.cmd).toEqual({
      type: 'prefix',
      prefix: b('user:'),
      page: { limit: 100, cursor: b('user:1') },
    });
    const done = r.shape({ type: 'keys', keys: [], paged: true, next: null });
    expect(wire(done)).toBe('*2\r\n$1\r\n0\r\n*0\r\n');
    expect(errorOf('SCAN', 'zz')).toBe('-ERR invalid cursor');
    expect(errorOf('SCAN', '12345')).toBe('-ERR invalid cursor');
    expect(errorOf('SCAN', '0', 'COUNT', '0')).toBe('-ERR syntax error');
    expect(errorOf('SCAN', '0', 'COUNT', 'x')).toBe('-ERR value is not an integer or out of range');
    // TYPE: every key is a string; any other type ends the scan with no keys.
    const typed = parse(ctx(), 'scan', '0', 'MATCH', 'user:*', 'TYPE', 'STRING');
    expect(typed.kind === 'command' && typed.cmd).toEqual({
      type: 'prefix',
      prefix: b('user:'),
      page: { limit: 100, cursor: null },
    });
    const none = parse(ctx(), 'scan', '0', 'TYPE', 'hash');
    expect(none.kind === 'reply' && wire(none.reply)).toBe('*2\r\n$1\r\n0\r\n*0\r\n');
    expect(errorOf('SCAN', '0', 'TYPE')).toBe('-ERR syntax error');
    expect(errorOf('SCAN', '0', 'MATCH', 'a?*')).toMatch(/^-ERR INVALID_ARGUMENT .*literal prefix/);
  });

  it('SCAN cursors expire, the oldest are dropped beyond the cap, and a cursor can be reused', () => {
    let now = 0;
    const t = new ScanCursorTable({ max: 3, ttlMs: 1000, now: () => now });
    const first = t.issue(b('k1'));
    expect(t.resolve(first)).toEqual(b('k1'));
    expect(t.resolve(first)).toEqual(b('k1'));
    const tokens = [t.issue(b('k2')), t.issue(b('k3')), t.issue(b('k4'))];
    expect(t.size).toBe(3);
    expect(t.resolve(first)).toBeUndefined();
    expect(t.resolve(tokens[2]!)).toEqual(b('k4'));
    now = 1000;
    expect(t.resolve(tokens[2]!)).toBeUndefined();
    t.issue(b('k5'));
    expect(t.size).toBe(1);
  });

  it("a SCAN cursor keeps a copy of its key in memory of its own, not a slab of Node's pool", () => {
    const t = new ScanCursorTable({ max: 10, ttlMs: 1000 });
    const key = b('user:42');
    const kept = t.resolve(t.issue(key))!;
    key.fill(0);
    expect(kept).toEqual(b('user:42'));
    expect(kept.buffer.byteLength).toBe(kept.length);
  });

  it('MATCH and KEYS take only a literal prefix followed by *', () => {
    expect(patternPrefix(b('*'))).toEqual(b(''));
    expect(patternPrefix(b('abc*'))).toEqual(b('abc'));
    expect(patternPrefix(b('a\\*b\\?*'))).toEqual(b('a*b?'));
    for (const bad of ['abc', 'a*b', 'a?*', '[ab]*', '**', 'a\\']) {
      expect(() => patternPrefix(b(bad)), bad).toThrow(/literal prefix/);
    }
  });

  it('PING answers PONG, or its argument', () => {
    const r = parse(ctx(), 'PING', 'hello');
    expect(r.kind === 'command' && r.cmd).toEqual({ type: 'ping', message: b('hello') });
    expect(r.kind === 'command' && r.shape).toBeUndefined();
    expect(parse(ctx(), 'PING')).toEqual({ kind: 'command', cmd: { type: 'ping' } });
  });
});

describe('parseRespRequest: connection and server commands', () => {
  it('HELLO parses into a request the connection answers; versions 2 and 3, else NOPROTO', () => {
    expect(errorOf('HELLO', '4')).toBe('-NOPROTO unsupported protocol version');
    expect(errorOf('HELLO', '1')).toBe('-NOPROTO unsupported protocol version');
    expect(errorOf('HELLO', 'x')).toBe('-ERR Protocol version is not an integer or out of range');
    // Redis 7's words for an unknown option, or one short of its arguments.
    expect(errorOf('HELLO', '3', 'AUTH', 'default')).toBe(
      "-ERR Syntax error in HELLO option 'AUTH'",
    );
    expect(errorOf('HELLO', '3', 'FOO')).toBe("-ERR Syntax error in HELLO option 'FOO'");
    expect(errorOf('HELLO', '3', 'SETNAME', 'a b')).toMatch(/^-ERR Client names cannot contain/);
    const c = ctx();
    expect(parse(c, 'HELLO', '3', 'AUTH', 'default', 'pw', 'SETNAME', 'app')).toEqual({
      kind: 'session',
      op: { op: 'hello', proto: 3, user: 'default', password: b('pw'), name: 'app' },
    });
    expect(parse(c, 'hello')).toEqual({
      kind: 'session',
      op: { op: 'hello', proto: null, user: null, password: null, name: null },
    });
    for (const op of ['multi', 'exec', 'discard']) {
      expect(parse(c, op.toUpperCase())).toEqual({ kind: 'session', op: { op } });
    }
    expect(wire(replyOf(c, 'UNWATCH'))).toBe('+OK\r\n');
  });

  it("HELLO's answer is a map: a flat array in RESP2, a RESP3 map after HELLO 3", () => {
    const c = ctx();
    const facts = c.server();
    const tail =
      '$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n' +
      '$7\r\nmodules\r\n*0\r\n';
    expect(wire(helloReply(c.session, facts))).toBe(
      '*14\r\n$6\r\nserver\r\n$7\r\nkvstore\r\n$7\r\nversion\r\n$5\r\n9.9.9\r\n$5\r\nproto\r\n:2\r\n' +
        tail,
    );
    c.session.proto = 3;
    expect(wire(helloReply(c.session, facts), 3)).toBe(
      '%7\r\n$6\r\nserver\r\n$7\r\nkvstore\r\n$7\r\nversion\r\n$5\r\n9.9.9\r\n$5\r\nproto\r\n:3\r\n' +
        tail,
    );
  });

  it('RESP3 encodes null, maps, sets and doubles; RESP2 keeps its forms for the same replies', () => {
    const both = (r: Reply) => [wire(r, 2), wire(r, 3)];
    expect(both({ type: 'not_found' })).toEqual(['$-1\r\n', '_\r\n']);
    expect(both({ type: 'array', items: null })).toEqual(['*-1\r\n', '_\r\n']);
    expect(both({ type: 'keys', keys: [b('a')], paged: true, next: null })).toEqual([
      '*2\r\n*1\r\n$1\r\na\r\n$-1\r\n',
      '*2\r\n*1\r\n$1\r\na\r\n_\r\n',
    ]);
    expect(both({ type: 'set', items: [{ type: 'status', text: 'readonly' }] })).toEqual([
      '*1\r\n+readonly\r\n',
      '~1\r\n+readonly\r\n',
    ]);
    expect(both({ type: 'double', value: 1.5 })).toEqual(['$3\r\n1.5\r\n', ',1.5\r\n']);
    expect(wire({ type: 'double', value: -Infinity }, 3)).toBe(',-inf\r\n');
    expect(wire({ type: 'double', value: Number.NaN }, 3)).toBe(',nan\r\n');
    const mget: Reply = {
      type: 'array',
      items: [{ type: 'value', value: b('v') }, { type: 'not_found' }],
    };
    expect(both(mget)).toEqual(['*2\r\n$1\r\nv\r\n$-1\r\n', '*2\r\n$1\r\nv\r\n_\r\n']);
  });

  it('CLIENT SETNAME/GETNAME/ID/SETINFO keep per-connection state', () => {
    const c = ctx();
    expect(wire(replyOf(c, 'CLIENT', 'GETNAME'))).toBe('$-1\r\n');
    expect(wire(replyOf(c, 'client', 'setname', 'worker-1'))).toBe('+OK\r\n');
    expect(wire(replyOf(c, 'CLIENT', 'GETNAME'))).toBe('$8\r\nworker-1\r\n');
    expect(wire(replyOf(c, 'CLIENT', 'ID'))).toBe(':7\r\n');
    expect(wire(replyOf(c, 'CLIENT', 'SETINFO', 'LIB-NAME', 'ioredis'))).toBe('+OK\r\n');
    expect(c.session.libName).toBe('ioredis');
    expect(errorOf('CLIENT', 'SETNAME', 'a b')).toMatch(/^-ERR Client names cannot contain/);
    // A lib-name or lib-ver is one word of CLIENT LIST's line, as in Redis.
    expect(errorOf('CLIENT', 'SETINFO', 'lib-name', 'a\nid=9 addr=1.2.3.4:5')).toBe(
      '-ERR lib-name cannot contain spaces, newlines or special characters.',
    );
    expect(errorOf('CLIENT', 'SETINFO', 'LIB-VER', '1 2')).toMatch(/^-ERR LIB-VER cannot contain/);
    // The change is made when the request runs (never at parse: not before AUTH, not in MULTI).
    const later = parse(c, 'CLIENT', 'SETNAME', 'worker-2');
    expect(c.session.name).toBe('worker-1');
    if (later.kind === 'reply') later.effect?.();
    expect(c.session.name).toBe('worker-2');
    expect(wire(replyOf(c, 'CLIENT', 'SETINFO', 'LIB-NAME', ''))).toBe('+OK\r\n');
    expect(c.session.libName).toBe(null);
    expect(errorOf('CLIENT', 'NOPE')).toBe("-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.");
    // Subcommands without arguments refuse extra ones, as Redis does.
    expect(errorOf('CLIENT', 'ID', 'x')).toBe(
      "-ERR wrong number of arguments for 'client|id' command",
    );
    expect(errorOf('CLIENT', 'GETNAME', 'x')).toBe(
      "-ERR wrong number of arguments for 'client|getname' command",
    );
    expect(errorOf('CLIENT', 'INFO', 'x')).toBe(
      "-ERR wrong number of arguments for 'client|info' command",
    );
  });

  it('COMMAND, COMMAND COUNT, COMMAND DOCS, COMMAND INFO', () => {
    const c = ctx();
    const n = Object.keys(RESP_COMMANDS).length;
    expect(wire(replyOf(c, 'COMMAND', 'COUNT'))).toBe(`:${n}\r\n`);
    expect(errorOf('COMMAND', 'COUNT', 'extra')).toBe(
      "-ERR wrong number of arguments for 'command|count' command",
    );
    expect(errorOf('COMMAND', 'LIST', 'extra')).toBe('-ERR syntax error');
    expect(wire(replyOf(c, 'COMMAND', 'DOCS'))).toBe('*0\r\n');
    expect(wire(replyOf(c, 'COMMAND'))).toMatch(new RegExp(`^\\*${n}\\r\\n\\*10\\r\\n`));
    expect(wire(replyOf(c, 'COMMAND', 'INFO', 'get', 'nope'))).toBe(
      '*2\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*0\r\n*0\r\n*0\r\n*0\r\n*-1\r\n',
    );
  });

  it('SELECT 0, ECHO, CONFIG GET, AUTH', () => {
    const c = ctx();
    expect(wire(replyOf(c, 'SELECT', '0'))).toBe('+OK\r\n');
    expect(errorOf('SELECT', '1')).toBe('-ERR DB index is out of range');
    expect(errorOf('SELECT', 'x')).toBe('-ERR value is not an integer or out of range');
    expect(wire(replyOf(c, 'ECHO', 'hi'))).toBe('$2\r\nhi\r\n');
    expect(wire(replyOf(c, 'CONFIG', 'GET', 'save'))).toBe('*2\r\n$4\r\nsave\r\n$0\r\n\r\n');
    expect(wire(replyOf(c, 'CONFIG', 'GET', 'nothing'))).toBe('*0\r\n');
    // AUTH is answered by the server (it knows the password); the table only parses it.
    const auth = parse(c, 'AUTH', 'pw');
    expect(auth.kind === 'command' && auth.cmd).toEqual({
      type: 'auth',
      password: Buffer.from('pw'),
      named: false,
    });
    const named = parse(c, 'AUTH', 'default', 'pw');
    expect(named.kind === 'command' && named.cmd).toEqual({
      type: 'auth',
      password: Buffer.from('pw'),
      named: true,
    });
    expect(wire(replyOf(c, 'AUTH', 'alice', 'pw'))).toMatch(/^-WRONGPASS /);
  });

  it('INFO: server and clients sections come before the coordinator sections', () => {
    const r = parse(ctx(), 'INFO', 'Keyspace');
    expect(r.kind === 'command' && r.cmd).toEqual({ type: 'info', sections: ['keyspace'] });
    const all = parse(ctx(), 'INFO');
    if (all.kind !== 'command' || !all.shape) throw new Error('expected a shape');
    const shaped = all.shape({
      type: 'sections',
      sections: [{ name: 'keyspace', fields: [['db0', 'keys=2,expires=0,avg_ttl=0']] }],
    });
    const text = wire(shaped);
    expect(text).toMatch(/# Server\r\nkvstore_version:9\.9\.9\r\n/);
    expect(text).toMatch(/tcp_port:6379\r\n/);
    expect(text).toMatch(/uptime_in_days:1\r\n/);
    expect(text).toMatch(
      /# Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\n\r\n# Memory\r\n/,
    );
    expect(text).toMatch(
      /\r\nused_memory:2048\r\nused_memory_human:2\.00K\r\nused_memory_rss:4096\r\n/,
    );
    expect(text).toMatch(
      /# Stats\r\ntotal_connections_received:10\r\ntotal_commands_processed:1234\r\ninstantaneous_ops_per_sec:56\r\ntotal_net_output_bytes:4321\r\ntotal_scan_records:0\r\nrejected_connections:0\r\n\r\n# Keyspace\r\ndb0:keys=2,/,
    );
  });
});

describe('text encoder and data written over RESP', () => {
  const text = (reply: Reply) => {
    const out: Buffer[] = [];
    encodeTextReply(reply, out);
    return Buffer.concat(out).toString('latin1');
  };
  it('answers NOT_REPRESENTABLE instead of breaking its line framing', () => {
    expect(text({ type: 'value', value: b('a\nb') })).toMatch(/^ERR NOT_REPRESENTABLE .*\n$/);
    expect(text({ type: 'value', value: b('a\rb') })).toBe('a\rb\n');
    const keys = (k: string[], next: string | null = null): Reply => ({
      type: 'keys',
      keys: k.map(b),
      paged: next !== null,
      next: next === null ? null : b(next),
    });
    expect(text(keys(['a', 'b c']))).toMatch(/^ERR NOT_REPRESENTABLE /);
    expect(text(keys(['a', '\xff']))).toMatch(/^ERR NOT_REPRESENTABLE /);
    expect(text(keys(['a'], 'x\ny'))).toMatch(/^ERR NOT_REPRESENTABLE /);
    const utf8 = Buffer.from('ключ');
    expect(text({ type: 'keys', keys: [b('a'), utf8], paged: false, next: null })).toBe(
      `a ${utf8.toString('latin1')}\n`,
    );
  });

  it('never receives RESP-only replies; if one came, it is one ERR INTERNAL line', () => {
    expect(text({ type: 'array', items: [] })).toMatch(/^ERR INTERNAL .*\n$/);
    expect(text({ type: 'status', text: 'x' })).toMatch(/^ERR INTERNAL .*\n$/);
  });

  it('shows an integer (TTL) as a decimal line', () => {
    expect(text({ type: 'integer', value: -1 })).toBe('-1\n');
  });
});

describe('executeMulti', () => {
  const store = new Map<string, string>([['a', '1']]);
  const run = (cmd: Command): Reply | Promise<Reply> => {
    switch (cmd.type) {
      case 'get': {
        const v = store.get(cmd.key.toString());
        return v === undefined ? { type: 'not_found' } : { type: 'value', value: b(v) };
      }
      case 'put':
        if (cmd.key.toString() === 'fail')
          return Promise.reject(new KvError('KV_ERR_UNAVAILABLE', 'x'));
        store.set(cmd.key.toString(), cmd.value.toString());
        return Promise.resolve({ type: 'ok' });
      case 'remove':
        return Promise.resolve(
          store.delete(cmd.key.toString()) ? { type: 'ok' } : { type: 'not_found' },
        );
      default:
        throw new Error('unexpected');
    }
  };

  it('MGET and EXISTS answer synchronously when every part does', () => {
    expect(executeMulti({ type: 'mget', keys: [b('a'), b('z')] }, run)).toEqual({
      type: 'array',
      items: [{ type: 'value', value: b('1') }, { type: 'not_found' }],
    });
    expect(executeMulti({ type: 'exists', keys: [b('a'), b('a'), b('z')] }, run)).toEqual({
      type: 'integer',
      value: 2,
    });
  });

  it('MSET is OK only when every write is; DEL counts distinct live keys', async () => {
    await expect(
      executeMulti(
        {
          type: 'mset',
          entries: [
            [b('b'), b('2')],
            [b('c'), b('3')],
          ],
        },
        run,
      ),
    ).resolves.toEqual({ type: 'ok' });
    await expect(
      executeMulti(
        {
          type: 'mset',
          entries: [
            [b('d'), b('4')],
            [b('fail'), b('x')],
          ],
        },
        run,
      ),
    ).rejects.toThrow(KvError);
    await expect(
      executeMulti({ type: 'del', keys: [b('b'), b('b'), b('c'), b('zz')] }, run),
    ).resolves.toEqual({ type: 'integer', value: 2 });
  });
});
