import { describe, expect, it } from 'vitest';
import { LogThrottle } from '../../src/observability/index.ts';

describe('LogThrottle', () => {
  it('lets one event a period through, with the count of those it skipped since', () => {
    let now = 10_000;
    const t = new LogThrottle(1000, () => now);
    expect(t.take()).toBe(0);
    expect([t.take(), t.take(), t.take()]).toEqual([-1, -1, -1]);
    now += 999;
    expect(t.take()).toBe(-1);
    now += 1;
    expect(t.take()).toBe(4);
    now += 5000;
    expect(t.take()).toBe(0);
  });
});
