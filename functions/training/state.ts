/**
 * The state one training run carries from step to step. It is plain JSON, so the CDK stack
 * can run each step as its own Step Functions task with the same code.
 */
import type { Manifest, ReleaseNotice, RunStatus, TrainingConfig } from '../../shared/schemas.ts';

/** The uploaded dataset object an event points at. */
export interface DatasetObject {
  bucket: string;
  key: string;
  etag?: string;
  versionId?: string;
  sequencer?: string;
  size?: number;
}

export interface Candidate {
  /** Unsigned manifest; `publish` signs and stores it. */
  manifest: Manifest;
  notices: string[];
  rows: number;
  features: string[];
  classes: string[];
  epochsRun: number;
  /**
   * The current release scored on this run's held-out rows (or its recorded score): accuracy
   * for a classifier, RMSE for regression.
   */
  baseline?: {
    version: number;
    accuracy?: number;
    rmse?: number;
    falseAlarmRate?: number;
    sameSplit: boolean;
  };
}

export interface TrainingRunState {
  runId: string;
  startedAt: string;
  /** The raw S3 record or EventBridge event; only `validate` reads it. */
  event?: unknown;
  dataset?: DatasetObject;
  model?: string;
  version?: number;
  /** The idempotency item this run holds (freed again if the run fails). */
  idempotencyKey?: string;
  config?: TrainingConfig;
  /** Where the train step runs (validate chooses it from the dataset's size and the config). */
  engine?: 'lambda' | 'managed';
  /** Stored bytes of the dataset (every part). */
  datasetBytes?: number;
  /** Set when the run stops early without a registry entry (duplicate event, not a dataset). */
  skipped?: string;
  candidate?: Candidate;
  gate?: {
    passed: boolean;
    reason: string;
    accuracy?: number;
    baselineAccuracy?: number;
    /** Regression: the candidate's held-out RMSE, and the release's on the same rows. */
    rmse?: number;
    baselineRmse?: number;
    /** Anomaly: the candidate's false-alarm rate on held-out normal rows, and the release's. */
    falseAlarmRate?: number;
    baselineFalseAlarmRate?: number;
    baselineVersion?: number;
  };
  release?: ReleaseNotice;
  outcome?: RunStatus | 'skipped';
  reason?: string;
  /** Set by the runner (or a Step Functions Catch, as {Error, Cause}) before recordFailure. */
  error?: { name: string; message: string } | { Error: string; Cause?: string };
}

export type TrainingStep = (state: TrainingRunState) => Promise<TrainingRunState>;
