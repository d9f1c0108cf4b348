// TLS handshakes in progress on the client port: bounded in time and in number.

import type { Socket } from 'node:net';

/** Time a client has to finish its TLS handshake (Node's default is 120 s). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Handshakes in progress at once; one more closes the one that began first. */
export const MAX_TLS_HANDSHAKES = 1024;

/**
 * The TCP connections of a TLS listener whose handshake has not finished. A handshake holds an
 * OpenSSL session and its buffers (about 42 KB measured), outside --max-connections, which
 * counts clients once they are connections. Before this bound, 10,000 connections that sent
 * half a ClientHello or nothing held 10,000 descriptors and 300 MiB for 120 s, also after their
 * clients went away. Past `max`, the one waiting longest is closed: a client that finishes its
 * handshake in milliseconds is closed only if `max` others began after it meanwhile.
 */
export class TlsHandshakes {
  readonly #max: number;
  readonly #onDrop: () => void;
  /** In the order they began. */
  readonly #pending = new Set<Socket>();

  constructor(max: number, onDrop: () => void) {
    this.#max = max;
    this.#onDrop = onDrop;
  }

  get size(): number {
    return this.#pending.size;
  }

  /** A TCP connection accepted, its handshake begins. */
  begin(socket: Socket): void {
    if (this.#pending.size >= this.#max) {
      const oldest = this.#pending.values().next().value!;
      this.#pending.delete(oldest);
      this.#onDrop();
      oldest.destroy();
    }
    this.#pending.add(socket);
    socket.once('close', () => this.#pending.delete(socket));
  }

  /**
   * The handshake on `tls` finished. node:tls keeps the TCP socket it wraps as `_parent`
   * (test/integration/tls-handshakes.test.ts checks that a served connection leaves the count).
   */
  done(tls: Socket): void {
    const parent = (tls as Socket & { _parent?: Socket })._parent;
    if (parent !== undefined) this.#pending.delete(parent);
  }
}
