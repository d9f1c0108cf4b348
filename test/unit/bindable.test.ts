// checkBindable: the start's port check binds and lets go, whatever connects meanwhile.

import { pbkdf2 } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { expect, it } from 'vitest';
import { checkBindable } from '../../src/net/index.ts';
import { defer } from '../helpers/defer.ts';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Connects to 127.0.0.1:port as soon as something listens there (refused: tries again). */
async function connectOnceListening(port: number, deadline: number): Promise<Socket> {
  for (;;) {
    const socket = await new Promise<Socket | null>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => resolve(s));
      s.once('error', () => resolve(null));
    });
    if (socket !== null) return socket;
    if (Date.now() > deadline) throw new Error(`nothing listened on ${port}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

it('ends although a client connected to a port while it was held (the node would otherwise never start)', async () => {
  const [a, b] = [await freePort(), await freePort()];
  // The second address is a name: its lookup waits for a libuv thread, all kept busy, so the
  // first port listens for as long, and a client (a peer or a client retrying) connects to it.
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const busy = Array.from(
    { length: threads },
    () => new Promise((r) => pbkdf2('k', 's', 400_000, 32, 'sha256', r)),
  );
  const check = checkBindable([
    { option: '--port', host: '127.0.0.1', port: a },
    { option: '--http-port', host: 'localhost', port: b },
  ]);
  const client = await connectOnceListening(a, Date.now() + 10_000);
  defer(() => client.destroy());
  // The client keeps its connection open (it waits for an answer, as a client would). Once the
  // threads are free the check ends; before, it never did (30 s: a hang, not a machine's speed).
  await Promise.all(busy);
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([
    check.then(() => 'ended'),
    new Promise((r) => {
      timer = setTimeout(r, 30_000, 'still running 30 s after the threads were free');
    }),
  ]);
  clearTimeout(timer);
  expect(ended).toBe('ended');
  // The port is free again for the node's own listener.
  await checkBindable([{ option: '--port', host: '127.0.0.1', port: a }]);
});
