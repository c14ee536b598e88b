import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Engine } from '../../device/engine.ts';
import { loadModelFromBytes } from '../../device/model.ts';
import { Outbox } from '../../device/outbox.ts';
import { ResultStream } from '../../device/result-writer.ts';
import { WindowLane } from '../../device/window-lane.ts';
import { runWindowReplay } from '../../device/window-sources.ts';
import { parseCsvReadings, type Reading } from '../../shared/dataset/readings.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { ManifestSchema, TrainingConfigSchema } from '../../shared/schemas.ts';
import { trainWindowsFromCsv } from '../../shared/timeseries/train.ts';
import { generateVibrationCsv } from '../../shared/timeseries/vibration-dataset.ts';
import { buildManifest } from '../../shared/training/artifacts.ts';
import type { TrainingOutcome } from '../../shared/training/train.ts';

const WINDOW = { time: 'ts', series: 'machine', sizeMs: 1000, strideMs: 500 };
const trainCsv = generateVibrationCsv({ machines: 6, readings: 1200, seed: 11 });
// Ten machines the model never saw; m15's reading 300 comes twice (the second is refused).
const readings: Reading[] = parseCsvReadings(
  generateVibrationCsv({ machines: 10, readings: 700, seed: 22, firstMachine: 6 }),
  '',
).rows;
const duplicateAt = readings.findIndex((r) => r.machine === 'm15') + 300;
readings.splice(duplicateAt + 1, 0, { ...(readings[duplicateAt] as Reading) });

const outcomes: Partial<Record<'spectral' | 'raw', TrainingOutcome>> = {};
beforeAll(async () => {
  for (const features of ['spectral', 'raw'] as const)
    outcomes[features] = await trainWindowsFromCsv(
      trainCsv,
      TrainingConfigSchema.parse({ label: 'state', epochs: 3, window: { ...WINDOW, features } }),
    );
});

afterEach(() => {
  delete process.env.EDGELOOP_WINDOW_LANE;
  vi.restoreAllMocks();
});

// The same readings interleaved: the k-th reading of every machine in turn, so every chunk
// holds readings of every machine (each machine's still in time order).
const byMachine = new Map<string, Reading[]>();
for (const reading of readings) {
  const machine = String(reading.machine);
  const own = byMachine.get(machine) ?? [];
  own.push(reading);
  byMachine.set(machine, own);
}
const interleaved: Reading[] = [];
for (let k = 0; interleaved.length < readings.length; k++)
  for (const own of byMachine.values()) if (k < own.length) interleaved.push(own[k] as Reading);

async function replay(
  features: 'spectral' | 'raw',
  lane: boolean,
  limit: number,
  rows: readonly Reading[] = readings,
) {
  if (!lane) process.env.EDGELOOP_WINDOW_LANE = 'off';
  else delete process.env.EDGELOOP_WINDOW_LANE;
  const outcome = outcomes[features] as TrainingOutcome;
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
  const engine = new Engine();
  engine.setModel(await loadModelFromBytes(outcome.artifacts.modelJson, outcome.artifacts.weights, manifest));
  const dir = await mkdtemp(join(tmpdir(), 'edgeloop-window-lane-'));
  const outbox = await Outbox.open(dir);
  const batcher = new ResultStream(outbox, { thing: 'gw', model: 'fan' });
  const results: InferenceResult[] = [];
  const logs: string[] = [];
  await runWindowReplay(rows, { limit }, 0, {
    thing: 'gw',
    engine,
    batcher,
    stopped: () => false,
    log: (line) => logs.push(line),
    onResults: (made) => results.push(...made.map((r) => r.result)),
    chunk: 256,
  });
  await batcher.close();
  const stored = outbox.depthResults;
  await rm(dir, { recursive: true, force: true });
  engine.dispose();
  return { results, logs, stored };
}

/** What a result says, without its latency and time of making. */
function said(result: InferenceResult) {
  const { id, label, confidence, truth, window } = result as InferenceResult & { truth?: string };
  return { id, label, confidence: Number(confidence.toFixed(4)), truth, window };
}

describe.skipIf(availableParallelism() < 2)('the window lane (a second thread windows some series)', () => {
  it.each(['spectral', 'raw'] as const)(
    'gives the results one thread gives, over two passes, with the same refusals (%s)',
    async (features) => {
      // Prepare
      const push = vi.spyOn(WindowLane.prototype, 'push');
      const limit = 2 * readings.length;

      // Act
      const alone = await replay(features, false, limit);
      const pushedAlone = push.mock.calls.length;
      const laned = await replay(features, true, limit);

      // Assess: the lane ran, and every window came out once, the same as on one thread.
      expect(pushedAlone).toBe(0);
      expect(push.mock.calls.length).toBeGreaterThan(10);
      const byId = (list: InferenceResult[]) =>
        list.map(said).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      expect(laned.results.length).toBe(alone.results.length);
      expect(new Set(laned.results.map((r) => r.id)).size).toBe(laned.results.length);
      expect(byId(laned.results)).toEqual(byId(alone.results));
      expect(laned.stored).toBe(alone.stored);
      // Each pass refuses the repeated reading, with the same words either way.
      const refusals = (logs: string[]) => logs.filter((line) => line.includes('refused')).sort();
      expect(refusals(alone.logs)).toHaveLength(2);
      expect(refusals(alone.logs)[0]).toMatch(/repeats the latest reading of series 'm15'/);
      expect(refusals(laned.logs)).toEqual(refusals(alone.logs));
    },
  );

  it("splits interleaved series between the threads and still gives one thread's results", async () => {
    // Prepare
    const own = vi.spyOn(WindowLane.prototype, 'own');
    const limit = 2 * interleaved.length;

    // Act
    const alone = await replay('spectral', false, limit, interleaved);
    const laned = await replay('spectral', true, limit, interleaved);

    // Assess: the 10 machines start in each pass's first chunk and go two in three to the lane
    // (seven, or none while the lane is behind), so the main thread windows some of them.
    const given = own.mock.calls.length;
    expect(given).toBeGreaterThan(0);
    expect(given).toBeLessThan(20);
    const byId = (list: InferenceResult[]) =>
      list.map(said).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    expect(byId(laned.results)).toEqual(byId(alone.results));
    expect(laned.results.length).toBeGreaterThan(0);
  });

  it('keeps every series in time order within its results', async () => {
    const { results } = await replay('spectral', true, readings.length);
    const ends = new Map<string, number>();
    for (const result of results) {
      const window = result.window as { series: string; end: number };
      expect(window.end).toBeGreaterThan(ends.get(window.series) ?? Number.NEGATIVE_INFINITY);
      ends.set(window.series, window.end);
    }
    expect(ends.size).toBe(10);
  });
});
