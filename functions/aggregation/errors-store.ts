/**
 * The errors table: every message (or single result) the aggregators could not count, with
 * its reason, topic, thing and a bounded copy of the payload. Item keys are derived from the
 * content, so a re-delivered bad message overwrites its own record instead of adding one.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import { BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  type Decoded,
  decodeJsonPayload,
  decodeRuleEvent,
  payloadBytes,
  payloadCopy,
} from '../../shared/aggregation/decode.ts';
import type { EdgeloopMetrics } from '../../shared/metrics.ts';
import type { RuleEvent } from '../../shared/schemas.ts';
import { errorKeys } from '../../shared/topology.ts';

export type ErrorSource = 'results' | 'status' | 'events';

export interface ErrorRecord {
  source: ErrorSource;
  reason: string;
  topic: string;
  thing: string;
  /** When it arrived: the broker's receive time (the same on a Lambda redelivery). */
  at: number;
  payload: Uint8Array;
  batchId?: string;
  resultIndex?: number;
}

export interface ErrorItem {
  pk: string;
  sk: string;
  source: ErrorSource;
  reason: string;
  topic: string;
  thing: string;
  at: number;
  payload: string;
  payloadSize: number;
  payloadTruncated: boolean;
  batchId?: string;
  resultIndex?: number;
  expiresAt: number;
}

/** Bad results recorded individually per batch; the rest are summed up in one extra record. */
export const MAX_RESULT_ERRORS_PER_BATCH = 20;

export function errorItem(record: ErrorRecord): ErrorItem {
  const digest = createHash('sha256')
    .update(`${record.source}\n${record.topic}\n${record.batchId ?? ''}\n${record.resultIndex ?? ''}\n`)
    .update(record.payload)
    .digest('hex')
    .slice(0, 16);
  const copy = payloadCopy(record.payload);
  return {
    pk: errorKeys.partition(record.at),
    sk: errorKeys.sort(record.at, digest),
    source: record.source,
    reason: record.reason.slice(0, 1000),
    topic: record.topic.slice(0, 256),
    thing: record.thing.slice(0, 128),
    at: record.at,
    payload: copy.text,
    payloadSize: copy.size,
    payloadTruncated: copy.truncated,
    ...(record.batchId === undefined ? {} : { batchId: record.batchId }),
    ...(record.resultIndex === undefined ? {} : { resultIndex: record.resultIndex }),
    expiresAt: Math.floor(record.at / 1000) + errorKeys.retentionDays * 86_400,
  };
}

/** Writes error records (25 per request, unprocessed items retried with backoff). */
export async function recordErrors(
  ddb: DynamoDBDocumentClient,
  table: string,
  records: readonly ErrorRecord[],
): Promise<void> {
  const unique = new Map(
    records.map((record) => errorItem(record)).map((item) => [`${item.pk}\n${item.sk}`, item]),
  );
  const items = [...unique.values()];
  for (let start = 0; start < items.length; start += 25) {
    let requests = items.slice(start, start + 25).map((item) => ({ PutRequest: { Item: item } }));
    for (let attempt = 0; requests.length > 0; attempt++) {
      if (attempt > 8) throw new Error(`could not write ${requests.length} error records to ${table}`);
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 25 * 2 ** attempt)));
      const response = await ddb.send(new BatchWriteCommand({ RequestItems: { [table]: requests } }));
      requests = (response.UnprocessedItems?.[table] ?? []) as typeof requests;
    }
  }
}

export interface SetAsideDeps {
  ddb: DynamoDBDocumentClient;
  tables: { errors: string };
  metrics: EdgeloopMetrics;
  logger: Pick<Logger, 'warn'>;
}

/** Records a message that cannot be counted, logs it and counts it in AggregatorErrors. */
export async function setAside(
  deps: SetAsideDeps,
  record: ErrorRecord,
): Promise<{ status: 'rejected'; reason: string }> {
  await recordErrors(deps.ddb, deps.tables.errors, [record]);
  deps.logger.warn('message set aside', {
    source: record.source,
    reason: record.reason,
    topic: record.topic,
    thing: record.thing,
  });
  deps.metrics.publishWith({ source: record.source }, (m) => m.put('aggregatorErrors', 1));
  return { status: 'rejected', reason: record.reason };
}

/** An event that is not even a rule event: keep what can be said about it. */
export function unreadableEvent(source: ErrorSource, raw: unknown, reason: string, now: number): ErrorRecord {
  const field = (name: string) =>
    raw && typeof raw === 'object' && name in raw ? String((raw as Record<string, unknown>)[name]) : '(none)';
  let text: string;
  try {
    text = JSON.stringify(raw) ?? String(raw);
  } catch {
    text = String(raw);
  }
  return {
    source,
    reason,
    topic: field('topic'),
    thing: field('thing'),
    at: now,
    payload: Buffer.from(text),
  };
}

/** A rule event whose payload cannot be used, with the whole payload as evidence. */
export function eventError(source: ErrorSource, event: RuleEvent, reason: string): ErrorRecord {
  return {
    source,
    reason,
    topic: event.topic,
    thing: event.thing,
    at: event.receivedAt,
    payload: payloadBytes(event),
  };
}

export type Intake<T> = { ok: true; event: RuleEvent; value: T } | { ok: false; record: ErrorRecord };

/**
 * Rule event -> base64 -> JSON -> `decodeBody`, or the error record that says which step
 * failed and why. Shared by both aggregators so their input handling cannot drift apart.
 */
export function intake<T>(
  source: ErrorSource,
  raw: unknown,
  now: number,
  decodeBody: (json: unknown) => Decoded<T>,
): Intake<T> {
  const event = decodeRuleEvent(raw);
  if (!event.ok) return { ok: false, record: unreadableEvent(source, raw, event.reason, now) };
  const json = decodeJsonPayload(event.value.payload);
  if (!json.ok) return { ok: false, record: eventError(source, event.value, json.reason) };
  const body = decodeBody(json.value);
  if (!body.ok) return { ok: false, record: eventError(source, event.value, body.reason) };
  return { ok: true, event: event.value, value: body.value };
}
