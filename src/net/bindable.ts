// Whether the node's listen addresses can be bound, checked before it creates anything.

import { createServer, type Server } from 'node:net';
import { listen } from './listen.ts';

/** A listen address, and the option that names it (for the error). */
export interface ListenAddress {
  readonly option: string;
  readonly host: string;
  readonly port: number;
}

/**
 * Binds every address at once (so two options naming the same port fail too), then closes them:
 * rejects with the first bind error (EADDRINUSE, EADDRNOTAVAIL), its message prefixed with the
 * option that names the address. Port 0 (any free port) is not checked. A port taken between
 * this check and the node's own bind still fails that bind, later. A client that connects while a
 * port is held (one retrying, a peer) is disconnected at once: server.close() waits for every
 * connection it accepted to end, and one kept open would hold the start there.
 */
export async function checkBindable(addresses: readonly ListenAddress[]): Promise<void> {
  const servers: Server[] = [];
  try {
    for (const a of addresses) {
      if (a.port === 0) continue;
      const server = createServer({ pauseOnConnect: true }, (socket) => socket.destroy());
      try {
        await listen(server, a.port, a.host);
      } catch (err) {
        if (err instanceof Error) err.message = `${a.option} ${a.port}: ${err.message}`;
        throw err;
      }
      servers.push(server);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}
