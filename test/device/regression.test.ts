/**
 * A regression model on the gateway: probation on its golden values, every reading answered
 * with the trainer's own value (replay and POST /infer), its truth carried, and the fleet's
 * cells giving the same RMSE the trainer's metrics give on the same readings.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releasedManifest } from '../../bench/support/released-manifest.ts';
import { Engine } from '../../device/model/engine.ts';
import { loadModelFromBytes, probationFailure } from '../../device/model/model.ts';
import { hardValue } from '../../device/results/hard-examples.ts';
import { Outbox } from '../../device/results/outbox.ts';
import { ResultStream } from '../../device/results/result-writer.ts';
import { loadCsvFile, runCsvReplay, startInferServer } from '../../device/sources/sources.ts';
import { cellsByMinute, emptyCell, mergeCells, summarizeCell } from '../../shared/aggregation/aggregate.ts';
import { checkResults } from '../../shared/aggregation/decode.ts';
import { cellFromWire, cellToWire } from '../../shared/aggregation/summary-cells.ts';
import { parseDataset } from '../../shared/dataset.ts';
import { feedbackLine } from '../../shared/feedback.ts';
import { transformRows } from '../../shared/preprocess.ts';
import { type InferenceResult, type Manifest, TrainingConfigSchema } from '../../shared/schemas.ts';
import { targetValue } from '../../shared/target.ts';
import { regressionMetrics } from '../../shared/training/metrics.ts';
import { loadModelFromArtifacts, predictProbabilities } from '../../shared/training/model.ts';
import { seededRandom } from '../../shared/training/random.ts';
import { type TrainingOutcome, trainFromCsv } from '../../shared/training/train.ts';
import { postInfer } from './helpers.ts';

/** A line's energy draw in kWh per cycle, from load and speed, `;`-separated as plants export. */
function energyCsv(rows: number, seed: number): string {
  const random = seededRandom(seed);
  const lines = ['ts;load;speed;kwh'];
  for (let i = 0; i < rows; i++) {
    const load = random() * 10;
    const speed = random() * 4 - 2;
    const kwh = 20 + 3 * load + 4 * speed * speed + (random() - 0.5) * 2;
    lines.push(
      `${new Date(Date.UTC(2026, 10, 1) + i * 60_000).toISOString()};${load.toFixed(3)};${speed.toFixed(3)};${kwh.toFixed(3)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

let outcome: TrainingOutcome;
let manifest: Manifest;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeloop-regression-device-'));
  const config = TrainingConfigSchema.parse({
    task: 'regression',
    label: 'kwh',
    features: ['load', 'speed'],
    epochs: 40,
    tuning: { candidates: 2, refit: false },
  });
  outcome = await trainFromCsv(energyCsv(800, 1), config);
  manifest = releasedManifest(outcome, { model: 'line' });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function trainerValueOf(row: Record<string, string>): Promise<number> {
  const model = await loadModelFromArtifacts(outcome.artifacts.modelJson, outcome.artifacts.weights);
  const pre = outcome.preprocessing;
  const output = predictProbabilities(model, transformRows(pre, [row]), pre.inputWidth)[0] as number;
  model.dispose();
  return targetValue(output, pre.target as NonNullable<typeof pre.target>);
}

/** The trainer's values for a file's rows: its reader, transform, model and target scale. */
async function trainerValues(text: string): Promise<{ values: number[]; truth: number[] }> {
  const dataset = parseDataset(text, { task: 'regression', label: 'kwh' });
  const model = await loadModelFromArtifacts(outcome.artifacts.modelJson, outcome.artifacts.weights);
  const pre = outcome.preprocessing;
  const outputs = predictProbabilities(model, transformRows(pre, dataset.rows), pre.inputWidth);
  model.dispose();
  const scale = pre.target as NonNullable<typeof pre.target>;
  return { values: Array.from(outputs, (o) => targetValue(o, scale)), truth: dataset.y };
}

describe('a regression model on the gateway', () => {
  it('passes probation and answers every replayed reading with the trainer value and its truth', async () => {
    // Prepare: a file of readings the model never saw.
    const text = energyCsv(300, 7);
    const file = join(dir, 'next.csv');
    await writeFile(file, text);
    const model = await loadModelFromBytes(outcome.artifacts.modelJson, outcome.artifacts.weights, manifest);
    expect(probationFailure(model)).toBeUndefined();
    const engine = new Engine();
    engine.setModel(model);
    const outboxDir = join(dir, 'outbox');
    const outbox = await Outbox.open(outboxDir);
    const batcher = new ResultStream(outbox, { thing: 'gw', model: 'line' });
    const rows = loadCsvFile(file);

    // Act
    await runCsvReplay(rows, { limit: rows.length }, 0, {
      thing: 'gw',
      engine,
      batcher,
      labelColumn: () => 'kwh',
      stopped: () => false,
      chunk: 64,
    });
    await batcher.close();
    engine.dispose();
    const reopened = await Outbox.open(outboxDir);
    const results: InferenceResult[] = [];
    for (let batch = reopened.take(); batch; batch = reopened.take())
      results.push(...(JSON.parse((await reopened.readResults(batch)).toString()) as InferenceResult[]));

    // Assess: one result per reading, each the trainer's value (7 significant digits), no class.
    const trainer = await trainerValues(text);
    expect(results).toHaveLength(300);
    results.forEach((result, i) => {
      expect(result.label).toBeUndefined();
      expect(result.confidence).toBeUndefined();
      expect(result.value).toBeCloseTo(trainer.values[i] as number, 3);
      expect(Number(result.truth)).toBeCloseTo(trainer.truth[i] as number, 6);
    });
    // The cloud accepts them for a regression model and refuses them for a classifier.
    const checked = checkResults(results, { receivedAt: Date.now(), labels: [], task: 'regression' });
    expect(checked.results).toHaveLength(300);
    const asClassifier = checkResults(results.slice(0, 1), {
      receivedAt: Date.now(),
      labels: ['a', 'b'],
      task: 'classification',
    });
    expect(asClassifier.rejected[0]?.reason).toBe(
      'results.0: this model is a classifier: its results carry a label, not a value',
    );
    // Live RMSE from the fleet's cells (through the summary wire form) equals the trainer's RMSE
    // on the same readings.
    const total = emptyCell();
    for (const { cell } of cellsByMinute(checked.results, 0.6))
      mergeCells(total, cellFromWire(cellToWire(0, cell)));
    const summary = summarizeCell(total);
    const offline = regressionMetrics(trainer.truth, trainer.values, 0);
    expect(summary.liveAccuracy).toBeNull();
    expect(summary.labelled).toBe(300);
    expect(summary.liveRmse).toBeCloseTo(offline.rmse, 3);
    expect(summary.liveMae).toBeCloseTo(offline.mae, 3);
    expect(summary.valueMean).toBeCloseTo(trainer.values.reduce((a, b) => a + b, 0) / 300, 3);
  });

  it('answers POST /infer with a value', async () => {
    const model = await loadModelFromBytes(outcome.artifacts.modelJson, outcome.artifacts.weights, manifest);
    const engine = new Engine();
    engine.setModel(model);
    const answered: InferenceResult[] = [];
    let id = 0;
    const server = await startInferServer(0, {
      engine,
      onResult: (result) => answered.push(result),
      nextId: () => `gw:${id++}`,
      labelColumn: () => 'kwh',
      status: () => ({}),
    });
    try {
      const reading = { load: 5, speed: 1, kwh: '40.5' };
      const { status, body } = await postInfer(server.port, reading);
      const expected = await trainerValueOf({ load: '5', speed: '1' });
      expect(status).toBe(200);
      expect(body.value).toBeCloseTo(expected, 3);
      expect(body.label).toBeUndefined();
      expect(answered[0]?.truth).toBe('40.5');
    } finally {
      await server.close();
      engine.dispose();
    }
  });
});

describe("a regression model's hard examples", () => {
  it('are values outside the training targets, or more than 3 held-out RMSEs from the truth', () => {
    const hard = hardValue(manifest);
    const rmse = manifest.metrics.regression?.rmse ?? 0;
    const targets = energyCsv(800, 1)
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => Number(line.split(';')[3]));
    const [low, high] = [Math.min(...targets), Math.max(...targets)];
    expect(hard(low * 0.5, undefined)).toBe(true);
    expect(hard(high * 1.5, undefined)).toBe(true);
    const middle = (low + high) / 2;
    expect(hard(middle, undefined)).toBe(false);
    expect(hard(middle, String(middle + 2 * rmse))).toBe(false);
    expect(hard(middle, String(middle + 4 * rmse))).toBe(true);
    expect(hard(middle, 'n/a')).toBe(false);
    // The feedback line keeps the value as the prediction and leaves confidence empty.
    expect(
      feedbackLine(
        { id: 'gw:1', ts: 5, thing: 'gw', version: 1, predicted: '41.5', features: { load: 5, speed: 1 } },
        ['load', 'speed'],
      ),
    ).toBe('gw:1,5,gw,1,41.5,,5,1,');
  });
});
