// The order of bench/ab.ts's runs and how their numbers are summed up: pure functions, so that
// what makes an A/B fair is tested without timing (test/unit/bench-ab-plan.test.ts).
//
// Why a warm-up before every measured run: a node that sat idle for a whole 2 s interval trims
// its heap (src/node/heap-trim.ts: a last-resort full collection that also shrinks the young
// generation, and Storage.idle), and its next load pays for growing back. Which target sat idle
// depended on its position: the other target's SET P1 run (4-9 s on this machine) idles the one
// waiting, and A waited through B's fill before round 0. An A/A (the same build twice) measured
// B/A GET P1 CPU per request 0.77-0.92 in round 0 over 5 runs (A trimmed, B just filled), a median
// of 1.00 in the other rounds; the run's first GETs also compile the read path. The warm-up (the
// same cell on the same target, unmeasured, right before) takes the trim and the compilation, so
// each measured run starts from a busy node.

/** One step of an A/B: a run of `cell` on `target` in `round`, measured or a warm-up. */
export interface Step<T, C> {
  readonly round: number;
  readonly cell: C;
  readonly target: T;
  readonly measured: boolean;
}

/**
 * The runs of `rounds` rounds: each runs every cell on every target in turn, every other round
 * with the first two targets (A and B) swapped and any after them (Redis yardsticks) reversed;
 * with `warmup`, each measured run comes right after a warm-up run of the same cell on the same
 * target. A and B take the first and the second place in half the rounds each: reversing all
 * three targets instead kept B in the middle, always right after another target's run, and an
 * A/A measured B 1.06x (SET P1) and 1.14x (SET P16) for its place alone (s36-h2).
 */
export function abPlan<T, C>(
  targets: readonly T[],
  cells: readonly C[],
  rounds: number,
  warmup: boolean,
): Step<T, C>[] {
  const steps: Step<T, C>[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? targets : swapFirstTwo(targets);
    for (const cell of cells) {
      for (const target of order) {
        if (warmup) steps.push({ round, cell, target, measured: false });
        steps.push({ round, cell, target, measured: true });
      }
    }
  }
  return steps;
}

/** `targets` with its first two swapped and the rest reversed. */
function swapFirstTwo<T>(targets: readonly T[]): T[] {
  if (targets.length < 2) return [...targets];
  return [targets[1]!, targets[0]!, ...targets.slice(2).reverse()];
}

/** The median; of an even count, the mean of the middle two (not the upper one: that leans up). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of nothing');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** B/A of each round: `b[i] / a[i]`, the two measured back to back in round i. */
export function perRoundRatios(a: readonly number[], b: readonly number[]): number[] {
  if (a.length !== b.length) throw new Error(`rounds differ: A ${a.length}, B ${b.length}`);
  return b.map((x, i) => x / a[i]!);
}
