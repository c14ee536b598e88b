/**
 * Training function (simple mode): every dataset upload event runs the whole chain
 * validate -> train -> gate -> publish -> notify in one invocation. The Step Functions
 * wiring runs the same steps one task each (functions/training-steps.ts).
 */
import { trainingDepsFromEnv } from './training/deps.ts';
import { datasetEventRecords } from './training/event.ts';
import { createTrainingSteps, runTraining } from './training/steps.ts';

const deps = trainingDepsFromEnv();
const steps = createTrainingSteps(deps);

export interface TrainRunSummary {
  runId: string;
  outcome: string;
  model?: string;
  version?: number;
  accuracy?: number;
  reason?: string;
}

export const handler = async (event: unknown): Promise<{ runs: TrainRunSummary[] }> => {
  const runs: TrainRunSummary[] = [];
  for (const record of datasetEventRecords(event)) {
    const state = await runTraining(record, steps);
    runs.push({
      runId: state.runId,
      outcome: state.outcome ?? 'unknown',
      ...(state.model ? { model: state.model } : {}),
      ...(state.version ? { version: state.version } : {}),
      ...(state.candidate ? { accuracy: state.candidate.manifest.metrics.accuracy } : {}),
      ...(state.reason || state.skipped ? { reason: state.reason ?? state.skipped } : {}),
    });
  }
  // An internal failure (not a rejection) fails the invocation so Lambda's retry can run it again.
  const failed = runs.find((run) => run.outcome === 'failed');
  if (failed) throw new Error(`training run ${failed.runId} failed: ${failed.reason}`);
  return { runs };
};
