// Unit tests of the peer sources: --peers and --discovery parsing, the static source, dedupe, reverse names.

import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import { dnsSource, reverseName } from '../../src/membership/dns-source.ts';
import {
  type MemberAddress,
  parseDiscovery,
  parsePeers,
  pickByName,
  staticSource,
} from '../../src/membership/sources.ts';

/** The KvError a call throws (fails the test if it does not throw one). */
function thrown(run: () => unknown): KvError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(KvError);
    return err as KvError;
  }
  throw new Error('expected a KvError');
}

describe('parsePeers', () => {
  it('parses a list in the order given', () => {
    expect(parsePeers('kvstore-1=10.0.0.2:7946,kvstore-0=kvstore-0.svc.local:7000')).toEqual([
      { name: 'kvstore-1', host: '10.0.0.2', peerPort: 7946 },
      { name: 'kvstore-0', host: 'kvstore-0.svc.local', peerPort: 7000 },
    ]);
    expect(parsePeers('a=localhost:1')).toEqual([{ name: 'a', host: 'localhost', peerPort: 1 }]);
  });

  it('takes IPv6 addresses in brackets and returns them bare', () => {
    expect(parsePeers('a=[::1]:7946, b=[fd00::1:2]:65535')).toEqual([
      { name: 'a', host: '::1', peerPort: 7946 },
      { name: 'b', host: 'fd00::1:2', peerPort: 65535 },
    ]);
  });

  it('ignores whitespace and empty entries', () => {
    expect(parsePeers('  a = 127.0.0.1 : 7001 ,\n\tb=127.0.0.2:7002 , ,')).toEqual([
      { name: 'a', host: '127.0.0.1', peerPort: 7001 },
      { name: 'b', host: '127.0.0.2', peerPort: 7002 },
    ]);
    expect(parsePeers('')).toEqual([]);
    expect(parsePeers('  ,  ')).toEqual([]);
  });

  const malformed: [string, string][] = [
    ['a=h:1,kvstore-1', "entry 2 'kvstore-1' is malformed: missing '='"],
    ['=h:1', "entry 1 '=h:1' is malformed: empty name"],
    ['bad name=h:1', "invalid name 'bad name'"],
    ['-a=h:1', "invalid name '-a'"],
    ['a=h', "entry 1 'a=h' is malformed: missing ':peerPort'"],
    ['a=:7946', 'empty host'],
    ['a=h:', "invalid port ''"],
    ['a=h:0', "invalid port '0' (1..65535)"],
    ['a=h:65536', "invalid port '65536'"],
    ['a=h:80x', "invalid port '80x'"],
    ['a=h:-1', "invalid port '-1'"],
    ['a=::1:7946', "IPv6 address '::1' needs brackets: [::1]:port"],
    ['a=[::1:7946', "invalid IPv6 address '[::1'"],
    ['a=[nope]:7946', "invalid IPv6 address '[nope]'"],
    ['a=host_name:1', "invalid host 'host_name'"],
    ['a=300.1.1.1:1', "invalid host '300.1.1.1'"],
  ];
  it.each(malformed)('rejects %j naming the entry and the reason', (spec, message) => {
    const err = thrown(() => parsePeers(spec));
    expect(err.code).toBe('KV_ERR_INVALID_ARGUMENT');
    expect(err.message).toMatch(/^membership: --peers \(KV_PEERS\) entry \d+ /);
    expect(err.message).toContain(message);
  });

  it('rejects a repeated name or address', () => {
    const name = thrown(() => parsePeers('a=h1:1, b=h2:2, a=h3:3'));
    expect(name.message).toBe(
      "membership: --peers (KV_PEERS) entry 3 'a=h3:3' repeats the name of 'a'",
    );
    const address = thrown(() => parsePeers('a=h1:1,b=h1:1'));
    expect(address.message).toBe(
      "membership: --peers (KV_PEERS) entry 2 'b=h1:1' repeats the address of 'a'",
    );
  });
});

describe('staticSource', () => {
  it('reports the members sorted by name, as copies', async () => {
    const source = staticSource(parsePeers('c=h3:3,a=h1:1,b=h2:2'));
    expect(source.description).toBe('static(3)');
    const first = await source.resolve();
    expect(first.map((m) => m.name)).toEqual(['a', 'b', 'c']);
    (first as { name: string }[])[0]!.name = 'changed';
    expect((await source.resolve())[0]!.name).toBe('a');
  });

  it('keeps one member per name, whatever the input order', async () => {
    const members: MemberAddress[] = [
      { name: 'a', host: 'h2', peerPort: 1 },
      { name: 'a', host: 'h1', peerPort: 2 },
    ];
    const expected = [{ name: 'a', host: 'h1', peerPort: 2 }];
    expect(await staticSource(members).resolve()).toEqual(expected);
    expect(await staticSource([...members].reverse()).resolve()).toEqual(expected);
    expect(staticSource(members).description).toBe('static(1)');
    expect(await staticSource([]).resolve()).toEqual([]);
  });
});

describe('pickByName', () => {
  it('prefers the preferred port, then the lower rank, then host and port', () => {
    const m = (host: string, peerPort: number): MemberAddress => ({ name: 'x', host, peerPort });
    expect(pickByName([m('a', 1), m('b', 7946)], 7946)).toEqual([m('b', 7946)]);
    const rank = (x: MemberAddress) => (x.host === 'z' ? 0 : 1);
    expect(pickByName([m('a', 1), m('z', 2)], undefined, rank)).toEqual([m('z', 2)]);
    expect(pickByName([m('a', 2), m('a', 1)])).toEqual([m('a', 1)]);
  });
});

describe('parseDiscovery', () => {
  it('accepts dns:<name>', () => {
    expect(parseDiscovery('dns:kvstore-headless.default.svc.cluster.local')).toEqual({
      kind: 'dns',
      name: 'kvstore-headless.default.svc.cluster.local',
    });
    expect(parseDiscovery(' dns:_peer._tcp.svc.local. ')).toEqual({
      kind: 'dns',
      name: '_peer._tcp.svc.local',
    });
  });

  it.each([
    [
      'kvstore-headless',
      "--discovery (KV_DISCOVERY) 'kvstore-headless' is not supported: expected dns:<name>",
    ],
    ['srv:x', "--discovery (KV_DISCOVERY) 'srv:x' is not supported"],
    ['dns:', "--discovery: '' is not a valid DNS name"],
    ['dns:a..b', "--discovery: 'a..b' is not a valid DNS name"],
    ['dns:a b', "--discovery: 'a b' is not a valid DNS name"],
    ['dns:-a.b', "--discovery: '-a.b' is not a valid DNS name"],
  ])('rejects %j', (spec, message) => {
    const err = thrown(() => parseDiscovery(spec));
    expect(err.code).toBe('KV_ERR_INVALID_ARGUMENT');
    expect(err.message).toContain(`membership: ${message}`);
  });
});

describe('dnsSource options', () => {
  it('describes itself and rejects bad options at once', () => {
    expect(dnsSource({ name: 'svc.local.', defaultPeerPort: 7946 }).description).toBe(
      'dns:svc.local',
    );
    const servers = ['127.0.0.1:5353'];
    expect(dnsSource({ name: 'svc.local', defaultPeerPort: 1, servers }).description).toBe(
      'dns:svc.local@127.0.0.1:5353',
    );
    expect(thrown(() => dnsSource({ name: 'a b', defaultPeerPort: 1 })).message).toContain(
      "dns source: 'a b' is not a valid DNS name",
    );
    expect(thrown(() => dnsSource({ name: 'x', defaultPeerPort: 0 })).message).toContain(
      'invalid peer port 0',
    );
    const bad = ['not an address'];
    expect(thrown(() => dnsSource({ name: 'x', defaultPeerPort: 1, servers: bad })).message).toBe(
      'membership: dns source: invalid servers ["not an address"]',
    );
  });
});

describe('reverseName', () => {
  it('builds in-addr.arpa and ip6.arpa names', () => {
    expect(reverseName('10.1.2.3')).toBe('3.2.1.10.in-addr.arpa');
    expect(reverseName('::1')).toBe(`1.${'0.'.repeat(31)}ip6.arpa`);
    expect(reverseName('2001:DB8::567:89ab')).toBe(
      'b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa',
    );
    expect(reverseName('::ffff:10.0.0.1')).toBe(
      `1.0.0.0.0.0.a.0.f.f.f.f.${'0.'.repeat(20)}ip6.arpa`,
    );
  });
});
