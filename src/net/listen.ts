// Binding a listener: resolves once it listens, rejects with the bind error (port taken, bad address).

import type { Server } from 'node:net';

/** Starts `server` on host:port; a failure to bind rejects instead of emitting 'error'. */
export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
