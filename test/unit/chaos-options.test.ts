// The chaos run's command line: flags, bounds, and names that are not options.

import { describe, expect, it } from 'vitest';
import { DEFAULT_OPTIONS, parseOptions } from '../chaos/options.ts';

describe('chaos options', () => {
  it('reads the switches; lost volumes are off unless asked for', () => {
    const o = parseOptions(['--seed', '7', '--lose-volumes', '--reuse-name']);
    expect(o).toMatchObject({ seed: 7, loseVolumes: true, reuseName: true, keep: false });
    expect(parseOptions(['--seed', '7'])).toMatchObject({ loseVolumes: false });
    expect(DEFAULT_OPTIONS.loseVolumes).toBe(false);
    expect(parseOptions(['--help'])).toBe('help');
  });

  it('refuses unknown options, names of Object.prototype included, and out-of-range numbers', () => {
    for (const bad of [['--lose-volume'], ['toString'], ['constructor', '5'], ['--nodes', '6']]) {
      expect(() => parseOptions(bad), bad.join(' ')).toThrow(/chaos: /);
    }
  });
});
