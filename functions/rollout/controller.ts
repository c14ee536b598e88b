/**
 * The rollout controller, run on a schedule (EventBridge in AWS, a timer in the local stack):
 * for each model with a canary, reads the live numbers of the canary and the current version
 * from the aggregates and promotes it (fleet-wide notice), rolls it back (an explicit rollback
 * notice on the canary topic back to the previous version, signed) or waits; records each decision
 * with its reason in the registry and emits a metric. For each released version it also
 * watches drift and, when it holds and labelled feedback exists, starts a retrain by copying
 * the base dataset to a new dataset key (the normal S3 event path and the same gate follow).
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import type { S3Client } from '@aws-sdk/client-s3';
import { type DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { errorMessage } from '../../shared/errors.ts';
import type { ManifestSigner } from '../../shared/manifest.ts';
import type { EdgeloopMetrics } from '../../shared/metrics.ts';
import { NOTICE_REFRESH_MS, signNotice, type UnsignedNotice } from '../../shared/notice.ts';
import { decideRetrain, decideRollout } from '../../shared/rollout/decide.ts';
import {
  type RegistryItem,
  type ReleaseNotice,
  RetrainPolicySchema,
  type RunStatus,
} from '../../shared/schemas.ts';
import { datasetKeys, modelKeys, topicFor } from '../../shared/topology.ts';
import type { ManifestLookup } from '../aggregation/manifests.ts';
import { type ModelStatsSource, readModelStats } from '../aggregation/queries.ts';
import { scanFleet } from '../aggregation/status.ts';
import { readEvents } from '../events/queries.ts';
import { readTrainingConfig } from '../training/config.ts';
import type { TrainingLog } from '../training/deps.ts';
import { listRegistry, type RegistryStore } from '../training/registry.ts';
import { countLabelledFeedback } from './feedback-store.ts';
import { copyBaseDataset } from './retrain-dataset.ts';

export interface ControllerDeps {
  ddb: DynamoDBDocumentClient;
  s3: S3Client;
  iot: IoTDataPlaneClient;
  registryTable: string;
  aggregatesTable: string;
  /** Anomaly canaries: the events store and the fleet (which gateways serve which version). */
  eventsTable?: string;
  fleetTable?: string;
  modelsBucket: string;
  datasetsBucket: string;
  /** Manifests give a version's training class mix (drift). */
  manifests: ManifestLookup;
  metrics?: EdgeloopMetrics;
  log: TrainingLog;
  /** The manifest signing key: every notice the controller publishes is signed (shared/notice.ts). */
  signer: () => Promise<ManifestSigner>;
  now?: () => number;
}

export interface ControllerDecision {
  model: string;
  version: number;
  decision: 'promote' | 'rollback' | 'wait';
  reason: string;
}

export interface ControllerReport {
  decisions: ControllerDecision[];
  /** Released versions whose fleet-wide notice was re-signed before it expired. */
  refreshed: { model: string; version: number }[];
  retrains: { model: string; fromVersion: number; datasetKey: string; reason: string }[];
}

export async function runRolloutController(deps: ControllerDeps): Promise<ControllerReport> {
  const registry: RegistryStore = { ddb: deps.ddb, table: deps.registryTable };
  const stats: ModelStatsSource = {
    ddb: deps.ddb,
    tables: { aggregates: deps.aggregatesTable },
    manifests: deps.manifests,
    ...(deps.now ? { now: deps.now } : {}),
  };
  const report: ControllerReport = { decisions: [], refreshed: [], retrains: [] };
  const byModel = new Map<string, RegistryItem[]>();
  for (const item of await listRegistry(registry, undefined, { skipInvalid: true })) {
    const items = byModel.get(item.model) ?? [];
    items.push(item);
    byModel.set(item.model, items);
  }
  for (const [model, items] of byModel) {
    try {
      const decision = await controlCanary(deps, registry, stats, model, items);
      if (decision) report.decisions.push(decision);
      const refreshed = await refreshFleetNotice(deps, registry, items);
      if (refreshed) report.refreshed.push(refreshed);
      const retrain = await watchDrift(deps, registry, stats, model, items);
      if (retrain) report.retrains.push(retrain);
    } catch (error) {
      // One model's trouble must not stop the others; the next tick tries again.
      deps.log.error('rollout controller failed for a model', { model, error: errorMessage(error) });
    }
  }
  return report;
}

async function controlCanary(
  deps: ControllerDeps,
  registry: RegistryStore,
  stats: ModelStatsSource,
  model: string,
  items: RegistryItem[],
): Promise<ControllerDecision | undefined> {
  const now = (deps.now ?? Date.now)();
  // Newest first: only the newest canary runs; older ones were replaced on the canary topic.
  const [canary, ...superseded] = items.filter((item) => item.status === 'canary' && item.rollout);
  for (const old of superseded)
    if (canary)
      await recordDecision(
        deps,
        registry,
        old,
        'rolled-back',
        'rollback',
        `superseded by v${canary.version}`,
      );
  if (!canary?.rollout) return undefined;
  // A newer version went to the whole fleet meanwhile (a release without a plan): promoting
  // this canary now would move the fleet backwards.
  const newest = items.find((item) => item.status === 'released');
  if (newest && newest.version > canary.version) {
    const reason = `superseded by v${newest.version}, released to the whole fleet`;
    await recordDecision(deps, registry, canary, 'rolled-back', 'rollback', reason);
    return { model, version: canary.version, decision: 'rollback', reason };
  }
  const { plan, previousVersion, canaryAt } = canary.rollout;
  const previous = items.find((item) => item.version === previousVersion);
  const startedAt = Date.parse(canaryAt);
  const window = await readModelStats(stats, model, startedAt);
  const events = canary.metrics?.anomaly ? await eventsByVersion(deps, model, startedAt, now) : undefined;
  const find = (version: number) => {
    const found = window.versions.find((v) => v.version === version);
    const opened = events?.get(version);
    return found && opened ? { ...found, events: opened } : found;
  };
  const verdict = decideRollout({
    plan,
    canary: find(canary.version),
    current: find(previousVersion),
    ...(previous?.metrics?.accuracy !== undefined
      ? { currentOfflineAccuracy: previous.metrics.accuracy }
      : {}),
    ...(previous?.metrics?.regression ? { currentOfflineRmse: previous.metrics.regression.rmse } : {}),
    canaryStartedAtMs: startedAt,
    nowMs: now,
  });
  const decision = { model, version: canary.version, ...verdict };
  if (verdict.decision === 'wait') return decision;

  if (verdict.decision === 'promote') {
    await publishNotice(deps, 'release', {
      ...noticeOf(deps, canary),
      releasedAt: new Date(now).toISOString(),
      kind: 'release',
      cohort: 'all',
    });
    await recordDecision(deps, registry, canary, 'released', 'promote', verdict.reason);
  } else {
    if (!previous?.manifestKey || !previous.manifestSha256)
      throw new Error(`cannot roll ${model} back: v${previousVersion} has no manifest in the registry`);
    await publishNotice(deps, 'canary', {
      ...noticeOf(deps, previous),
      releasedAt: new Date(now).toISOString(),
      kind: 'rollback',
      cohort: 'canary',
    });
    await recordDecision(deps, registry, canary, 'rolled-back', 'rollback', verdict.reason);
  }
  deps.log.info(`rollout ${verdict.decision}`, decision);
  deps.metrics?.publishWith({ model, decision: verdict.decision }, (m) => m.put('rolloutDecisions', 1));
  return decision;
}

/**
 * Keeps the released version's fleet-wide notice current: a notice expires
 * (NOTICE_TTL_MS.release), so one that has stood for NOTICE_REFRESH_MS is signed and published
 * again for the same version. Gateways already on it see no change; one installed later
 * still gets a notice it accepts.
 */
async function refreshFleetNotice(
  deps: ControllerDeps,
  registry: RegistryStore,
  items: RegistryItem[],
): Promise<{ model: string; version: number } | undefined> {
  // Newest first: the newest released version is the one the fleet-wide notice names.
  const released = items.find((item) => item.status === 'released');
  if (!released?.manifestSha256) return undefined;
  const now = (deps.now ?? Date.now)();
  if (now - Date.parse(released.noticeAt ?? released.updatedAt) < NOTICE_REFRESH_MS) return undefined;
  const at = new Date(now).toISOString();
  await publishNotice(deps, 'release', {
    ...noticeOf(deps, released),
    releasedAt: at,
    kind: 'release',
    cohort: 'all',
  });
  await registry.ddb.send(
    new UpdateCommand({
      TableName: registry.table,
      Key: { model: released.model, version: released.version },
      UpdateExpression: 'SET #noticeAt = :at',
      ExpressionAttributeNames: { '#noticeAt': 'noticeAt' },
      ExpressionAttributeValues: { ':at': at },
    }),
  );
  const refreshed = { model: released.model, version: released.version };
  deps.log.info('fleet-wide notice re-signed before it expires', refreshed);
  return refreshed;
}

function noticeOf(deps: ControllerDeps, item: RegistryItem): Omit<ReleaseNotice, 'releasedAt' | 'kind'> {
  if (!item.manifestSha256) throw new Error(`${item.model} v${item.version} has no manifest digest`);
  return {
    model: item.model,
    version: item.version,
    bucket: deps.modelsBucket,
    manifestKey: item.manifestKey ?? modelKeys.manifest(item.model, item.version),
    manifestSha256: item.manifestSha256,
  };
}

async function publishNotice(deps: ControllerDeps, topic: 'release' | 'canary', unsigned: UnsignedNotice) {
  // Devices refuse unsigned notices; a rollback in particular is the signer's word alone.
  const notice = await signNotice(unsigned, await deps.signer());
  await deps.iot.send(
    new PublishCommand({
      topic: topicFor(topic, { model: notice.model }),
      qos: 1,
      retain: true,
      payload: new TextEncoder().encode(JSON.stringify(notice)),
    }),
  );
}

/**
 * Moves a canary to its outcome. Conditional on it still being a canary, so two controller
 * runs cannot record two decisions (the notice they both published is the same).
 */
async function recordDecision(
  deps: ControllerDeps,
  registry: RegistryStore,
  item: RegistryItem,
  status: RunStatus,
  decision: 'promote' | 'rollback',
  reason: string,
): Promise<void> {
  if (!item.rollout) return;
  const at = new Date((deps.now ?? Date.now)()).toISOString();
  try {
    await registry.ddb.send(
      new UpdateCommand({
        TableName: registry.table,
        Key: { model: item.model, version: item.version },
        UpdateExpression: 'SET #status = :status, #rollout = :rollout, #reason = :reason, #updatedAt = :at',
        ConditionExpression: '#status = :canary',
        ExpressionAttributeNames: {
          '#status': 'status',
          '#rollout': 'rollout',
          '#reason': 'reason',
          '#updatedAt': 'updatedAt',
        },
        ExpressionAttributeValues: {
          ':status': status,
          ':canary': 'canary' satisfies RunStatus,
          ':rollout': { ...item.rollout, decision, decidedAt: at, reason },
          ':reason': `${decision}: ${reason}`,
          ':at': at,
        },
      }),
    );
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
}

async function watchDrift(
  deps: ControllerDeps,
  registry: RegistryStore,
  stats: ModelStatsSource,
  model: string,
  items: RegistryItem[],
): Promise<ControllerReport['retrains'][number] | undefined> {
  const released = items.find((item) => item.status === 'released');
  if (!released) return undefined;
  const now = (deps.now ?? Date.now)();
  const config = await readTrainingConfig(deps.s3, deps.datasetsBucket, model);
  const policy = RetrainPolicySchema.parse(config.retrain ?? {});
  const window = await readModelStats(stats, model, now - policy.windowMs);
  const psi = window.versions.find((v) => v.version === released.version)?.drift?.psi ?? null;
  const drift = released.drift ?? {};
  const input = {
    policy,
    psi,
    sinceMs: drift.since ? Date.parse(drift.since) : undefined,
    lastRetrainAtMs: drift.retrainAt ? Date.parse(drift.retrainAt) : undefined,
    nowMs: now,
  };
  // Feedback is read only when everything else says retrain.
  let verdict = decideRetrain({ ...input, labelledFeedbackRows: policy.minFeedbackRows });
  if (verdict.retrain)
    verdict = decideRetrain({
      ...input,
      labelledFeedbackRows: await countLabelledFeedback(
        deps.s3,
        deps.datasetsBucket,
        model,
        policy.minFeedbackRows,
        {
          trustGatewayLabels: config.trustGatewayLabels,
        },
      ),
    });
  const since = verdict.sinceMs === undefined ? undefined : new Date(verdict.sinceMs).toISOString();
  let next: NonNullable<RegistryItem['drift']> = {
    ...drift,
    ...(psi !== null ? { psi } : {}),
    ...(since ? { since } : {}),
  };
  if (!since) delete next.since;
  let retrain: ControllerReport['retrains'][number] | undefined;
  if (verdict.retrain) {
    const datasetKey = datasetKeys.retrain(model, released.version, now, released.datasetKey);
    await copyBaseDataset(deps.s3, deps.datasetsBucket, released.datasetKey, datasetKey);
    next = { ...next, retrainKey: datasetKey, retrainAt: new Date(now).toISOString() };
    retrain = { model, fromVersion: released.version, datasetKey, reason: verdict.reason };
    deps.log.info('retrain started on sustained drift', retrain);
    deps.metrics?.publishWith({ model }, (m) => m.put('retrainsStarted', 1));
  }
  if (JSON.stringify(next) !== JSON.stringify(drift))
    await registry.ddb.send(
      new UpdateCommand({
        TableName: registry.table,
        Key: { model, version: released.version },
        UpdateExpression: 'SET #drift = :drift',
        ExpressionAttributeNames: { '#drift': 'drift' },
        ExpressionAttributeValues: { ':drift': next },
      }),
    );
  return retrain;
}

/**
 * An anomaly model's events per version since `sinceMs`, and the gateway-hours each version
 * served meanwhile (the gateways serving it now, the fleet registry says, times the hours).
 */
async function eventsByVersion(
  deps: ControllerDeps,
  model: string,
  sinceMs: number,
  now: number,
): Promise<Map<number, { count: number; gatewayHours: number }> | undefined> {
  if (!deps.eventsTable || !deps.fleetTable) return undefined;
  const [events, fleet] = await Promise.all([
    readEvents({ ddb: deps.ddb, tables: { events: deps.eventsTable } }, { model, sinceMs, limit: 100_000 }),
    scanFleet(deps.ddb, deps.fleetTable),
  ]);
  const hours = Math.max(0, now - sinceMs) / 3_600_000;
  const byVersion = new Map<number, { count: number; gatewayHours: number }>();
  for (const thing of fleet) {
    if (thing.model !== model || thing.version === null) continue;
    const entry = byVersion.get(thing.version) ?? { count: 0, gatewayHours: 0 };
    entry.gatewayHours += hours;
    byVersion.set(thing.version, entry);
  }
  for (const event of events) {
    const entry = byVersion.get(event.version) ?? { count: 0, gatewayHours: 0 };
    entry.count++;
    byVersion.set(event.version, entry);
  }
  return byVersion;
}
