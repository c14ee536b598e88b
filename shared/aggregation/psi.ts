/**
 * Population Stability Index between the class distribution a model was trained on and the
 * distribution it sees live. Common reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25
 * significant drift.
 */

/** Shares below this are floored so that a class missing on one side gives a finite PSI. */
export const PSI_EPSILON = 1e-4;

export const DRIFT_THRESHOLDS = { moderate: 0.1, significant: 0.25 } as const;

/**
 * PSI = sum over classes of (live - expected) * ln(live / expected), with shares floored at
 * epsilon. `expected` holds shares (they are renormalised), `liveCounts` raw counts. Classes
 * seen live but absent from training count as expected share epsilon. Null when nothing live.
 */
export function populationStabilityIndex(
  expected: Readonly<Record<string, number>>,
  liveCounts: Readonly<Record<string, number>>,
  epsilon = PSI_EPSILON,
): number | null {
  const liveTotal = Object.values(liveCounts).reduce((sum, count) => sum + count, 0);
  if (liveTotal <= 0) return null;
  const expectedTotal = Object.values(expected).reduce((sum, share) => sum + share, 0);
  const classes = new Set([...Object.keys(expected), ...Object.keys(liveCounts)]);
  let psi = 0;
  for (const name of classes) {
    const e = Math.max(expectedTotal > 0 ? (expected[name] ?? 0) / expectedTotal : 0, epsilon);
    const a = Math.max((liveCounts[name] ?? 0) / liveTotal, epsilon);
    psi += (a - e) * Math.log(a / e);
  }
  return psi;
}

export type DriftLevel = 'stable' | 'moderate' | 'significant';

export function driftLevel(psi: number): DriftLevel {
  if (psi >= DRIFT_THRESHOLDS.significant) return 'significant';
  if (psi >= DRIFT_THRESHOLDS.moderate) return 'moderate';
  return 'stable';
}
