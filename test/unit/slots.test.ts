import { describe, expect, it } from 'vitest';
import { Slots } from '../../src/net/index.ts';

describe('Slots', () => {
  it('at the limit takes the slot of the oldest unproven connection, never a proven one', () => {
    const slots = new Slots<string>(3);
    expect(['a', 'b', 'c'].map((c) => slots.take(c).outcome)).toEqual(['open', 'open', 'open']);
    slots.prove('a');
    expect(slots.take('d')).toEqual({ outcome: 'evicted', evicted: 'b' });
    // The slot is taken over at once; the evicted one's later close frees nothing more.
    expect([slots.held, slots.unproven]).toEqual([3, 2]);
    slots.free('b');
    expect(slots.held).toBe(3);
    expect(slots.take('e')).toEqual({ outcome: 'evicted', evicted: 'c' });
    slots.prove('d');
    slots.prove('e');
    expect(slots.take('f')).toEqual({ outcome: 'limit' });
    expect(slots.held).toBe(3);
    // A proven connection that leaves frees its slot.
    slots.free('a');
    expect(slots.take('f')).toEqual({ outcome: 'open' });
    for (const c of ['d', 'e', 'f']) slots.free(c);
    expect([slots.held, slots.unproven]).toEqual([0, 0]);
  });
});
