// Structured JSON logs: a fixed message plus fields. Values are never logged, keys rarely.

import { type Logger, pino } from 'pino';

export type { Logger };

const pad = (n: number, width: number) => String(n).padStart(width, '0');

/**
 * `new Date(ms).toISOString()`, from the UTC fields: the same text for every time a log line can
 * carry (years 0 to 9999). V8's toISOString looks up the local time zone first, and the first
 * lookup loads ICU's time zone code and data (about 1 MiB of the node binary's pages, resident
 * from then on) in a process that never uses local time.
 */
export function isoTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${pad(d.getUTCMilliseconds(), 3)}Z`;
}

/** pino's `timestamp` option: what pino.stdTimeFunctions.isoTime writes, through isoTime(). */
const timestamp = () => `,"time":"${isoTime(Date.now())}"`;

/**
 * A JSON logger on stdout (or `destination`), with the node name on every line.
 *
 * Stdout is written synchronously, from the thread that logs. pino's default destination writes
 * through libuv's thread pool, which a hung disk can fill with syncs that never return: the
 * lines a node most needs to say (its disk stalled, its stop overran) then never came out, and a
 * line still queued there was lost when the process ended by replacing its image (exitProcess).
 * A node logs events, never requests, so a write per line costs nothing that shows.
 */
export function createLogger(
  level: string,
  base: Record<string, unknown>,
  destination?: NodeJS.WritableStream,
): Logger {
  const opts = { level, base, timestamp };
  if (destination) return pino(opts, destination);
  // A logger that never writes (tests' in-process peers) leaves the process's stdout as it is.
  if (level !== 'silent') blockingStdout();
  return pino(opts, pino.destination({ dest: 1, sync: true }));
}

/**
 * Puts stdout's descriptor in blocking mode. A synchronous write to a pipe or socket that is full
 * then waits in the kernel until the reader takes bytes (microseconds for a reader that keeps
 * up, as long as it does not for one that stopped: the node waits with it, as any program that
 * writes its stdout). In non-blocking mode the write fails with EAGAIN and the destination
 * sleeps 100 ms before it tries again, holding the event loop that long at each full pipe; and
 * Node sets that mode as soon as something opens process.stdout on a pipe (a Worker whose
 * stdout is not its own does: the watchdog), on the descriptor the node may share with others.
 */
function blockingStdout(): void {
  const stdout = process.stdout as NodeJS.WriteStream & {
    _handle?: { setBlocking?: (blocking: boolean) => number };
  };
  stdout._handle?.setBlocking?.(true);
}
