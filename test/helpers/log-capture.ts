// A logger whose lines the test reads: createLogger over a stream that keeps each line.

import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/observability/index.ts';

export interface CapturedLog {
  readonly logger: Logger;
  /** Every line written, as written (JSON, newline included). */
  readonly lines: string[];
  /** The lines parsed. */
  records(): { msg?: string; [field: string]: unknown }[];
}

/** A logger at `level` that keeps what it writes. */
export function captureLog(level = 'info', base: Record<string, unknown> = {}): CapturedLog {
  const lines: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return {
    logger: createLogger(level, base, out),
    lines,
    records: () => lines.map((l) => JSON.parse(l)),
  };
}
