// How hard property tests search: a short run in `npm test`, a long one with `npm run fuzz`.

/** fast-check runs per property: FUZZ_RUNS from the environment, else the given default. */
export function fuzzRuns(quick: number): number {
  const n = Number(process.env.FUZZ_RUNS);
  return Number.isInteger(n) && n > 0 ? n : quick;
}
