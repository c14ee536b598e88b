/**
 * Zod schemas for every message and document that crosses a boundary. Producers build
 * values of these types; consumers parse with them before trusting anything.
 */
import { z } from 'zod';
import { RegistryWindowSchema, WindowManifestSchema, WindowSpecSchema } from './timeseries/spec.ts';
import { MAX_BATCH_RESULTS, MODEL_NAME_PATTERN, THING_NAME_PATTERN } from './topology.ts';

export {
  type ResolvedWindow,
  type WindowManifest,
  WindowManifestSchema,
  type WindowSpec,
  WindowSpecSchema,
} from './timeseries/spec.ts';

export const ModelName = z
  .string()
  .regex(MODEL_NAME_PATTERN, 'model names use a-z, 0-9 and -, up to 63 chars');
export const ThingName = z.string().regex(THING_NAME_PATTERN, 'thing names use a-z, A-Z, 0-9, _ and -');
export const Version = z.number().int().min(1);
const Sha256 = z.string().regex(/^[a-f0-9]{64}$/, 'a lowercase hex sha256');
export const IsoTime = z.string().datetime({ offset: true });

// ---------------------------------------------------------------------------------------
// Staged rollout: the plan a canary release carries, and the drift -> retrain policy.
// ---------------------------------------------------------------------------------------

export const RolloutPlanSchema = z
  .object({
    /** Share of gateways (by a stable hash of thing name and version) that get the canary. */
    canaryPercent: z.number().min(0).max(100).default(10),
    /** Canary results needed before promotion. */
    minResults: z.number().int().min(1).default(200),
    /** The canary runs at least this long before promotion. */
    minDurationMs: z.number().int().min(0).default(60_000),
    /** Without enough results after this long, the canary is rolled back. */
    maxWaitMs: z.number().int().min(1).default(3_600_000),
    /** Rolled back when its low-confidence rate exceeds the current version's by more. */
    maxLowConfidenceDelta: z.number().min(0).max(1).default(0.1),
    /** Rolled back when its live accuracy trails the current version's by more. */
    maxAccuracyDrop: z.number().min(0).max(1).default(0.05),
    /** Labelled canary results needed before live accuracy counts. */
    minLabelled: z.number().int().min(0).default(50),
    /** Regression: rolled back when its live RMSE exceeds the current version's by more (relative). */
    maxRmseIncrease: z.number().min(0).default(0.1),
    /**
     * Regression without truth: rolled back when its predictions' distribution moved from the
     * current version's by more than this PSI (0.25: a significant shift).
     */
    maxPredictionShiftPsi: z.number().min(0).default(0.25),
    /**
     * Anomaly models: rolled back when the canary's share of results over its threshold is more
     * than this many times the current version's over the same minutes, and at least one
     * point above it (a canary that alarms far more is wrong more often than the machines are).
     */
    maxAnomalyRateRatio: z.number().min(1).default(3),
  })
  .strict();
export type RolloutPlan = z.infer<typeof RolloutPlanSchema>;

export const RetrainPolicySchema = z
  .object({
    /** Drift (PSI of the live class mix against training) at or above this counts. */
    driftPsi: z.number().positive().default(0.25),
    /** Drift must hold this long before a retrain starts. */
    sustainMs: z.number().int().min(0).default(600_000),
    /** Window of results the drift is measured over. */
    windowMs: z.number().int().min(60_000).default(600_000),
    /** Labelled feedback rows needed for a retrain. */
    minFeedbackRows: z.number().int().min(1).default(1),
    /** No second retrain of a model within this long. */
    cooldownMs: z.number().int().min(0).default(3_600_000),
  })
  .strict();
export type RetrainPolicy = z.infer<typeof RetrainPolicySchema>;

// ---------------------------------------------------------------------------------------
// Training config: datasets/{model}/edgeloop.json, mirrored by CLI flags.
// ---------------------------------------------------------------------------------------

/**
 * A run streams the dataset and holds only a seeded, stratified sample of it: at most
 * `maxTrainRows` training rows per epoch and `maxEvalRows` validation and test rows each,
 * in a buffer of at most `bufferMb` (whichever is smaller).
 */
export const TrainingSampleSchema = z
  .object({
    maxTrainRows: z.number().int().min(100).optional(),
    maxEvalRows: z.number().int().min(100).optional(),
    bufferMb: z.number().int().min(8).max(16_384).optional(),
  })
  .strict();
export type TrainingSample = z.infer<typeof TrainingSampleSchema>;

export const SAMPLE_DEFAULTS = { maxTrainRows: 1_000_000, maxEvalRows: 50_000, bufferMb: 256 } as const;

/** The tuner's search (shared/training/tune.ts): how many recipes, and a wall-time cap. */
export const TuningConfigSchema = z
  .object({
    /** Recipes tried (1 = the default recipe only); each is scored on the validation split. */
    candidates: z.number().int().min(1).max(5).default(3),
    /** The search and refit stop starting new work after this long. */
    maxSeconds: z.number().positive().max(3600).default(600),
    /** Refit the winner on training + validation rows (else ship it as it was scored). */
    refit: z.boolean().default(true),
    /**
     * Ship the mean of the candidates close to the winner on validation (else the winner
     * alone: fewer weights and faster inference, for the smallest gateways).
     */
    ensemble: z.boolean().default(true),
  })
  .strict();
export type TuningConfig = z.infer<typeof TuningConfigSchema>;

/**
 * What a model answers: a class (`classification`, the default), a number (`regression`), or
 * how far a reading is from normal operation (`anomaly`, trained without labels). It decides
 * the split, the loss, the metrics, the gate and the device's result.
 */
export const TaskSchema = z.enum(['classification', 'regression', 'anomaly']);
export type Task = z.infer<typeof TaskSchema>;

/** A regression target's bounds: training targets are capped and predictions clipped to them. */
export const TargetBoundsSchema = z
  .object({ min: z.number().optional(), max: z.number().optional() })
  .strict()
  .refine((b) => b.min === undefined || b.max === undefined || b.min < b.max, {
    message: '"target": min must be below max',
  });

export const AlarmSchema = z
  .object({
    /** Per series: the false alarms a day the threshold allows on normal operation (default 1). */
    falseAlarmsPerDay: z.number().positive().default(1),
    /** Instead of the budget: the share of normal scores under the threshold (e.g. 0.999). */
    quantile: z.number().gt(0.5).lt(1).optional(),
  })
  .strict();
export type Alarm = z.infer<typeof AlarmSchema>;

/**
 * The anomaly models the trainer fits (shared/training/anomaly.ts): a dense autoencoder, or a
 * PCA as a linear one, whose reconstruction error is the Q residual (`pca`) or, as
 * probabilistic PCA, the Q residual plus a Hotelling T² term (`ppca`). All ship as a tfjs model
 * whose output is the reconstruction, so the gateway scores them alike.
 */
export const AnomalyModelSchema = z.enum(['pca', 'ppca', 'autoencoder']);
export type AnomalyModel = z.infer<typeof AnomalyModelSchema>;

export const EventRuleSchema = z
  .object({
    k: z.number().int().min(1).default(3),
    n: z.number().int().min(1).default(5),
    m: z.number().int().min(1).default(5),
  })
  .strict()
  .refine((r) => r.k <= r.n, { message: '"eventRule": k must be at most n' });

export const TrainingConfigSchema = z
  .object({
    task: TaskSchema.default('classification'),
    label: z.string().min(1).optional(),
    features: z.array(z.string().min(1)).min(1).optional(),
    kind: z.enum(['mlp']).default('mlp'),
    /** Upper bound: early stopping on validation loss usually ends training sooner. */
    epochs: z.number().int().min(1).max(1000).default(100),
    batchSize: z.number().int().min(1).max(4096).default(32),
    seed: z.number().int().default(42),
    /** A new version may not trail the current release's accuracy by more than this. */
    gateMargin: z.number().min(0).max(1).default(0.02),
    /** Every version (the first too) needs at least this macro-F1 on the held-out rows. */
    gateMinMacroF1: z.number().min(0).max(1).optional(),
    /** Recall every class needs on the held-out rows, or per class name: {"fault": 0.8}. */
    gateMinRecall: z
      .union([z.number().min(0).max(1), z.record(z.string().min(1), z.number().min(0).max(1))])
      .optional(),
    /** Anomaly: with labelled event ranges (events.csv), the event recall every version needs. */
    gateMinEventRecall: z.number().min(0).max(1).optional(),
    /** Regression: a new version's held-out RMSE must also be at most this (target units). */
    gateMaxRmse: z.number().positive().optional(),
    /** Regression: bounds of the target (e.g. remaining life capped at 125 cycles). */
    target: TargetBoundsSchema.optional(),
    /** The time column of rows (never a feature); anomaly models read their reading rate from it. */
    time: z.string().min(1).optional(),
    /** The series column of rows (a machine's id; never a feature): anomaly budgets and events are per series. */
    series: z.string().min(1).optional(),
    /** Anomaly: the false-alarm budget the threshold is calibrated to (or a score quantile). */
    alarm: AlarmSchema.optional(),
    /** Anomaly: k of the last n results over the threshold open an event, m clear ones close it. */
    eventRule: EventRuleSchema.optional(),
    /** Anomaly: the model to fit, or `auto` (the default): the tuner picks on held-out normal data. */
    anomalyModel: z.union([z.literal('auto'), AnomalyModelSchema]).optional(),
    /**
     * Regression on spectral windows: `mlp`, `ridge`, or `auto` (the default): both are fitted
     * and the one that predicts the validation series better ships.
     */
    regressionModel: z.enum(['auto', 'mlp', 'ridge']).optional(),
    /**
     * Classifiers: readings whose novelty score passes this quantile of held-out rows' scores
     * are answered `unknown` (false: every reading gets a class).
     */
    novelty: z
      .union([
        z.literal(false),
        z.object({ quantile: z.number().min(0.5).max(0.999999).default(0.999) }).strict(),
      ])
      .optional(),
    minRowsPerClass: z.number().int().min(1).default(5),
    /**
     * Column kinds that replace the guess, e.g. {"sepal_length": "categorical"}. A timestamp
     * column is left out unless declared "date" (its calendar then becomes features).
     */
    columns: z.record(z.string().min(1), z.enum(['numeric', 'categorical', 'date'])).optional(),
    lowConfidence: z.number().min(0).max(1).default(0.6),
    /** How many of its features a reading may lack and still be answered (the rest are refused). */
    maxMissingFeatures: z.number().int().min(0).default(0),
    quantize: z.enum(['none', 'uint8', 'float16']).default('none'),
    /** With a plan, a release after the first goes to a canary cohort first. */
    rollout: RolloutPlanSchema.optional(),
    /** Drift -> retrain thresholds (defaults apply when absent). */
    retrain: RetrainPolicySchema.optional(),
    /**
     * Labels gateways upload with their hard examples join training without review. Off by
     * default: one gateway could otherwise poison retraining (`edgeloop feedback accept`).
     */
    trustGatewayLabels: z.boolean().default(false),
    /** The recipe search on datasets small enough to hold (defaults apply when absent). */
    tuning: TuningConfigSchema.optional(),
    /** Datasets of any size: how many rows a run holds and trains on (SAMPLE_DEFAULTS when absent). */
    sample: TrainingSampleSchema.optional(),
    /** Where the train step runs: Lambda, the managed engine (AWS Batch on Fargate), or by size. */
    engine: z.enum(['auto', 'lambda', 'managed']).default('auto'),
    /** Under `auto`, datasets above this size train on the managed engine (default 256). */
    managedAboveMb: z.number().int().min(1).optional(),
    /** Long-format readings: train on windows over each series (shared/timeseries/spec.ts). */
    window: WindowSpecSchema.optional(),
  })
  .strict()
  .refine((c) => !(c.task === 'anomaly' && c.window && (c.time || c.series)), {
    message:
      '"task": "anomaly" with "window": name the time and series columns in "window" (its "time" and "series"), not at the top level',
    path: ['window'],
  });
export type TrainingConfig = z.infer<typeof TrainingConfigSchema>;
export type TrainingConfigInput = z.input<typeof TrainingConfigSchema>;

// ---------------------------------------------------------------------------------------
// Preprocessing: fitted at training time, applied identically on the device.
// ---------------------------------------------------------------------------------------

export const FeatureSpecSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('numeric'),
    column: z.string(),
    mean: z.number(),
    std: z.number().positive(),
    /** Value used when the reading lacks this column (the training mean). */
    fill: z.number(),
    /**
     * A strongly right-skewed column of non-negative numbers (counts, amounts): the value is
     * taken as log(1 + max(0, x)) before standardizing, and mean, std and fill are of that.
     */
    log1p: z.literal(true).optional(),
  }),
  z.object({
    kind: z.literal('categorical'),
    column: z.string(),
    /** One-hot slots in order; values not listed go to one extra "unknown" slot. */
    categories: z.array(z.string()),
  }),
  z.object({
    kind: z.literal('date'),
    column: z.string(),
    /** Emits sin/cos of day-of-year and of hour-of-day. */
  }),
]);
export type FeatureSpec = z.infer<typeof FeatureSpecSchema>;

/**
 * A regression model predicts its target standardized: value = output * std + mean, then
 * clipped to [min, max] when the config bounds the target.
 */
export const TargetScaleSchema = z.object({
  mean: z.number(),
  std: z.number().positive(),
  min: z.number().optional(),
  max: z.number().optional(),
  /** The training targets as [bucket, count] pairs (shared/aggregation/value-histogram.ts): drift's reference. */
  histogram: z.array(z.tuple([z.number().int(), z.number().int().min(1)])).optional(),
});
export type TargetScale = z.infer<typeof TargetScaleSchema>;

export const PreprocessingSchema = z
  .object({
    label: z.string(),
    /** Absent in manifests written before regression: a classifier. */
    task: TaskSchema.optional(),
    /** Class names; a prediction's argmax indexes this list (empty for regression). */
    labels: z.array(z.string()),
    /** Regression: how the model's one output becomes a value. */
    target: TargetScaleSchema.optional(),
    features: z.array(FeatureSpecSchema).min(1),
    /** Length of the vector the transform emits (the model's input width). */
    inputWidth: z.number().int().min(1),
  })
  .superRefine((p, ctx) => {
    if (p.task === 'anomaly') return;
    if (p.task === 'regression' ? !p.target : p.labels.length < 2)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message:
          p.task === 'regression'
            ? 'a regression model needs its target scale (preprocessing.target)'
            : 'a classifier needs at least two class names (preprocessing.labels)',
      });
  });
export type Preprocessing = z.infer<typeof PreprocessingSchema>;

// ---------------------------------------------------------------------------------------
// Model manifest: {model}/v{n}/manifest.json
// ---------------------------------------------------------------------------------------

export const ClassMetricsSchema = z.object({
  precision: z.number(),
  recall: z.number(),
  support: z.number(),
});

/** Regression on held-out rows, in target units; `meanRmse` is the training mean's (the floor to beat). */
export const RegressionMetricsSchema = z.object({
  rmse: z.number().min(0),
  mae: z.number().min(0),
  r2: z.number(),
  meanRmse: z.number().min(0),
  /** Regression on spectral windows: the model that shipped, the MLP or a ridge regression (the better on validation series). */
  model: z.enum(['mlp', 'ridge']).optional(),
});
export type RegressionMetrics = z.infer<typeof RegressionMetricsSchema>;

/**
 * An anomaly model against labelled event ranges (events.csv): the event rule over the labelled
 * series in time order. Recall: ranges an event overlapped; precision: events that overlapped
 * a range, of all events in those series; delay: range start to the first such event's start.
 */
export const LabelledMetricsSchema = z.object({
  ranges: z.number().int().min(0),
  found: z.number().int().min(0),
  events: z.number().int().min(0),
  recall: z.number().min(0).max(1),
  precision: z.number().min(0).max(1),
  f1: z.number().min(0).max(1),
  /** Absent when no range was found. */
  medianDelayMs: z.number().min(0).optional(),
});
export type LabelledMetrics = z.infer<typeof LabelledMetricsSchema>;

/**
 * An anomaly model candidate on half of the held-out normal results, calibrated on the other
 * half (shared/training/anomaly.ts `heldOutAlarms`, `chooseAnomalyModel`): the share over its
 * threshold calibrated as the shipped one is, with the events a day that gives, and the share
 * over the other half's 90th percentile score. With labelled event ranges, how it separates
 * them: event recall at its own threshold, and the median score in a range over the median
 * outside.
 */
export const AnomalyCandidateSchema = z.object({
  model: AnomalyModelSchema,
  overQuantile: z.number().min(0).max(1),
  falseAlarmRate: z.number().min(0).max(1),
  falseAlarmsPerDay: z.number().min(0).optional(),
  /** Share of held-out vectors with one slot moved 3 standard deviations it scores over its threshold (absent: before the check). */
  departuresFound: z.number().min(0).max(1).optional(),
  eventRecall: z.number().min(0).max(1).optional(),
  scoreRatio: z.number().min(0).optional(),
});
export type AnomalyCandidate = z.infer<typeof AnomalyCandidateSchema>;

/** An anomaly model on held-out normal rows: how often it alarms there, at its calibrated threshold. */
export const AnomalyMetricsSchema = z.object({
  threshold: z.number().min(0),
  /** The score quantile the threshold sits at (from the budget and the reading rate, or the config). */
  quantile: z.number(),
  /** Share of held-out normal results over the threshold, and the false alarms (events) a day per series it gives under the event rule, when the rate is known. */
  falseAlarmRate: z.number().min(0).max(1),
  falseAlarmsPerDay: z.number().min(0).optional(),
  readingsPerDay: z.number().positive().optional(),
  /** With labelled event ranges: how the candidate's events match them. */
  labelled: LabelledMetricsSchema.optional(),
  /** The model fitted (absent in versions from before there was a choice: an autoencoder). */
  model: AnomalyModelSchema.optional(),
  /** Under `"anomalyModel": "auto"`: each candidate's figures the choice was made by. */
  candidates: z.array(AnomalyCandidateSchema).optional(),
});

export const ModelMetricsSchema = z.object({
  /** Classifiers only. */
  accuracy: z.number().min(0).max(1).optional(),
  regression: RegressionMetricsSchema.optional(),
  anomaly: AnomalyMetricsSchema.optional(),
  /** A classifier's novelty threshold, and the share of held-out test rows it answers `unknown`. */
  novelty: z
    .object({ threshold: z.number().min(0), quantile: z.number(), unknownRate: z.number().min(0).max(1) })
    .optional(),
  macroF1: z.number().min(0).max(1).optional(),
  perClass: z.record(z.string(), ClassMetricsSchema).optional(),
  confusion: z.array(z.array(z.number().int())).optional(),
  testRows: z.number().int().min(0).optional(),
  /** With quantized weights: weights size vs float32, and accuracy minus the float model's. */
  quantization: z
    .object({
      dtype: z.enum(['uint8', 'float16']),
      sizeRatio: z.number(),
      accuracyDelta: z.number().optional(),
      /** Regression: RMSE minus the float model's. */
      rmseDelta: z.number().optional(),
    })
    .optional(),
});
export type ModelMetrics = z.infer<typeof ModelMetricsSchema>;

/** One recipe the tuner tried, with its validation scores (or why it was skipped). */
export const TuningCandidateSchema = z.object({
  hidden: z.array(z.number().int().min(1)),
  learningRate: z.number().positive(),
  batchSize: z.number().int().min(1),
  l2: z.number().min(0),
  classWeighted: z.boolean(),
  maxSteps: z.number().int().min(1),
  /** Steps of the first round; only the round's best continues, up to `maxSteps`. */
  firstSteps: z.number().int().min(1).optional(),
  validationAccuracy: z.number().min(0).max(1).optional(),
  /** Regression candidates: validation RMSE in target units. */
  validationRmse: z.number().min(0).optional(),
  validationLoss: z.number().optional(),
  steps: z.number().int().min(0).optional(),
  /** Step of the best validation loss (the weights kept). */
  bestStep: z.number().int().min(0).optional(),
  ms: z.number().min(0).optional(),
  skipped: z.string().optional(),
});

/** The tuner's search: every candidate, the one chosen (an index), its refit, and the ensemble shipped. */
export const TuningReportSchema = z.object({
  chosen: z.number().int().min(0),
  candidates: z.array(TuningCandidateSchema).min(1),
  /** The first round's best, which trained on to its cap (absent when it had stopped). */
  continued: z.number().int().min(0).optional(),
  refit: z.object({ steps: z.number().int().min(1), ms: z.number().min(0) }).optional(),
  /**
   * What ships when it is an ensemble: the candidates whose class probabilities it averages,
   * and that mean's validation accuracy (before the refit saw those rows).
   */
  ensemble: z
    .object({
      members: z.array(z.number().int().min(0)).min(2),
      validationAccuracy: z.number().min(0).max(1).optional(),
      validationRmse: z.number().min(0).optional(),
    })
    .optional(),
  ms: z.number().min(0),
});
export type TuningReport = z.infer<typeof TuningReportSchema>;

export const ManifestFileSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/),
  sha256: Sha256,
  size: z.number().int().min(0),
});

export const SignatureSchema = z.object({
  alg: z.literal('ECDSA_SHA_256'),
  keyId: z.string(),
  /** base64 DER signature over canonicalJson(manifest without `signature`). */
  value: z.string(),
});

export const DatasetPartLineageSchema = z.object({
  key: z.string(),
  format: z.enum(['csv', 'jsonl', 'parquet']),
  versionId: z.string().optional(),
  etag: z.string().optional(),
  bytes: z.number().int().min(0),
  sha256: Sha256,
  rows: z.number().int().min(0),
});
export type DatasetPartLineage = z.infer<typeof DatasetPartLineageSchema>;

export const TrainingSampleLineageSchema = z.object({
  seed: z.number().int(),
  /** Rows kept per role, and the rows each role had before the caps. */
  trainRows: z.number().int().min(0),
  validationRows: z.number().int().min(0),
  testRows: z.number().int().min(0),
  of: z.object({
    trainRows: z.number().int().min(0),
    validationRows: z.number().int().min(0),
    testRows: z.number().int().min(0),
  }),
});
export type TrainingSampleLineage = z.infer<typeof TrainingSampleLineageSchema>;

export const ManifestSchema = z.object({
  schemaVersion: z.literal(1),
  model: ModelName,
  version: Version,
  createdAt: IsoTime,
  files: z.array(ManifestFileSchema).min(1),
  preprocessing: PreprocessingSchema,
  metrics: ModelMetricsSchema,
  /** Share of each class in the training data, for drift checks. */
  classDistribution: z.record(z.string(), z.number()),
  /** Raw rows and the probabilities the trainer got for them: the device's probation check. */
  golden: z.object({
    rows: z.array(z.record(z.string(), z.string())),
    outputs: z.array(z.array(z.number())),
    tolerance: z.number().positive(),
  }),
  lowConfidence: z.number().min(0).max(1),
  /** How many features a reading may lack and still be answered (absent: 0). */
  maxMissingFeatures: z.number().int().min(0).optional(),
  /** A windowed model: the window spec, its features, and the golden windows probation runs. */
  window: WindowManifestSchema.optional(),
  /** An anomaly model: the threshold its score is judged by, and the event rule. */
  anomaly: z
    .object({
      threshold: z.number().min(0),
      eventRule: z.object({
        k: z.number().int().min(1),
        n: z.number().int().min(1),
        m: z.number().int().min(1),
      }),
      /** The rows' time column, when the config named one: results and events take their time from it. */
      time: z.string().optional(),
      /** The rows' series column: events are per series. */
      series: z.string().optional(),
      /** Each input slot's residual scale on normal data: a slot's error counts in units of it. */
      residualScale: z.array(z.number().positive()),
      /**
       * Held-out normal results' scores as [bucket, count] pairs (shared/aggregation/value-histogram.ts):
       * the fleet's score drift is measured against it.
       */
      scoreHistogram: z.array(z.tuple([z.number().int(), z.number().int().min(1)])).optional(),
    })
    .optional(),
  /**
   * A classifier's novelty score (shared/novelty.ts): how far a reading's input is from the
   * training inputs, by a PCA of them. Over `threshold` the reading is answered `unknown`.
   */
  novelty: z
    .object({
      mean: z.array(z.number()),
      /** The principal directions kept (k x input width, orthonormal) and their variances. */
      components: z.array(z.array(z.number())),
      variances: z.array(z.number().positive()),
      /** The mean squared distance from the kept directions on the training inputs. */
      residualMean: z.number().positive(),
      threshold: z.number().min(0),
      quantile: z.number(),
      /** The golden rows' scores, which probation checks. */
      golden: z.array(z.number()),
    })
    .optional(),
  /** The recipe search this version came from, when the tuner ran. */
  tuning: TuningReportSchema.optional(),
  lineage: z.object({
    datasetKey: z.string(),
    datasetEtag: z.string().optional(),
    datasetSha256: Sha256,
    rows: z.number().int(),
    backend: z.string(),
    seed: z.number().int(),
    /** Labelled hard examples merged into this run's dataset. */
    feedback: z.object({ keys: z.array(z.string()), rows: z.number().int().min(0) }).optional(),
    /** Every part the run read (one for a single-object dataset), with its version and digest. */
    parts: z.array(DatasetPartLineageSchema).optional(),
    /** The seeded, stratified sample the run trained and scored on, when it did not use every row. */
    sample: TrainingSampleLineageSchema.optional(),
  }),
  signature: SignatureSchema.optional(),
});
export type Manifest = z.infer<typeof ManifestSchema>;

// ---------------------------------------------------------------------------------------
// Release notice: retained on topics.release
// ---------------------------------------------------------------------------------------

export const ReleaseNoticeSchema = z.object({
  model: ModelName,
  version: Version,
  bucket: z.string(),
  manifestKey: z.string(),
  /** sha256 of manifest.json as stored, so a swapped manifest is caught before parsing. */
  manifestSha256: Sha256,
  releasedAt: IsoTime,
  /** `rollback` lets a device accept a version older than the one it runs (signed, like all of it). */
  kind: z.enum(['release', 'rollback']).default('release'),
  /** After this instant a device refuses the notice, so an old one cannot be replayed forever. */
  expiresAt: IsoTime.optional(),
  /**
   * A canary notice's fleet version: a gateway outside the cohort that runs an older canary
   * returns to exactly this version (the signed authority for that downgrade).
   */
  fallbackVersion: Version.optional(),
  /** Who installs it: every gateway (absent = 'all'), or the canary cohort only. */
  cohort: z.enum(['canary', 'all']).optional(),
  /** The canary plan (cohort 'canary'): who is in the cohort and when it is promoted. */
  rollout: RolloutPlanSchema.optional(),
  /** Over canonicalJson(notice without `signature`), by the key that signs manifests (shared/notice.ts). */
  signature: SignatureSchema.optional(),
});
export type ReleaseNotice = z.infer<typeof ReleaseNoticeSchema>;

// ---------------------------------------------------------------------------------------
// Result batch: topics.results. The topic rule adds `thing` from the topic.
// ---------------------------------------------------------------------------------------

/** A column and its share of an anomaly score (shared/anomaly.ts). */
const ChannelShareSchema = z.object({ name: z.string(), share: z.number().min(0).max(1) });

export const InferenceResultSchema = z.object({
  id: z.string().min(1).max(128),
  ts: z.number().int().positive(),
  /** A classifier's answer. */
  label: z.string().optional(),
  confidence: z.number().min(0).max(1).optional(),
  /** A regression model's answer, in target units. */
  value: z.number().optional(),
  /** An anomaly model's answer: the score, the threshold it was judged by, the verdict, and the channels that drove it. */
  score: z.number().min(0).optional(),
  threshold: z.number().min(0).optional(),
  anomaly: z.boolean().optional(),
  channels: z.array(ChannelShareSchema).max(16).optional(),
  /** A classifier's answer to a reading far from its training data: label `unknown`, the class it would have been, and its novelty score. */
  wouldBe: z.string().optional(),
  novelty: z.number().min(0).optional(),
  /** An anomaly model's row result: the reading's series (the model's series column), which events are kept per. */
  series: z.string().max(128).optional(),
  latencyMs: z.number().min(0).max(3_600_000),
  /** The reading's own label: a class name, or a regression model's true value as text. */
  truth: z.string().optional(),
  /** A windowed model's result covers one window: its series and the times of its first and last samples. */
  window: z.object({ series: z.string(), start: z.number(), end: z.number() }).optional(),
  /** Live sources: the reading's time (epoch ms), and whether it is the reading's own or its arrival's. */
  time: z.number().optional(),
  timeFrom: z.enum(['reading', 'arrival']).optional(),
});
export type InferenceResult = z.infer<typeof InferenceResultSchema>;

/**
 * An anomaly event as a gateway sends it on its events topic: once when the model's event
 * rule opens it and once when it closes (the same `eventId`; the closing message wins).
 * Times are epoch ms (a window's end, the reading's time column, else its arrival).
 */
export const AnomalyEventMessageSchema = z.object({
  /** `<series>@<start>`: unique per gateway and model. */
  eventId: z.string().min(1).max(300),
  model: ModelName,
  version: Version,
  series: z.string().max(128),
  state: z.enum(['open', 'closed']),
  start: z.number(),
  end: z.number(),
  peakScore: z.number().min(0),
  threshold: z.number().min(0),
  /** The columns that drove it, largest share first. */
  channels: z.array(ChannelShareSchema).max(16),
  /** Anomalous results in it so far. */
  results: z.number().int().min(1),
  sentAt: z.number().int().positive(),
});
export type AnomalyEventMessage = z.infer<typeof AnomalyEventMessageSchema>;

export const ResultBatchSchema = z.object({
  /** Stable across outbox replays and restarts: the aggregator counts each batch id once. */
  batchId: z.string().min(8).max(128),
  model: ModelName,
  version: Version,
  sentAt: z.number().int().positive(),
  results: z.array(z.unknown()).min(1).max(MAX_BATCH_RESULTS),
});
export type ResultBatch = Omit<z.infer<typeof ResultBatchSchema>, 'results'> & { results: InferenceResult[] };

/**
 * Summary mode (the fleet-scale wire format): instead of every result, the gateway sends its
 * per-minute cells, which the aggregator adds as they are. Sparse histograms are
 * [bucket index, count] pairs over the edges in shared/aggregation/histogram.ts. The cloud
 * checks every cell for consistency (counts add up, classes are the model's) and sets a bad
 * cell aside with its reason, keeping the good ones.
 */
export const SummaryCellSchema = z.object({
  /** Start of the UTC minute (epoch ms, a multiple of 60,000). */
  minute: z.number().int().positive(),
  n: z.number().int().min(1),
  low: z.number().int().min(0),
  csum: z.number().min(0),
  lsum: z.number().min(0),
  lab: z.number().int().min(0),
  ok: z.number().int().min(0),
  classes: z.record(z.string(), z.number().int().min(1)),
  /** Regression: results with a value, their sum and sum of squares, and error sums of the labelled ones. */
  nv: z.number().int().min(0).optional(),
  /** Anomaly: results with a score (classes count them as 'anomaly' and 'normal'; no confidences). */
  ns: z.number().int().min(0).optional(),
  vsum: z.number().optional(),
  vsq: z.number().min(0).optional(),
  esq: z.number().min(0).optional(),
  eabs: z.number().min(0).optional(),
  /** Regression: the values' histogram (shared/aggregation/value-histogram.ts), as [bucket, count] pairs. */
  vh: z.array(z.tuple([z.number().int(), z.number().int().min(1)])).optional(),
  ch: z.array(z.tuple([z.number().int().min(0), z.number().int().min(1)])),
  lh: z.array(z.tuple([z.number().int().min(0), z.number().int().min(1)])),
});
export type SummaryCell = z.infer<typeof SummaryCellSchema>;

export const SummaryBatchSchema = z.object({
  mode: z.literal('summary'),
  batchId: z.string().min(8).max(128),
  model: ModelName,
  version: Version,
  sentAt: z.number().int().positive(),
  /** Cells are checked one by one (like results in detail mode). */
  cells: z.array(z.unknown()).min(1).max(64),
});
export type SummaryBatch = Omit<z.infer<typeof SummaryBatchSchema>, 'cells'> & { cells: SummaryCell[] };

/** What an IoT topic rule delivers to an aggregator (see rules in topology.ts). */
export const RuleEventSchema = z.object({
  /** The MQTT payload, base64; the aggregator parses and validates it. */
  payload: z.string(),
  topic: z.string(),
  thing: z.string(),
  receivedAt: z.number().int(),
});
export type RuleEvent = z.infer<typeof RuleEventSchema>;

// ---------------------------------------------------------------------------------------
// Device status: topics.status
// ---------------------------------------------------------------------------------------

export const DeviceStateSchema = z.enum(['starting', 'waiting', 'serving', 'updating', 'error', 'stopped']);
export type DeviceState = z.infer<typeof DeviceStateSchema>;

export const UpdateStepSchema = z.enum(['download', 'verify', 'stage', 'probation', 'switch', 'load']);
export type UpdateStep = z.infer<typeof UpdateStepSchema>;

/**
 * The gateway's state dir disk: `full` (the free space reached the reserve plus a margin, or
 * a write hit ENOSPC/EDQUOT), `read-only` (EROFS), `failing` (EIO); `low` warns before full.
 */
export const DiskStateSchema = z.enum(['ok', 'low', 'full', 'read-only', 'failing']);
export type DiskState = z.infer<typeof DiskStateSchema>;

export const DiskStatusSchema = z.object({
  state: DiskStateSchema,
  freeBytes: z.number().int().min(0),
  /** Free space the device never writes into (the outbox's overflow policy applies there). */
  reserveBytes: z.number().int().min(0),
  /** The source is paused for the disk; it resumes by itself once the outbox drained. */
  sourcePaused: z.boolean(),
});
export type DiskStatus = z.infer<typeof DiskStatusSchema>;

/** Why a gateway refused to answer a reading (shared/dataset/readings.ts). */
export const REFUSAL_REASONS = [
  'unreadable',
  'missing-features',
  /** A window model's reading at or before its series' latest (readings of a series come in time order). */
  'out-of-order',
  /** A new series while `maxSeries` are open (live window streams). */
  'series-limit',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** One live input's health (device/sources/live): what `edgeloop fleet` shows per source. */
export const SourceStatusSchema = z.object({
  name: z.string(),
  kind: z.enum(['mqtt', 'opcua', 'modbus']),
  state: z.enum(['connecting', 'connected', 'reconnecting', 'stopped']),
  /** Readings received per second over the last status interval. */
  readingsPerSec: z.number().min(0),
  /** Since the last reading arrived (ms); null before the first. */
  lastReadingAgeMs: z.number().int().min(0).nullable(),
  readings: z.number().int().min(0),
  reconnects: z.number().int().min(0),
  /** Messages or values the source could not read (sampled into errors.jsonl with their reason). */
  malformed: z.number().int().min(0),
  /** MQTT: copies of a timestamped message already taken (QoS 1 delivers at least once), dropped. */
  duplicates: z.number().int().min(0).optional(),
  /** Readings dropped, oldest first, because the pipeline fell behind a source that cannot pause. */
  dropped: z.number().int().min(0),
});
export type SourceStatus = z.infer<typeof SourceStatusSchema>;

export const DeviceStatusSchema = z.object({
  ts: z.number().int().positive(),
  model: ModelName,
  version: Version.nullable(),
  state: DeviceStateSchema,
  outboxDepth: z.number().int().min(0),
  dropped: z.number().int().min(0),
  inferenceRate: z.number().min(0),
  latencyP50: z.number().min(0).nullable(),
  latencyP99: z.number().min(0).nullable(),
  /** From a reading's arrival to its result being durable in the outbox (ms, since start). */
  durableLatencyP50: z.number().min(0).nullable().optional(),
  durableLatencyP99: z.number().min(0).nullable().optional(),
  lastError: z
    .object({ step: UpdateStepSchema, reason: z.string(), version: Version.optional(), at: z.number().int() })
    .nullable(),
  /** Absent from gateways older than the disk watch. */
  disk: DiskStatusSchema.optional(),
  /** Readings refused (never answered) per reason, since the service started. */
  refused: z.partialRecord(z.enum(REFUSAL_REASONS), z.number().int().min(0)).optional(),
  /** Outbox files set aside unread in quarantine (device/results/outbox.ts): an operator looks at them. */
  quarantined: z.number().int().min(0).optional(),
  /** Windowed models on live sources: open series, evicted idle ones, readings refused at maxSeries. */
  series: z
    .object({
      open: z.number().int().min(0),
      evicted: z.number().int().min(0),
      refusedAtLimit: z.number().int().min(0),
    })
    .optional(),
  /** Live inputs (MQTT, OPC UA, Modbus TCP), one entry each. */
  sources: z.array(SourceStatusSchema).optional(),
  /** Anomaly models: events open now, opened and closed since start, and event messages not yet acknowledged. */
  events: z
    .object({
      open: z.number().int().min(0),
      opened: z.number().int().min(0),
      closed: z.number().int().min(0),
      unsent: z.number().int().min(0),
      /** Event message files that could not be read, set aside unread in events/quarantine/. */
      quarantined: z.number().int().min(0).optional(),
    })
    .optional(),
});
export type DeviceStatus = z.infer<typeof DeviceStatusSchema>;

// ---------------------------------------------------------------------------------------
// Registry item: one per (model, version)
// ---------------------------------------------------------------------------------------

export const RunStatusSchema = z.enum([
  'training',
  'rejected',
  'rejected-by-gate',
  'released',
  'failed',
  /** Released to the canary cohort only; the rollout controller promotes or rolls it back. */
  'canary',
  'rolled-back',
]);
export type RunStatus = z.infer<typeof RunStatusSchema>;

export const RegistryItemSchema = z.object({
  model: ModelName,
  version: Version,
  status: RunStatusSchema,
  createdAt: IsoTime,
  updatedAt: IsoTime,
  datasetKey: z.string(),
  datasetEtag: z.string().optional(),
  datasetSha256: z.string().optional(),
  metrics: ModelMetricsSchema.optional(),
  /** Accuracy of the release this version was gated against, when there was one. */
  baselineAccuracy: z.number().optional(),
  /** Regression: RMSE of the release this version was gated against. */
  baselineRmse: z.number().optional(),
  reason: z.string().optional(),
  manifestKey: z.string().optional(),
  manifestSha256: z.string().optional(),
  durationMs: z.number().optional(),
  /** Staged rollout: the plan, the version it would replace, and the controller's decision. */
  rollout: z
    .object({
      plan: RolloutPlanSchema,
      previousVersion: Version,
      canaryAt: IsoTime,
      decision: z.enum(['promote', 'rollback']).optional(),
      decidedAt: IsoTime.optional(),
      reason: z.string().optional(),
    })
    .optional(),
  /** The recipe search: every candidate's validation scores and the one chosen. */
  tuning: TuningReportSchema.optional(),
  /** What the run did with the data (columns dropped, cells imputed, a sample): shown as is. */
  notices: z.array(z.string()).optional(),
  /** Labelled feedback rows merged into this run. */
  feedbackRows: z.number().int().optional(),
  /** Parts the run read (1 for a single-object dataset). */
  datasetParts: z.number().int().min(1).optional(),
  /** The seeded, stratified sample the run trained on, when it did not use every row. */
  sample: TrainingSampleLineageSchema.optional(),
  /** Where a run in `training` is: the phase, rows parsed and bytes read, the epoch. */
  progress: z
    .object({
      phase: z.enum(['parsing', 'sampling', 'training', 'evaluating']),
      rowsParsed: z.number().int().min(0).optional(),
      bytesRead: z.number().int().min(0).optional(),
      bytesTotal: z.number().int().min(0).optional(),
      epoch: z.number().int().min(0).optional(),
      epochs: z.number().int().min(1).optional(),
      at: IsoTime,
    })
    .optional(),
  /** A windowed model: the window it was trained on (and the gateway cuts). */
  window: RegistryWindowSchema.optional(),
  /** When the fleet-wide notice of this released version was last signed (re-signed before it expires). */
  noticeAt: IsoTime.optional(),
  /** Drift -> retrain bookkeeping on a released version. */
  drift: z
    .object({
      since: IsoTime.optional(),
      psi: z.number().optional(),
      retrainKey: z.string().optional(),
      retrainAt: IsoTime.optional(),
    })
    .optional(),
});
export type RegistryItem = z.infer<typeof RegistryItemSchema>;

/** Readable one-line summary of a zod error: `path: message; path: message`. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`)
    .join('; ');
}

// ---------------------------------------------------------------------------------------
// Deployment document: SSM parameter deploymentParameter(stage), written by the CDK stack,
// read by `edgeloop provision` to build a gateway's config.
// ---------------------------------------------------------------------------------------

export const DeploymentSchema = z.object({
  stage: z.string().min(1),
  region: z.string().min(1),
  thingPolicyName: z.string().min(1),
  roleAlias: z.string().min(1),
  modelsBucket: z.string().min(1),
  datasetsBucket: z.string().min(1),
  signingKeyArn: z.string().min(1),
});
export type Deployment = z.infer<typeof DeploymentSchema>;
