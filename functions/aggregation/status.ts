/**
 * The status aggregator's work for one IoT rule event: validate the device status and keep
 * the thing's row in the fleet registry current. A status older than the stored one (out of
 * order delivery, or a replay) never overwrites newer facts. Every so often (not on every
 * message) it counts the online devices per version and emits DevicesOnline.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { type DynamoDBDocumentClient, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { decodeDeviceStatus } from '../../shared/aggregation/decode.ts';
import { type FleetMember, onlineByVersion } from '../../shared/aggregation/fleet.ts';
import type { EdgeloopMetrics } from '../../shared/metrics.ts';
import type { DeviceStatus } from '../../shared/schemas.ts';
import { intake, setAside } from './errors-store.ts';
import { isConditionFailure } from './idempotency.ts';

export interface StatusDeps {
  ddb: DynamoDBDocumentClient;
  tables: { fleet: string; errors: string };
  metrics: EdgeloopMetrics;
  logger: Pick<Logger, 'info' | 'warn'>;
  now?: () => number;
  /** Emit DevicesOnline at most this often per process (default 60 s); 0 on every message. */
  onlineMetricEveryMs?: number;
}

/** The fleet registry row of one gateway. */
export interface FleetItem {
  thing: string;
  /** Broker receive time of the latest status (ms): what online/offline is derived from. */
  lastSeen: number;
  /** Device clock of the latest status (ms). */
  statusTs: number;
  model: string;
  version: number | null;
  state: DeviceStatus['state'];
  outboxDepth: number;
  dropped: number;
  inferenceRate: number;
  latencyP50: number | null;
  latencyP99: number | null;
  lastError: DeviceStatus['lastError'];
  /** The gateway's disk (absent from gateways older than the disk watch). */
  disk?: DeviceStatus['disk'];
  /** Readings the gateway refused per reason (absent from older gateways). */
  refused?: DeviceStatus['refused'];
  /** Outbox files the gateway set aside unread. */
  quarantined?: number;
  /** The gateway's live inputs (MQTT, OPC UA, Modbus TCP). */
  sources?: DeviceStatus['sources'];
}

export type StatusOutcome =
  | { status: 'counted-online' }
  | { status: 'rejected'; reason: string }
  | { status: 'stored' | 'stale'; thing: string };

const lastOnlineEmit = new WeakMap<DynamoDBDocumentClient, number>();

export async function aggregateStatusEvent(raw: unknown, deps: StatusDeps): Promise<StatusOutcome> {
  const now = (deps.now ?? Date.now)();
  const input = intake('status', raw, now, decodeDeviceStatus);
  if (!input.ok) return setAside(deps, input.record);
  const { thing, receivedAt } = input.event;

  const item: FleetItem = {
    thing,
    lastSeen: receivedAt,
    statusTs: input.value.ts,
    model: input.value.model,
    version: input.value.version,
    state: input.value.state,
    outboxDepth: input.value.outboxDepth,
    dropped: input.value.dropped,
    inferenceRate: input.value.inferenceRate,
    latencyP50: input.value.latencyP50,
    latencyP99: input.value.latencyP99,
    lastError: input.value.lastError,
    ...(input.value.disk ? { disk: input.value.disk } : {}),
    ...(input.value.refused ? { refused: input.value.refused } : {}),
    ...(input.value.quarantined ? { quarantined: input.value.quarantined } : {}),
    ...(input.value.sources?.length ? { sources: input.value.sources } : {}),
  };
  let outcome: StatusOutcome = { status: 'stored', thing };
  try {
    await deps.ddb.send(
      new PutCommand({
        TableName: deps.tables.fleet,
        Item: item,
        ConditionExpression: 'attribute_not_exists(thing) OR statusTs <= :ts',
        ExpressionAttributeValues: { ':ts': item.statusTs },
      }),
    );
  } catch (error) {
    if (!isConditionFailure(error)) throw error;
    outcome = { status: 'stale', thing };
  }
  await maybeEmitOnline(deps, now);
  return outcome;
}

async function maybeEmitOnline(deps: StatusDeps, now: number): Promise<void> {
  const every = deps.onlineMetricEveryMs ?? 60_000;
  const last = lastOnlineEmit.get(deps.ddb);
  if (last !== undefined && now - last < every) return;
  await emitDevicesOnline(deps, now);
}

/**
 * DevicesOnline per (model, version), from the fleet registry. Called after status messages
 * (throttled) and on a schedule, so that the count drops to 0 even when a whole version
 * goes silent and no status arrives any more.
 */
export async function emitDevicesOnline(
  deps: Pick<StatusDeps, 'ddb' | 'tables' | 'metrics'>,
  now: number,
): Promise<{ model: string; version: number | null; online: number; total: number }[]> {
  lastOnlineEmit.set(deps.ddb, now);
  const groups = onlineByVersion(await scanFleet(deps.ddb, deps.tables.fleet), now);
  for (const group of groups) {
    deps.metrics.publishWith({ model: group.model, version: String(group.version ?? 'none') }, (m) =>
      m.put('devicesOnline', group.online),
    );
  }
  return groups;
}

/** An EventBridge schedule tick (the CDK stack invokes this function every minute with one). */
export function isScheduledEvent(event: unknown): boolean {
  return (
    typeof event === 'object' &&
    event !== null &&
    (event as Record<string, unknown>)['detail-type'] === 'Scheduled Event'
  );
}

/** Every row of the fleet registry (one per gateway). */
export async function scanFleet(
  ddb: DynamoDBDocumentClient,
  table: string,
): Promise<FleetItem[] & FleetMember[]> {
  const items: FleetItem[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await ddb.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
    items.push(...((page.Items ?? []) as FleetItem[]));
    start = page.LastEvaluatedKey;
  } while (start);
  return items.sort((a, b) => a.thing.localeCompare(b.thing));
}
