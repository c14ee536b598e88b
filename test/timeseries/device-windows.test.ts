import { beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../device/engine.ts';
import { type LoadedModel, loadModelFromBytes, probationFailure } from '../../device/model.ts';
import { parseCsv } from '../../device/sources.ts';
import { answerWindowHttp, LiveWindows } from '../../device/window-sources.ts';
import { WindowStream } from '../../device/window-stream.ts';
import { ManifestSchema, TrainingConfigSchema } from '../../shared/schemas.ts';
import { windowInput, windowInputs } from '../../shared/timeseries/features.ts';
import { predictWindows } from '../../shared/timeseries/model.ts';
import { trainWindowsFromCsv } from '../../shared/timeseries/train.ts';
import { generateVibrationCsv } from '../../shared/timeseries/vibration-dataset.ts';
import { windowsOf } from '../../shared/timeseries/windower.ts';
import { buildManifest } from '../../shared/training/artifacts.ts';
import { loadModelFromArtifacts } from '../../shared/training/model.ts';
import type { TrainingOutcome } from '../../shared/training/train.ts';

const csv = generateVibrationCsv({ machines: 6, readings: 1200, seed: 11 });
const WINDOW = { time: 'ts', series: 'machine', sizeMs: 1000, strideMs: 500 };

async function deviceModel(outcome: TrainingOutcome): Promise<LoadedModel> {
  const manifest = ManifestSchema.parse(
    JSON.parse(
      JSON.stringify(
        buildManifest({
          model: 'fan',
          version: 1,
          outcome,
          lowConfidence: 0.6,
          datasetKey: 'k',
          datasetSha256: 'a'.repeat(64),
        }),
      ),
    ),
  );
  return loadModelFromBytes(outcome.artifacts.modelJson, outcome.artifacts.weights, manifest);
}

let spectral: TrainingOutcome;
let raw: TrainingOutcome;
beforeAll(async () => {
  const config = (features: 'spectral' | 'raw') =>
    TrainingConfigSchema.parse({ label: 'state', epochs: 3, window: { ...WINDOW, features } });
  spectral = await trainWindowsFromCsv(csv, config('spectral'));
  raw = await trainWindowsFromCsv(csv, config('raw'));
});

describe('a windowed model on the gateway', () => {
  it.each(['spectral', 'raw'] as const)('passes probation on its golden windows (%s)', async (kind) => {
    // Prepare
    const model = await deviceModel(kind === 'spectral' ? spectral : raw);

    // Act
    const failure = probationFailure(model);

    // Assess
    expect(failure).toBeUndefined();
    model.dispose();
  });

  it('fails probation when a golden output does not match what the model gives', async () => {
    // Prepare
    const model = await deviceModel(spectral);
    const output = model.manifest.window?.golden.outputs[2] as number[];
    output[0] = (output[0] as number) + 0.5;

    // Act
    const failure = probationFailure(model);

    // Assess
    expect(failure).toMatch(/^golden window 2 class 0: got /);
    model.dispose();
  });

  it('classifies the replayed readings window by window exactly as the trainer scores them', async () => {
    // Prepare: the device engine with the shipped model, and the trainer's own view of the test series.
    const engine = new Engine();
    engine.setModel(await deviceModel(spectral));
    const window = spectral.window?.manifest;
    if (!window) throw new Error('no window block');
    const trainerModel = await loadModelFromArtifacts(
      spectral.artifacts.modelJson,
      spectral.artifacts.weights,
    );
    const input = windowInput(window.spec, window.features);
    const expected = (spectral.window?.testSeries ?? []).flatMap((s) =>
      windowsOf(s.name, window.spec, s.times, s.values, s.labels),
    );
    const trainerProbs = predictWindows(
      trainerModel,
      windowInputs(input, expected),
      expected.length,
      input.shape,
    );
    const testSeries = new Set(spectral.window?.testSeries.map((s) => s.name));
    const rows = parseCsv(csv).rows.filter((row) => testSeries.has(row.machine ?? ''));
    const stream = new WindowStream(engine, (w) => `${w.series}:${w.end}`);

    // Act: readings in file order, one flush per 256 readings (batched across series).
    const results = [];
    for (let i = 0; i < rows.length; i++) {
      expect(stream.push(rows[i] as Record<string, string>)).toBeUndefined();
      if (i % 256 === 255) results.push(...stream.flush());
    }
    stream.endAll();
    results.push(...stream.flush());

    // Assess: one result per window, the same windows, labels and confidences.
    expect(results.length).toBeGreaterThan(10);
    const key = (w: { series: string; end: number }) => `${w.series}:${Math.round(w.end)}`;
    expect(results.map((r) => key(r.window)).sort()).toEqual(expected.map(key).sort());
    const k = window.features.kind === 'spectral' ? spectral.classes.length : 0;
    const byKey = new Map(expected.map((w, i) => [key(w), i]));
    for (const { result, window: w } of results) {
      const i = byKey.get(key(w)) as number;
      const probs = Array.from(trainerProbs.subarray(i * k, (i + 1) * k));
      expect(result.label).toBe(spectral.classes[probs.indexOf(Math.max(...probs))]);
      expect(result.confidence).toBeCloseTo(Math.max(...probs), 4);
      expect(result.truth).toBe(w.label);
      expect(result.window).toEqual({ series: w.series, start: Math.round(w.start), end: Math.round(w.end) });
    }
    trainerModel.dispose();
    engine.dispose();
  });

  it('refuses readings out of time order and answers a whole window over HTTP', async () => {
    // Prepare
    const engine = new Engine();
    engine.setModel(await deviceModel(raw));
    const live = new LiveWindows(engine, 'gw:');
    const rows = parseCsv(csv)
      .rows.filter((row) => row.machine === 'm01')
      .slice(0, 150);
    const seen: string[] = [];

    // Act
    const whole = await answerWindowHttp(live, JSON.stringify({ readings: rows.slice(0, 120) }), (r) =>
      seen.push(r.id),
    );
    const reading = await answerWindowHttp(live, JSON.stringify(rows[10]), () => undefined);
    const older = await answerWindowHttp(live, JSON.stringify(rows[5]), () => undefined);
    const tooShort = await answerWindowHttp(
      live,
      JSON.stringify({ readings: rows.slice(0, 20) }),
      () => undefined,
    );

    // Assess
    expect(whole.code).toBe(200);
    const [result] = (whole.body as { windows: { window: { series: string }; version: number }[] }).windows;
    expect(result?.window.series).toBe('m01');
    expect(result?.version).toBe(1);
    expect(seen).toHaveLength(1);
    expect(reading).toEqual({ code: 200, body: { windows: [] } });
    expect(older.code).toBe(400);
    expect(JSON.stringify(older.body)).toMatch(/is before the latest reading of series 'm01'/);
    expect(tooShort.code).toBe(400);
    expect(JSON.stringify(tooShort.body)).toMatch(/make no window: a window is 100 samples at 100 Hz/);
    engine.dispose();
  });
});
