import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { releasedManifest } from '../../bench/support/released-manifest.ts';
import { Engine } from '../../device/model/engine.ts';
import { type LoadedModel, loadModelFromBytes, probationFailure } from '../../device/model/model.ts';
import { Outbox } from '../../device/results/outbox.ts';
import { ResultStream } from '../../device/results/result-writer.ts';
import {
  answerWindowHttp,
  LiveWindows,
  runWindowJsonLines,
  runWindowReplay,
} from '../../device/sources/window-sources.ts';
import { ReplayReadings, WindowStream } from '../../device/sources/window-stream.ts';
import type { Refusal } from '../../shared/dataset/readings.ts';
import { parseCsvReadings } from '../../shared/dataset/readings.ts';
import type { RawRow } from '../../shared/preprocess.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { windowInput, windowInputs } from '../../shared/timeseries/features.ts';
import { LongFormatCollector } from '../../shared/timeseries/long-format.ts';
import { predictWindows } from '../../shared/timeseries/model.ts';
import { prepareWindows } from '../../shared/timeseries/prepare.ts';
import { WindowSpecSchema } from '../../shared/timeseries/spec.ts';
import { trainWindowsFromCsv } from '../../shared/timeseries/train.ts';
import { generateVibrationCsv } from '../../shared/timeseries/vibration-dataset.ts';
import { windowsOf } from '../../shared/timeseries/windower.ts';
import { loadModelFromArtifacts } from '../../shared/training/model.ts';
import type { TrainingOutcome } from '../../shared/training/train.ts';

const csv = generateVibrationCsv({ machines: 6, readings: 1200, seed: 11 });
const WINDOW = { time: 'ts', series: 'machine', sizeMs: 1000, strideMs: 500 };

async function deviceModel(outcome: TrainingOutcome): Promise<LoadedModel> {
  const manifest = releasedManifest(outcome, { model: 'fan' });
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
    const rows = parseCsvReadings(csv, '').rows.filter((row) => testSeries.has(String(row.machine ?? '')));
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
      // The class the model picked (a window far from the training windows is answered
      // `unknown`, with that class as wouldBe).
      expect(result.wouldBe ?? result.label).toBe(spectral.classes[probs.indexOf(Math.max(...probs))]);
      expect(result.confidence).toBeCloseTo(Math.max(...probs), 4);
      expect(result.truth).toBe(w.label);
      expect(result.window).toEqual({ series: w.series, start: Math.round(w.start), end: Math.round(w.end) });
    }
    trainerModel.dispose();
    engine.dispose();
  });

  it.each(['spectral', 'raw'] as const)(
    'feeds the model the very inputs the trainer computes from the same readings (%s)',
    async (kind) => {
      // Prepare: the trainer's windows and model inputs for the file, through the training code
      // (collector, prepareWindows, windowInputs); the gateway's stream over the same file's rows
      // as the CSV source loads them (numbers parsed), recording every input the model gets.
      const outcome = kind === 'spectral' ? spectral : raw;
      const window = outcome.window?.manifest;
      if (!window) throw new Error('no window block');
      const [head, ...lines] = csv.trim().split('\n');
      const spec = WindowSpecSchema.parse({ ...WINDOW, features: kind });
      const collector = new LongFormatCollector(
        (head as string).split(','),
        spec,
        'state',
        window.spec.channels,
      );
      lines.forEach((line, i) => {
        collector.add(line.split(','), `row ${i + 1}`);
      });
      const prepared = prepareWindows(
        collector.finish(),
        spec,
        TrainingConfigSchema.parse({ label: 'state' }).seed,
      );
      const trainerWindows = [
        ...prepared.windows.train,
        ...prepared.windows.validation,
        ...prepared.windows.test,
      ];
      const input = windowInput(window.spec, window.features);
      const trainerInputs = windowInputs(input, trainerWindows);
      const model = await deviceModel(outcome);
      const seen: Float32Array[] = [];
      const classifyInput = model.classifyInput;
      model.classifyInput = (x, n) => {
        seen.push(x.slice(0, n * input.width));
        return classifyInput(x, n);
      };
      const engine = new Engine();
      engine.setModel(model);
      const rows = parseCsvReadings(csv, '').rows;
      const stream = new WindowStream(engine, (w) => `${w.series}:${w.end}`);

      // Act: in chunks of 300 readings, one flush each, as the replay feeds them.
      const readings = new ReplayReadings(rows);
      const results = [];
      for (let at = 0; at < rows.length; at += 300) {
        stream.pushRows(readings, at, Math.min(rows.length, at + 300));
        results.push(...stream.flush());
      }
      stream.endAll();
      results.push(...stream.flush());

      // Assess: the same windows, each with exactly the trainer's model input, value for value.
      const gatewayInputs = new Float32Array(seen.reduce((n, x) => n + x.length, 0));
      seen.reduce((at, x) => {
        gatewayInputs.set(x, at);
        return at + x.length;
      }, 0);
      const key = (w: { series: string; end: number }) => `${w.series}:${Math.round(w.end)}`;
      expect(results.map((r) => key(r.window)).sort()).toEqual(trainerWindows.map(key).sort());
      const trainerAt = new Map(trainerWindows.map((w, i) => [key(w), i]));
      results.forEach(({ window: w }, i) => {
        const t = trainerAt.get(key(w)) as number;
        expect(gatewayInputs.subarray(i * input.width, (i + 1) * input.width)).toEqual(
          trainerInputs.subarray(t * input.width, (t + 1) * input.width),
        );
      });
      engine.dispose();
    },
  );

  it('refuses the same readings for the same reasons from the replay columns as one by one', async () => {
    // Prepare: a machine's readings with a missing time, a non-numeric channel and a repeated time.
    const engine = new Engine();
    engine.setModel(await deviceModel(spectral));
    const rows: Record<string, string | number>[] = parseCsvReadings(csv, '')
      .rows.filter((row) => row.machine === 'm02')
      .slice(0, 400);
    rows[10] = { ...rows[10], ts: '' };
    rows[20] = { ...rows[20], ay: 'n/a' };
    rows[30] = { ...rows[29] };
    const oneByOne = new WindowStream(engine, (w) => `${w.series}:${w.end}`);
    const fromColumns = new WindowStream(engine, (w) => `${w.series}:${w.end}`);

    // Act
    const expected = rows.flatMap((row, i) => {
      const why = oneByOne.push(row);
      return why ? [[i, why]] : [];
    });
    const refused: [number, Refusal][] = [];
    fromColumns.pushRows(new ReplayReadings(rows), 0, rows.length, undefined, (i, why) =>
      refused.push([i, why]),
    );

    // Assess
    expect(expected.map(([i]) => i)).toEqual([10, 20, 30]);
    expect(refused).toEqual(expected);
    expect(fromColumns.refused).toBe(3);
    expect(fromColumns.flush().map((r) => r.result.window)).toEqual(
      oneByOne.flush().map((r) => r.result.window),
    );
    engine.dispose();
  });

  it('refuses readings out of time order and answers a whole window over HTTP', async () => {
    // Prepare
    const engine = new Engine();
    engine.setModel(await deviceModel(raw));
    const live = new LiveWindows(engine, 'gw:');
    const rows = parseCsvReadings(csv, '')
      .rows.filter((row) => row.machine === 'm01')
      .slice(0, 150);
    const seen: string[] = [];

    // Act
    const whole = await answerWindowHttp(live, JSON.stringify({ readings: rows.slice(0, 120) }), (r) =>
      seen.push(r.id),
    );
    const refused: string[] = [];
    const refuse = (refusal: Refusal) => refused.push(refusal.reason);
    const reading = await answerWindowHttp(live, JSON.stringify(rows[10]), () => undefined, refuse);
    const older = await answerWindowHttp(live, JSON.stringify(rows[5]), () => undefined, refuse);
    const noChannel = await answerWindowHttp(
      live,
      JSON.stringify({ ...rows[20], ax: 'n/a' }),
      () => undefined,
      refuse,
    );
    const notJson = await answerWindowHttp(live, '{"ts": 1,', () => undefined, refuse);
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
    expect(older.code).toBe(422);
    expect(older.body).toMatchObject({ reason: 'out-of-order' });
    expect(JSON.stringify(older.body)).toMatch(/is before the latest reading of series 'm01'/);
    expect(noChannel).toMatchObject({ code: 422, body: { reason: 'missing-features' } });
    expect(notJson).toMatchObject({ code: 400, body: { reason: 'unreadable' } });
    expect(refused).toEqual(['out-of-order', 'missing-features', 'unreadable']);
    expect(tooShort.code).toBe(400);
    expect(JSON.stringify(tooShort.body)).toMatch(/make no window: a window is 100 samples at 100 Hz/);
    engine.dispose();
  });

  it('replays long-format rows into the outbox, resumes at its checkpoint, and loops with fresh ids', async () => {
    // Prepare: two machines of 1,200 readings (a 0.4 s dropout each), grouped by machine.
    const engine = new Engine();
    engine.setModel(await deviceModel(spectral));
    const rows = parseCsvReadings(csv, '').rows.filter(
      (row) => row.machine === 'm01' || row.machine === 'm02',
    );
    const readings = rows;
    const dir = await mkdtemp(join(tmpdir(), 'edgeloop-window-replay-'));
    const replay = async (start: number, limit: number) => {
      const outbox = await Outbox.open(dir);
      const batcher = new ResultStream(outbox, { thing: 'gw', model: 'fan' });
      const ids: string[] = [];
      const end = await runWindowReplay(readings, { limit }, start || outbox.csvNext, {
        thing: 'gw',
        engine,
        batcher,
        stopped: () => false,
        onResults: (results) => ids.push(...results.map((r) => r.result.id)),
        chunk: 128,
      });
      await batcher.close();
      return { ids, end, stored: outbox.depthResults, checkpoint: outbox.csvNext };
    };

    // Act: the whole file in one run; then in two runs with a restart in the middle; then twice over.
    const whole = await replay(0, readings.length);
    await rm(dir, { recursive: true, force: true });
    const first = await replay(0, 1500);
    const resumed = await replay(0, readings.length);
    await rm(dir, { recursive: true, force: true });
    const looped = await replay(0, 2 * readings.length);

    // Assess
    expect(whole.end).toBe(readings.length);
    expect(whole.stored).toBe(whole.ids.length);
    expect(whole.ids.length).toBeGreaterThan(30);
    // The restart resumes at the checkpoint of the last stored results; the buffers refill, so
    // the windows that spanned the restart are not made, and no id comes twice.
    expect(first.checkpoint).toBeLessThanOrEqual(1500);
    expect(first.checkpoint).toBeGreaterThan(1500 - 128 * 2);
    const both = [...first.ids, ...resumed.ids];
    expect(new Set(both).size).toBe(both.length);
    expect(both.length).toBeGreaterThanOrEqual(whole.ids.length - 3);
    expect(both.length).toBeLessThanOrEqual(whole.ids.length);
    expect(resumed.stored).toBe(both.length);
    // A second pass over the file is a new segment per series, with ids of its own.
    expect(looped.ids.length).toBe(2 * whole.ids.length);
    expect(new Set(looped.ids).size).toBe(looped.ids.length);
    await rm(dir, { recursive: true, force: true });
    engine.dispose();
  });

  it('refuses single rows for a windowed model instead of predicting from a padded row', async () => {
    const engine = new Engine();
    engine.setModel(await deviceModel(spectral));
    const row = { ts: 1, machine: 'm01', ax: 0.1, ay: 0.2, az: 0.3 };
    expect(() => engine.classifyRows([row])).toThrow(/classifies windows of readings .*not single rows/);
    await expect(engine.submit(row)).rejects.toThrow(/not single rows/);
    engine.dispose();
  });

  it('reads no further while the disk gate is shut (a full disk), and makes every window once it opens', async () => {
    // Prepare: one machine's readings; the gate shuts after the first two chunks.
    const engine = new Engine();
    engine.setModel(await deviceModel(spectral));
    const readings = parseCsvReadings(csv, '').rows.filter((row) => row.machine === 'm01');
    const dir = await mkdtemp(join(tmpdir(), 'edgeloop-window-gate-'));
    const outbox = await Outbox.open(dir);
    const batcher = new ResultStream(outbox, { thing: 'gw', model: 'fan' });
    let gateCalls = 0;
    let open: () => void = () => undefined;
    const shut = new Promise<void>((resolve) => {
      open = resolve;
    });
    let position = 0;
    const ids: string[] = [];
    const run = runWindowReplay(readings, { limit: readings.length }, 0, {
      thing: 'gw',
      engine,
      batcher,
      stopped: () => false,
      gate: () => (++gateCalls > 2 ? shut : Promise.resolve()),
      onProgress: (next) => {
        position = next;
      },
      onResults: (results) => ids.push(...results.map((r) => r.result.id)),
      chunk: 100,
    });

    // Act: the replay meets the shut gate; a while later it opens.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const whileShut = position;
    open();
    const end = await run;
    await batcher.close();

    // Assess: two chunks read, nothing more until the gate opened, then all of it.
    expect(whileShut).toBe(200);
    expect(end).toBe(readings.length);
    const cut = windowsOf(
      'm01',
      (await deviceModel(spectral)).manifest.window?.spec as Parameters<typeof windowsOf>[1],
      Float64Array.from(readings, (r) => Number(r.ts)),
      Float32Array.from(readings.flatMap((r) => [Number(r.ax), Number(r.ay), Number(r.az)])),
    );
    expect(ids.length).toBe(cut.length);
    expect(outbox.depthResults).toBe(ids.length);
    await rm(dir, { recursive: true, force: true });
    engine.dispose();
  });

  it('answers JSON lines on stdin: a result line per window, an error line per bad reading', async () => {
    // Prepare
    const engine = new Engine();
    engine.setModel(await deviceModel(spectral));
    const dir = await mkdtemp(join(tmpdir(), 'edgeloop-window-stdin-'));
    const batcher = new ResultStream(await Outbox.open(dir), { thing: 'gw', model: 'fan' });
    const rows = parseCsvReadings(csv, '')
      .rows.filter((row) => row.machine === 'm03')
      .slice(0, 250);
    const lines = [
      ...rows.map((row) => JSON.stringify(row)),
      '{"ts": 1, "machine": "m03", "ax": "loud"}',
      'not json',
    ];
    const written: string[] = [];

    // Act
    const count = await runWindowJsonLines(Readable.from(lines.map((line) => `${line}\n`)), {
      live: new LiveWindows(engine, 'gw:stdin:'),
      batcher,
      write: (line) => written.push(line),
      stopped: () => false,
    });
    await batcher.close();

    // Assess: 250 readings at 100 Hz make windows ending at samples 100, 150, 200, 250 (dropouts aside).
    const answers = written.map((line) => JSON.parse(line));
    const results = answers.filter((answer) => answer.window);
    expect(count).toBe(251);
    expect(results.length).toBeGreaterThanOrEqual(2);
    for (const result of results) expect(result).toMatchObject({ version: 1, window: { series: 'm03' } });
    expect(answers.filter((a) => a.error).map((a) => a.error)).toEqual([
      expect.stringMatching(/^line 251: channel 'ax' must be a number, got "loud"/),
      expect.stringMatching(/^line 252: /),
    ]);
    await rm(dir, { recursive: true, force: true });
    engine.dispose();
  });

  it('gives each live request the windows its own reading completed, even when a swap drops the others', async () => {
    // Prepare: m01 one reading short of a window, m02 at the start of its buffer.
    const engine = new Engine();
    engine.setModel(await deviceModel(spectral));
    const live = new LiveWindows(engine, 'gw:http:');
    const all = parseCsvReadings(csv, '').rows;
    const m01 = all.filter((row) => row.machine === 'm01');
    const m02 = all.filter((row) => row.machine === 'm02');
    let at = 0;
    while ((await live.submit(m01[at] as RawRow)).length === 0) at++;
    for (let i = 1; i < 50; i++) expect(await live.submit(m01[at + i] as RawRow)).toEqual([]);

    // Act: m01's completing reading, a swap in the same turn, then a whole window of m02.
    const first = live.submit(m01[at + 50] as RawRow);
    engine.setModel(await deviceModel(spectral));
    const others = m02.slice(0, 160).map((row) => live.submit(row as RawRow));
    const [mine, ...theirs] = await Promise.all([first, ...others]);

    // Assess: m01's window went with the swap; every window answered is m02's, to the reading that made it.
    expect(mine).toEqual([]);
    const answered = theirs.flat();
    expect(answered.length).toBeGreaterThan(0);
    expect(new Set(answered.map((r) => r.window.series))).toEqual(new Set(['m02']));
    theirs.forEach((results, i) => {
      for (const result of results) expect(result.window.end).toBe(Number(m02[i]?.ts));
    });
    engine.dispose();
  });

  it('caps the open live series and evicts the idle ones, counting both', async () => {
    // Prepare
    const engine = new Engine();
    engine.setModel(await deviceModel(spectral));
    let now = 1_000_000;
    const live = new LiveWindows(engine, 'gw:http:', undefined, { maxSeries: 3, idleMs: 60_000 }, () => now);
    const reading = (machine: string, ts: number) => ({ ts, machine, ax: 0.1, ay: 0.2, az: 0.3 });

    // Act: three series open, a fourth is refused; a minute later the idle three are evicted.
    for (const machine of ['a', 'b', 'c']) await live.submit(reading(machine, 1));
    const refused = live.submit(reading('d', 1));
    await expect(refused).rejects.toThrow(/one more than the 3 open series .*\(maxSeries\)/);
    now += 30_000;
    await live.submit(reading('a', 2));
    now += 40_000;
    await live.submit(reading('d', 2));

    // Assess: b and c were idle for 70 s; a (30 s ago) stays.
    expect(live.series).toEqual({ open: 2, evicted: 2, refusedAtLimit: 1 });
    engine.dispose();
  });
});
