// Stop signals: the first SIGTERM/SIGINT starts a drain, repeats are noted, the third forces exit.

/** Signals, counted from the first, at which the process exits at once with code 1. */
export const FORCE_SIGNALS = 3;

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
 * One Ctrl-C often arrives twice: the terminal signals the whole process group and a supervisor
 * (`npm run cluster`, a shell wrapper) forwards its own. So the second signal does not cut the
 * drain short (the drain is bounded by --shutdown-timeout-ms anyway); the third, e.g. a second
 * Ctrl-C, exits at once with code 1 after `notice`.
 */
export function onStopSignals(notice: SignalNotice): Promise<NodeJS.Signals> {
  const { promise, resolve } = Promise.withResolvers<NodeJS.Signals>();
  let count = 0;
  const handler = (signal: NodeJS.Signals) => {
    count++;
    if (count === 1) return resolve(signal);
    if (count < FORCE_SIGNALS) return notice('repeat', signal, count);
    notice('forced', signal, count);
    process.exit(1);
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return promise;
}
