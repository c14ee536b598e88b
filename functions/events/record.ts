/**
 * The events store's work for one IoT rule event: validate a gateway's anomaly event message
 * and keep the event's one item current. A gateway sends each event twice (open, then closed,
 * under the same id) and may send either again after a restart, so:
 * - the item is keyed by where and when the event started, and a write is conditional: a
 *   closed event is never reopened by a late or replayed open message;
 * - an event is counted (AnomalyEvents) and announced as opened only when its item is created,
 *   and announced as closed only when an open item turns closed.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { type DynamoDBDocumentClient, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Decoded } from '../../shared/aggregation/decode.ts';
import type { EdgeloopMetrics } from '../../shared/metrics.ts';
import {
  type AnomalyEventMessage,
  AnomalyEventMessageSchema,
  describeZodError,
} from '../../shared/schemas.ts';
import { eventKeys } from '../../shared/topology.ts';
import { intake, setAside } from '../aggregation/errors-store.ts';
import { isConditionFailure } from '../aggregation/idempotency.ts';

/** One anomaly event in the events store. */
export interface EventItem extends Omit<AnomalyEventMessage, 'sentAt'> {
  pk: string;
  sk: string;
  thing: string;
  /** The gateway's clock when it sent the latest message kept. */
  sentAt: number;
  /** Broker receive time of the first and the latest message kept (ms). */
  firstSeenAt: number;
  updatedAt: number;
}

export type EventChange = 'opened' | 'closed';

export interface EventDeps {
  ddb: DynamoDBDocumentClient;
  tables: { events: string; errors: string };
  metrics: EdgeloopMetrics;
  logger: Pick<Logger, 'info' | 'warn'>;
  /** Tells the world (SNS, EventBridge in AWS); absent on the local stack. */
  announce?: (event: EventItem, change: EventChange) => Promise<void>;
  now?: () => number;
}

export type EventOutcome =
  | { status: 'rejected'; reason: string }
  | { status: EventChange | 'updated' | 'stale'; eventId: string; thing: string };

export function decodeEventMessage(value: unknown): Decoded<AnomalyEventMessage> {
  const parsed = AnomalyEventMessageSchema.safeParse(value);
  if (!parsed.success)
    return { ok: false, reason: `invalid anomaly event: ${describeZodError(parsed.error)}` };
  if (parsed.data.end < parsed.data.start)
    return {
      ok: false,
      reason: `invalid anomaly event: end ${parsed.data.end} is before start ${parsed.data.start}`,
    };
  return { ok: true, value: parsed.data };
}

export async function recordEventMessage(raw: unknown, deps: EventDeps): Promise<EventOutcome> {
  const now = (deps.now ?? Date.now)();
  const input = intake('events', raw, now, decodeEventMessage);
  if (!input.ok) return setAside(deps, input.record);
  const message = input.value;
  const { thing, receivedAt } = input.event;
  const item: EventItem = {
    ...message,
    pk: eventKeys.partition(message.model),
    sk: eventKeys.sort(message.start, thing, message.series),
    thing,
    firstSeenAt: receivedAt,
    updatedAt: receivedAt,
  };
  const outcome = (status: Exclude<EventOutcome['status'], 'rejected'>): EventOutcome => ({
    status,
    eventId: message.eventId,
    thing,
  });
  if (await create(deps, item)) {
    deps.metrics.publishWith({ model: message.model }, (m) => m.put('anomalyEvents', 1));
    deps.metrics.publishWith({}, (m) => m.put('anomalyEvents', 1)); // the fleet-wide series the alarm watches
    await deps.announce?.(item, 'opened');
    if (message.state === 'closed') await deps.announce?.(item, 'closed');
    return outcome('opened');
  }
  // It exists: a closing message closes it; an open one may only update an open one with newer facts.
  const closing = message.state === 'closed';
  if (!(await update(deps, item, closing))) return outcome('stale');
  if (closing) await deps.announce?.(item, 'closed');
  return outcome(closing ? 'closed' : 'updated');
}

/** Creates the event's item; false when it exists. */
async function create(deps: EventDeps, item: EventItem): Promise<boolean> {
  return conditional(() =>
    deps.ddb.send(
      new PutCommand({
        TableName: deps.tables.events,
        Item: item,
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    ),
  );
}

/** Rewrites an open event's facts (firstSeenAt stays as the first message set it); false when the condition fails. */
async function update(deps: EventDeps, item: EventItem, closing: boolean): Promise<boolean> {
  const { pk, sk, firstSeenAt: _, ...fields } = item;
  const names = Object.keys(fields);
  return conditional(() =>
    deps.ddb.send(
      new UpdateCommand({
        TableName: deps.tables.events,
        Key: { pk, sk },
        UpdateExpression: `SET ${names.map((_, i) => `#f${i} = :f${i}`).join(', ')}`,
        ConditionExpression: closing ? '#state = :open' : '#state = :open AND #sentAt <= :sentAt',
        ExpressionAttributeNames: {
          '#state': 'state',
          ...(closing ? {} : { '#sentAt': 'sentAt' }),
          ...Object.fromEntries(names.map((name, i) => [`#f${i}`, name])),
        },
        ExpressionAttributeValues: {
          ':open': 'open',
          ...(closing ? {} : { ':sentAt': item.sentAt }),
          ...Object.fromEntries(
            names.map((name, i) => [`:f${i}`, (fields as Record<string, unknown>)[name]]),
          ),
        },
      }),
    ),
  );
}

async function conditional(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (error) {
    if (isConditionFailure(error)) return false;
    throw error;
  }
}
