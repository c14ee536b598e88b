/**
 * Where the train step runs: in the Lambda function, or on the managed engine (AWS Batch on
 * Fargate, through Step Functions' `.sync` integration) for datasets beyond what Lambda's 15
 * minutes fit. Config `engine` forces one; `auto` picks by the dataset's stored size.
 */
import type { TrainingConfig } from '../../shared/schemas.ts';

export type TrainEngine = 'lambda' | 'managed';

/** Datasets above this many bytes train on the managed engine under `engine: auto`. */
export const MANAGED_ABOVE_BYTES = 256 * 1024 * 1024;

export function chooseEngine(
  datasetBytes: number | undefined,
  config: Pick<TrainingConfig, 'engine' | 'managedAboveMb'> | undefined,
): TrainEngine {
  const wanted = config?.engine ?? 'auto';
  if (wanted !== 'auto') return wanted;
  const limit =
    config?.managedAboveMb !== undefined ? config.managedAboveMb * 1024 * 1024 : MANAGED_ABOVE_BYTES;
  return (datasetBytes ?? 0) > limit ? 'managed' : 'lambda';
}
