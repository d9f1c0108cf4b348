// What one HTTP connection may ask at once, and /metrics rendered once for the requests that
// arrive together.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Requests one connection may have in progress at once (pipelined: sent before the answers to
 * the earlier ones). Prometheus, the kubelet and browsers send one at a time.
 */
export const MAX_PIPELINED_REQUESTS = 8;

const inProgress = new WeakMap<Socket, number>();

/**
 * True when `req` may be served. False when its connection already has `max` requests in
 * progress: the connection is closed, and what it sent after them is never answered. Node parses
 * every request of a read before the first is answered and keeps each answer until the ones
 * before it went out, so before this bound one read of 2,000 pipelined `GET /metrics` (68 KB)
 * made a node render all 2,000 and hold their 61 KB answers: +280 MiB resident, nothing sent
 * for 10 s (test/integration/http-pipeline.test.ts).
 */
export function admit(req: IncomingMessage, res: ServerResponse, max = MAX_PIPELINED_REQUESTS) {
  const socket = req.socket;
  const n = (inProgress.get(socket) ?? 0) + 1;
  if (n > max) {
    socket.destroy();
    return false;
  }
  inProgress.set(socket, n);
  res.once('close', () => inProgress.set(socket, (inProgress.get(socket) ?? 1) - 1));
  return true;
}

/**
 * `render`, shared by the calls made while one is in progress: requests that arrive together
 * (several scrapers, pipelined requests) get the same text from one rendering.
 */
export function shared<T>(render: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  return () => {
    running ??= render().finally(() => {
      running = null;
    });
    return running;
  };
}
