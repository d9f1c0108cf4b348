import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { PeerSlots } from '../../src/peer/slots.ts';

const closed = (s: Socket) => new Promise<void>((r) => s.once('close', () => r()));

describe('PeerSlots', () => {
  it('at the limit closes the oldest unproven connection, never a proven one', async () => {
    const slots = new PeerSlots(3);
    const [a, b, c, d, e, f] = Array.from({ length: 6 }, () => new Socket());
    expect([a, b, c].map((s) => slots.open(s!))).toEqual(['open', 'open', 'open']);
    slots.prove(a!);
    expect(slots.open(d!)).toBe('evicted');
    expect([a!.destroyed, b!.destroyed, c!.destroyed]).toEqual([false, true, false]);
    // The slot is taken over at once, not when the evicted socket's close comes.
    expect(slots.held).toBe(3);
    expect(slots.unproven).toBe(2);
    await closed(b!);
    expect(slots.held).toBe(3);
    slots.prove(c!);
    slots.prove(d!);
    expect(slots.open(e!)).toBe('limit');
    expect(e!.destroyed).toBe(true);
    // A proven connection that leaves frees its slot.
    a!.destroy();
    await closed(a!);
    expect(slots.open(f!)).toBe('open');
    expect(slots.held).toBe(3);
    for (const s of [c, d, f]) s!.destroy();
    await Promise.all([c, d, f].map((s) => closed(s!)));
    expect([slots.held, slots.unproven]).toEqual([0, 0]);
  });
});
