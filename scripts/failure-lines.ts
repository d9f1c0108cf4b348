// What a failed test run printed that says why: vitest's failure summary, else the run's last lines.
// scripts/test-suites.ts prints it again once both runs have ended.

/** Lines printed again per failed run, at most: the first failures in full. */
const SUMMARY_LINES = 80;
/** Lines kept from a failed run that printed no failure summary (it crashed or was killed). */
const TAIL_LINES = 40;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the terminal's colour codes
const ANSI = /\x1b\[[0-9;]*m/g;
const SUMMARY_START = /⎯⎯ (Failed Tests|Unhandled Errors?|Failed Suites)\b/;

/** Keeps what a run printed that says why it failed: from its summary's start, else its tail. */
export class FailureLines {
  #summary: string[] | null = null;
  #tail: string[] = [];

  add(line: string): void {
    if (this.#summary === null && SUMMARY_START.test(line.replace(ANSI, ''))) this.#summary = [];
    if (this.#summary !== null) {
      if (this.#summary.length < SUMMARY_LINES) this.#summary.push(line);
      return;
    }
    this.#tail.push(line);
    if (this.#tail.length > TAIL_LINES) this.#tail.shift();
  }

  lines(): readonly string[] {
    return this.#summary ?? this.#tail;
  }
}
