/**
 * The training pipeline as steps over a JSON state: validate -> train -> gate -> publish ->
 * notify, and recordFailure when a step throws. Each step is usable as one Step Functions
 * task; `runTraining` chains them in-process (the local stack and the simple Lambda mode).
 */
import { randomUUID } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { DeleteCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { checkDatasetSize, DATASET_LIMITS } from '../../shared/dataset.ts';
import { InputError } from '../../shared/errors.ts';
import { type FeedbackTable, feedbackRecords } from '../../shared/feedback.ts';
import { sha256Hex, signManifest } from '../../shared/manifest.ts';
import { signNotice } from '../../shared/notice.ts';
import {
  ManifestSchema,
  type ReleaseNotice,
  type TrainingConfig,
  TrainingConfigSchema,
} from '../../shared/schemas.ts';
import { accuracyOnWindows, rmseOnWindows, trainWindowsFromSource } from '../../shared/timeseries/train.ts';
import { datasetKeys, modelFiles, modelKeys, topicFor } from '../../shared/topology.ts';
import { falseAlarmRateOnRows } from '../../shared/training/anomaly.ts';
import { artifactFiles, buildManifest, manifestBytes } from '../../shared/training/artifacts.ts';
import { anomalyGateDecision, gateDecision, regressionGateDecision } from '../../shared/training/gate.ts';
import {
  accuracyOnRows,
  rmseOnRows,
  type TrainingOutcome,
  type TrainingProgress,
  trainFromSource,
} from '../../shared/training/train.ts';
import { trainingFeedback } from '../rollout/feedback-store.ts';
import { getObjectBytes, readEventRanges, readTrainingConfig } from './config.ts';
import { s3DatasetSource } from './dataset-source.ts';
import type { TrainingDeps } from './deps.ts';
import { chooseEngine } from './engine.ts';
import { datasetObjectOf, idempotencyKey } from './event.ts';
import { allocateVersion, currentRelease, type RegistryStore, updateRun } from './registry.ts';
import type { DatasetObject, TrainingRunState, TrainingStep } from './state.ts';

/** How long an idempotency key is kept (the table's TTL attribute). */
const IDEMPOTENCY_TTL_S = 7 * 24 * 3600;
/** Notices kept on a registry item (each is one short line; the item stays far below 400 KB). */
const MAX_REGISTRY_NOTICES = 20;

export interface TrainingSteps {
  validate: TrainingStep;
  train: TrainingStep;
  trainManaged: TrainingStep;
  collectTrain: TrainingStep;
  gate: TrainingStep;
  publish: TrainingStep;
  notify: TrainingStep;
  recordFailure: TrainingStep;
}

export function newRunState(event: unknown, now = new Date()): TrainingRunState {
  return { runId: randomUUID(), startedAt: now.toISOString(), event };
}

export function createTrainingSteps(deps: TrainingDeps): TrainingSteps {
  const now = () => deps.now?.() ?? new Date();
  const registry: RegistryStore = { ddb: deps.ddb, table: deps.registryTable };
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`training state has no ${what}: run the steps in order`);
    return value;
  };
  const runKey = (state: TrainingRunState) => ({
    model: need(state.model, 'model'),
    version: need(state.version, 'version'),
  });
  const elapsed = (state: TrainingRunState) => now().getTime() - Date.parse(state.startedAt);

  /** The engine for a dataset: its stored size (every part) against the model's config. */
  async function engineFor(dataset: DatasetObject, model: string) {
    let datasetBytes = dataset.size;
    if (datasetKeys.kindOf(dataset.key)?.kind === 'parts') {
      const source = await s3DatasetSource(deps.s3, dataset);
      datasetBytes = source.parts.reduce((sum, part) => sum + (part.size ?? 0), 0);
    }
    let config: TrainingConfig | undefined;
    try {
      config = await readTrainingConfig(deps.s3, deps.datasetsBucket, model);
    } catch (error) {
      // A bad config is the train step's rejection to record; here it only means "by size".
      if (!(error instanceof InputError)) throw error;
    }
    return {
      engine: chooseEngine(datasetBytes, config),
      ...(datasetBytes !== undefined ? { datasetBytes } : {}),
    };
  }

  async function releaseEvent(id: string): Promise<void> {
    await deps.ddb.send(new DeleteCommand({ TableName: deps.idempotencyTable, Key: { id } }));
  }

  const getBytes = (bucket: string, key: string, versionId?: string) =>
    getObjectBytes(deps.s3, bucket, key, versionId);

  /**
   * Writes a version's file once. IfNoneMatch protects artifacts in AWS (the local S3 ignores
   * it, which is why versions come from DynamoDB and no run writes another's keys). A retried
   * step that finds its own earlier write gets the stored bytes back, so it can go on.
   */
  async function putImmutable(key: string, bytes: Uint8Array, contentType: string): Promise<Uint8Array> {
    try {
      await deps.s3.send(
        new PutObjectCommand({
          Bucket: deps.modelsBucket,
          Key: key,
          Body: bytes,
          ContentType: contentType,
          IfNoneMatch: '*',
        }),
      );
      return bytes;
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status !== 412) throw error;
      return getBytes(deps.modelsBucket, key);
    }
  }

  /**
   * Scores the current release on this run's held-out rows (accuracy, or RMSE for regression);
   * falls back to its recorded score. A release of another task is no baseline: the gate
   * judges the candidate as a first version.
   */
  async function scoreRelease(model: string, outcome: TrainingOutcome) {
    const release = await currentRelease(registry, model);
    if (!release) return undefined;
    const regression = outcome.preprocessing.task === 'regression';
    const anomaly = outcome.preprocessing.task === 'anomaly';
    const releaseTask = release.metrics?.regression
      ? 'regression'
      : release.metrics?.anomaly
        ? 'anomaly'
        : 'classification';
    if ((outcome.preprocessing.task ?? 'classification') !== releaseTask) {
      deps.log.warn('the current release has another task; the gate judges this run as a first version', {
        model,
        version: release.version,
      });
      return undefined;
    }
    const recorded = regression
      ? { rmse: release.metrics?.regression?.rmse ?? Number.POSITIVE_INFINITY }
      : anomaly
        ? { falseAlarmRate: release.metrics?.anomaly?.falseAlarmRate ?? 1 }
        : { accuracy: release.metrics?.accuracy ?? 0 };
    try {
      const manifestKey = release.manifestKey ?? modelKeys.manifest(model, release.version);
      const manifest = ManifestSchema.parse(
        JSON.parse(new TextDecoder().decode(await getBytes(deps.modelsBucket, manifestKey))),
      );
      const files = await Promise.all(
        [modelFiles.topology, modelFiles.weights].map(async (name) => {
          const bytes = await getBytes(deps.modelsBucket, modelKeys.file(model, release.version, name));
          const listed = manifest.files.find((file) => file.name === name);
          if (listed?.sha256 !== sha256Hex(bytes))
            throw new Error(`${name} does not match its manifest digest`);
          return bytes;
        }),
      );
      const artifacts = { modelJson: files[0] as Uint8Array, weights: files[1] as Uint8Array };
      if (manifest.window && !outcome.window)
        throw new Error('the current release is a windowed model: it cannot score rows');
      if (anomaly) {
        const falseAlarmRate = await falseAlarmRateOnRows(artifacts, manifest, outcome.testSet.rows);
        return { version: release.version, falseAlarmRate, sameSplit: true };
      }
      if (regression) {
        const rmse = outcome.window
          ? await rmseOnWindows(artifacts, manifest, outcome.window.testSeries, outcome.features)
          : await rmseOnRows(artifacts, manifest.preprocessing, outcome.testSet.rows, outcome.testSet.labels);
        return { version: release.version, rmse, sameSplit: true };
      }
      // A windowed run scores the release on its test readings, cut with the release's own window.
      const accuracy = outcome.window
        ? await accuracyOnWindows(artifacts, manifest, outcome.window.testSeries, outcome.features)
        : await accuracyOnRows(
            artifacts,
            manifest.preprocessing,
            outcome.testSet.rows,
            outcome.testSet.labels,
          );
      return { version: release.version, accuracy: Math.round(accuracy * 1e6) / 1e6, sameSplit: true };
    } catch (error) {
      deps.log.warn('current release could not be scored on the new test split; using its recorded score', {
        model,
        version: release.version,
        error: (error as Error).message,
      });
      return { version: release.version, ...recorded, sameSplit: false };
    }
  }

  return {
    async validate(state) {
      const dataset = datasetObjectOf(state.event);
      const model = datasetKeys.modelOf(dataset.key);
      if (!model) {
        deps.log.warn('not a dataset key; ignored', { key: dataset.key });
        return { ...state, dataset, skipped: `'${dataset.key}' is not a dataset key`, outcome: 'skipped' };
      }
      const id = idempotencyKey(dataset);
      try {
        await deps.ddb.send(
          new PutCommand({
            TableName: deps.idempotencyTable,
            Item: {
              id,
              runId: state.runId,
              createdAt: now().toISOString(),
              expiresAt: Math.floor(now().getTime() / 1000) + IDEMPOTENCY_TTL_S,
            },
            ConditionExpression: 'attribute_not_exists(id)',
          }),
        );
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
        deps.log.info('duplicate dataset event; a run already handles this object version', { id });
        return { ...state, dataset, model, skipped: `duplicate event for ${id}`, outcome: 'skipped' };
      }
      const createdAt = now().toISOString();
      let version: number;
      try {
        version = await allocateVersion(registry, {
          model,
          createdAt,
          updatedAt: createdAt,
          datasetKey: dataset.key,
          ...(dataset.etag ? { datasetEtag: dataset.etag } : {}),
        });
      } catch (error) {
        // No run holds this event after all: free it so a retry can start one.
        await releaseEvent(id);
        throw error;
      }
      const { engine, datasetBytes } = await engineFor(dataset, model);
      deps.log.info('training run started', { model, version, key: dataset.key, runId: state.runId, engine });
      return { ...state, dataset, model, version, idempotencyKey: id, engine, datasetBytes };
    },

    /**
     * The train step on the managed engine: trains, then stores the resulting state for
     * collectTrain (a rejection is stored too, so it stays a rejection and is not retried).
     */
    async trainManaged(state) {
      let next: TrainingRunState;
      try {
        next = await this.train(state);
      } catch (error) {
        if (!(error instanceof InputError)) throw error;
        next = { ...state, error: { name: error.name, message: error.message } };
      }
      const { model, version } = runKey(state);
      await deps.s3.send(
        new PutObjectCommand({
          Bucket: deps.datasetsBucket,
          Key: datasetKeys.runState(model, version),
          Body: JSON.stringify(next),
          ContentType: 'application/json',
        }),
      );
      return next;
    },

    /** Reads back what trainManaged stored; a stored rejection is thrown again as one. */
    async collectTrain(state) {
      const { model, version } = runKey(state);
      const bytes = await getBytes(deps.datasetsBucket, datasetKeys.runState(model, version));
      const stored = JSON.parse(new TextDecoder().decode(bytes)) as TrainingRunState;
      const failure = stored.error && 'name' in stored.error ? stored.error : undefined;
      if (failure?.name === 'InputError') throw new InputError(failure.message);
      return stored;
    },

    async train(state) {
      const dataset = need(state.dataset, 'dataset');
      const { model, version } = runKey(state);
      // Read once the version exists, so a bad config is recorded as this version's rejection.
      const config = state.config ?? (await readTrainingConfig(deps.s3, deps.datasetsBucket, model));
      // An oversized file is refused before the download, with the same message parsing gives.
      if (dataset.size !== undefined)
        checkDatasetSize(dataset.size, DATASET_LIMITS.maxBytes, `${dataset.key}: `);
      const source = await s3DatasetSource(deps.s3, dataset);
      // Labelled hard examples from the gateways follow the parts (matched by column name).
      const feedback = await labelledFeedback(deps, model, TrainingConfigSchema.parse(config ?? {}));
      if (feedback) {
        source.extra = (header, partRows) => {
          const rows = feedbackRecords(header, feedback.tables, partRows);
          feedback.rows = rows.length;
          return rows;
        };
      }
      // An anomaly model's labelled event ranges, beside the dataset: never trained on, they score it.
      const events =
        config.task === 'anomaly'
          ? await readEventRanges(deps.s3, deps.datasetsBucket, model, config)
          : undefined;
      const progress = registryProgress(registry, { model, version }, now, deps.log);
      let outcome: TrainingOutcome;
      try {
        // With a `window` block the dataset is long-format readings: train on windows.
        const trainer = config.window ? trainWindowsFromSource : trainFromSource;
        outcome = await trainer(source, config, {
          source: source.name,
          onEpoch: (epoch) => {
            if (epoch.epoch % 10 === 0 || epoch.epoch === 1)
              deps.log.info('epoch', { model, version, ...epoch });
          },
          onProgress: progress.update,
          ...(events ? { events } : {}),
        });
      } finally {
        await progress.flush();
      }
      const datasetSha256 = outcome.datasetSha256 ?? '';
      if (feedback && feedback.rows > 0) {
        deps.log.info('labelled feedback merged into the dataset', {
          model,
          rows: feedback.rows,
          files: feedback.keys.length,
        });
      }
      for (const file of artifactFiles(outcome)) {
        const key = modelKeys.file(model, version, file.name);
        const stored = await putImmutable(key, file.bytes, file.contentType);
        if (sha256Hex(stored) !== sha256Hex(file.bytes)) {
          throw new Error(
            `s3://${deps.modelsBucket}/${key} already exists with other content; artifacts are immutable`,
          );
        }
      }
      const manifest = buildManifest({
        model,
        version,
        outcome,
        lowConfidence: config.lowConfidence,
        maxMissingFeatures: config.maxMissingFeatures,
        datasetKey: dataset.key,
        ...(dataset.etag ? { datasetEtag: dataset.etag } : {}),
        datasetSha256,
        ...(feedback && feedback.rows > 0 ? { feedback: { keys: feedback.keys, rows: feedback.rows } } : {}),
        createdAt: now(),
      });
      const baseline = await scoreRelease(model, outcome);
      await updateRun(
        registry,
        { model, version },
        {
          datasetSha256,
          metrics: outcome.metrics,
          datasetParts: outcome.parts.length,
          ...(outcome.window
            ? { window: { ...outcome.window.manifest.spec, features: outcome.window.manifest.features.kind } }
            : {}),
          ...(outcome.notices.length ? { notices: outcome.notices.slice(0, MAX_REGISTRY_NOTICES) } : {}),
          ...(outcome.tuning ? { tuning: outcome.tuning } : {}),
          ...(outcome.sample ? { sample: outcome.sample } : {}),
          ...(feedback && feedback.rows > 0 ? { feedbackRows: feedback.rows } : {}),
          updatedAt: now().toISOString(),
        },
      );
      deps.log.info('trained', {
        model,
        version,
        ...(outcome.metrics.regression
          ? { rmse: outcome.metrics.regression.rmse }
          : { accuracy: outcome.metrics.accuracy }),
        epochs: outcome.epochsRun,
        baseline,
      });
      return {
        ...state,
        config,
        candidate: {
          manifest,
          notices: outcome.notices,
          rows: outcome.rows,
          features: outcome.features,
          classes: outcome.classes,
          epochsRun: outcome.epochsRun,
          ...(baseline ? { baseline } : {}),
        },
      };
    },

    async gate(state) {
      const candidate = need(state.candidate, 'candidate');
      const config = TrainingConfigSchema.parse(state.config ?? {});
      const { metrics } = candidate.manifest;
      const baseline = candidate.baseline;
      const regression = metrics.regression;
      const anomaly = metrics.anomaly;
      const decision = anomaly
        ? anomalyGateDecision({
            falseAlarmRate: anomaly.falseAlarmRate,
            quantile: anomaly.quantile,
            testRows: metrics.testRows ?? 0,
            ...(baseline?.falseAlarmRate !== undefined ? { baselineRate: baseline.falseAlarmRate } : {}),
            margin: config.gateMargin,
            ...(anomaly.labelled ? { labelled: anomaly.labelled } : {}),
            ...(config.gateMinEventRecall !== undefined ? { minEventRecall: config.gateMinEventRecall } : {}),
          })
        : regression
          ? regressionGateDecision({
              rmse: regression.rmse,
              meanRmse: regression.meanRmse,
              ...(baseline?.rmse !== undefined ? { baselineRmse: baseline.rmse } : {}),
              margin: config.gateMargin,
              ...(config.gateMaxRmse !== undefined ? { maxRmse: config.gateMaxRmse } : {}),
            })
          : gateDecision({
              accuracy: metrics.accuracy ?? 0,
              ...(baseline?.accuracy !== undefined ? { baselineAccuracy: baseline.accuracy } : {}),
              margin: config.gateMargin,
              metrics,
              ...(config.gateMinMacroF1 !== undefined ? { minMacroF1: config.gateMinMacroF1 } : {}),
              ...(config.gateMinRecall !== undefined ? { minRecall: config.gateMinRecall } : {}),
            });
      const gate = {
        passed: decision.passed,
        reason: decision.reason,
        ...(anomaly
          ? { falseAlarmRate: anomaly.falseAlarmRate }
          : regression
            ? { rmse: regression.rmse }
            : { accuracy: metrics.accuracy ?? 0 }),
        ...(baseline?.falseAlarmRate !== undefined
          ? { baselineFalseAlarmRate: baseline.falseAlarmRate }
          : {}),
        ...(baseline?.accuracy !== undefined ? { baselineAccuracy: baseline.accuracy } : {}),
        ...(baseline?.rmse !== undefined ? { baselineRmse: baseline.rmse } : {}),
        ...(baseline ? { baselineVersion: baseline.version } : {}),
      };
      if (decision.passed) return { ...state, gate };
      await updateRun(registry, runKey(state), {
        status: 'rejected-by-gate',
        reason: baseline ? `${decision.reason} (v${baseline.version})` : decision.reason,
        metrics: candidate.manifest.metrics,
        ...(baseline?.accuracy !== undefined ? { baselineAccuracy: baseline.accuracy } : {}),
        ...(baseline?.rmse !== undefined ? { baselineRmse: baseline.rmse } : {}),
        updatedAt: now().toISOString(),
        durationMs: elapsed(state),
      });
      deps.log.warn('rejected by the quality gate', { ...runKey(state), ...gate });
      return { ...state, gate, outcome: 'rejected-by-gate', reason: decision.reason };
    },

    async publish(state) {
      const candidate = need(state.candidate, 'candidate');
      const { model, version } = runKey(state);
      const signer = await deps.signer();
      const signed = await signManifest(candidate.manifest, signer);
      const manifestKey = modelKeys.manifest(model, version);
      // On a retried publish, the manifest an earlier attempt stored stays the one released.
      const bytes = await putImmutable(manifestKey, manifestBytes(signed), 'application/json');
      const manifestSha256 = sha256Hex(bytes);
      const releasedAt = now().toISOString();
      // With a rollout plan and a release to compare against, the canary cohort goes first.
      const plan = TrainingConfigSchema.parse(state.config ?? {}).rollout;
      const previous = plan ? await currentRelease(registry, model) : undefined;
      const rollout =
        plan && previous ? { plan, previousVersion: previous.version, canaryAt: releasedAt } : undefined;
      await updateRun(
        registry,
        { model, version },
        {
          status: rollout ? 'canary' : 'released',
          ...(rollout ? { rollout } : {}),
          metrics: signed.metrics,
          manifestKey,
          manifestSha256,
          ...(state.gate?.baselineAccuracy !== undefined
            ? { baselineAccuracy: state.gate.baselineAccuracy }
            : {}),
          ...(state.gate?.baselineRmse !== undefined ? { baselineRmse: state.gate.baselineRmse } : {}),
          reason: state.gate?.reason,
          updatedAt: releasedAt,
          durationMs: elapsed(state),
        },
      );
      // Signed like the manifest; a canary names the fleet version gateways outside it return to.
      const release: ReleaseNotice = await signNotice(
        {
          model,
          version,
          bucket: deps.modelsBucket,
          manifestKey,
          manifestSha256,
          releasedAt,
          kind: 'release',
          cohort: rollout ? 'canary' : 'all',
          ...(rollout ? { rollout: rollout.plan, fallbackVersion: rollout.previousVersion } : {}),
        },
        signer,
      );
      deps.log.info(rollout ? 'released to the canary cohort' : 'released', { model, version, manifestKey });
      return { ...state, release, outcome: 'released' };
    },

    async notify(state) {
      const release = need(state.release, 'release');
      await deps.iot.send(
        new PublishCommand({
          topic: topicFor(release.cohort === 'canary' ? 'canary' : 'release', { model: release.model }),
          qos: 1,
          retain: true,
          payload: new TextEncoder().encode(JSON.stringify(release)),
        }),
      );
      deps.log.info('release notice published', { model: release.model, version: release.version });
      return state;
    },

    async recordFailure(state) {
      const { name, message } = failureOf(state.error);
      const status = name === 'InputError' ? 'rejected' : 'failed';
      if (state.model && state.version) {
        try {
          await updateRun(registry, runKey(state), {
            status,
            reason: message,
            updatedAt: now().toISOString(),
            durationMs: elapsed(state),
          });
        } catch (error) {
          if (!(error instanceof ConditionalCheckFailedException)) throw error;
        }
      }
      // A failure (not a rejection) frees the event so a redelivery or retry can run again.
      if (status === 'failed' && state.idempotencyKey) await releaseEvent(state.idempotencyKey);
      deps.log[status === 'rejected' ? 'warn' : 'error'](`training run ${status}`, {
        model: state.model,
        version: state.version,
        reason: message,
      });
      return { ...state, outcome: status, reason: message };
    },
  };
}

/**
 * The model's labelled feedback tables a run may merge (reviewed, or trusted by the config;
 * capped per gateway; oversized files skipped), or undefined when there are none.
 */
async function labelledFeedback(
  deps: TrainingDeps,
  model: string,
  config: Pick<TrainingConfig, 'trustGatewayLabels'>,
): Promise<{ tables: FeedbackTable[]; keys: string[]; rows: number } | undefined> {
  const feedback = await trainingFeedback(deps.s3, deps.datasetsBucket, model, {
    trustGatewayLabels: config.trustGatewayLabels,
  });
  for (const { key, reason } of feedback.skipped)
    deps.log.warn('feedback file skipped', { model, key, reason });
  if (feedback.awaitingReview.length > 0)
    deps.log.info('feedback awaiting review is not merged (edgeloop feedback accept KEY)', {
      model,
      files: feedback.awaitingReview.length,
    });
  const labelled = feedback.tables;
  if (labelled.length === 0) return undefined;
  return { tables: labelled.map((entry) => entry.table), keys: labelled.map((entry) => entry.key), rows: 0 };
}

/** How often a run writes its progress to the registry (and on every phase change). */
const PROGRESS_INTERVAL_MS = 5000;

/**
 * Writes a run's phase (parsing, sampling, training epoch k/n, evaluating), rows parsed and
 * bytes read to its registry item, at most every few seconds; a failed write is logged, not
 * fatal. `flush` waits for the last write.
 */
function registryProgress(
  registry: RegistryStore,
  key: { model: string; version: number },
  now: () => Date,
  log: TrainingDeps['log'],
) {
  let last = 0;
  let phase: string | undefined;
  let pending: Promise<void> = Promise.resolve();
  return {
    update(progress: TrainingProgress) {
      const at = now();
      if (progress.phase === phase && at.getTime() - last < PROGRESS_INTERVAL_MS) return;
      last = at.getTime();
      phase = progress.phase;
      const fields = {
        progress: {
          phase: progress.phase,
          ...(progress.rowsParsed !== undefined ? { rowsParsed: progress.rowsParsed } : {}),
          ...(progress.bytesRead !== undefined ? { bytesRead: progress.bytesRead } : {}),
          ...(progress.bytesTotal !== undefined ? { bytesTotal: progress.bytesTotal } : {}),
          ...(progress.epoch !== undefined ? { epoch: progress.epoch, epochs: progress.epochs } : {}),
          at: at.toISOString(),
        },
        updatedAt: at.toISOString(),
      };
      pending = pending
        .then(() => updateRun(registry, key, fields))
        .catch((error: unknown) => log.warn('progress not recorded', { ...key, error: String(error) }));
    },
    flush: () => pending,
  };
}

/** The error a step threw, from the runner's {name, message} or a Step Functions Catch. */
export function failureOf(error: TrainingRunState['error']): { name: string; message: string } {
  if (!error) return { name: 'Error', message: 'unknown failure' };
  if ('name' in error) return error;
  let message = error.Cause ?? error.Error;
  try {
    const cause = JSON.parse(error.Cause ?? '') as { errorMessage?: string };
    message = cause.errorMessage ?? message;
  } catch {
    // Cause was not JSON: keep it as it is.
  }
  return { name: error.Error, message };
}

/** Runs one event record through every step, recording a failure if a step throws. */
export async function runTraining(event: unknown, steps: TrainingSteps): Promise<TrainingRunState> {
  let state = newRunState(event);
  try {
    state = await steps.validate(state);
    if (state.skipped) return state;
    // The managed engine's hand-off runs in-process here, so it is the code AWS runs.
    if (state.engine === 'managed') {
      await steps.trainManaged(state);
      state = await steps.collectTrain(state);
    } else {
      state = await steps.train(state);
    }
    state = await steps.gate(state);
    if (!state.gate?.passed) return state;
    state = await steps.publish(state);
    return await steps.notify(state);
  } catch (error) {
    const failure =
      error instanceof Error
        ? { name: error.name, message: error.message }
        : { name: 'Error', message: String(error) };
    return steps.recordFailure({ ...state, error: failure });
  }
}
