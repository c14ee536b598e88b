/**
 * `edgeloop score`: a backtest by the gateway's own code. What it prints for a file equals what
 * a gateway answers for the same readings (here over POST /infer), in every supported format.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bench/support/cli.ts';
import { Engine } from '../../device/model/engine.ts';
import { loadModelFromBytes } from '../../device/model/model.ts';
import { scoreReadings } from '../../device/score.ts';
import { startInferServer } from '../../device/sources/sources.ts';
import { generatePumpCsv } from '../../shared/anomaly-dataset.ts';
import { parseCsvReadings } from '../../shared/dataset/readings.ts';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import { ManifestSchema } from '../../shared/schemas.ts';
import { seededRandom } from '../../shared/training/random.ts';
import { postInfer } from '../device/helpers.ts';

function energyRows(n: number, seed: number): string[] {
  const random = seededRandom(seed);
  return Array.from({ length: n }, () => {
    const load = random() * 10;
    const speed = random() * 4 - 2;
    const kwh = 20 + 3 * load + 4 * speed * speed + (random() - 0.5) * 2;
    return `${load.toFixed(3)},${speed.toFixed(3)},${kwh.toFixed(3)}`;
  });
}

let dir: string;
let modelDir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'edgeloop-score-'));
  modelDir = join(dir, 'line');
  writeFileSync(join(dir, 'train.csv'), ['load,speed,kwh', ...energyRows(500, 1)].join('\n'));
  const trained = await runCli([
    'train',
    join(dir, 'train.csv'),
    '--model',
    'line',
    '--task',
    'regression',
    '--label',
    'kwh',
    '--epochs',
    '30',
    '--out',
    modelDir,
  ]);
  expect(trained.code).toBe(0);
  expect(trained.stdout).toMatch(/trained line: RMSE [\d.]+, MAE [\d.]+, R² 0\.9\d+ on \d+ held-out rows/);
  expect(trained.stdout).toMatch(/always predicting the training mean: RMSE [\d.]+/);
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('edgeloop score', () => {
  it("prints each reading's value as a gateway answers it, and refuses what a gateway refuses", async () => {
    // Prepare: readings the model never saw, one without its speed (refused, not answered).
    const rows = energyRows(40, 9);
    const file = join(dir, 'next.csv');
    writeFileSync(file, ['load,speed,kwh', ...rows.slice(0, 20), '4.5,,30', ...rows.slice(20)].join('\n'));

    // Act
    const scored = await runCli(['score', modelDir, file, '--jsonl']);
    const summary = await runCli(['score', modelDir, file]);

    // Assess: 40 lines, each the value the gateway's POST /infer gives the same reading.
    expect(scored.code).toBe(0);
    const lines = scored.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines).toHaveLength(40);
    expect(scored.stderr).toMatch(/refused 1 reading\(s\): refused: missing-features 1/);
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(modelDir, 'manifest.json'), 'utf8')));
    const engine = new Engine();
    engine.setModel(
      await loadModelFromBytes(
        readFileSync(join(modelDir, 'model.json')),
        readFileSync(join(modelDir, 'weights.bin')),
        manifest,
      ),
    );
    const server = await startInferServer(0, {
      engine,
      onResult: () => {},
      nextId: () => 'gw:0',
      labelColumn: () => 'kwh',
      status: () => ({}),
    });
    try {
      for (const [i, row] of rows.entries()) {
        const [load, speed, kwh] = row.split(',');
        const { body } = await postInfer(server.port, { load: Number(load), speed: Number(speed), kwh });
        expect(lines[i]).toEqual({ value: body.value, truth: kwh });
      }
    } finally {
      await server.close();
      engine.dispose();
    }
    expect(summary.stdout).toMatch(
      /^line v1 on .*next\.csv: 41 readings, 40 results, refused: missing-features 1\n {2}kwh: mean [\d.]+, p10 [\d.]+, p50 [\d.]+, p90 [\d.]+, min [\d.]+, max [\d.]+\n {2}against the file's kwh: RMSE [\d.]+, MAE [\d.]+ \(40 results\)/,
    );
  });

  it('reads JSON Lines as it reads CSV', async () => {
    const rows = energyRows(10, 4);
    const csv = join(dir, 'ten.csv');
    const jsonl = join(dir, 'ten.jsonl');
    writeFileSync(csv, ['load,speed,kwh', ...rows].join('\n'));
    writeFileSync(
      jsonl,
      rows
        .map((row) => {
          const [load, speed, kwh] = row.split(',');
          return JSON.stringify({ load, speed, kwh });
        })
        .join('\n'),
    );
    const fromCsv = await runCli(['score', modelDir, csv, '--jsonl']);
    const fromJsonl = await runCli(['score', modelDir, jsonl, '--jsonl']);
    expect(fromJsonl.code).toBe(0);
    expect(fromJsonl.stdout).toBe(fromCsv.stdout);
  });

  it("scores a classifier: label and confidence per result, the answers' mix and accuracy", async () => {
    const outDir = join(dir, 'demo');
    const data = join(dir, 'demo.csv');
    writeFileSync(data, generateDemoDataset({ rows: 300, seed: 5 }));
    expect((await runCli(['train', data, '--model', 'demo', '--epochs', '5', '--out', outDir])).code).toBe(0);
    const scored = await runCli(['score', outDir, data, '--jsonl']);
    const first = JSON.parse(scored.stdout.split('\n')[0] ?? '');
    expect(Object.keys(first).sort()).toEqual(['confidence', 'label', 'truth']);
    const summary = await runCli(['score', outDir, data]);
    expect(summary.stdout).toMatch(
      /demo v1 on .*: 300 readings, 300 results, none refused\n {2}answers: .+\n {2}against the file's condition: accuracy [\d.]+% \(300 results\)/,
    );
  });

  it("scores a window anomaly model: each window's end, series, score, verdict, event and sensors, as the gateway's window replay gives them", async () => {
    // Prepare: three pumps' normal day to train on, windows of 30 readings every 5; a faulty
    // half-day of another pump to score.
    const outDir = join(dir, 'pumps');
    const train = join(dir, 'pumps.csv');
    const faulty = join(dir, 'faulty.csv');
    writeFileSync(train, generatePumpCsv({ pumps: 3, minutes: 1440, seed: 1 }).csv);
    writeFileSync(
      faulty,
      generatePumpCsv({ pumps: 1, minutes: 720, seed: 2, firstPump: 3, faults: { perPump: 1 } }).csv,
    );
    const window = ['--time', 'ts', '--series', 'pump', '--window-ms', '1800000', '--stride-ms', '300000'];
    const flags = [...window, '--frequency-hz', String(1 / 60), '--task', 'anomaly', '--epochs', '20'];

    // Act
    const trained = await runCli(['train', train, '--model', 'pumps', ...flags, '--out', outDir]);
    const scored = await runCli(['score', outDir, faulty, '--jsonl']);
    const summary = await runCli(['score', outDir, faulty]);
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')));
    const model = await loadModelFromBytes(
      readFileSync(join(outDir, 'model.json')),
      readFileSync(join(outDir, 'weights.bin')),
      manifest,
    );
    const readings = parseCsvReadings(readFileSync(faulty, 'utf8'), 'faulty: ').rows;
    const { results } = await scoreReadings(model, readings);

    // Assess: a line per window, each what the gateway's replay answers for that window.
    expect(trained.code).toBe(0);
    expect(scored.code).toBe(0);
    const lines = scored.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines).toHaveLength(results.length);
    lines.forEach((line, i) => {
      const result = results[i];
      expect(line).toMatchObject({
        time: result?.window?.end,
        series: 'pump-04',
        score: result?.score,
        threshold: manifest.anomaly?.threshold,
        anomaly: result?.anomaly,
        channels: result?.channels,
      });
    });
    expect(lines.some((line) => line.event)).toBe(true);
    expect(summary.stdout).toMatch(
      /pumps v1 on .*: 720 readings, \d+ windows, none refused\n {2}anomalous: /,
    );
  });

  it('says what is wrong with a directory that is not a model', async () => {
    const result = await runCli(['score', dir, join(dir, 'train.csv')]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(
      /is not a model directory \(manifest\.json: .*\): pass what edgeloop train --out wrote/,
    );
  });
});
