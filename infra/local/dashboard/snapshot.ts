/**
 * The data contract of the local dashboard: one JSON document holding everything the page
 * shows. The server validates every snapshot with this schema before sending it, and the
 * page renders nothing else. Producers (the local stack, the demo) map the registry, fleet,
 * aggregates and errors tables into it; panel titles come from `dashboardPanels`.
 */
import { z } from 'zod';
import {
  DeviceStateSchema,
  type DeviceStatus,
  DeviceStatusSchema,
  IsoTime,
  ModelName,
  type RegistryItem,
  RunStatusSchema,
  TaskSchema,
  ThingName,
  Version,
} from '../../../shared/schemas.ts';
import { describeWindow } from '../../../shared/timeseries/spec.ts';

const Rate = z.number().min(0).max(1);
const Count = z.number().int().min(0);
const Millis = z.number().min(0);

export const TrainingRunSchema = z.object({
  model: ModelName,
  version: Version,
  status: RunStatusSchema,
  /** Test accuracy of this version, once evaluated. */
  accuracy: Rate.optional(),
  /** Accuracy of the release this version was gated against. */
  baselineAccuracy: Rate.optional(),
  /** Why the run was rejected or failed. */
  reason: z.string().optional(),
  /** A windowed model's window, in words (absent for a row model). */
  window: z.string().optional(),
  /** What the run did with the data (imputed cells, dropped columns, ...). */
  notices: z.array(z.string()).optional(),
  createdAt: IsoTime,
});
export type TrainingRun = z.infer<typeof TrainingRunSchema>;

export const FleetDeviceSchema = z.object({
  thing: ThingName,
  model: ModelName,
  /** The version the device serves; null before its first model. */
  version: Version.nullable(),
  online: z.boolean(),
  state: DeviceStateSchema,
  outboxDepth: Count,
  dropped: Count,
  lastSeen: IsoTime,
  lastError: DeviceStatusSchema.shape.lastError.unwrap().pick({ step: true, reason: true }).optional(),
});
export type FleetDevice = z.infer<typeof FleetDeviceSchema>;

/** One minute of one model version's aggregates. Null where the minute had no data for it. */
export const MinutePointSchema = z.object({
  /** Start of the minute, epoch milliseconds. */
  minute: z.number().int().min(0),
  inferences: Count,
  lowConfidenceRate: Rate.nullable(),
  confidenceMean: Rate.nullable(),
  latencyP50Ms: Millis.nullable(),
  latencyP99Ms: Millis.nullable(),
  /** Share of results with `truth` that matched it. */
  liveAccuracy: Rate.nullable(),
  /** Population stability index of the live class mix (or a regression model's predictions) against training's. */
  drift: z.number().min(0).nullable(),
  /** Regression: the predictions' mean, and live RMSE over the results that carried truth. */
  predictionMean: z.number().nullable().optional(),
  liveRmse: z.number().min(0).nullable().optional(),
  /** Anomaly models: the share of results over the threshold. */
  anomalyRate: Rate.nullable().optional(),
});
export type MinutePoint = z.infer<typeof MinutePointSchema>;

export const HistogramBinSchema = z.object({ from: z.number(), to: z.number(), count: Count });
export type HistogramBin = z.infer<typeof HistogramBinSchema>;

export const VersionSeriesSchema = z.object({
  model: ModelName,
  version: Version,
  /** Regression and anomaly versions have no classes or confidences: those panels leave them out and say so. */
  task: TaskSchema.optional(),
  /** Minutes in ascending order. */
  minutes: z.array(MinutePointSchema),
  /** Results per predicted class over the window. */
  classMix: z.record(z.string(), Count),
  confidence: z.object({ mean: Rate.nullable(), histogram: z.array(HistogramBinSchema) }),
});
export type VersionSeries = z.infer<typeof VersionSeriesSchema>;

export const AggregatorErrorSchema = z.object({
  at: IsoTime,
  reason: z.string(),
  topic: z.string(),
  /** As taken from the topic: not necessarily a valid thing name (that may be the error). */
  thing: z.string(),
});
export type AggregatorError = z.infer<typeof AggregatorErrorSchema>;

/** An anomaly event as the events store keeps it (functions/events). */
export const EventViewSchema = z.object({
  model: ModelName,
  version: Version,
  thing: z.string(),
  series: z.string(),
  state: z.enum(['open', 'closed']),
  start: IsoTime,
  end: IsoTime,
  peakScore: z.number().min(0),
  threshold: z.number().min(0),
  channels: z.array(z.object({ name: z.string(), share: Rate })),
});
export type EventView = z.infer<typeof EventViewSchema>;

export const DashboardSnapshotSchema = z.object({
  generatedAt: IsoTime,
  training: z.object({ runs: z.array(TrainingRunSchema) }),
  rollout: z.object({ fleet: z.array(FleetDeviceSchema) }),
  versions: z.array(VersionSeriesSchema),
  /** Anomaly events that started in the window, newest first. */
  events: z.array(EventViewSchema).max(100),
  errors: z.object({
    /** All errors recorded in the window. */
    count: Count,
    /** The most recent ones, newest first. */
    latest: z.array(AggregatorErrorSchema).max(100),
  }),
});
export type DashboardSnapshot = z.infer<typeof DashboardSnapshotSchema>;

/** What the page shows before the stack has any data. */
export function emptySnapshot(now: Date = new Date()): DashboardSnapshot {
  return {
    generatedAt: now.toISOString(),
    training: { runs: [] },
    rollout: { fleet: [] },
    versions: [],
    events: [],
    errors: { count: 0, latest: [] },
  };
}

/** A registry item as the training panel shows it. */
export function trainingRunFromRegistry(item: RegistryItem): TrainingRun {
  return {
    model: item.model,
    version: item.version,
    status: item.status,
    ...(item.metrics ? { accuracy: item.metrics.accuracy } : {}),
    ...(item.baselineAccuracy !== undefined ? { baselineAccuracy: item.baselineAccuracy } : {}),
    ...(item.reason ? { reason: item.reason } : {}),
    ...(item.window ? { window: describeWindow(item.window) } : {}),
    ...(item.notices?.length ? { notices: item.notices } : {}),
    createdAt: item.createdAt,
  };
}

/** A device's last status report as the rollout and outbox panels show it. */
export function fleetDeviceFromStatus(
  thing: string,
  status: DeviceStatus,
  seen: { lastSeen: number; online: boolean },
): FleetDevice {
  return {
    thing,
    model: status.model,
    version: status.version,
    online: seen.online,
    state: status.state,
    outboxDepth: status.outboxDepth,
    dropped: status.dropped,
    lastSeen: new Date(seen.lastSeen).toISOString(),
    ...(status.lastError
      ? { lastError: { step: status.lastError.step, reason: status.lastError.reason } }
      : {}),
  };
}
