/**
 * One Lambda handler per training step, for the CDK Step Functions state machine:
 * validate (input: the EventBridge "Object Created" event) -> Choice on `skipped` -> train
 * -> gate -> Choice on `gate.passed` -> publish -> notify; every task Catches into
 * recordFailure with ResultPath `$.error`.
 */
import { trainingDepsFromEnv } from './training/deps.ts';
import type { TrainingRunState } from './training/state.ts';
import { createTrainingSteps, newRunState } from './training/steps.ts';

const steps = createTrainingSteps(trainingDepsFromEnv());

function isRunState(event: unknown): event is TrainingRunState {
  return typeof event === 'object' && event !== null && 'runId' in event && 'startedAt' in event;
}

export const validate = (event: unknown) => steps.validate(isRunState(event) ? event : newRunState(event));
export const train = (state: TrainingRunState) => steps.train(state);
export const collectTrain = (state: TrainingRunState) => steps.collectTrain(state);
export const gate = (state: TrainingRunState) => steps.gate(state);
export const publish = (state: TrainingRunState) => steps.publish(state);
export const notify = (state: TrainingRunState) => steps.notify(state);
export const recordFailure = (state: TrainingRunState) => steps.recordFailure(state);
