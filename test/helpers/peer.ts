// A peer server and client on loopback for transport tests, each closed when the test ends.

import { createLogger } from '../../src/observability/index.ts';
import {
  PeerClient,
  type PeerClientOptions,
  type PeerHandler,
  PeerServer,
  type PeerServerOptions,
} from '../../src/peer/index.ts';
import { defer } from './defer.ts';

const logger = createLogger('silent', {});

/** A PeerServer on 127.0.0.1, a free port, with `handler`; closed when the test ends. */
export async function peerServer(
  handler: PeerHandler,
  opts: Partial<PeerServerOptions> = {},
): Promise<PeerServer> {
  const s = await PeerServer.start({ host: '127.0.0.1', port: 0, handler, logger, ...opts });
  defer(() => s.close());
  return s;
}

/** A PeerClient of 127.0.0.1:`port`; closed when the test ends. */
export function peerClient(port: number, opts: Partial<PeerClientOptions> = {}): PeerClient {
  const c = new PeerClient({ address: `127.0.0.1:${port}`, logger, ...opts });
  defer(() => c.close());
  return c;
}
