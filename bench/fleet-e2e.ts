/**
 * The fleet-scale results path end to end on the local stack, at 1,000 gateways:
 *
 *   1,000 MQTT connections (MQTT.js, client id = thing, the broker's per-thing policy on
 *   every publish) -> Basic Ingest topic of the results stream rule -> the local rule router
 *   (rule SQL, Kinesis action, partition key = thing) -> kinesalite (streams.results, 4
 *   shards) -> the local event source mapping (topology settings; batching window shortened,
 *   see below) -> the real stream aggregator handler -> dynalite.
 *
 *   npx tsx bench/fleet-e2e.ts [--json] [--gateways 1000] [--batches 3] [--results 100] [--window-ms 1000]
 *   npm run bench -- fleet-e2e        (or as the last line of bench/fleet-scale.ts --e2e)
 *
 * Every gateway sends `--batches` batches, one per simulated minute (all gateways at once
 * per minute, time compressed: no waiting between minutes), of `--results` results each;
 * every second batch is in summary mode, every 50th is published twice (an outbox replay).
 * The batching window is `--window-ms` instead of the deployed 20 s so the run is not mostly
 * waiting; batch size (10,000), bisect, partial batch responses and ordering are as deployed.
 *
 * Figures: end-to-end throughput (first publish to the last aggregate written), against a
 * bare baseline measured in the same run on the same stack: the same batches handed straight
 * to the same handler as Kinesis events (no MQTT, no rule, no stream). Exact = the totals,
 * every gateway's count and the class mix read back by the product's readers equal what was
 * sent, with the replays counted once.
 */
import { parseArgs } from 'node:util';
import type { KinesisStreamEvent } from 'aws-lambda';
import { localStatsSource, readModelStats } from '../functions/aggregation/queries.ts';
import type { InvokedEvent, MappingFailure, StreamRuleError } from '../infra/local/stack.ts';
import { dynamoClient, s3Client } from '../shared/aws.ts';
import { streams } from '../shared/topology.ts';
import { manifestFor, putManifest, ruleEvent, thingResultCount } from './support/aggregation-fixtures.ts';
import { startTestStack } from './support/local-stack.ts';
import { type FleetOptions, type FleetTotals, gatewayBatch, runFleet } from './support/simulated-fleet.ts';

export interface FleetE2eLine {
  bench: 'fleet-e2e';
  gateways: number;
  connections: number;
  shards: number;
  publishes: number;
  replays: number;
  results: number;
  invocations: number;
  /** Invocations that threw (retried by the mapping: bisected, then from the same record). */
  failedInvocations: number;
  /** Puts the rule could not make plus records sent to the on-failure destination. */
  lostToErrors: number;
  /** Opening every gateway's connection (not in the throughput). */
  connectMs: number;
  /** First publish to the last PUBACK. */
  publishMs: number;
  /** First publish to the last aggregate written. */
  e2eMs: number;
  resultsPerSecond: number;
  batchesPerSecond: number;
  bareResultsPerSecond: number;
  /** End-to-end throughput over the bare handler's. */
  ratioToBare: number;
  exact: boolean;
}

async function thingCounts(model: string, things: Iterable<string>): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const thing of things) counts.set(thing, await thingResultCount(dynamoClient(), model, thing));
  return counts;
}

interface Exactness {
  exact: boolean;
  counted: number;
  /** Gateways whose count differs from what they sent. */
  gatewaysOff: number;
  classesOff: string[];
}

async function exactness(model: string, sent: FleetTotals, since: number): Promise<Exactness> {
  const stats = await readModelStats(localStatsSource(), model, since);
  const classes = stats.versions[0]?.classCounts ?? {};
  const byThing = await thingCounts(model, sent.byThing.keys());
  const gatewaysOff = [...sent.byThing].filter(([thing, count]) => byThing.get(thing) !== count).length;
  const classesOff = [...sent.byLabel].filter(([label, count]) => classes[label] !== count).map(([l]) => l);
  return {
    exact: stats.inferences === sent.results && gatewaysOff === 0 && classesOff.length === 0,
    counted: stats.inferences,
    gatewaysOff,
    classesOff,
  };
}

/** The same batches as Kinesis events straight to the handler: 4 shards, 10,000 records a call. */
async function bareRun(options: FleetOptions, shards: number): Promise<{ ms: number; results: number }> {
  const byShard: KinesisStreamEvent['Records'][] = Array.from({ length: shards }, () => []);
  let results = 0;
  for (let n = 0; n < options.batchesPerGateway; n++)
    for (let g = 0; g < options.gateways; g++) {
      const batch = gatewayBatch(options, g, n);
      results += batch.results.length;
      const shard = g % shards;
      const records = byShard[shard] as KinesisStreamEvent['Records'];
      const data = Buffer.from(JSON.stringify(ruleEvent(batch.thing, batch.payload, Date.now()))).toString(
        'base64',
      );
      const sequenceNumber = String(49_000_000_000_000_000_000n + BigInt(records.length) * 3n);
      records.push({
        eventSource: 'aws:kinesis',
        eventVersion: '1.0',
        eventID: `shardId-00000000000${shard}:${sequenceNumber}`,
        eventName: 'aws:kinesis:record',
        invokeIdentityArn: 'arn:aws:iam::000000000000:role/bench',
        awsRegion: 'us-east-1',
        eventSourceARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/bench',
        kinesis: {
          kinesisSchemaVersion: '1.0',
          partitionKey: batch.thing,
          sequenceNumber,
          data,
          approximateArrivalTimestamp: Date.now() / 1000,
        },
      });
    }
  // The handler reads its env at load, which the local stack sets: imported once it runs.
  const { handler: streamHandler } = await import('../functions/aggregate-results-stream.ts');
  const started = performance.now();
  await Promise.all(
    byShard.map(async (records) => {
      for (let i = 0; i < records.length; i += 10_000) {
        const response = await streamHandler({ Records: records.slice(i, i + 10_000) });
        if (response.batchItemFailures.length > 0) throw new Error('the bare run failed a batch');
      }
    }),
  );
  return { ms: performance.now() - started, results };
}

export async function main(args: string[] = process.argv.slice(2)): Promise<FleetE2eLine> {
  const { values } = parseArgs({
    args,
    options: {
      json: { type: 'boolean', default: false },
      gateways: { type: 'string', default: '1000' },
      batches: { type: 'string', default: '3' },
      results: { type: 'string', default: '100' },
      'window-ms': { type: 'string', default: '1000' },
    },
    allowPositionals: true,
  });
  const number = (name: keyof typeof values, min: number) => {
    const parsed = Number(values[name]);
    if (!Number.isInteger(parsed) || parsed < min) {
      console.error(`fleet-e2e: --${name} must be a whole number >= ${min}, got '${values[name]}'`);
      process.exit(2);
    }
    return parsed;
  };
  const gateways = number('gateways', 1);
  const batches = number('batches', 1);
  const resultsPerBatch = number('results', 1);
  const windowMs = number('window-ms', 0);
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const stack = await startTestStack({
    logLevel: 'ERROR',
    resultsStream: { batchingWindowMs: windowMs, pollIntervalMs: 200 },
  });
  try {
    const startTs = Date.now() - (batches + 1) * 60_000;
    const fleet = (model: string): FleetOptions => ({
      mqttUrl: stack.endpoints.mqtt,
      basicIngestPrefix: stack.resultsBasicIngestPrefix,
      gateways,
      batchesPerGateway: batches,
      resultsPerBatch,
      model,
      version: 1,
      startTs,
      lowConfidence: 0.6,
      summaryEvery: 2,
      replayEvery: 50,
    });
    for (const model of ['fleet-e2e', 'fleet-bare'])
      await putManifest(s3Client(), manifestFor(model, 1, 0.6));
    let invocations = 0;
    let failedInvocations = 0;
    const lost: string[] = [];
    stack.events.on('invoked', (event: InvokedEvent) => {
      if (event.fn !== 'aggregateResultsStream') return;
      invocations++;
      if (event.error !== undefined) failedInvocations++;
    });
    stack.events.on('rule-error', (error: StreamRuleError) => lost.push(`rule: ${error.error}`));
    stack.events.on('stream-failure', (failure: MappingFailure) =>
      lost.push(`on-failure: ${failure.batchSize} records, ${failure.reason}, ${failure.lastError ?? ''}`),
    );

    const sent = await runFleet(fleet('fleet-e2e'));
    await stack.idle();
    const e2eMs = performance.now() - sent.firstPublishAt;
    const check = await exactness('fleet-e2e', sent, startTs - 60_000);

    const shards = streams.results.localShards;
    const bare = await bareRun(fleet('fleet-bare'), shards);
    const resultsPerSecond = sent.results / (e2eMs / 1000);
    const bareResultsPerSecond = bare.results / (bare.ms / 1000);
    const line: FleetE2eLine = {
      bench: 'fleet-e2e',
      gateways,
      connections: gateways,
      shards,
      publishes: sent.publishes,
      replays: sent.replays,
      results: sent.results,
      invocations,
      failedInvocations,
      lostToErrors: lost.length,
      connectMs: Math.round(sent.connectMs),
      publishMs: Math.round(sent.publishMs),
      e2eMs: Math.round(e2eMs),
      resultsPerSecond: Math.round(resultsPerSecond),
      batchesPerSecond: Math.round(sent.publishes / (e2eMs / 1000)),
      bareResultsPerSecond: Math.round(bareResultsPerSecond),
      ratioToBare: Number((resultsPerSecond / bareResultsPerSecond).toFixed(3)),
      exact: check.exact,
    };
    if (!values.json) {
      console.log(
        `fleet-e2e: ${line.gateways} gateways (${line.connections} MQTT connections) -> Basic Ingest -> rule -> kinesalite (${shards} shards) -> event source mapping -> stream aggregator -> dynalite`,
      );
      console.log(
        `  ${line.publishes} publishes (${line.replays} replays), ${line.results} results; connect ${line.connectMs} ms, publish ${line.publishMs} ms, first publish to last aggregate ${line.e2eMs} ms, ${line.invocations} invocations`,
      );
      console.log(
        `  ${line.resultsPerSecond} results/s, ${line.batchesPerSecond} batches/s end to end; bare handler ${line.bareResultsPerSecond} results/s; ratio ${line.ratioToBare}; exact: ${line.exact}`,
      );
    }
    for (const reason of new Set(lost)) console.error(`  lost: ${reason}`);
    if (!check.exact)
      console.error(
        `  not exact: ${check.counted} counted of ${sent.results}, ${check.gatewaysOff} gateways off, classes off: ${check.classesOff.join(', ') || 'none'}`,
      );
    console.log(JSON.stringify(line));
    return line;
  } finally {
    await stack.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
