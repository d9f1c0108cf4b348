// lifecycle: what every entry point shares about starting and stopping a process.

export { startFailure } from './failure.ts';
export { FORCE_SIGNALS, onStopSignals, type SignalNotice } from './signals.ts';
