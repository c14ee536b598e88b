/**
 * A simulated fleet for the end-to-end results path: one MQTT 3.1.1 connection per gateway
 * (MQTT.js; client id = thing name, so the broker's per-thing policy judges every publish as
 * it would that gateway's), each publishing its result batches with QoS 1 to its own Basic
 * Ingest topic. Batch i of every gateway carries results of simulated minute i; every
 * `summaryEvery`-th batch goes in summary mode (the real encoder, summarizeResults), and
 * every `replayEvery`-th batch is published a second time, as an outbox replay does.
 * The expected totals are computed from what was sent, not read back.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { summarizeResults } from '../../shared/aggregation/summary.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { topicFor } from '../../shared/topology.ts';
import { batchPayload, makeResults } from './aggregation-fixtures.ts';

export interface FleetOptions {
  mqttUrl: string;
  /** The Basic Ingest prefix, e.g. `$aws/rules/edgeloop_results_stream_local/`. */
  basicIngestPrefix: string;
  gateways: number;
  batchesPerGateway: number;
  resultsPerBatch: number;
  model: string;
  version: number;
  /** Timestamp of the first result of batch 0 (each batch is one minute later). */
  startTs: number;
  lowConfidence: number;
  summaryEvery?: number;
  replayEvery?: number;
  thingPrefix?: string;
  /** Connections opened at once (a storm of 1,000 CONNECTs is not what is measured). */
  connectConcurrency?: number;
}

export interface FleetTotals {
  results: number;
  byThing: Map<string, number>;
  byLabel: Map<string, number>;
  /** Publishes acknowledged by the broker (replays included). */
  publishes: number;
  replays: number;
  bytes: number;
  /** From the first publish to the last PUBACK. */
  publishMs: number;
  /** performance.now() at the first publish (after every gateway connected). */
  firstPublishAt: number;
  connectMs: number;
}

export const thingName = (prefix: string, index: number) => `${prefix}${String(index).padStart(5, '0')}`;

/** Connects one gateway as its thing; rejects when the broker refuses it. */
export function connectGateway(mqttUrl: string, thing: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(mqttUrl, {
      clientId: thing,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      keepalive: 300,
    });
    client.once('connect', () => {
      client.removeAllListeners('error');
      resolve(client);
    });
    client.once('error', (error) => {
      client.end(true);
      reject(error);
    });
  });
}

/** Publishes with QoS 1; resolves on PUBACK, rejects when the broker closes the connection. */
export function publishAcked(client: MqttClient, topic: string, payload: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = () => reject(new Error(`the broker closed ${client.options.clientId} on '${topic}'`));
    client.once('close', onClose);
    client.publish(topic, payload, { qos: 1 }, (error) => {
      client.off('close', onClose);
      if (error) reject(error);
      else resolve();
    });
  });
}

async function inBatches<T>(
  items: readonly T[],
  size: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(work));
}

export interface GatewayBatch {
  thing: string;
  gateway: number;
  /** The simulated minute (0-based) the batch's results fall in. */
  n: number;
  payload: string;
  results: InferenceResult[];
  /** Published twice, as an outbox replay does. */
  replayed: boolean;
}

/** Gateway `gateway`'s batch `n`: its payload (detail or summary mode) and the results in it. */
export function gatewayBatch(options: FleetOptions, gateway: number, n: number): GatewayBatch {
  const thing = thingName(options.thingPrefix ?? 'gw-', gateway);
  const batchId = `${options.model}-g${gateway}-b${n}`;
  const results: InferenceResult[] = makeResults(options.resultsPerBatch, {
    seed: gateway * 1_009 + n,
    // Batch n spans the first seconds of minute n; gateways are a few ms apart.
    startTs: options.startTs + n * 60_000 + (gateway % 1000) * 3,
    idPrefix: `${batchId}-r`,
    truthEvery: 5,
  });
  const envelope = { batchId, model: options.model, version: options.version, sentAt: options.startTs };
  const summary = options.summaryEvery !== undefined && (gateway + n) % options.summaryEvery === 0;
  const payload = summary
    ? JSON.stringify({
        mode: 'summary',
        ...envelope,
        cells: summarizeResults(results, options.lowConfidence),
      })
    : batchPayload({ ...envelope, results });
  const replayed = options.replayEvery !== undefined && (gateway * 7 + n) % options.replayEvery === 0;
  return { thing, gateway, n, payload, results, replayed };
}

export async function runFleet(options: FleetOptions): Promise<FleetTotals> {
  const prefix = options.thingPrefix ?? 'gw-';
  const things = Array.from({ length: options.gateways }, (_, g) => thingName(prefix, g));
  const clients: MqttClient[] = new Array(things.length);
  const totals: FleetTotals = {
    results: 0,
    byThing: new Map(),
    byLabel: new Map(),
    publishes: 0,
    replays: 0,
    bytes: 0,
    publishMs: 0,
    firstPublishAt: 0,
    connectMs: 0,
  };
  const connecting = performance.now();
  try {
    await inBatches(
      things.map((thing, g) => ({ thing, g })),
      options.connectConcurrency ?? 50,
      async ({ thing, g }) => {
        clients[g] = await connectGateway(options.mqttUrl, thing);
      },
    );
    const started = performance.now();
    totals.connectMs = started - connecting;
    totals.firstPublishAt = started;
    for (let n = 0; n < options.batchesPerGateway; n++) {
      // Every gateway sends its batch of this minute at once, as a fleet does.
      await Promise.all(
        things.map(async (thing, g) => {
          const client = clients[g] as MqttClient;
          const topic = `${options.basicIngestPrefix}${topicFor('results', { thing })}`;
          const batch = gatewayBatch(options, g, n);
          for (let copy = 0; copy < (batch.replayed ? 2 : 1); copy++) {
            await publishAcked(client, topic, batch.payload);
            totals.publishes += 1;
            totals.bytes += Buffer.byteLength(batch.payload);
          }
          if (batch.replayed) totals.replays += 1;
          totals.results += batch.results.length;
          totals.byThing.set(thing, (totals.byThing.get(thing) ?? 0) + batch.results.length);
          for (const result of batch.results)
            totals.byLabel.set(result.label ?? '', (totals.byLabel.get(result.label ?? '') ?? 0) + 1);
        }),
      );
    }
    totals.publishMs = performance.now() - started;
    return totals;
  } finally {
    await Promise.all(
      clients
        .filter(Boolean)
        .map((client) => new Promise<void>((resolve) => client.end(false, {}, () => resolve()))),
    );
  }
}
