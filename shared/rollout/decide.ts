/**
 * The rollout controller's decisions as pure functions: promote / roll back / wait for a
 * canary from the live numbers of the canary and the current version, and whether sustained
 * drift on a released version should start a retrain.
 */
import { valueDriftPsi } from '../aggregation/value-histogram.ts';
import type { RetrainPolicy, RolloutPlan } from '../schemas.ts';

/** What the aggregates say about one version (a subset of readModelStats' VersionStats). */
export interface LiveStats {
  inferences: number;
  lowConfidenceRate: number | null;
  liveAccuracy: number | null;
  labelled: number;
  /** Regression: live RMSE where truth arrived, and the predictions' histogram. */
  liveRmse?: number | null;
  valueHistogram?: [number, number][];
  /** Anomaly models: the share of results over the threshold. */
  anomalyRate?: number | null;
  /** Anomaly models: events opened since the canary started, and the gateway-hours they came from. */
  events?: { count: number; gatewayHours: number };
}

export interface RolloutInput {
  plan: RolloutPlan;
  canary: LiveStats | undefined;
  current: LiveStats | undefined;
  /** The current version's offline (test split) accuracy, used when it has no live truth. */
  currentOfflineAccuracy?: number;
  /** Regression: the current version's offline RMSE, used when it has no live truth. */
  currentOfflineRmse?: number;
  canaryStartedAtMs: number;
  nowMs: number;
}

export type RolloutDecision =
  | { decision: 'promote'; reason: string }
  | { decision: 'rollback'; reason: string }
  | { decision: 'wait'; reason: string };

const pct = (value: number) => `${(value * 100).toFixed(1)}%`;
const secs = (ms: number) => `${Math.round(ms / 1000)} s`;

/**
 * Rolls back as soon as enough canary results show it worse than the current version (low
 * confidence rate up by more than maxLowConfidenceDelta, or live accuracy down by more than
 * maxAccuracyDrop); promotes once it has minResults healthy results and ran minDurationMs;
 * rolls back when maxWaitMs passes without enough results.
 */
export function decideRollout(input: RolloutInput): RolloutDecision {
  const { plan, canary, current } = input;
  const elapsed = input.nowMs - input.canaryStartedAtMs;
  const results = canary?.inferences ?? 0;
  if (!canary || results < plan.minResults) {
    if (elapsed >= plan.maxWaitMs)
      return {
        decision: 'rollback',
        reason: `only ${results} of ${plan.minResults} canary results after ${secs(elapsed)} (maxWaitMs ${plan.maxWaitMs})`,
      };
    return { decision: 'wait', reason: `${results} of ${plan.minResults} canary results so far` };
  }

  const baseLowConfidence =
    current && current.inferences >= plan.minResults ? current.lowConfidenceRate : null;
  if (canary.lowConfidenceRate !== null && baseLowConfidence !== null) {
    const delta = canary.lowConfidenceRate - baseLowConfidence;
    if (delta > plan.maxLowConfidenceDelta)
      return {
        decision: 'rollback',
        reason: `low-confidence rate ${pct(canary.lowConfidenceRate)} vs ${pct(baseLowConfidence)} on the current version (+${pct(delta)} > ${pct(plan.maxLowConfidenceDelta)})`,
      };
  }

  const regression = regressionVerdict(input, canary);
  if (regression) return regression;
  const anomaly = anomalyVerdict(input, canary);
  if (anomaly) return anomaly;

  if (canary.liveAccuracy !== null && canary.labelled >= plan.minLabelled) {
    const liveBase =
      current && current.liveAccuracy !== null && current.labelled >= plan.minLabelled
        ? { accuracy: current.liveAccuracy, what: 'live on the current version' }
        : undefined;
    const base =
      liveBase ??
      (input.currentOfflineAccuracy !== undefined
        ? { accuracy: input.currentOfflineAccuracy, what: 'offline of the current version' }
        : undefined);
    if (base && base.accuracy - canary.liveAccuracy > plan.maxAccuracyDrop)
      return {
        decision: 'rollback',
        reason: `live accuracy ${pct(canary.liveAccuracy)} vs ${pct(base.accuracy)} ${base.what} (drop ${pct(base.accuracy - canary.liveAccuracy)} > ${pct(plan.maxAccuracyDrop)})`,
      };
  }

  if (elapsed < plan.minDurationMs)
    return {
      decision: 'wait',
      reason: `healthy so far (${results} results); promotion after ${secs(plan.minDurationMs)}, ${secs(elapsed)} elapsed`,
    };
  const accuracy = canary.liveAccuracy !== null ? `, live accuracy ${pct(canary.liveAccuracy)}` : '';
  const lowConfidence =
    canary.lowConfidenceRate !== null ? `, low-confidence rate ${pct(canary.lowConfidenceRate)}` : '';
  return {
    decision: 'promote',
    reason: `${results} healthy canary results over ${secs(elapsed)}${accuracy}${lowConfidence}`,
  };
}

/**
 * A regression canary: rolled back when its live RMSE exceeds the current version's (live,
 * else offline) by more than maxRmseIncrease; without enough truth, when its predictions'
 * distribution moved from the current version's by more than maxPredictionShiftPsi.
 */
function regressionVerdict(input: RolloutInput, canary: LiveStats): RolloutDecision | undefined {
  const { plan, current } = input;
  if (canary.liveRmse != null && canary.labelled >= plan.minLabelled) {
    const base =
      current?.liveRmse != null && current.labelled >= plan.minLabelled
        ? { rmse: current.liveRmse, what: 'live on the current version' }
        : input.currentOfflineRmse !== undefined
          ? { rmse: input.currentOfflineRmse, what: 'offline of the current version' }
          : undefined;
    if (base && canary.liveRmse > base.rmse * (1 + plan.maxRmseIncrease))
      return {
        decision: 'rollback',
        reason: `live RMSE ${fmt(canary.liveRmse)} vs ${fmt(base.rmse)} ${base.what} (+${pct(canary.liveRmse / base.rmse - 1)} > ${pct(plan.maxRmseIncrease)})`,
      };
    return undefined;
  }
  if (!canary.valueHistogram || !current?.valueHistogram || current.inferences < plan.minResults)
    return undefined;
  const psi = valueDriftPsi(
    Object.fromEntries(current.valueHistogram),
    Object.fromEntries(canary.valueHistogram),
  );
  if (psi !== null && psi > plan.maxPredictionShiftPsi)
    return {
      decision: 'rollback',
      reason: `predictions moved from the current version's: PSI ${psi.toFixed(3)} > ${plan.maxPredictionShiftPsi} (no live truth to judge them by)`,
    };
  return undefined;
}

/** Events a gateway-hour a canary must open beyond the current version's before its ratio counts (one in ten hours). */
const MIN_EVENT_RATE_EXCESS = 0.1;
/** Canary events needed before their rate decides anything. */
const MIN_CANARY_EVENTS = 3;

/**
 * Events per gateway-hour, the canary's against the current version's over the same time: the
 * alarms people get. A canary that opens more than maxAnomalyRateRatio times as many (and at
 * least one more per ten gateway-hours) is rolled back.
 */
function eventVerdict(
  plan: RolloutPlan,
  canary: LiveStats['events'],
  current: LiveStats['events'],
): RolloutDecision | undefined {
  if (!canary || !current || canary.gatewayHours <= 0 || current.gatewayHours <= 0) return undefined;
  if (canary.count < MIN_CANARY_EVENTS) return undefined;
  const rate = canary.count / canary.gatewayHours;
  const base = current.count / current.gatewayHours;
  if (rate <= Math.max(base * plan.maxAnomalyRateRatio, base + MIN_EVENT_RATE_EXCESS)) return undefined;
  return {
    decision: 'rollback',
    reason: `anomaly events ${rate.toFixed(2)} a gateway-hour vs ${base.toFixed(2)} on the current version (more than ${plan.maxAnomalyRateRatio}x)`,
  };
}

/** The smallest excess of a canary's anomaly rate that counts: one point, so a few results do not decide. */
const MIN_ANOMALY_RATE_EXCESS = 0.01;

/**
 * An anomaly canary: rolled back when it flags far more results than the current version over
 * the same minutes (the machines are the same, so the difference is the model's).
 */
function anomalyVerdict(input: RolloutInput, canary: LiveStats): RolloutDecision | undefined {
  const { plan, current } = input;
  const events = eventVerdict(plan, canary.events, current?.events);
  if (events) return events;
  if (canary.anomalyRate == null || current?.anomalyRate == null || current.inferences < plan.minResults)
    return undefined;
  const limit = Math.max(
    current.anomalyRate * plan.maxAnomalyRateRatio,
    current.anomalyRate + MIN_ANOMALY_RATE_EXCESS,
  );
  if (canary.anomalyRate <= limit) return undefined;
  return {
    decision: 'rollback',
    reason: `anomaly rate ${pct(canary.anomalyRate)} vs ${pct(current.anomalyRate)} on the current version (more than ${plan.maxAnomalyRateRatio}x)`,
  };
}

const fmt = (value: number) => Number(value.toPrecision(4)).toString();

export interface DriftInput {
  policy: RetrainPolicy;
  /** PSI over the policy's window; null when there were no results. */
  psi: number | null;
  /** When drift was first seen above the threshold (still ongoing), if it was. */
  sinceMs: number | undefined;
  lastRetrainAtMs: number | undefined;
  labelledFeedbackRows: number;
  nowMs: number;
}

export interface DriftDecision {
  retrain: boolean;
  /** The new `since`: undefined when drift is below the threshold. */
  sinceMs: number | undefined;
  reason: string;
}

/** Retrain when drift held at or above driftPsi for sustainMs, with labelled feedback, outside the cooldown. */
export function decideRetrain(input: DriftInput): DriftDecision {
  const { policy, psi, nowMs } = input;
  if (psi === null || psi < policy.driftPsi)
    return {
      retrain: false,
      sinceMs: undefined,
      reason: psi === null ? 'no recent results' : `PSI ${psi.toFixed(3)} < ${policy.driftPsi}`,
    };
  const sinceMs = input.sinceMs ?? nowMs;
  const held = nowMs - sinceMs;
  if (held < policy.sustainMs)
    return { retrain: false, sinceMs, reason: `drifting for ${secs(held)} of ${secs(policy.sustainMs)}` };
  if (input.lastRetrainAtMs !== undefined && nowMs - input.lastRetrainAtMs < policy.cooldownMs)
    return { retrain: false, sinceMs, reason: 'a retrain started within the cooldown' };
  if (input.labelledFeedbackRows < policy.minFeedbackRows)
    return {
      retrain: false,
      sinceMs,
      reason: `drift sustained but only ${input.labelledFeedbackRows} labelled feedback rows (need ${policy.minFeedbackRows})`,
    };
  return {
    retrain: true,
    sinceMs: undefined,
    reason: `PSI ${psi.toFixed(3)} >= ${policy.driftPsi} for ${secs(held)} with ${input.labelledFeedbackRows} labelled feedback rows`,
  };
}
