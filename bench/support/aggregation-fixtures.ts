/** Deterministic result batches, rule events and manifests for the aggregation tests and bench. */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type DynamoDBDocumentClient, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { InferenceResult, Manifest, RuleEvent } from '../../shared/schemas.ts';
import { aggregateKeys, buckets, modelKeys, tables, topicFor } from '../../shared/topology.ts';
import { seededRandom } from '../../shared/training/random.ts';

export const LABELS = ['idle', 'normal', 'overheat', 'vibration'] as const;

export function makeResults(
  count: number,
  options: { seed: number; startTs: number; idPrefix: string; truthEvery?: number },
): InferenceResult[] {
  const random = seededRandom(options.seed);
  return Array.from({ length: count }, (_, i) => {
    const label = LABELS[Math.floor(random() * LABELS.length)] ?? 'idle';
    const truth =
      options.truthEvery && i % options.truthEvery === 0 ? (random() < 0.8 ? label : 'idle') : undefined;
    return {
      id: `${options.idPrefix}-${i}`,
      ts: options.startTs + i * 50,
      label,
      confidence: Math.round(random() * 1000) / 1000,
      // Log-spread latencies from 0.05 ms to ~200 ms exercise many histogram buckets.
      latencyMs: Math.round(0.05 * Math.exp(random() * 8.3) * 1000) / 1000,
      ...(truth === undefined ? {} : { truth }),
    };
  });
}

export function batchPayload(batch: {
  batchId: string;
  model: string;
  version: number;
  sentAt: number;
  results: unknown[];
}): string {
  return JSON.stringify(batch);
}

export function ruleEvent(thing: string, payload: string | Uint8Array, receivedAt: number): RuleEvent {
  return {
    payload: Buffer.from(payload).toString('base64'),
    topic: topicFor('results', { thing }),
    thing,
    receivedAt,
  };
}

export function statusEvent(thing: string, payload: string, receivedAt: number): RuleEvent {
  return { ...ruleEvent(thing, payload, receivedAt), topic: topicFor('status', { thing }) };
}

export function manifestFor(model: string, version: number, lowConfidence: number): Manifest {
  return {
    schemaVersion: 1,
    model,
    version,
    createdAt: new Date(Date.UTC(2026, 0, 1)).toISOString(),
    files: [{ name: 'model.json', sha256: 'a'.repeat(64), size: 1 }],
    preprocessing: {
      label: 'state',
      labels: [...LABELS],
      features: [{ kind: 'numeric', column: 'temp', mean: 0, std: 1, fill: 0 }],
      inputWidth: 1,
    },
    metrics: { accuracy: 0.9 },
    classDistribution: { idle: 0.25, normal: 0.25, overheat: 0.25, vibration: 0.25 },
    golden: { rows: [], outputs: [], tolerance: 1e-4 },
    lowConfidence,
    lineage: {
      datasetKey: `datasets/${model}/d.csv`,
      datasetSha256: 'b'.repeat(64),
      rows: 100,
      backend: 'cpu',
      seed: 1,
    },
  };
}

export async function putManifest(s3: S3Client, manifest: Manifest): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: buckets.models.localName,
      Key: modelKeys.manifest(manifest.model, manifest.version),
      Body: JSON.stringify(manifest),
      ContentType: 'application/json',
    }),
  );
}

/** A DynamoDB client whose UpdateItems on keys `failing(pk)` picks reject with `message`. */
export function failingUpdates(
  real: DynamoDBDocumentClient,
  failing: (pk: string) => boolean,
  message: string,
): DynamoDBDocumentClient {
  return {
    send: (command: { input: { Key?: Record<string, unknown> } }) =>
      command instanceof UpdateCommand && failing(String(command.input.Key?.pk))
        ? Promise.reject(new Error(message))
        : real.send(command as never),
  } as unknown as DynamoDBDocumentClient;
}

/** Results counted for one gateway of `model`, over all its thing items in the local table. */
export async function thingResultCount(
  ddb: DynamoDBDocumentClient,
  model: string,
  thing: string,
): Promise<number> {
  const page = await ddb.send(
    new QueryCommand({
      TableName: tables.aggregates.localName,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': aggregateKeys.thing(model, thing) },
    }),
  );
  return (page.Items ?? []).reduce((sum, item) => sum + Number(item.n ?? 0), 0);
}
