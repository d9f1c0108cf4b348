// A plain TCP socket's output without the Writable stream's work per write, while the stream
// holds nothing: one write(2) on the socket's file descriptor, and only what the kernel did not
// take goes through the stream.

import { writeSync } from 'node:fs';
import type { Socket } from 'node:net';

/**
 * Writes from this size on always go through the stream: it counts such a write whole in
 * writableLength until the kernel took all of it, which is what the client output bound
 * (server/client-output.ts) counts as held (a client that stops reading holds its large replies
 * there). A reply of a GET P1 or P16 turn is far smaller.
 */
export const DIRECT_MAX_BYTES = 64 * 1024;

/** Where a socket written directly keeps its descriptor and the bytes the kernel took so. */
const DIRECT = Symbol('kvstore.directWrites');

interface Direct {
  readonly fd: number;
  /** Bytes the kernel took through writeDirect (Node's own counts do not see them). */
  sent: number;
}

interface SocketInternals {
  [DIRECT]?: Direct;
  readonly _handle?: { readonly fd?: unknown } | null;
  /** Restarts the socket's idle timeout, as each stream write does (lib/net.js). */
  readonly _unrefTimer?: () => void;
}

/**
 * Lets writeDirect() write `socket` itself: a plain TCP socket (not TLS) whose handle has a file
 * descriptor (not on Windows). Otherwise writeDirect() uses the stream, as socket.write().
 */
export function directWrites(socket: Socket): void {
  const s = socket as Socket & SocketInternals;
  const fd = s._handle?.fd;
  if ((socket as { encrypted?: boolean }).encrypted === true) return;
  if (typeof fd !== 'number' || fd < 0) return;
  s[DIRECT] = { fd, sent: 0 };
}

/**
 * Writes `buf[start, end)` to `socket`, in order after everything written before. A write under
 * DIRECT_MAX_BYTES while the socket's stream holds nothing (writableLength 0, the common case:
 * the kernel took every earlier byte) is one write(2) on the descriptor: no WriteWrap, view,
 * nextTick or stream bookkeeping per write, which at GET P1 is most of what a reply's write
 * costs in JavaScript.
 * What the kernel does not take (a full socket buffer: EAGAIN, or a part), and any write while
 * the stream holds bytes, goes through socket.write() as before, so writableLength, 'drain' and
 * the stream's errors (EPIPE, a reset) work as they did: a write that fails here is made again
 * by the stream, which meets the same error and reports it.
 *
 * Returns whether the stream kept a view of `buf` (the caller must not reuse those bytes).
 */
export function writeDirect(socket: Socket, buf: Buffer, start: number, end: number): boolean {
  const s = socket as Socket & SocketInternals;
  const direct = s[DIRECT];
  let at = start;
  // A closed handle (destroy() nulls it as it closes the descriptor, whose number the process
  // may then give to another file) is never written here.
  if (
    direct !== undefined &&
    end - start < DIRECT_MAX_BYTES &&
    socket.writableLength === 0 &&
    s._handle != null
  ) {
    let n = 0;
    try {
      n = writeSync(direct.fd, buf, at, end - at);
    } catch {
      // EAGAIN (the socket's buffer is full) or an error the stream will meet: it writes all.
    }
    direct.sent += n;
    at += n;
    if (n > 0) s._unrefTimer?.();
    if (at === end) return false;
  }
  socket.write(buf.subarray(at, end));
  return socket.writableLength > 0;
}

/** Bytes the kernel took from `socket` through writeDirect(). */
export function directBytes(socket: Socket): number {
  return (socket as Socket & SocketInternals)[DIRECT]?.sent ?? 0;
}
