/**
 * The quality gate: a new version must meet the config's floors (macro-F1, recall of every
 * class) and may not trail the current release's accuracy by more than a margin.
 */
import type { LabelledMetrics, ModelMetrics } from '../schemas.ts';

export interface GateInput {
  accuracy: number;
  /** Accuracy of the current release on the same held-out rows; undefined for a first version. */
  baselineAccuracy?: number;
  margin: number;
  /** The candidate's held-out metrics, for the floors below. */
  metrics?: Pick<ModelMetrics, 'macroF1' | 'perClass'>;
  /** Macro-F1 the candidate needs on the held-out rows. */
  minMacroF1?: number;
  /** Recall every class needs (one number), or per class name (classes not named: none). */
  minRecall?: number | Readonly<Record<string, number>>;
}

export interface GateDecision {
  passed: boolean;
  reason: string;
}

export function gateDecision(input: GateInput): GateDecision {
  const floors = floorFailures(input);
  if (floors.length > 0) return { passed: false, reason: `below the config's floor: ${floors.join('; ')}` };
  const { accuracy, baselineAccuracy, margin } = input;
  if (baselineAccuracy === undefined) {
    return { passed: true, reason: 'first version of this model: nothing to compare with' };
  }
  const scores = `new accuracy ${accuracy.toFixed(4)} vs current release ${baselineAccuracy.toFixed(4)} (margin ${margin})`;
  return accuracy + margin + 1e-12 >= baselineAccuracy
    ? { passed: true, reason: scores }
    : { passed: false, reason: `worse than the current release: ${scores}` };
}

/** Each floor the candidate misses, as "macro-F1 0.6100 < gateMinMacroF1 0.7". */
function floorFailures({ metrics, minMacroF1, minRecall }: GateInput): string[] {
  const failures: string[] = [];
  if (minMacroF1 !== undefined) {
    const macroF1 = metrics?.macroF1 ?? 0;
    if (macroF1 + 1e-12 < minMacroF1)
      failures.push(`macro-F1 ${macroF1.toFixed(4)} < gateMinMacroF1 ${minMacroF1}`);
  }
  if (minRecall !== undefined) {
    const perClass = metrics?.perClass ?? {};
    const wanted =
      typeof minRecall === 'number'
        ? Object.keys(perClass).map((name) => [name, minRecall] as const)
        : Object.entries(minRecall);
    for (const [name, floor] of wanted) {
      const recall = perClass[name]?.recall ?? 0;
      if (recall + 1e-12 < floor)
        failures.push(`recall of class '${name}' ${recall.toFixed(4)} < gateMinRecall ${floor}`);
    }
  }
  return failures;
}

export interface AnomalyGateInput {
  /** The candidate's share of held-out normal results over its threshold, and the quantile it was set at. */
  falseAlarmRate: number;
  quantile: number;
  testRows: number;
  /** The current release's false-alarm rate on the same held-out rows; undefined for a first version. */
  baselineRate?: number;
  /** Absolute: how much more often than the release the candidate may alarm on normal rows. */
  margin: number;
  /** The candidate against labelled event ranges (events.csv), when there were any. */
  labelled?: Pick<LabelledMetrics, 'recall' | 'ranges'>;
  /** gateMinEventRecall: the event recall the candidate needs; applied only with labelled ranges. */
  minEventRecall?: number;
}

/**
 * The anomaly gate: on held-out normal rows the candidate may alarm at most three times as
 * often as its quantile allows (or on three rows, whichever is more: a small split cannot
 * measure a 0.1% rate), and no more than `gateMargin` more often than the current release.
 */
export function anomalyGateDecision(input: AnomalyGateInput): GateDecision {
  const { falseAlarmRate, quantile, testRows, baselineRate, margin, labelled, minEventRecall } = input;
  if (labelled && minEventRecall !== undefined && labelled.recall + 1e-12 < minEventRecall)
    return {
      passed: false,
      reason: `below the config's floor: event recall ${labelled.recall.toFixed(4)} on ${labelled.ranges} labelled range(s) < gateMinEventRecall ${minEventRecall}`,
    };
  const allowed = Math.max(3 * (1 - quantile), 3 / Math.max(1, testRows));
  const rate = (r: number) => `${(r * 100).toFixed(2)}%`;
  if (falseAlarmRate > allowed + 1e-12)
    return {
      passed: false,
      reason: `alarms on ${rate(falseAlarmRate)} of held-out normal rows, over the ${rate(allowed)} its threshold allows (quantile ${quantile})`,
    };
  // What a passing reason says of the event-recall floor: met, or not applicable.
  const floor =
    minEventRecall === undefined
      ? ''
      : labelled
        ? `; event recall ${labelled.recall.toFixed(4)} on ${labelled.ranges} labelled range(s) >= gateMinEventRecall ${minEventRecall}`
        : `; gateMinEventRecall ${minEventRecall} not applied: no labelled event ranges`;
  if (baselineRate === undefined)
    return {
      passed: true,
      reason: `first version: alarms on ${rate(falseAlarmRate)} of held-out normal rows${floor}`,
    };
  const scores = `false alarms on ${rate(falseAlarmRate)} of held-out normal rows vs ${rate(baselineRate)} for the current release (margin ${margin})`;
  return falseAlarmRate <= baselineRate + margin + 1e-12
    ? { passed: true, reason: `${scores}${floor}` }
    : { passed: false, reason: `worse than the current release: ${scores}` };
}

export interface RegressionGateInput {
  /** The candidate's held-out RMSE, and the training mean's on the same rows. */
  rmse: number;
  meanRmse: number;
  /** The current release's RMSE on the same held-out rows; undefined for a first version. */
  baselineRmse?: number;
  /** Relative: the candidate's RMSE may exceed the release's by at most this share. */
  margin: number;
  maxRmse?: number;
}

/**
 * The regression gate. `gateMargin` keeps the classifier's meaning (how much worse a new
 * version may be, here relative to the release's RMSE), so one config reads the same for
 * every task. A first version must beat always predicting the training mean.
 */
export function regressionGateDecision(input: RegressionGateInput): GateDecision {
  const { rmse, meanRmse, baselineRmse, margin, maxRmse } = input;
  if (maxRmse !== undefined && rmse > maxRmse + 1e-12)
    return { passed: false, reason: `below the config's floor: RMSE ${fmt(rmse)} > gateMaxRmse ${maxRmse}` };
  if (baselineRmse === undefined) {
    const scores = `RMSE ${fmt(rmse)} vs ${fmt(meanRmse)} for always predicting the training mean`;
    return rmse < meanRmse
      ? { passed: true, reason: `first version of this model: ${scores}` }
      : { passed: false, reason: `learned nothing the training mean does not know: ${scores}` };
  }
  const scores = `new RMSE ${fmt(rmse)} vs current release ${fmt(baselineRmse)} (margin ${margin}, relative)`;
  return rmse <= baselineRmse * (1 + margin) + 1e-12
    ? { passed: true, reason: scores }
    : { passed: false, reason: `worse than the current release: ${scores}` };
}

function fmt(value: number): string {
  return Number(value.toPrecision(5)).toString();
}
