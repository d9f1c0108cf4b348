// lifecycle: what every entry point shares about starting and stopping a process.

export { exitProcess } from './exit.ts';
export { EXIT_STORAGE_FAILED, startFailure } from './failure.ts';
export { randomHex } from './random.ts';
export { FORCE_GRACE_MS, onStopSignals, type SignalNotice } from './signals.ts';
export { armWatchdog, noteStage, startWatchdog, type WatchdogOptions } from './watchdog.ts';
