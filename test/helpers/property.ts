// Run settings of the property tests (fast-check). The seed is fixed unless asked otherwise, so
// that `npm test` is the same run each time and a red CI is a finding, not a coin toss:
// OVERLAYFWD_PROPERTY_SEED=random searches afresh (a failure prints its seed and path), a number
// replays that seed, and OVERLAYFWD_PROPERTY_RUNS multiplies the runs for a longer search.

const DEFAULT_SEED = 20261202;

export const PROPERTY_SCALE = Math.max(1, Number(process.env.OVERLAYFWD_PROPERTY_RUNS ?? 1) || 1);

function seed(): number | undefined {
  const v = process.env.OVERLAYFWD_PROPERTY_SEED;
  if (v === 'random') return undefined;
  if (v !== undefined && /^-?\d+$/.test(v)) return Number(v);
  return DEFAULT_SEED;
}

/** fast-check parameters for `n` runs (times OVERLAYFWD_PROPERTY_RUNS), with the seed. */
export function runs(n: number): { numRuns: number; seed?: number } {
  const s = seed();
  return s === undefined ? { numRuns: n * PROPERTY_SCALE } : { numRuns: n * PROPERTY_SCALE, seed: s };
}
