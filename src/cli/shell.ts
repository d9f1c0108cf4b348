// kvctl shell: a readline session that sends protocol lines as typed and prints the replies.

import { createInterface } from 'node:readline';
import type { KvClient } from '../client/index.ts';
import type { CliOutput } from './commands.ts';

export interface ShellIo extends CliOutput {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

/** Lines sent and not yet printed before reading pauses (piped input is pipelined). */
const MAX_IN_FLIGHT = 1024;

/**
 * Reads lines from stdin and sends each to the node with `client.raw`, printing replies (ERR
 * replies included) in input order. Lines are sent as they are read, without waiting for the
 * previous reply, so a piped script runs pipelined. `exit`, `quit` (any case) or end of input
 * leave. Prompt `kvstore host:port> ` only on a terminal. Returns the exit code: 0, or 1 if any
 * line failed on the client side (timeout, connection closed; printed as `kvctl: <message>`).
 */
export function runShell(client: KvClient, io: ShellIo): Promise<number> {
  const terminal = io.stdin.isTTY === true;
  const rl = createInterface({ input: io.stdin, output: io.stdout, terminal });
  rl.setPrompt(`kvstore ${client.address}> `);
  let failed = false;
  let leaving = false;
  let inFlight = 0;
  let paused = false;
  let closed = false;
  let printed: Promise<void> = Promise.resolve();
  const prompt = () => {
    if (terminal && !leaving) rl.prompt();
  };

  rl.on('line', (line) => {
    if (leaving) return;
    const word = line.trim().toLowerCase();
    if (word === 'exit' || word === 'quit') {
      leaving = true;
      rl.close();
      return;
    }
    if (line.trim() === '') {
      printed = printed.then(prompt);
      return;
    }
    const reply = client.raw(line);
    reply.catch(() => {}); // handled in order below
    if (++inFlight >= MAX_IN_FLIGHT && !paused) {
      paused = true;
      rl.pause();
    }
    printed = printed.then(async () => {
      try {
        io.stdout.write(`${await reply}\n`);
      } catch (err) {
        failed = true;
        io.stderr.write(`kvctl: ${(err as Error).message}\n`);
      }
      if (--inFlight < MAX_IN_FLIGHT / 2 && paused && !closed) {
        paused = false;
        rl.resume();
      }
      prompt();
    });
  });

  rl.on('SIGINT', () => rl.close()); // Ctrl-C leaves, as on a terminal one expects
  return new Promise((resolve) => {
    rl.once('close', () => {
      leaving = true;
      closed = true;
      printed.then(() => resolve(failed ? 1 : 0));
    });
    prompt();
  });
}
