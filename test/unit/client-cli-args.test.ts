// Unit tests of kvctl's command-line parsing.

import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../../src/cli/args.ts';

function usage(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parseArgs(argv, env);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('did not throw');
}

describe('kvctl arguments', () => {
  it('uses defaults, then env, then flags', () => {
    expect(parseArgs(['ping'], {})).toEqual({
      host: '127.0.0.1',
      port: 8081,
      httpPort: 9090,
      timeoutMs: 10_000,
      tls: null,
      command: { name: 'ping' },
    });
    const env = { KVCTL_HOST: 'db', KVCTL_PORT: '9000', KVCTL_HTTP_PORT: '9100' };
    expect(parseArgs(['ping'], env)).toMatchObject({ host: 'db', port: 9000, httpPort: 9100 });
    expect(parseArgs(['--http-port', '9200', 'decommission', '--wait'], env)).toMatchObject({
      httpPort: 9200,
      command: { name: 'decommission', wait: true },
    });
    expect(parseArgs(['--host', 'h', '--port=7', '--timeout-ms', '0', 'ping'], env)).toMatchObject({
      host: 'h',
      port: 7,
      timeoutMs: 0,
    });
  });

  it('parses backup and restore with their options, and refuses what they do not take', () => {
    expect(parseArgs(['backup', '--node', 'kvstore-1', 'dir'], {}).command).toEqual({
      name: 'backup',
      target: 'dir',
      node: 'kvstore-1',
    });
    expect(parseArgs(['backup', '-'], {}).command).toEqual({ name: 'backup', target: '-' });
    expect(parseArgs(['restore', '-', '--force', '--rate-bytes=1000'], {}).command).toEqual({
      name: 'restore',
      source: '-',
      force: true,
      rateBytes: 1000,
    });
    expect(() => parseArgs(['backup'], {})).toThrow(/backup expects <dir\|->/);
    expect(() => parseArgs(['backup', 'a', 'b'], {})).toThrow(/backup expects/);
    expect(() => parseArgs(['restore', 'd', '--forse'], {})).toThrow(/unknown option '--forse'/);
    expect(() => parseArgs(['restore', 'd', '--rate-bytes', '0'], {})).toThrow(
      /--rate-bytes must be/,
    );
    expect(() => parseArgs(['backup', 'd', '--node'], {})).toThrow(/--node needs a value/);
  });

  it('joins the value words of put, even ones that look like options', () => {
    expect(parseArgs(['put', 'k', 'a', 'b', '--c'], {}).command).toEqual({
      name: 'put',
      key: 'k',
      value: 'a b --c',
    });
  });

  it('parses scan paging options anywhere after the command', () => {
    expect(parseArgs(['range', '--limit', '5', 'a', 'z', '--cursor=c'], {}).command).toEqual({
      name: 'range',
      start: 'a',
      end: 'z',
      limit: 5,
      cursor: 'c',
    });
    expect(parseArgs(['prefix', '--', '--odd'], {}).command).toEqual({
      name: 'prefix',
      prefix: '--odd',
      limit: undefined,
      cursor: undefined,
    });
  });

  it('reports usage mistakes', () => {
    expect(usage([])).toMatch(/no command/);
    expect(usage(['frob'])).toMatch(/unknown command 'frob'/);
    expect(usage(['--bogus', 'ping'])).toMatch(/unknown option '--bogus'/);
    expect(usage(['--port', 'x', 'ping'])).toMatch(/--port must be an integer/);
    expect(usage(['ping'], { KVCTL_PORT: '70000' })).toMatch(/KVCTL_PORT/);
    expect(usage(['get'])).toMatch(/get expects <key>/);
    expect(usage(['get', 'a', 'b'])).toMatch(/get expects <key>/);
    expect(usage(['put', 'k'])).toMatch(/put expects/);
    expect(usage(['range', 'a'])).toMatch(/range expects/);
    expect(usage(['prefix', 'a', '--limit', '0'])).toMatch(/--limit must be/);
    expect(usage(['prefix', 'a', '--cursor', 'c'])).toMatch(/--cursor needs --limit/);
    expect(usage(['ping', 'x'])).toMatch(/ping expects no arguments/);
  });

  it('turns TLS on by flag or environment', () => {
    expect(parseArgs(['--tls', 'ping'], {}).tls).toEqual({ insecure: false });
    expect(parseArgs(['--tls-ca-file', '/ca.pem', 'ping'], {}).tls).toEqual({
      insecure: false,
      caFile: '/ca.pem',
    });
    expect(parseArgs(['--tls-insecure', 'ping'], {}).tls).toEqual({ insecure: true });
    // The short names the issue asked for.
    expect(parseArgs(['--insecure', 'ping'], {}).tls).toEqual({ insecure: true });
    expect(parseArgs(['--ca', '/ca.pem', 'ping'], {}).tls).toEqual({
      insecure: false,
      caFile: '/ca.pem',
    });
    expect(parseArgs(['ping'], { KVCTL_TLS: '1' }).tls).toEqual({ insecure: false });
    expect(parseArgs(['ping'], { KVCTL_TLS_CA_FILE: '/c' }).tls).toEqual({
      insecure: false,
      caFile: '/c',
    });
    expect(parseArgs(['ping'], { KVCTL_TLS: '0' }).tls).toBeNull();
    expect(usage(['ping'], { KVCTL_TLS: 'maybe' })).toMatch(/KVCTL_TLS must be 1 or 0/);
    expect(usage(['--tls=yes', 'ping'])).toMatch(/--tls takes no value/);
    expect(usage(['--tls-ca-file'])).toMatch(/--tls-ca-file needs a value/);
  });

  it('asks for help', () => {
    expect(parseArgs(['--help'], {}).command).toEqual({ name: 'help' });
    expect(parseArgs(['-h', 'get'], {}).command).toEqual({ name: 'help' });
  });
});
