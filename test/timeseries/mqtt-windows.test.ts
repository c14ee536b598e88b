import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releasedManifest } from '../../bench/support/released-manifest.ts';
import { Engine } from '../../device/model/engine.ts';
import { loadModelFromBytes } from '../../device/model/model.ts';
import { Outbox } from '../../device/results/outbox.ts';
import { ResultStream } from '../../device/results/result-writer.ts';
import { runLiveInput } from '../../device/sources/live/live-input.ts';
import { parseMqttUrl } from '../../device/sources/mqtt/settings.ts';
import type { SourceContext } from '../../device/sources/read-source.ts';
import { runWindowReplay } from '../../device/sources/window-sources.ts';
import type { WindowResult } from '../../device/sources/window-stream.ts';
import { parseCsvReadings } from '../../shared/dataset/readings.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { trainWindowsFromCsv } from '../../shared/timeseries/train.ts';
import { generateVibrationCsv } from '../../shared/timeseries/vibration-dataset.ts';
import { until } from '../device/helpers.ts';
import { type Mosquitto, mosquittoAvailable, startMosquitto } from '../support/mosquitto.ts';

const csv = generateVibrationCsv({ machines: 6, readings: 1200, seed: 11 });
const rows = parseCsvReadings(csv, '').rows;

describe.runIf(mosquittoAvailable())('a windowed model fed over MQTT', () => {
  let dir: string;
  let mosquitto: Mosquitto;
  let engine: Engine;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgeloop-mqtt-windows-'));
    mosquitto = await startMosquitto(join(dir, 'mosquitto'));
    const config = TrainingConfigSchema.parse({
      label: 'state',
      epochs: 2,
      window: { time: 'ts', series: 'machine', sizeMs: 1000, strideMs: 500 },
    });
    const outcome = await trainWindowsFromCsv(csv, config);
    engine = new Engine();
    engine.setModel(
      await loadModelFromBytes(
        outcome.artifacts.modelJson,
        outcome.artifacts.weights,
        releasedManifest(outcome, { model: 'fan' }),
      ),
    );
  });

  afterAll(async () => {
    await mosquitto?.stop();
    engine?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the same windows, labels and confidences as the same readings replayed from the CSV', async () => {
    // Prepare: what the CSV replay makes of the readings.
    const replayed: WindowResult[] = [];
    const replayBatcher = new ResultStream(await Outbox.open(join(dir, 'replay')), {
      thing: 'gw',
      model: 'fan',
    });
    await runWindowReplay(rows, { limit: rows.length }, 0, {
      thing: 'gw',
      engine,
      batcher: replayBatcher,
      stopped: () => false,
      onResults: (results) => replayed.push(...results),
    });
    await replayBatcher.close();

    // Act: the same readings, one JSON message each, through Mosquitto into the live pipeline.
    const live: WindowResult[] = [];
    const outbox = await Outbox.open(join(dir, 'live', 'outbox'));
    const batcher = new ResultStream(outbox, { thing: 'gw', model: 'fan' });
    const stop = new AbortController();
    let stopped = false;
    const status: (() => { state: string })[] = [];
    const ctx: SourceContext = {
      thing: 'gw',
      stateDir: join(dir, 'live'),
      signal: stop.signal,
      durablePosition: () => outbox.csvNext,
      onSourceStatus: (s) => status.push(s),
      onWindowStream: () => undefined,
      bootId: 'b',
      engine,
      batcher,
      labelColumn: () => 'state',
      stopped: () => stopped,
      gate: () => Promise.resolve(),
      log: () => undefined,
      stdin: () => {
        throw new Error('no stdin here');
      },
      stdout: () => undefined,
      onProduced: () => undefined,
      onPosition: () => undefined,
      refuse: () => (refusal) => {
        throw new Error(`refused: ${refusal.message}`);
      },
      onWindowResults: (results) => live.push(...results),
    };
    const running = runLiveInput(
      { kind: 'mqtt', settings: parseMqttUrl(`${mosquitto.url}?topic=vib/%2B`) },
      ctx,
    );
    await until(() => status[0]?.().state === 'connected', 20_000, 'the source subscribed');
    const sensor = await mqtt.connectAsync(mosquitto.url, { clientId: 'vibration-sensor' });
    await Promise.all(
      rows.map((row) => sensor.publishAsync(`vib/${row.machine}`, JSON.stringify(row), { qos: 1 })),
    );
    await sensor.endAsync();
    await until(() => live.length >= replayed.length, 30_000, `${replayed.length} windows`);
    stopped = true;
    stop.abort();
    await running;
    await batcher.close();

    // Assess
    const key = (r: WindowResult) => `${r.window.series}:${Math.round(r.window.end)}`;
    const view = (results: WindowResult[]) =>
      new Map(
        results.map((r) => [
          key(r),
          { label: r.result.label, confidence: r.result.confidence, start: r.window.start },
        ]),
      );
    expect(replayed.length).toBeGreaterThan(20);
    expect(view(live)).toEqual(view(replayed));
    expect(live.every((r) => r.result.timeFrom === 'reading')).toBe(true);
  });
});
