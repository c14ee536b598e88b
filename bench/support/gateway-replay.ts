/**
 * A trained anomaly outcome as a gateway runs it on a CSV of readings: the released manifest,
 * the loaded model's probation verdict, its results and the events its rule opens.
 */
import { loadModelFromBytes, probationFailure } from '../../device/model/model.ts';
import { anomalyEvents, scoreReadings } from '../../device/score.ts';
import { parseCsvReadings } from '../../shared/dataset/readings.ts';
import type { TrainingOutcome } from '../../shared/training/train.ts';
import { releasedManifest } from './released-manifest.ts';

export async function gatewayReplay(outcome: TrainingOutcome, csv: string) {
  const manifest = releasedManifest(outcome, { model: 'pumps' });
  const model = await loadModelFromBytes(outcome.artifacts.modelJson, outcome.artifacts.weights, manifest);
  const failure = probationFailure(model);
  const readings = parseCsvReadings(csv, 'faulty: ').rows;
  // scoreReadings disposes the model with its engine.
  const { results } = await scoreReadings(model, readings);
  return { manifest, failure, readings, results, events: anomalyEvents(results, manifest).events };
}
