/**
 * The windowed loop through the real local servers (the local S3, dynalite, aedes with the thing
 * policy, the real training and aggregator handlers, device services on the SDK's MQTT
 * client): a long-format CSV and its edgeloop.json `window` are uploaded, the training
 * handler trains on windows, gates and releases; the gateways replay machines the model
 * never saw and send one result per window.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { startDevice } from '../../device/service.ts';
import { listRegistry } from '../../functions/training/registry.ts';
import { formatRegistry } from '../../infra/cli/commands/models.ts';
import { trainingRunFromRegistry } from '../../infra/local/dashboard/snapshot.ts';
import { type DemoRun, runDemo, VIBRATION_DEMO } from '../../infra/local/demo.ts';
import { dynamoClient, s3Client } from '../../shared/aws.ts';
import { ManifestSchema, type RegistryItem, type ResolvedWindow } from '../../shared/schemas.ts';
import { generateVibrationCsv } from '../../shared/timeseries/vibration-dataset.ts';
import { buckets, datasetKeys, modelKeys, tables } from '../../shared/topology.ts';
import { WHOLE_LOOP_TEST_MS, WHOLE_LOOP_WAIT_MS } from './whole-loop.ts';

/** Windows a replay should give, counted from the readings' times alone: per unbroken stretch, 1 + (points - samples) / stride. */
function expectedWindows(csv: string, spec: ResolvedWindow): number {
  const bySeries = new Map<string, number[]>();
  for (const line of csv.trim().split('\n').slice(1)) {
    const [ts, machine] = line.split(',');
    bySeries.set(machine ?? '', [...(bySeries.get(machine ?? '') ?? []), Number(ts)]);
  }
  let total = 0;
  for (const times of bySeries.values()) {
    let start = times[0] ?? 0;
    const stretches: number[] = [];
    times.forEach((t, i) => {
      if (i > 0 && t - (times[i - 1] ?? t) > spec.maxGapMs) {
        stretches.push((times[i - 1] ?? t) - start);
        start = t;
      }
    });
    stretches.push((times[times.length - 1] ?? start) - start);
    for (const ms of stretches) {
      const points = Math.floor((ms * spec.frequencyHz) / 1000) + 1;
      if (points >= spec.samples) total += Math.floor((points - spec.samples) / spec.stride) + 1;
    }
  }
  return total;
}

let run: DemoRun | undefined;
afterAll(async () => run?.stop());

describe('the windowed loop on the local stack', { timeout: WHOLE_LOOP_TEST_MS }, () => {
  it('trains on windows from an upload, releases, and every gateway sends one result per window', async () => {
    // Act
    run = await runDemo({
      devices: 2,
      model: 'fans',
      window: { time: 'ts', series: 'machine', sizeMs: 1000, strideMs: 500 },
      timeoutMs: WHOLE_LOOP_WAIT_MS,
    });
    const { summary } = run;

    // Assess: the release carries its window; the model scored well on held-out machines.
    expect(summary.version).toBe(1);
    expect(summary.metrics.accuracy).toBeGreaterThan(0.85);
    const config = await s3Client().send(
      new GetObjectCommand({ Bucket: buckets.datasets.localName, Key: datasetKeys.config('fans') }),
    );
    expect(JSON.parse((await config.Body?.transformToString()) ?? '{}').window.sizeMs).toBe(1000);
    const stored = await s3Client().send(
      new GetObjectCommand({ Bucket: buckets.models.localName, Key: modelKeys.manifest('fans', 1) }),
    );
    const manifest = ManifestSchema.parse(JSON.parse((await stored.Body?.transformToString()) ?? '{}'));
    expect(manifest.window?.split).toBe('series');
    expect(manifest.window?.golden.windows.length).toBeGreaterThan(0);
    const spec = manifest.window?.spec as ResolvedWindow;
    expect(summary.window).toEqual(spec);

    // The registry keeps the version's window, and `edgeloop models` and the dashboard show it.
    const [item] = await listRegistry({ ddb: dynamoClient(), table: tables.registry.localName }, 'fans');
    expect(item?.window).toEqual({ ...spec, features: 'spectral' });
    const [header, row] = formatRegistry(item ? [item] : []);
    expect(header).toMatch(/ACCURACY\s+BASELINE\s+UPDATED\s+WINDOW/);
    expect(row).toContain('1000 ms windows every 500 ms at 100 Hz of ax, ay, az per machine, spectral');
    expect(trainingRunFromRegistry(item as RegistryItem).window).toMatch(/^1000 ms windows/);

    // One result per window of the replayed readings (within 5%), each counted by the aggregator.
    const perGateway = expectedWindows(generateVibrationCsv(VIBRATION_DEMO.replay), spec);
    expect(perGateway).toBeGreaterThan(50);
    expect(Math.abs(summary.results.published - 2 * perGateway)).toBeLessThanOrEqual(0.05 * 2 * perGateway);
    expect(summary.results.aggregated).toBe(summary.results.published);
    // Live accuracy on machines the model never saw, from the windows' truths.
    expect(summary.liveAccuracy).toBeGreaterThanOrEqual(0.85);
  });

  it('answers POST /infer on a gateway serving the windowed release: a reading, then a whole window', async () => {
    // Prepare: one more gateway on the same stack, HTTP only; it picks up v1 from the retained notice.
    const stack = run?.stack;
    if (!stack) throw new Error('the loop test did not leave a stack running');
    const stateDir = await mkdtemp(join(tmpdir(), 'edgeloop-window-http-'));
    const device = await startDevice({
      thing: 'gw-http',
      model: 'fans',
      stateDir,
      mqttEndpoint: stack.endpoints.mqtt,
      s3Endpoint: stack.endpoints.s3,
      publicKeyPem: stack.publicKeyPem,
      httpPort: 0,
    });
    try {
      await device.waitFor((snapshot) => snapshot.version === 1, 60_000);
      const readings = generateVibrationCsv({ ...VIBRATION_DEMO.replay, machines: 1 })
        .trim()
        .split('\n')
        .slice(1, 131)
        .map((line) => {
          const [ts, machine, ax, ay, az, state] = line.split(',');
          return { ts: Number(ts), machine, ax: Number(ax), ay: Number(ay), az: Number(az), state };
        });
      const post = async (body: unknown) => {
        const response = await fetch(`http://127.0.0.1:${device.httpPort}/infer`, {
          method: 'POST',
          body: JSON.stringify(body),
          headers: { 'content-type': 'application/json' },
        });
        return {
          status: response.status,
          body: (await response.json()) as {
            windows?: { window: unknown; truth?: string }[];
            error?: string;
          },
        };
      };

      // Act
      const single = await post(readings[0]);
      const whole = await post({ readings: readings.slice(0, 120) });
      const bad = await post({ readings: [{ ts: 1, machine: 'm17', ax: 'x' }] });

      // Assess
      expect(single).toEqual({ status: 200, body: { windows: [] } });
      expect(whole.status).toBe(200);
      expect(whole.body.windows).toHaveLength(1);
      expect(whole.body.windows?.[0]).toMatchObject({
        version: 1,
        truth: readings[119]?.state,
        window: { series: 'm17' },
      });
      // A window with a reading the stream refuses is refused with that reading's reason.
      expect(bad.status).toBe(422);
      expect(bad.body.error).toMatch(/^reading 1: channel 'ax' must be a number, got "x"/);
      expect(bad.body).toMatchObject({ reason: 'missing-features' });
      await device.waitFor((snapshot) => snapshot.published >= 1, 30_000);
    } finally {
      await device.stop();
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
