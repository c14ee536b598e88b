/**
 * Windowed device benchmark (#17), measured in this run on the same model and backend:
 *
 * - pipeline: long-format CSV readings -> per-series ring buffers (resampling, windowing)
 *   -> window features -> one predict per ~1,024 windows batched across series -> results ->
 *   batches durable in a real on-disk outbox (device/sources/window-sources.ts, as `startDevice`
 *   runs it), until every result is durable. A round replays the file PASSES times, as a
 *   looping replay does: the replay reads the file's readings into typed columns once per
 *   run (each round pays that once), and the final flush to disk is shared by the passes.
 * - bare: `predict` on the model inputs of the same windows, cut beforehand: the window's
 *   features (shared/timeseries/features.ts, the code the trainer and the gateway run) and
 *   one tfjs predict (one batch) per 1,024 windows (the replay's batch), nothing else; as many windows as the
 *   pipeline makes. The features count as part of the bare predict: a spectral model's input
 *   is its features, and no source of windows can skip them.
 * - predict alone: the same predicts on inputs featurized beforehand (for scale).
 * - bare from readings: the same readings sliced into windows by a plain loop (no resampling,
 *   no gaps, no results), then the same features and predicts.
 * - per-window latency (last reading in -> result) p50/p99 from the results, and the RSS.
 *
 * Rounds alternate bare and pipeline; the ratio is the median of the rounds' ratios (a
 * shared machine's timings wander), by wall time (the target) and by the process's CPU time
 * (every thread; steadier when other processes
 * load the machine). Target: pipeline >= 0.8x bare by wall time, `spectral` and `raw`.
 *
 *   npx tsx bench/device-windows.ts     (or npm run bench -- device-windows)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../device/model/engine.ts';
import { loadModelFromBytes } from '../device/model/model.ts';
import { Outbox } from '../device/results/outbox.ts';
import { ResultStream } from '../device/results/result-writer.ts';
import { REPLAY_BATCH as BATCH, runWindowReplay } from '../device/sources/window-sources.ts';
import { parseCsvReadings, type Reading } from '../shared/dataset/readings.ts';
import { ManifestSchema, TrainingConfigSchema } from '../shared/schemas.ts';
import { initTf } from '../shared/tf.ts';
import { windowInput, windowInputs } from '../shared/timeseries/features.ts';
import { LongFormatCollector } from '../shared/timeseries/long-format.ts';
import { predictWindows } from '../shared/timeseries/model.ts';
import { WindowSpecSchema } from '../shared/timeseries/spec.ts';
import { trainWindowsFromCsv } from '../shared/timeseries/train.ts';
import { generateVibrationCsv, VIBRATION_LABEL } from '../shared/timeseries/vibration-dataset.ts';
import { type Window, windowsOf } from '../shared/timeseries/windower.ts';
import { buildManifest } from '../shared/training/artifacts.ts';
import { loadModelFromArtifacts } from '../shared/training/model.ts';

const ROUNDS = 9;
/** Passes over the replay file per round (the bare side predicts their windows as often). */
const PASSES = 4;
export const WINDOW = { time: 'ts', series: 'machine', sizeMs: 1000, strideMs: 500 };

/** Windows per second of wall time, and per second of this process's CPU time (every thread). */
interface Rates {
  wall: number;
  cpu: number;
}

function startClock() {
  return { wall: performance.now(), cpu: process.cpuUsage() };
}

function ratesSince(clock: ReturnType<typeof startClock>, windows: number): Rates {
  const cpu = process.cpuUsage(clock.cpu);
  return {
    wall: (windows * 1000) / (performance.now() - clock.wall),
    cpu: (windows * 1e6) / (cpu.user + cpu.system),
  };
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** A windowed bench model (3 epochs on `trainCsv`) and its manifest, as the trainer releases it. */
export async function trainBenchWindowModel(trainCsv: string, features: 'spectral' | 'raw') {
  const outcome = await trainWindowsFromCsv(
    trainCsv,
    TrainingConfigSchema.parse({ label: VIBRATION_LABEL, epochs: 3, window: { ...WINDOW, features } }),
  );
  const manifest = ManifestSchema.parse(
    JSON.parse(
      JSON.stringify(
        buildManifest({
          model: 'bench',
          version: 1,
          outcome,
          lowConfidence: 0.6,
          datasetKey: 'bench',
          datasetSha256: 'a'.repeat(64),
        }),
      ),
    ),
  );
  return { outcome, manifest };
}

export async function main(): Promise<void> {
  const backend = await initTf();
  const trainCsv = generateVibrationCsv({ machines: 8, readings: 1500, seed: 5 });
  // The replay: 24 machines the model never saw, 4,000 readings each (96k readings).
  const replayCsv = generateVibrationCsv({ machines: 24, readings: 4000, seed: 6, firstMachine: 8 });
  const readings: Reading[] = parseCsvReadings(replayCsv, '').rows;
  console.log(`backend: ${backend}; replay ${readings.length} readings of 24 machines at 100 Hz`);
  console.log(
    [
      'model',
      'pipeline windows/s',
      'bare windows/s',
      'ratio (median of rounds)',
      'ok',
      'ratio by CPU time',
      'predict alone windows/s',
      'bare from readings windows/s',
      'windows per pass',
      'p50 ms',
      'p99 ms',
      'rss MB',
    ].join(' | '),
  );
  for (const features of ['spectral', 'raw'] as const) {
    const { outcome, manifest } = await trainBenchWindowModel(trainCsv, features);
    const window = manifest.window;
    if (!window) throw new Error('no window block');

    // Bare: the same windows cut beforehand, features + predict per batch.
    const collector = new LongFormatCollector(
      parseCsvReadings(replayCsv, '').header,
      WindowSpecSchema.parse(WINDOW),
      VIBRATION_LABEL,
      window.spec.channels,
    );
    for (const [i, line] of replayCsv.trim().split('\n').slice(1).entries())
      collector.add(line.split(','), `row ${i + 1}`);
    const windows: Window[] = collector
      .finish()
      .series.flatMap((s) => windowsOf(s.name, window.spec, s.times, s.values, s.labels));
    const bareModel = await loadModelFromArtifacts(outcome.artifacts.modelJson, outcome.artifacts.weights);
    const input = windowInput(window.spec, window.features);
    const bare = () => {
      const clock = startClock();
      for (let pass = 0; pass < PASSES; pass++) {
        for (let at = 0; at < windows.length; at += BATCH) {
          const batch = windows.slice(at, at + BATCH);
          predictWindows(bareModel, windowInputs(input, batch), batch.length, input.shape);
        }
      }
      return ratesSince(clock, PASSES * windows.length);
    };
    const featurized = windows.length ? windowInputs(input, windows) : new Float32Array(0);
    const predictAlone = () => {
      const clock = startClock();
      for (let pass = 0; pass < PASSES; pass++) {
        for (let at = 0; at < windows.length; at += BATCH) {
          const n = Math.min(BATCH, windows.length - at);
          predictWindows(
            bareModel,
            featurized.subarray(at * input.width, (at + n) * input.width),
            n,
            input.shape,
          );
        }
      }
      return ratesSince(clock, PASSES * windows.length);
    };

    // Bare from readings: the same readings sliced into windows by a plain loop (grouped by
    // series, no resampling, no gap handling), then the same features and predicts.
    const channels = window.spec.channels;
    const { samples, stride } = window.spec;
    const bareFromReadings = () => {
      const clock = startClock();
      let made = 0;
      for (let pass = 0; pass < PASSES; pass++) {
        const bySeries = new Map<string, number[]>();
        for (const reading of readings) {
          const key = String(reading.machine);
          let values = bySeries.get(key);
          if (!values) {
            values = [];
            bySeries.set(key, values);
          }
          for (const channel of channels) values.push(Number(reading[channel]));
        }
        let batch: Pick<Window, 'values' | 'valid'>[] = [];
        const run = () => {
          predictWindows(bareModel, windowInputs(input, batch), batch.length, input.shape);
          made += batch.length;
          batch = [];
        };
        for (const values of bySeries.values()) {
          const all = Float32Array.from(values);
          const n = all.length / channels.length;
          for (let end = samples; end <= n; end += stride) {
            batch.push({
              values: all.slice((end - samples) * channels.length, end * channels.length),
              valid: samples,
            });
            if (batch.length === BATCH) run();
          }
        }
        if (batch.length) run();
      }
      return ratesSince(clock, made);
    };

    // Pipeline: the device's replay into a real outbox.
    const engine = new Engine();
    engine.setModel(
      await loadModelFromBytes(outcome.artifacts.modelJson, outcome.artifacts.weights, manifest),
    );
    const pipeline = async () => {
      const dir = await mkdtemp(join(tmpdir(), 'edgeloop-bench-windows-'));
      const outbox = await Outbox.open(dir);
      const batcher = new ResultStream(outbox, { thing: 'bench-gw', model: 'bench' });
      const latencies: number[] = [];
      let count = 0;
      const clock = startClock();
      await runWindowReplay(readings, { limit: PASSES * readings.length }, 0, {
        thing: 'bench-gw',
        engine,
        batcher,
        stopped: () => false,
        onResults: (results) => {
          count += results.length;
          for (const { result } of results) latencies.push(result.latencyMs);
        },
      });
      await batcher.flush();
      const rate = ratesSince(clock, count);
      await batcher.close();
      await rm(dir, { recursive: true, force: true });
      return { rate, count, latencies };
    };
    // Warm every side, then alternate them round by round. Four warm rounds: after two, the
    // first measured pipeline round (two threads' code still settling) ran at about 0.5x where
    // the rest ran at 0.7-0.9x.
    for (let warm = 0; warm < 4; warm++) {
      bare();
      predictAlone();
      bareFromReadings();
      await pipeline();
    }
    const rounds: { bare: Rates; alone: Rates; slice: Rates; run: Awaited<ReturnType<typeof pipeline>> }[] =
      [];
    // A round: bare, pipeline, bare; the pipeline is set against the mean of the bares on
    // either side of it, so a burst of load from elsewhere lands on both sides more often.
    let before = bare();
    for (let round = 0; round < ROUNDS; round++) {
      const run = await pipeline();
      const after = bare();
      const alone = predictAlone();
      const slice = bareFromReadings();
      const both = { wall: (before.wall + after.wall) / 2, cpu: (before.cpu + after.cpu) / 2 };
      rounds.push({ bare: both, alone, slice, run });
      before = after;
    }
    const median = (values: number[]) =>
      [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
    const ratios = rounds.map((r) => r.run.rate.wall / r.bare.wall);
    const ratio = median(ratios);
    const cpuRatios = rounds.map((r) => r.run.rate.cpu / r.bare.cpu);
    const cpuRatio = median(cpuRatios);
    const latencies = rounds.flatMap((r) => r.run.latencies).sort((a, b) => a - b);
    const count = rounds[0]?.run.count ?? 0;
    if (count !== PASSES * windows.length)
      throw new Error(
        `the pipeline made ${count} windows in ${PASSES} passes, the file cuts ${windows.length} a pass`,
      );
    console.log(
      [
        features,
        median(rounds.map((r) => r.run.rate.wall)).toFixed(0),
        median(rounds.map((r) => r.bare.wall)).toFixed(0),
        `${ratio.toFixed(2)}x (rounds ${ratios.map((r) => r.toFixed(2)).join(' ')})`,
        ratio >= 0.8 ? 'yes' : 'NO',
        `${cpuRatio.toFixed(2)}x (rounds ${cpuRatios.map((r) => r.toFixed(2)).join(' ')})`,
        median(rounds.map((r) => r.alone.wall)).toFixed(0),
        `${median(rounds.map((r) => r.slice.wall)).toFixed(0)} (pipeline ${median(rounds.map((r) => r.run.rate.wall / r.slice.wall)).toFixed(2)}x)`,
        windows.length,
        quantile(latencies, 0.5).toFixed(2),
        quantile(latencies, 0.99).toFixed(2),
        Math.round(process.memoryUsage().rss / 2 ** 20),
      ].join(' | '),
    );
    bareModel.dispose();
    engine.dispose();
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/'))) {
  await main();
}
