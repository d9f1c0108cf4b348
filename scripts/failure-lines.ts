// What a failed test run printed that says why: vitest's failure summary, else the run's last lines.
// scripts/test-suites.ts prints it again once both runs have ended.

import { stripVTControlCharacters } from 'node:util';

/** Lines printed again per failed run, at most. */
const SUMMARY_LINES = 120;
/** Lines kept of each failure in the summary: its name, its error, the start of its diff or stack. */
const FAILURE_LINES = 16;
/** Lines kept from a failed run that printed no failure summary (it crashed or was killed). */
const TAIL_LINES = 40;
const SUMMARY_START = /⎯⎯ (Failed Tests|Unhandled Errors?|Failed Suites)\b/;
/** A failure's first line in vitest's summary, or another section's heading. */
const FAILURE_START = /^\s*FAIL\s|⎯⎯ /;

/**
 * Keeps what a run printed that says why it failed: from its summary's start, the first lines of
 * each failure (a long diff does not push the next failures out), else its tail.
 */
export class FailureLines {
  #summary: string[] | null = null;
  #inFailure = 0;
  #tail: string[] = [];

  add(line: string): void {
    const plain = stripVTControlCharacters(line);
    if (this.#summary === null && SUMMARY_START.test(plain)) this.#summary = [];
    if (this.#summary === null) {
      this.#tail.push(line);
      if (this.#tail.length > TAIL_LINES) this.#tail.shift();
      return;
    }
    if (FAILURE_START.test(plain)) this.#inFailure = 0;
    if (this.#summary.length >= SUMMARY_LINES) return;
    const at = this.#inFailure++;
    if (at < FAILURE_LINES) this.#summary.push(line);
    else if (at === FAILURE_LINES) this.#summary.push('  …');
  }

  lines(): readonly string[] {
    return this.#summary ?? this.#tail;
  }
}
