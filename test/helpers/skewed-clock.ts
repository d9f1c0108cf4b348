// A node whose wall clock is off: preloaded with NODE_OPTIONS=--import=<this file>, it moves the
// process's Date (Date.now and new Date()) KV_TEST_CLOCK_SKEW_MS off the host's clock, as on a host
// that NTP no longer keeps in step. Imported without that variable (by a test), it changes nothing.

const skewVar = process.env.KV_TEST_CLOCK_SKEW_MS;

if (skewVar !== undefined) {
  const skew = Number(skewVar);
  const RealDate = Date;
  const realNow = RealDate.now.bind(RealDate);
  class SkewedDate extends RealDate {
    constructor(...args: [] | [string | number | Date]) {
      if (args.length === 0) super(realNow() + skew);
      else super(args[0]);
    }

    static override now(): number {
      return realNow() + skew;
    }
  }
  globalThis.Date = SkewedDate as DateConstructor;
}

/** The command prefix (startMember, restart) that starts a node with its clock `ms` off. */
export function skewedClock(ms: number): string[] {
  return ['env', `KV_TEST_CLOCK_SKEW_MS=${ms}`, `NODE_OPTIONS=--import=${import.meta.filename}`];
}
