// Socket options both ends of a peer connection set: no Nagle delay, TCP keepalive.

import type { Socket } from 'node:net';

/** TCP keepalive probe delay for peer sockets, so a vanished host is noticed while idle. */
export const KEEPALIVE_MS = 10_000;

/** Small frames go out at once (no Nagle delay); an idle connection to a vanished host breaks. */
export function tunePeerSocket(socket: Socket): void {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, KEEPALIVE_MS);
}

/** The parts of a socket's libuv handle read here (Node internals; see unsentBytes). */
interface StreamHandle {
  readonly writeQueueSize?: number;
  /** A TLS socket's TLSWrap: the TCP handle under it. */
  readonly _parent?: StreamHandle;
}

/**
 * Bytes of `socket`'s current write requests the kernel has not taken yet (libuv's write queue:
 * it shrinks as the kernel takes each part of a write, under TLS on the TCP handle beneath), or
 * -1 when the handle does not say. Node's `writableLength` only shrinks when a whole write
 * request completes, and one request carries every frame queued while the previous one was out
 * (megabytes): on a slow link that is seconds without a visible change while bytes flow. Node's
 * own socket timeout reads the same field to tell a slow write from a stuck one.
 */
export function unsentBytes(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  const size = handle?._parent?.writeQueueSize ?? handle?.writeQueueSize;
  return typeof size === 'number' ? size : -1;
}
