/**
 * Reading the events store: one model's events that started in a window (one key range), or
 * every model's (a scan: events are few, one item per event, not per result).
 */
import { type DynamoDBDocumentClient, QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { eventKeys } from '../../shared/topology.ts';
import type { EventItem } from './record.ts';

export interface EventsSource {
  ddb: DynamoDBDocumentClient;
  tables: { events: string };
}

/** Events that started at or after `sinceMs`, newest first, at most `limit`. */
export async function readEvents(
  source: EventsSource,
  query: { model?: string; sinceMs: number; limit: number },
): Promise<EventItem[]> {
  const since = eventKeys.since(query.sinceMs);
  const items: EventItem[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await source.ddb.send(
      query.model
        ? new QueryCommand({
            TableName: source.tables.events,
            KeyConditionExpression: 'pk = :pk AND sk >= :since',
            ExpressionAttributeValues: { ':pk': eventKeys.partition(query.model), ':since': since },
            ScanIndexForward: false,
            ExclusiveStartKey: start,
          })
        : new ScanCommand({
            TableName: source.tables.events,
            FilterExpression: 'sk >= :since',
            ExpressionAttributeValues: { ':since': since },
            ExclusiveStartKey: start,
          }),
    );
    items.push(...((page.Items ?? []) as EventItem[]));
    start = page.LastEvaluatedKey;
  } while (start && (!query.model || items.length < query.limit));
  return items.sort((a, b) => b.start - a.start).slice(0, query.limit);
}
