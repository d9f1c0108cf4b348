// bench/ab-plan.ts: the order of bench/ab.ts's runs (what makes an A/B fair) and its medians.

import { describe, expect, it } from 'vitest';
import { abPlan, median, perRoundRatios } from '../../bench/ab-plan.ts';

const cells = ['GET P1', 'SET P1', 'GET P16'];

describe('abPlan', () => {
  const steps = abPlan(['A', 'B'], cells, 4, true);
  const measured = steps.filter((s) => s.measured);

  it('measures every cell on every target once a round', () => {
    expect(measured).toHaveLength(4 * cells.length * 2);
    for (let round = 0; round < 4; round++) {
      const inRound = measured.filter((s) => s.round === round).map((s) => `${s.cell} ${s.target}`);
      expect(inRound.sort()).toEqual(cells.flatMap((c) => [`${c} A`, `${c} B`]).sort());
    }
  });

  it('puts each target first in a cell in half of the rounds: A in even rounds, B in odd', () => {
    for (const cell of cells) {
      const firsts = [0, 1, 2, 3].map(
        (round) => measured.find((s) => s.round === round && s.cell === cell)!.target,
      );
      expect(firsts).toEqual(['A', 'B', 'A', 'B']);
    }
  });

  it('runs a warm-up of the same cell on the same target right before each measured run', () => {
    // Without it, what a target did just before depended on its position: A sat idle through
    // B's fill before round 0, the target waiting through the other's SET P1 run trimmed its heap.
    steps.forEach((s, i) => {
      if (!s.measured) return;
      expect(steps[i - 1]).toEqual({ ...s, measured: false });
    });
    expect(steps.filter((s) => !s.measured)).toHaveLength(measured.length);
  });

  it('has no warm-ups when asked for none, and the same measured runs', () => {
    const bare = abPlan(['A', 'B'], cells, 4, false);
    expect(bare.every((s) => s.measured)).toBe(true);
    expect(bare).toEqual(measured);
  });

  it('gives A and B each place in half the rounds, yardsticks after them', () => {
    // Reversing [A, B, Redis] kept B in the middle of every round (s36-h2: B/A 1.06-1.14 in an A/A).
    const four = abPlan(['A', 'B', 'Redis', 'Redis always'], ['GET P1'], 2, false).map(
      (s) => s.target,
    );
    expect(four).toEqual(['A', 'B', 'Redis', 'Redis always', 'B', 'A', 'Redis always', 'Redis']);
    const rounds = abPlan(['A', 'B', 'Redis'], ['GET P1'], 4, false);
    for (const target of ['A', 'B']) {
      const places = [0, 1, 2, 3].map((round) =>
        rounds.filter((s) => s.round === round).findIndex((s) => s.target === target),
      );
      expect(places.sort()).toEqual([0, 0, 1, 1]);
    }
  });
});

describe('median', () => {
  it('is the middle value of an odd count, whatever the order', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([5])).toBe(5);
  });

  it('is the mean of the middle two of an even count, not the upper one', () => {
    // Four rounds' B/A: taking the upper middle (1.03) leaned every reported ratio up.
    expect(median([0.77, 1.08, 0.95, 1.03])).toBeCloseTo(0.99, 10);
    expect(median([1, 2])).toBe(1.5);
  });

  it('refuses nothing', () => {
    expect(() => median([])).toThrow(/median of nothing/);
  });
});

describe('perRoundRatios', () => {
  it('divides B by A round by round', () => {
    expect(perRoundRatios([2, 4, 5], [1, 4, 10])).toEqual([0.5, 1, 2]);
  });

  it('refuses rounds that do not pair up', () => {
    expect(() => perRoundRatios([1, 2], [1])).toThrow(/rounds differ/);
  });
});
