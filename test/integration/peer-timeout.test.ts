// A peer request whose answer arrived within its timeout is answered, however late this process's
// event loop gets to it (a machine at load 30: a timer and the socket's data both due at once).

import { afterEach, describe, expect, it } from 'vitest';
import { cleanup } from '../helpers/node-process.ts';
import { peerClient, peerServer } from '../helpers/peer.ts';

afterEach(cleanup);

/** Keeps this thread busy (no timer, no I/O runs) until `until` (performance.now() time). */
function busyUntil(until: number): void {
  while (performance.now() < until) {
    // a process starved of CPU: nothing of the event loop runs meanwhile
  }
}

describe('a peer request', () => {
  it('is answered when its answer came in time and the event loop was busy past the timeout', async () => {
    const timeoutMs = 300;
    let sentAt = 0;
    // The server answers at once; right after (the answer is in the client's socket, not read
    // yet), this process is held busy past the request's timeout.
    const server = await peerServer((method, body) => {
      if (method === 'late') setImmediate(() => busyUntil(sentAt + timeoutMs + 200));
      return body;
    });
    const client = peerClient(server.port, { timeoutMs });
    expect(await client.request('warm', 1)).toBe(1); // connected, handshake done
    for (let i = 0; i < 5; i++) {
      sentAt = performance.now();
      // Before: the expired timer ran before the socket's data was read: PEER_TIMEOUT.
      expect(await client.request('late', i)).toBe(i);
    }
  });
});
