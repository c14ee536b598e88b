/**
 * The gateway reads readings with the trainer's own rules (shared/dataset/readings.ts), and
 * refuses, never answers, a reading that lacks the model's features.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releasedManifest } from '../../bench/support/released-manifest.ts';
import { Engine } from '../../device/model/engine.ts';
import { type LoadedModel, loadModelFromBytes } from '../../device/model/model.ts';
import { Outbox } from '../../device/results/outbox.ts';
import { ResultStream } from '../../device/results/result-writer.ts';
import { ERRORS_LOG, Refusals } from '../../device/sources/refusals.ts';
import { loadCsvFile, runCsvReplay, startInferServer } from '../../device/sources/sources.ts';
import { formatRefused } from '../../infra/cli/commands/fleet.ts';
import { parseReading, type Refusal, readingRefusal } from '../../shared/dataset/readings.ts';
import { parseDataset } from '../../shared/dataset.ts';
import { type RawRow, transformRows } from '../../shared/preprocess.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { tf } from '../../shared/tf.ts';
import { loadModelFromArtifacts } from '../../shared/training/model.ts';
import { type TrainingOutcome, trainFromCsv } from '../../shared/training/train.ts';
import { postInfer } from './helpers.ts';

const CHANNELS = ['p_in', 'p_out', 'flow', 'temp_motor', 'temp_bearing', 'current', 'rpm', 'vib'];

/**
 * A historian export as plants write them: `;`-separated, a timestamp, eight channels and a
 * 0/1 label (a pump that runs hot and slow under high current is faulty).
 */
function historianRows(n: number, seed: number): string[][] {
  let s = seed >>> 0;
  const random = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return Array.from({ length: n }, (_, i) => {
    const values = CHANNELS.map(() => random() * 2 - 1);
    const [, , , temp = 0, , current = 0, rpm = 0] = values;
    const label = temp + current - rpm > 0.3 ? '1' : '0';
    const ts = new Date(Date.UTC(2026, 10, 1) + (seed * 100_000 + i) * 1000).toISOString();
    return [ts, ...values.map((v) => v.toFixed(4)), label];
  });
}

function csvOf(rows: string[][], delimiter: string): string {
  return [['timestamp', ...CHANNELS, 'label'], ...rows].map((row) => row.join(delimiter)).join('\r\n');
}

let outcome: TrainingOutcome;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgeloop-reading-check-'));
  const config = TrainingConfigSchema.parse({
    label: 'label',
    epochs: 20,
    tuning: { candidates: 1, refit: false, ensemble: false },
  });
  outcome = await trainFromCsv(csvOf(historianRows(600, 1), ';'), config);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function deviceModel(maxMissingFeatures?: number): Promise<LoadedModel> {
  const manifest = releasedManifest(outcome, {
    model: 'pump',
    ...(maxMissingFeatures !== undefined ? { maxMissingFeatures } : {}),
  });
  return loadModelFromBytes(outcome.artifacts.modelJson, outcome.artifacts.weights, manifest);
}

/** Replays a CSV file through the device's replay; what it answered and refused, by position. */
async function replay(file: string, model: LoadedModel) {
  const engine = new Engine();
  engine.setModel(model);
  const outboxDir = await mkdtemp(join(dir, 'outbox-'));
  const batcher = new ResultStream(await Outbox.open(outboxDir), { thing: 'gw', model: 'pump' });
  // The source's readings as objects, so a refused reading's position is its index.
  const table = loadCsvFile(file);
  const rows = Array.from({ length: table.length }, (_, i) => table.at(i) as RawRow);
  const answered = new Map<number, { best: number; confidence: number }>();
  const refused: { position: number; refusal: Refusal }[] = [];
  let position = 0;
  await runCsvReplay(rows, { limit: rows.length }, 0, {
    thing: 'gw',
    engine,
    batcher,
    labelColumn: () => 'label',
    stopped: () => false,
    chunk: 64,
    onClassified: ({ first, classified }) => {
      classified.best.forEach((best, i) => {
        answered.set(first + i, { best, confidence: classified.confidence[i] as number });
      });
    },
    onProgress: (next) => {
      position = next;
    },
    refuse: (refusal, reading) => refused.push({ position: rows.indexOf(reading as never), refusal }),
  });
  await batcher.close();
  engine.dispose();
  return { answered, refused, position };
}

/** The trainer's view of the same file: its dataset reader, transform and model. */
async function trainerPredictions(text: string): Promise<number[]> {
  const dataset = parseDataset(text, { label: 'label' });
  const model = await loadModelFromArtifacts(outcome.artifacts.modelJson, outcome.artifacts.weights);
  const x = tf.tensor2d(transformRows(outcome.preprocessing, dataset.rows), [
    dataset.rows.length,
    outcome.preprocessing.inputWidth,
  ]);
  const probabilities = model.predict(x) as tf.Tensor;
  const best = Array.from(probabilities.argMax(1).dataSync());
  tf.dispose([x, probabilities]);
  model.dispose();
  return best;
}

describe('one reader for datasets and readings', () => {
  it.each([
    [';', 'semicolons'],
    [',', 'commas'],
  ])('gives the trainer’s own predictions for a replayed export written with %s (%s)', async (delimiter) => {
    // Prepare: the next export of the same source, never seen in training.
    const text = csvOf(historianRows(300, 2), delimiter);
    const file = join(dir, `next-${delimiter === ';' ? 'semi' : 'comma'}.csv`);
    await writeFile(file, text);

    // Act
    const device = await replay(file, await deviceModel());
    const trainer = await trainerPredictions(text);

    // Assess: every reading answered, each exactly as the trainer scores it.
    expect(device.refused).toEqual([]);
    expect(device.answered.size).toBe(300);
    expect(Array.from({ length: 300 }, (_, i) => device.answered.get(i)?.best)).toEqual(trainer);
    // Both classes occur, so a constant answer could not pass.
    expect(new Set(trainer).size).toBe(2);
  });

  it('trims names, refuses an empty or nested reading, and accepts unknown extra fields', () => {
    expect(parseReading({ ' p_in ': 1, flow: 'NA' })).toEqual({ p_in: 1, flow: 'NA' });
    expect(() => parseReading({})).toThrow(/the reading has no fields/);
    expect(() => parseReading({ p_in: { v: 1 } })).toThrow(/field 'p_in' must be a string, a number or null/);
    const full = Object.fromEntries(CHANNELS.map((c) => [c, 0.1]));
    expect(
      readingRefusal(outcome.preprocessing, { ...full, timestamp: '2026-11-02T00:00:00Z', extra: 5 }),
    ).toBe(undefined);
  });
});

describe('a reading without the model’s features', () => {
  it('is refused in a replay, with its reason, and never answered; maxMissingFeatures lets one through', async () => {
    // Prepare: rows 3 and 5 lack a channel (an empty cell, a historian's "NA").
    const rows = historianRows(10, 3);
    (rows[3] as string[])[2] = '';
    (rows[5] as string[])[4] = 'NA';
    const file = join(dir, 'gaps.csv');
    await writeFile(file, csvOf(rows, ';'));

    // Act
    const strict = await replay(file, await deviceModel());
    const lenient = await replay(file, await deviceModel(1));

    // Assess
    expect(strict.refused.map((r) => r.position)).toEqual([3, 5]);
    expect(strict.refused[0]?.refusal).toMatchObject({ reason: 'missing-features' });
    expect(strict.refused[0]?.refusal.message).toMatch(/lacks 1 of the model's \d+ features \(p_out\)/);
    expect(strict.refused[1]?.refusal.message).toMatch(/\(temp_motor\)/);
    expect([...strict.answered.keys()]).toEqual([0, 1, 2, 4, 6, 7, 8, 9]);
    expect(strict.position).toBe(10);
    expect(lenient.refused).toEqual([]);
    expect(lenient.answered.size).toBe(10);
  });

  it('is answered 422 over HTTP with its reason, and an unreadable one 400; both are counted', async () => {
    // Prepare
    const engine = new Engine();
    engine.setModel(await deviceModel());
    const refusals = new Refusals(dir, () => {});
    let answered = 0;
    const server = await startInferServer(0, {
      engine,
      onResult: () => answered++,
      nextId: () => `gw:http:${answered}`,
      labelColumn: () => 'label',
      status: () => ({}),
      refuse: (refusal, reading) => refusals.refuse(refusal, 'http', reading),
    });
    const full = Object.fromEntries(CHANNELS.map((c) => [c, 0.1]));

    // Act
    const ok = await postInfer(server.port, { ...full, timestamp: '2026-11-02T00:00:00Z', site: 'B' });
    const oneColumn = await postInfer(server.port, { 'timestamp;p_in;p_out': '2026;0.1;0.2' });
    const empty = await postInfer(server.port, {});
    await refusals.flushed();
    await server.close();
    engine.dispose();

    // Assess
    expect(ok.status).toBe(200);
    expect(oneColumn.status).toBe(422);
    expect(oneColumn.body).toMatchObject({ reason: 'missing-features' });
    expect(String(oneColumn.body.error)).toMatch(/lacks 8 of the model's 8 features/);
    expect(empty.status).toBe(400);
    expect(empty.body).toMatchObject({ reason: 'unreadable' });
    expect(answered).toBe(1);
    expect(refusals.report()).toEqual({ 'missing-features': 1, unreadable: 1 });
    const samples = (await readFile(join(dir, ERRORS_LOG), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(samples.map((s) => [s.source, s.reason])).toEqual([
      ['http', 'missing-features'],
      ['http', 'unreadable'],
    ]);
    expect(formatRefused(refusals.report())).toBe(', refused 2 (missing-features 1, unreadable 1)');
  });

  it('samples at most one refusal per reason every 10 s into the errors log, and counts them all', async () => {
    // Prepare
    const stateDir = await mkdtemp(join(dir, 'state-'));
    let now = 1_000_000;
    const refusals = new Refusals(
      stateDir,
      () => {},
      () => now,
    );
    const refusal: Refusal = { reason: 'missing-features', message: 'lacks p_in' };

    // Act: 1,000 refusals in 5 s, then one 10 s later.
    for (let i = 0; i < 1000; i++) {
      refusals.refuse(refusal, 'csv', { i });
      now += 5;
    }
    now += 10_000;
    refusals.refuse(refusal, 'csv', { i: 1000 });
    await refusals.flushed();

    // Assess
    expect(refusals.report()).toEqual({ 'missing-features': 1001 });
    const samples = (await readFile(join(stateDir, ERRORS_LOG), 'utf8')).trim().split('\n');
    expect(samples.map((line) => (JSON.parse(line) as { reading: string }).reading)).toEqual([
      '{"i":0}',
      '{"i":1000}',
    ]);
  });
});
