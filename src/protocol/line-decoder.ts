// Incremental splitter of a byte stream into lines, bounded in memory.

import { ByteParts } from './byte-parts.ts';

/** One unit the decoder produced from the stream. */
export type LineFrame =
  /** A complete line without its `\n` and without one trailing `\r`. */
  | { readonly kind: 'line'; readonly line: Buffer }
  /** A line longer than the limit; its bytes were discarded up to and including its `\n`. */
  | { readonly kind: 'too_long'; readonly bytes: number };

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits bytes into lines terminated by `\n` (a `\r` before it is removed). Pure: no I/O, no
 * timers; the caller pushes chunks split anywhere and gets the same frames whatever the split.
 * Never holds more than `maxLineBytes + 1` bytes of an unfinished line: a longer line is
 * discarded as it arrives and reported once, as `too_long`, when its `\n` comes.
 */
export class LineDecoder {
  /** Read as each chunk arrives: a change applies from the next byte held. */
  maxLineBytes: number;
  readonly #held = new ByteParts();
  #discarding = false;
  #discarded = 0;

  constructor(maxLineBytes: number) {
    this.maxLineBytes = maxLineBytes;
  }

  /** Bytes of the unfinished line held in memory (0 while discarding an over-long line). */
  get bufferedBytes(): number {
    return this.#held.bytes;
  }

  /** True when a line has started but its `\n` has not arrived yet. */
  get midLine(): boolean {
    return this.#held.bytes > 0 || this.#discarding;
  }

  /** Feeds one chunk; calls `onFrame` for every frame it completes, in stream order. */
  push(chunk: Buffer, onFrame: (frame: LineFrame) => void): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(LF, start);
      if (nl === -1) {
        this.#hold(chunk, start, chunk.length);
        return;
      }
      if (this.#discarding) {
        const bytes = this.#discarded + (nl - start);
        this.#discarding = false;
        this.#discarded = 0;
        onFrame({ kind: 'too_long', bytes });
      } else {
        const line = this.#take(chunk, start, nl);
        if (line.length > this.maxLineBytes) onFrame({ kind: 'too_long', bytes: line.length });
        else onFrame({ kind: 'line', line });
      }
      start = nl + 1;
    }
  }

  /** Forgets any unfinished line (the peer went away mid-line). */
  reset(): void {
    this.#held.clear();
    this.#discarding = false;
    this.#discarded = 0;
  }

  #hold(chunk: Buffer, from: number, to: number): void {
    const n = to - from;
    if (this.#discarding) {
      this.#discarded += n;
      return;
    }
    // One byte of slack: the `\r` of a `\r\n` ending arrives before we know it is one.
    if (this.#held.bytes + n > this.maxLineBytes + 1) {
      this.#discarding = true;
      this.#discarded = this.#held.bytes + n;
      this.#held.clear();
      return;
    }
    this.#held.add(chunk, from, to);
  }

  #take(chunk: Buffer, from: number, nl: number): Buffer {
    const line =
      this.#held.bytes === 0 ? chunk.subarray(from, nl) : this.#held.take(chunk.subarray(from, nl));
    return line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, -1) : line;
  }
}
