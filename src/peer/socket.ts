// Socket options both ends of a peer connection set: no Nagle delay, TCP keepalive.

import type { Socket } from 'node:net';

/** TCP keepalive probe delay for peer sockets, so a vanished host is noticed while idle. */
export const KEEPALIVE_MS = 10_000;

/** Small frames go out at once (no Nagle delay); an idle connection to a vanished host breaks. */
export function tunePeerSocket(socket: Socket): void {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, KEEPALIVE_MS);
}
