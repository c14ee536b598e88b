/** The quality gate: a new version may not trail the current release by more than a margin. */
export interface GateInput {
  accuracy: number;
  /** Accuracy of the current release on the same held-out rows; undefined for a first version. */
  baselineAccuracy?: number;
  margin: number;
}

export interface GateDecision {
  passed: boolean;
  reason: string;
}

export function gateDecision({ accuracy, baselineAccuracy, margin }: GateInput): GateDecision {
  if (baselineAccuracy === undefined) {
    return { passed: true, reason: 'first version of this model: nothing to compare with' };
  }
  const scores = `new accuracy ${accuracy.toFixed(4)} vs current release ${baselineAccuracy.toFixed(4)} (margin ${margin})`;
  return accuracy + margin + 1e-12 >= baselineAccuracy
    ? { passed: true, reason: scores }
    : { passed: false, reason: `worse than the current release: ${scores}` };
}
