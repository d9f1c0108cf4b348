// The chaos run's command line: flags, bounds, and names that are not options.

import { describe, expect, it } from 'vitest';
import { DEFAULT_OPTIONS, parseOptions } from '../chaos/options.ts';
import { Values } from '../chaos/workload.ts';

describe('chaos options', () => {
  it('reads the switches; lost volumes are off unless asked for', () => {
    const o = parseOptions(['--seed', '7', '--lose-volumes', '--reuse-name']);
    expect(o).toMatchObject({ seed: 7, loseVolumes: true, reuseName: true, keep: false });
    expect(parseOptions(['--seed', '7'])).toMatchObject({ loseVolumes: false });
    expect(DEFAULT_OPTIONS.loseVolumes).toBe(false);
    expect(parseOptions(['--every-fault-first'])).toMatchObject({ everyFaultFirst: true });
    expect(DEFAULT_OPTIONS.everyFaultFirst).toBe(false);
    expect(parseOptions(['--restart-faulted'])).toMatchObject({ restartFaulted: true });
    expect(DEFAULT_OPTIONS.restartFaulted).toBe(false);
    expect(parseOptions(['--nodes', '7'])).toMatchObject({ nodes: 7 });
    expect(parseOptions(['--partial-splits', '--expiring-writes'])).toMatchObject({
      partialSplits: true,
      expiringWrites: true,
    });
    expect([DEFAULT_OPTIONS.partialSplits, DEFAULT_OPTIONS.expiringWrites]).toEqual([false, false]);
    expect(parseOptions(['--one-way-links'])).toMatchObject({ oneWayLinks: true });
    expect(DEFAULT_OPTIONS.oneWayLinks).toBe(false);
    expect(parseOptions(['--help'])).toBe('help');
  });

  it("takes the nodes' quorums, 2 and 2 unless asked, and only quorums that overlap with W >= 2", () => {
    expect(DEFAULT_OPTIONS).toMatchObject({ readQuorum: 2, writeQuorum: 2 });
    expect(parseOptions(['--read-quorum', '1', '--write-quorum', '3'])).toMatchObject({
      readQuorum: 1,
      writeQuorum: 3,
    });
    expect(parseOptions(['--read-quorum', '3'])).toMatchObject({ readQuorum: 3, writeQuorum: 2 });
    for (const bad of [
      ['--read-quorum', '1'],
      ['--write-quorum', '1', '--read-quorum', '3'],
      ['--read-quorum', '4', '--write-quorum', '3'],
    ]) {
      expect(() => parseOptions(bad), bad.join(' ')).toThrow(/chaos: /);
    }
  });

  it('refuses unknown options, names of Object.prototype included, and out-of-range numbers', () => {
    for (const bad of [
      ['--lose-volume'],
      ['toString'],
      ['constructor', '5'],
      ['--nodes', '8'],
      ['--nodes', '2'],
      ['--value-bytes', '1000001'],
    ]) {
      expect(() => parseOptions(bad), bad.join(' ')).toThrow(/chaos: /);
    }
  });

  it('pads values to --value-bytes, and reads back the id, or a corrupt mark', () => {
    expect(parseOptions(['--value-bytes', '65536'])).toMatchObject({ valueBytes: 65536 });
    expect(DEFAULT_OPTIONS.valueBytes).toBe(0);
    const none = new Values();
    expect(none.pad('c1-2')).toBe('c1-2');
    expect(none.unpad('c1-2')).toBe('c1-2');
    const values = new Values(1000);
    const [a, b] = [values.pad('c1-2'), values.pad('c3-4')];
    expect([a.length, b.length]).toEqual([1000, 1000]);
    expect([values.unpad(a), values.unpad(b)]).toEqual(['c1-2', 'c3-4']);
    // Cut short, or another value's filling under this id (a mix of two writes).
    expect(values.unpad(a.slice(0, 999))).toBe('c1-2!corrupt');
    expect(values.unpad(`c1-2.${b.slice(5)}`)).toBe('c1-2!corrupt');
  });
});
