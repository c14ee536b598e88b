/**
 * Summary mode end to end on the local stack: real gateways (the `edgeloop device` process
 * and the device service) send per-minute cells by Basic Ingest -> the local rule router ->
 * kinesalite -> the event source mapping -> the real stream aggregator -> dynalite. Through
 * a SIGKILL and a whole outbox sent twice, the cloud counts exactly what a detail-mode
 * gateway replaying the same readings counts: the same totals, class mix, low-confidence and
 * live-accuracy counts.
 */
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnBin } from '../../bench/support/cli.ts';
import { type DemoModelStack, startDemoModelStack, until } from '../../bench/support/local-stack.ts';
import { type DeviceOptions, startDevice } from '../../device/service.ts';
import { cellFromItem } from '../../functions/aggregation/aggregate-item.ts';
import { localStatsSource, readModelStats } from '../../functions/aggregation/queries.ts';
import { type AggregateCell, emptyCell, mergeCells } from '../../shared/aggregation/aggregate.ts';
import { dynamoClient } from '../../shared/aws.ts';
import { aggregateKeys, buckets, LOCAL_STAGE, tables } from '../../shared/topology.ts';

const MODEL = 'summary-e2e';
const N = 2_000;
let setup: DemoModelStack;
const since = Date.now() - 60_000;

beforeAll(async () => {
  setup = await startDemoModelStack(MODEL, {
    logLevel: 'ERROR',
    resultsStream: { batchingWindowMs: 300, pollIntervalMs: 50 },
  });
}, 120_000);

afterAll(async () => {
  await setup?.stop();
});

/** The sum of a gateway's per-minute thing items (what `fleet` and the dashboard read). */
async function thingCell(thing: string): Promise<AggregateCell> {
  const page = await dynamoClient().send(
    new QueryCommand({
      TableName: tables.aggregates.localName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': aggregateKeys.thing(MODEL, thing) },
    }),
  );
  return (page.Items ?? []).reduce<AggregateCell>(
    (sum, item) => mergeCells(sum, cellFromItem(item)),
    emptyCell(),
  );
}

/** What both paths keep per gateway (stream thing items leave the histograms to the model items). */
const counts = (cell: AggregateCell) => ({
  count: cell.count,
  classes: cell.classes,
  lowConfidence: cell.lowConfidence,
  labelled: cell.labelled,
  correct: cell.correct,
});

/** The device service in this process, as `edgeloop device --data-dir` would configure it. */
const serviceOptions = (thing: string): DeviceOptions => ({
  thing,
  model: MODEL,
  stateDir: join(setup.workDir, thing),
  mqttEndpoint: setup.stack.endpoints.mqtt,
  s3Endpoint: setup.stack.endpoints.s3,
  publicKeyPem: setup.stack.publicKeyPem,
});

const deviceProcess = (thing: string, extra: string[]) =>
  spawnBin([
    'device',
    ...['--thing', thing, '--model', MODEL, '--data-dir', setup.stack.dataDir],
    ...['--state-dir', join(setup.workDir, thing), '--source', `csv:${setup.csv}`, '--rate', '1000'],
    ...['--limit', String(N), '-q', ...extra],
  ]);

describe('summary mode by Basic Ingest on the local stack', () => {
  it('counts what detail mode counts for the same readings, through a SIGKILL of the gateway', async () => {
    // Prepare: a detail-mode gateway over the broker (in this process) replays the same readings
    const detail = await startDevice({
      ...serviceOptions('gw-detail'),
      source: { kind: 'csv', file: setup.csv, rate: 1500, limit: N },
    });
    const summaryArgs = ['--results-mode', 'summary', '--summary-interval-ms', '250'];

    // Act: the summary gateway (an `edgeloop device` process) is killed once some of its
    // cells were counted, then restarted to finish
    const first = deviceProcess('gw-summary', summaryArgs);
    await until(async () => (await thingCell('gw-summary')).count >= 500, 'summary cells counted');
    first.child.kill('SIGKILL');
    await first.exit;
    const countedAtKill = (await thingCell('gw-summary')).count;
    const code = await deviceProcess('gw-summary', summaryArgs).exit;
    await detail.finished;
    await detail.stop();
    await setup.stack.idle();

    // Assess
    expect(code).toBe(0);
    expect(countedAtKill).toBeLessThan(N);
    const reference = counts(await thingCell('gw-detail'));
    expect(reference.count).toBe(N);
    expect(reference.labelled).toBeGreaterThan(0);
    expect(counts(await thingCell('gw-summary'))).toEqual(reference);
    const stats = await readModelStats(localStatsSource(), MODEL, since);
    expect(stats.inferences).toBe(2 * N);
    expect(stats.versions[0]?.classCounts).toEqual(
      Object.fromEntries(Object.entries(reference.classes).map(([name, n]) => [name, 2 * n])),
    );
    // What the rollout controller decides on (shared/rollout/decide.ts) reads the same.
    expect(stats.versions[0]).toMatchObject({
      labelled: 2 * reference.labelled,
      liveAccuracy: reference.correct / reference.labelled,
      lowConfidenceRate: reference.lowConfidence / N,
    });
  }, 120_000);

  it('counts a whole outbox sent twice (its deletion lost) once, and uploads hard examples', async () => {
    // Prepare: the gateway has its model, then replays M readings while it cannot connect
    const M = 800;
    const stateDir = join(setup.workDir, 'gw-replay');
    const options: DeviceOptions = {
      ...serviceOptions('gw-replay'),
      results: { mode: 'summary', summaryIntervalMs: 100, basicIngestStage: LOCAL_STAGE },
    };
    const fetching = await startDevice(options);
    await fetching.waitFor((s) => s.version !== null, 30_000);
    await fetching.stop();
    const offline = await startDevice({
      ...options,
      mqttEndpoint: 'mqtt://127.0.0.1:9',
      source: { kind: 'csv', file: setup.csv, limit: M },
      // Hard examples go to S3 whatever the results mode.
      hardExamples: { bucket: buckets.datasets.localName, maxPerMinute: 10_000 },
    });
    await offline.waitFor((s) => s.position === M && s.outboxResults === M, 30_000);
    await offline.stop();
    const hardExamples = offline.hardExamples?.stats();
    const backup = join(setup.workDir, 'outbox-backup');
    await cp(join(stateDir, 'outbox'), backup, { recursive: true });

    // Act: it sends the outbox, then sends it all again
    const sent: number[] = [];
    for (const restore of [false, true]) {
      if (restore) {
        await rm(join(stateDir, 'outbox'), { recursive: true });
        await cp(backup, join(stateDir, 'outbox'), { recursive: true });
      }
      const device = await startDevice({ ...options, source: { kind: 'csv', file: setup.csv, limit: M } });
      await device.finished;
      sent.push(device.status().published);
      await device.stop();
    }
    await setup.stack.idle();

    // Assess
    expect(sent).toEqual([M, M]);
    expect(hardExamples?.sampled).toBeGreaterThan(0);
    expect(hardExamples?.uploadedRows).toBe(hardExamples?.sampled);
    expect((await thingCell('gw-replay')).count).toBe(M);
  });
});
