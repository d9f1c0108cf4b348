// Ending the process when a thread of libuv's pool may never return (a sync of a hung disk).

/**
 * Exits with `code`. process.exit waits for every thread of libuv's pool (libuv's shutdown joins
 * them), and one blocked in a sync of a hung disk never returns: with `stuck` (disk work still
 * out) the process image is replaced instead by a node that exits with `code` at once, which ends
 * every other thread (execve), so the process ends within its stop bound whatever the disk does.
 * The 'exit' listeners run first, as process.exit runs them. Nothing the pool was still to write
 * is written: the logger writes stdout from the event loop's thread (createLogger) for this.
 */
export function exitProcess(code: number, stuck: boolean): never {
  if (stuck) {
    // What process.exit does first: its 'exit' listeners run.
    process.exitCode = code;
    try {
      process.emit('exit', code);
    } catch {
      // A listener that fails must not keep the process from ending.
    }
    try {
      process.execve?.(process.execPath, [process.execPath, '-e', `process.exit(${code})`], {});
    } catch {
      // No execve: a fatal signal ends the threads too, without the code.
    }
    process.kill(process.pid, 'SIGKILL');
  }
  process.exit(code);
}
