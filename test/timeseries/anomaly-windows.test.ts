/**
 * Anomaly models on windows: trained on the window features of normal readings, shipped in
 * the manifest, and scored by the gateway's own window replay exactly as the trainer scores
 * the same windows; the threshold where the event rule opens the budget's events; and the
 * channels of a result named by sensor, not by window feature.
 */
import { describe, expect, it } from 'vitest';
import { gatewayReplay } from '../../bench/support/gateway-replay.ts';
import type { releasedManifest } from '../../bench/support/released-manifest.ts';
import { windowSlotColumns } from '../../shared/anomaly.ts';
import { generatePumpCsv, normalAndFaulty, PUMP_CHANNELS } from '../../shared/anomaly-dataset.ts';
import { InputError } from '../../shared/errors.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { spectralFeatureNames, windowInput, windowInputs } from '../../shared/timeseries/features.ts';
import { collectCsv } from '../../shared/timeseries/long-format.ts';
import { trainWindowsFromCsv } from '../../shared/timeseries/train.ts';
import { windowsOf } from '../../shared/timeseries/windower.ts';
import {
  alarmQuantile,
  countEvents,
  falseAlarmRateOnRows,
  reconstructionScores,
  thresholdForEvents,
  windowVectorsOfRows,
} from '../../shared/training/anomaly.ts';
import { loadModelFromArtifacts } from '../../shared/training/model.ts';
import { gaussian, seededRandom } from '../../shared/training/random.ts';

const WINDOW = { time: 'ts', series: 'pump', sizeMs: 30 * 60_000, strideMs: 5 * 60_000, frequencyHz: 1 / 60 };
const RULE = { k: 3, n: 5, m: 5 };

/** The trainer's scores of a file's windows, cut and featured by the released manifest alone. */
async function trainerScores(
  outcome: Awaited<ReturnType<typeof trainWindowsFromCsv>>,
  manifest: ReturnType<typeof releasedManifest>,
  csv: string,
  spec: object,
) {
  const window = manifest.window as NonNullable<typeof manifest.window>;
  const collected = collectCsv(csv, spec as never, '', window.spec.channels);
  const windows = collected.series.flatMap((s) => windowsOf(s.name, window.spec, s.times, s.values));
  const input = windowInput(window.spec, window.features);
  const trainerModel = await loadModelFromArtifacts(outcome.artifacts.modelJson, outcome.artifacts.weights);
  const expected = reconstructionScores(
    trainerModel,
    windowInputs(input, windows),
    input.width,
    manifest.anomaly?.residualScale ?? [],
  );
  trainerModel.dispose();
  return { windows, expected };
}

describe('anomaly models on windows', () => {
  it("are scored by the gateway's window replay exactly as the trainer scores the same windows, naming sensors", async () => {
    // Prepare: four pumps' normal day to train on; two other pumps' day with faults to score.
    const { normal, faulty } = normalAndFaulty(
      { pumps: 4, minutes: 1440 },
      {
        pumps: 2,
        minutes: 720,
        firstPump: 4,
        startMs: Date.UTC(2026, 10, 3),
        faults: { perPump: 2, minutes: 60 },
      },
    );
    const config = TrainingConfigSchema.parse({
      task: 'anomaly',
      window: WINDOW,
      eventRule: RULE,
      epochs: 30,
    });

    // Act
    const outcome = await trainWindowsFromCsv(normal.csv, config);
    const { manifest, failure, results, events } = await gatewayReplay(outcome, faulty.csv);

    // Assess: the manifest carries the window, the threshold and the rule; probation holds.
    expect(failure).toBeUndefined();
    expect(manifest.preprocessing.task).toBe('anomaly');
    expect(manifest.window?.spec).toMatchObject({ samples: 30, stride: 5, channels: [...PUMP_CHANNELS] });
    expect(manifest.anomaly).toMatchObject({ eventRule: RULE, time: 'ts', series: 'pump' });
    expect(manifest.anomaly?.residualScale).toHaveLength(manifest.preprocessing.inputWidth);
    // The gate scores a release on the run's held-out readings: the very windows the run tested on.
    const heldOut = windowVectorsOfRows(manifest.window as never, outcome.testSet.rows);
    expect(heldOut.length / manifest.preprocessing.inputWidth).toBe(manifest.window?.windows.test);
    expect(await falseAlarmRateOnRows(outcome.artifacts, manifest, outcome.testSet.rows)).toBe(
      outcome.metrics.anomaly?.falseAlarmRate,
    );
    // At a threshold inside the scores' range, some of those windows alarm and some do not.
    const median = results.map((r) => r.score as number).sort((a, b) => a - b)[results.length >> 1];
    const anomaly = manifest.anomaly as NonNullable<typeof manifest.anomaly>;
    const lowered = { ...manifest, anomaly: { ...anomaly, threshold: median as number } };
    const rate = await falseAlarmRateOnRows(outcome.artifacts, lowered, outcome.testSet.rows);
    expect(rate).toBeGreaterThan(0);
    expect(rate).toBeLessThan(1);
    // The trainer's scores of the same windows, cut and featured by the manifest alone.
    const { windows, expected } = await trainerScores(outcome, manifest, faulty.csv, WINDOW);
    expect(results).toHaveLength(windows.length);
    const threshold = manifest.anomaly?.threshold as number;
    results.forEach((result, i) => {
      const w = windows[i];
      // A window result's time is its window's end and its series the window's series.
      expect(result.window).toMatchObject({ series: w?.series, end: w?.end });
      expect(result.score).toBeCloseTo(expected[i] as number, 3);
      expect(result.threshold).toBe(threshold);
      expect(result.anomaly).toBe((result.score as number) > threshold);
      for (const c of result.channels ?? []) expect(PUMP_CHANNELS).toContain(c.name);
    });
    // The noise burst and the stuck sensor are found, each naming the sensor that moved.
    for (const kind of ['stuck', 'noise'] as const) {
      const fault = faulty.faults.find((f) => f.kind === kind);
      const event = events.find(
        (e) => e.series === fault?.series && e.start <= fault.end && e.end >= fault.start,
      );
      expect(event?.channels[0]?.name, kind).toBe(fault?.channel);
    }
  });

  it('take raw windows too: a dense autoencoder over the samples, scored by the gateway as by the trainer', async () => {
    // Prepare
    const { normal, faulty } = normalAndFaulty(
      { pumps: 3, minutes: 720 },
      { pumps: 1, minutes: 360, firstPump: 3, startMs: Date.UTC(2026, 10, 3) },
    );
    const raw = { ...WINDOW, features: 'raw' as const };

    // Act
    const outcome = await trainWindowsFromCsv(
      normal.csv,
      TrainingConfigSchema.parse({ task: 'anomaly', window: raw, eventRule: RULE, epochs: 10 }),
    );
    const { manifest, failure, results } = await gatewayReplay(outcome, faulty.csv);

    // Assess: 30 samples of 5 sensors per window, each slot a sensor's sample.
    expect(failure).toBeUndefined();
    expect(manifest.window?.features.kind).toBe('raw');
    expect(manifest.preprocessing.inputWidth).toBe(30 * PUMP_CHANNELS.length);
    const { windows, expected } = await trainerScores(outcome, manifest, faulty.csv, raw);
    expect(results).toHaveLength(windows.length);
    results.forEach((result, i) => {
      expect(result.score).toBeCloseTo(expected[i] as number, 3);
      for (const c of result.channels ?? []) expect(PUMP_CHANNELS).toContain(c.name);
    });
  });

  it('refuse a label: they learn normal operation', async () => {
    const { csv } = generatePumpCsv({ pumps: 3, minutes: 120 });
    const config = TrainingConfigSchema.parse({ task: 'anomaly', label: 'flow', window: WINDOW });
    await expect(trainWindowsFromCsv(csv, config)).rejects.toThrow(InputError);
    await expect(trainWindowsFromCsv(csv, config)).rejects.toThrow(
      /without labels, but "label" names 'flow'/,
    );
  });
});

describe('the threshold of results in order', () => {
  /** Scores of `days` days at 288 a day whose neighbours move together (AR(1), squared). */
  const correlated = (days: number, seed: number) => {
    const random = seededRandom(seed);
    const scores: number[] = [];
    let z = 0;
    for (let i = 0; i < days * 288; i++) {
      z = 0.9 * z + Math.sqrt(1 - 0.81) * gaussian(random);
      scores.push(z * z);
    }
    return { scores, series: scores.map(() => 's') };
  };

  it('sits where the event rule opens about the budget of events a day, where independence would not', () => {
    // Prepare: twenty held-out days to calibrate on; a hundred fresh days to count on.
    const held = correlated(20, 1);
    const fresh = correlated(100, 2);

    // Act
    const { threshold, quantile } = thresholdForEvents(held.scores, held.series, 20, RULE, 1);
    const independent = alarmQuantile({ falseAlarmsPerDay: 1 }, 288, RULE).quantile;

    // Assess: near the budget (an estimate from 20 days: within a factor of two); the
    // independence formula's quantile lets the rule open more than twice the budget.
    const perDay = countEvents(fresh.scores, fresh.series, threshold, RULE) / 100;
    expect(perDay).toBeGreaterThan(0.5);
    expect(perDay).toBeLessThan(2);
    expect(quantile).toBeGreaterThan(independent);
    const sorted = [...held.scores].sort((a, b) => a - b);
    const atIndependent = sorted[Math.ceil(independent * sorted.length) - 1] as number;
    const perDayIndependent = countEvents(fresh.scores, fresh.series, atIndependent, RULE) / 100;
    expect(perDayIndependent).toBeGreaterThan(2);
    expect(perDayIndependent).toBeGreaterThan(perDay);
  });
});

describe("a window slot's channel", () => {
  it('is the sensor its statistic or band was computed from', () => {
    const window = {
      spec: { channels: ['flow', 'temp'], samples: 3 },
      features: {
        kind: 'spectral' as const,
        bands: 2,
        names: spectralFeatureNames(['flow', 'temp'], 2),
        scale: { mean: [], std: [] },
      },
    };
    const { names, slots } = windowSlotColumns(window);
    expect(names).toEqual(['flow', 'temp']);
    expect(Array.from(slots)).toEqual([...new Array(8).fill(0), ...new Array(8).fill(1)]);
    expect(() =>
      windowSlotColumns({ ...window, features: { ...window.features, names: ['flow:mean'] } }),
    ).toThrow('the window features have 1 slots, 2 channels of 8 expected');
    // A raw window's slots are its samples, row-major: each names the channel it was read from.
    const raw = windowSlotColumns({
      ...window,
      features: { kind: 'raw', frame: 1, scale: { mean: [], std: [] } },
    });
    expect(Array.from(raw.slots)).toEqual([0, 1, 0, 1, 0, 1]);
  });
});
