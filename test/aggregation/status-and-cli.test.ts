import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  batchPayload,
  makeResults,
  manifestFor,
  putManifest,
  ruleEvent,
  statusEvent,
} from '../../bench/support/aggregation-fixtures.ts';
import { runCli } from '../../bench/support/cli.ts';
import { startTestStack } from '../../bench/support/local-stack.ts';
import type { ResultsOutcome } from '../../functions/aggregation/results.ts';
import type { StatusOutcome } from '../../functions/aggregation/status.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { s3Client } from '../../shared/aws.ts';
import { setEmfSink } from '../../shared/emf-sink.ts';
import type { DeviceStatus } from '../../shared/schemas.ts';
import { metricNames } from '../../shared/topology.ts';

let stack: LocalStack;
let dataDir: string;
const emf: string[] = [];
let statusHandler: (event: unknown) => Promise<StatusOutcome>;
let resultsHandler: (event: unknown) => Promise<ResultsOutcome>;

beforeAll(async () => {
  // The real embedded local stack: the CLI finds it through the data dir like a user's shell.
  stack = await startTestStack({ logLevel: 'ERROR' });
  dataDir = stack.dataDir;
  const collector = setEmfSink((line) => {
    emf.push(line);
    collector?.(line);
  });
  ({ handler: statusHandler } = await import('../../functions/aggregate-status.ts'));
  ({ handler: resultsHandler } = await import('../../functions/aggregate-results.ts'));
  await putManifest(s3Client(), manifestFor('cli', 2, 0.6));
});

afterAll(async () => {
  await stack?.stop();
});

function status(overrides: Partial<DeviceStatus>): string {
  const base: DeviceStatus = {
    ts: Date.now(),
    model: 'cli',
    version: 2,
    state: 'serving',
    outboxDepth: 0,
    dropped: 0,
    inferenceRate: 10,
    latencyP50: 0.4,
    latencyP99: 1.2,
    lastError: null,
  };
  return JSON.stringify({ ...base, ...overrides });
}

describe('status aggregator and the stats/fleet CLI against the local stack', () => {
  it('keeps the newest status per thing and derives online/offline from last seen', async () => {
    // Prepare
    const now = Date.now();
    const lastError = {
      step: 'verify' as const,
      reason: 'sha256 mismatch for weights.bin',
      version: 3,
      at: now - 5000,
    };

    // Act
    const outcomes = [
      await statusHandler(statusEvent('gw-a', status({ ts: now - 1000, outboxDepth: 4, lastError }), now)),
      await statusHandler(statusEvent('gw-a', status({ ts: now - 9000, state: 'starting' }), now)), // late, older
      await statusHandler(statusEvent('gw-b', status({ ts: now - 600_000 }), now - 600_000)),
      await statusHandler(statusEvent('gw-c', '{"ts": 1', now)),
    ];
    const fleet = await runCli(['fleet', '--data-dir', dataDir, '--json']);

    // Assess
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['stored', 'stale', 'stored', 'rejected']);
    expect(fleet.code).toBe(0);
    const view = JSON.parse(fleet.stdout.trim().split('\n').at(-1) ?? '{}');
    expect(view.things).toEqual([
      expect.objectContaining({ thing: 'gw-a', online: true, state: 'serving', outboxDepth: 4, lastError }),
      expect.objectContaining({ thing: 'gw-b', online: false, version: 2 }),
    ]);
    expect(view.versions).toEqual([{ model: 'cli', version: 2, online: 1, total: 2 }]);
    const online = emf.map((line) => JSON.parse(line)).filter((doc) => metricNames.devicesOnline in doc);
    expect(online.at(-1)).toMatchObject({ model: 'cli', version: '2', [metricNames.devicesOnline]: 1 });
  });

  it('re-counts the devices online per version on a scheduled tick', async () => {
    // Prepare
    const before = emf.length;

    // Act
    const outcome = await statusHandler({
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      detail: {},
    });

    // Assess
    expect(outcome).toEqual({ status: 'counted-online' });
    const emitted = emf.slice(before).map((line) => JSON.parse(line));
    expect(emitted).toEqual([
      expect.objectContaining({ model: 'cli', version: '2', [metricNames.devicesOnline]: 1 }),
    ]);
  });

  it('prints per-version stats with inferences as JSON', async () => {
    // Prepare
    const results = makeResults(120, { seed: 5, startTs: Date.now() - 60_000, idPrefix: 'c', truthEvery: 2 });
    await resultsHandler(
      ruleEvent(
        'gw-a',
        batchPayload({ batchId: 'cli-batch-1', model: 'cli', version: 2, sentAt: Date.now(), results }),
        Date.now(),
      ),
    );

    // Act
    const stats = await runCli([
      'stats',
      '--model',
      'cli',
      '--since',
      '15m',
      '--data-dir',
      dataDir,
      '--json',
    ]);
    const human = await runCli(['stats', '--model', 'cli', '--data-dir', dataDir]);

    // Assess
    expect(stats.code).toBe(0);
    const json = JSON.parse(stats.stdout.trim().split('\n').at(-1) ?? '{}');
    expect(json.inferences).toBe(120);
    expect(json.versions[0]).toMatchObject({ version: 2, inferences: 120, labelled: 60 });
    expect(json.versions[0].drift.level).toMatch(/stable|moderate|significant/);
    expect(human.stdout).toMatch(/v2: 120 inferences/);
  });

  it('lists the errors set aside with their reasons', async () => {
    // Act
    const errors = await runCli(['stats', '--errors', '--data-dir', dataDir, '--json']);

    // Assess
    const json = JSON.parse(errors.stdout.trim().split('\n').at(-1) ?? '{}');
    expect(json.errors.count).toBe(1);
    expect(json.errors.latest[0]).toMatchObject({ thing: 'gw-c', source: 'status' });
    expect(json.errors.latest[0].reason).toMatch(/not valid JSON/);
  });

  it("shows a gateway's full disk, its free bytes and its paused source in `edgeloop fleet`", async () => {
    // Prepare
    const now = Date.now();
    const disk = { state: 'full' as const, freeBytes: 120 * 1024, reserveBytes: 150_000, sourcePaused: true };

    // Act
    await statusHandler(statusEvent('gw-disk', status({ ts: now, outboxDepth: 310, disk }), now));
    const json = await runCli(['fleet', '--data-dir', dataDir, '--json']);
    const human = await runCli(['fleet', '--data-dir', dataDir]);

    // Assess
    const view = JSON.parse(json.stdout.trim().split('\n').at(-1) ?? '{}');
    expect(view.things).toContainEqual(expect.objectContaining({ thing: 'gw-disk', disk }));
    expect(human.stdout).toMatch(
      /gw-disk .*outbox 310, dropped 0\s+disk-full \(120 KB free, source paused\)/,
    );
  });

  it('answers bad usage with exit code 2 and a one-line reason', async () => {
    // Act
    const noModel = await runCli(['stats', '--data-dir', dataDir]);
    const badSince = await runCli(['stats', '--model', 'cli', '--since', 'yesterday', '--data-dir', dataDir]);
    const noStack = await runCli(['fleet', '--data-dir', join(dataDir, 'missing')]);

    // Assess
    expect([noModel.code, badSince.code, noStack.code]).toEqual([2, 2, 1]);
    expect(noModel.stderr).toMatch(/--model is required/);
    expect(badSince.stderr).toMatch(/--since takes a duration/);
    expect(noStack.stderr).toMatch(/no local stack in .*missing.*edgeloop up/);
    expect(noStack.stderr).not.toMatch(/\n\s+at /);
  });
});
