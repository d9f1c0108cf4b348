// retransmitting() finds a connection's own line of the kernel's /proc/net/tcp{,6} by both of its
// ends, addresses and ports, as procNetAddress writes them (checked against real sockets here).

import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer, Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { procNetAddress } from '../../src/net/address.ts';
import { retransmitting } from '../../src/peer/socket.ts';

const opened: (Server | Socket)[] = [];
afterEach(() => {
  for (const o of opened.splice(0)) o instanceof Server ? o.close() : o.destroy();
});

async function pair(listenHost: string, connectHost: string): Promise<Socket> {
  const server = createServer((s) => opened.push(s));
  opened.push(server);
  server.listen(0, listenHost);
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const socket = connect(port, connectHost);
  opened.push(socket);
  await once(socket, 'connect');
  return socket;
}

function hasIPv6Loopback(): boolean {
  try {
    return readFileSync('/proc/net/if_inet6', 'latin1').includes(
      '00000000000000000000000000000001',
    );
  } catch {
    return false;
  }
}

describe('procNetAddress', () => {
  it('writes addresses as the kernel does', () => {
    expect(procNetAddress('127.0.0.1', 8081)).toBe('0100007F:1F91');
    expect(procNetAddress('10.1.2.3', 7946)).toBe('0302010A:1F0A');
    expect(procNetAddress('::1', 80)).toBe('00000000000000000000000001000000:0050');
    expect(procNetAddress('::ffff:127.0.0.1', 1)).toBe('0000000000000000FFFF00000100007F:0001');
  });

  it("names an IPv4 connection's own line of /proc/net/tcp, both ends", async () => {
    const socket = await pair('127.0.0.1', '127.0.0.1');
    const line = ` ${procNetAddress(socket.localAddress!, socket.localPort!)} ${procNetAddress(socket.remoteAddress!, socket.remotePort!)} `;
    expect(readFileSync('/proc/net/tcp', 'latin1')).toContain(line);
    // Found, and nothing unacknowledged on a live loopback connection.
    expect(await retransmitting(socket)).toBe(false);
    // Another connection to the same server: its own line, not the first one's.
    const other = connect(socket.remotePort!, '127.0.0.1');
    opened.push(other);
    await once(other, 'connect');
    expect(await retransmitting(other)).toBe(false);
  });

  it.runIf(hasIPv6Loopback())(
    'names IPv6 and IPv4-mapped connections in /proc/net/tcp6',
    async () => {
      const v6 = await pair('::1', '::1');
      expect(await retransmitting(v6)).toBe(false);
      const mapped = await pair('::', '127.0.0.1');
      // The accepting side of a dual-stack listener sees its client as ::ffff:127.0.0.1.
      const [accepted] = opened.filter(
        (o): o is Socket => o instanceof Socket && o.localPort === mapped.remotePort,
      );
      expect(accepted?.remoteAddress).toBe('::ffff:127.0.0.1');
      expect(await retransmitting(accepted!)).toBe(false);
    },
  );

  it('says nothing of a connection the kernel no longer lists', async () => {
    const socket = await pair('127.0.0.1', '127.0.0.1');
    const { localAddress, localPort, remoteAddress, remotePort } = socket;
    socket.destroy();
    const gone = { localAddress, localPort, remoteAddress, remotePort: remotePort! + 1 } as Socket;
    expect(await retransmitting(gone)).toBe(null);
  });
});
