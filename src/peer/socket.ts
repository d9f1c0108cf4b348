// Socket options both ends of a peer connection set: no Nagle delay, TCP keepalive.

import { isIPv4, type Socket } from 'node:net';
import { procNetAddress } from '../net/address.ts';
import { tcpLine } from './tcp-table.ts';

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

/**
 * Whether the kernel is resending bytes of `socket` that the other end has not acknowledged: its
 * line of /proc/net/tcp (tcp6 for IPv6) shows bytes unacknowledged and RESENT_TIMEOUTS
 * retransmission timeouts since the last acknowledgement, which a link that is down (or a host
 * that is gone) causes and a peer that is merely slow, stopped or busy does not (its kernel
 * acknowledges what it receives). Null when the kernel does not say (no procfs: another OS) or
 * the socket is not listed (closed meanwhile). The file lists every TCP socket of the network
 * namespace (thousands on a busy host): tcpLine reads it off the event loop, in pieces, up to
 * the socket's line, one scan at a time for every caller.
 */
export async function retransmitting(socket: Socket): Promise<boolean | null> {
  const f = await tcpFields(socket);
  // local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
  if (f === null || f.length < 6) return null;
  const unacked = Number.parseInt(f[3]!.split(':')[0]!, 16);
  const retransmits = Number.parseInt(f[5]!, 16);
  return unacked > 0 && retransmits >= RESENT_TIMEOUTS;
}

/**
 * Bytes the kernel took of `socket`'s and the other end has not acknowledged yet (its send queue,
 * sent or not: tx_queue of /proc/net/tcp), or null when the kernel does not say. The bytes taken
 * (see unsentBytes) less these are the bytes the other end's kernel has received: they grow as the
 * link carries them, whatever the buffers between hold.
 */
export async function unacknowledgedBytes(socket: Socket): Promise<number | null> {
  const f = await tcpFields(socket);
  if (f === null || f.length < 5) return null;
  const unacked = Number.parseInt(f[3]!.split(':')[0]!, 16);
  return Number.isFinite(unacked) ? unacked : null;
}

/** `socket`'s line of /proc/net/tcp (tcp6 for IPv6), split (tcpLine); null when not there. */
async function tcpFields(socket: Socket): Promise<string[] | null> {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (localAddress === undefined || localPort === undefined) return null;
  if (remoteAddress === undefined || remotePort === undefined) return null;
  // Both ends, addresses too: every member listens on the same peer port, and the kernel may give
  // one local port to connections to different members.
  return tcpLine(
    isIPv4(localAddress) ? '/proc/net/tcp' : '/proc/net/tcp6',
    procNetAddress(localAddress, localPort),
    procNetAddress(remoteAddress, remotePort),
  );
}

/**
 * Retransmission timeouts in a row, with no acknowledgement between them, that retransmitting()
 * takes for a path that is down: three are 1.4 s of silence from the other end's kernel at the
 * minimum timeout (0.2, 0.4, 0.8 s); a segment dropped once on a busy but live path (and resent,
 * and acknowledged) is one.
 */
const RESENT_TIMEOUTS = 3;
