// Stop signals: the first SIGTERM/SIGINT starts a drain; a repeat within a grace period is the
// same stop, a later one forces exit.

import { exitProcess } from './exit.ts';
import { noteStopTaken } from './watchdog.ts';

/**
 * A repeated stop signal this soon after the first (ms) is taken as the same stop: one Ctrl-C
 * often arrives twice (the terminal signals the process group and a supervisor forwards its
 * own). A signal after it forces exit.
 */
export const FORCE_GRACE_MS = 1000;

/** What a repeated signal means: `repeat` (the drain goes on) or `forced` (exit 1 follows). */
export type SignalNotice = (
  kind: 'repeat' | 'forced',
  signal: NodeJS.Signals,
  count: number,
) => void;

/**
 * Installs SIGTERM and SIGINT handlers and resolves with the first signal. Install it before
 * start-up, so a signal during start is not the default immediate exit.
 *
 * A second signal within FORCE_GRACE_MS of the first does not cut the drain short (the drain is
 * bounded by --shutdown-timeout-ms anyway); any signal after that, e.g. a second Ctrl-C, exits
 * at once with code 1 after `notice`.
 */
export function onStopSignals(notice: SignalNotice): Promise<NodeJS.Signals> {
  const { promise, resolve } = Promise.withResolvers<NodeJS.Signals>();
  let count = 0;
  let first = 0;
  const handler = (signal: NodeJS.Signals) => {
    // The watchdog counts what the event loop took (a copy it got and the loop did not take is
    // held for a loop the disk blocks).
    noteStopTaken();
    count++;
    if (count === 1) {
      first = performance.now();
      return resolve(signal);
    }
    if (performance.now() - first < FORCE_GRACE_MS) return notice('repeat', signal, count);
    notice('forced', signal, count);
    // Now: not after a thread blocked on a hung disk (exitProcess).
    exitProcess(1, true);
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return promise;
}
