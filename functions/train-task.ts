/**
 * The train step on the managed engine (AWS Batch on Fargate, started by the state machine
 * with `.sync`): the same image and the same `trainManaged` step, with the run state in
 * EDGELOOP_STATE. Exit 0 when the outcome is stored (a rejection included), 1 on a failure,
 * so Batch and Step Functions see a failure as one and retry it.
 */
import { trainingDepsFromEnv } from './training/deps.ts';
import type { TrainingRunState } from './training/state.ts';
import { createTrainingSteps } from './training/steps.ts';

const steps = createTrainingSteps(trainingDepsFromEnv());
try {
  const input = process.env.EDGELOOP_STATE;
  if (!input) throw new Error('environment variable EDGELOOP_STATE is not set');
  const state = JSON.parse(input) as TrainingRunState;
  await steps.trainManaged(state);
  process.exitCode = 0;
} catch (error) {
  console.error(
    JSON.stringify({ level: 'ERROR', message: 'managed train step failed', error: String(error) }),
  );
  process.exitCode = 1;
}
