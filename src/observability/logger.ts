// Structured JSON logs: a fixed message plus fields. Values are never logged, keys rarely.

import { type Logger, pino } from 'pino';

export type { Logger };

/** A JSON logger on stdout (or `destination`), with the node name on every line. */
export function createLogger(
  level: string,
  base: Record<string, unknown>,
  destination?: NodeJS.WritableStream,
): Logger {
  const opts = { level, base, timestamp: pino.stdTimeFunctions.isoTime };
  return destination ? pino(opts, destination) : pino(opts);
}
