/**
 * The one source of truth for every name that crosses a boundary: buckets, key layouts,
 * MQTT topics, IoT rule SQL, tables, environment variables and the per-thing IoT policy.
 * The CDK stack (infra/aws) and the embedded local stack (infra/local) are both built from
 * this module, so a test can hold the synthesized template against the local wiring.
 */

export const NAMESPACE = 'edgeloop';

// ---------------------------------------------------------------------------------------
// Buckets and key layouts
// ---------------------------------------------------------------------------------------

export const buckets = {
  datasets: { id: 'Datasets', localName: 'edgeloop-datasets' },
  models: { id: 'Models', localName: 'edgeloop-models' },
} as const;
export type BucketKey = keyof typeof buckets;

/** A model name is used in keys, topics and table keys, so it is kept to a safe alphabet. */
export const MODEL_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Thing names follow AWS IoT's alphabet minus ':' (which IoT policies cannot match safely). */
/** IoT Core's largest message payload; the local broker and Publish shim enforce it too. */
export const IOT_MAX_PAYLOAD_BYTES = 128 * 1024;

export const THING_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,128}$/;
/** Results in one batch message at most: the batch schema and the gateway's batcher agree on it. */
export const MAX_BATCH_RESULTS = 2000;

/** Endings of a dataset object that starts a run by itself (one object, one dataset). */
const DATASET_OBJECT_SUFFIXES = ['.csv', '.csv.gz', '.jsonl', '.jsonl.gz', '.parquet'] as const;
/** The marker Spark, Glue and Hadoop write when every part of an output folder is in place. */
const SUCCESS_MARKER = '_SUCCESS';
const RUN_STATE_PREFIX = 'runs/';
/** Files beside a model's datasets that are not datasets: its config and its labelled event ranges. */
const CONFIG_FILE = 'edgeloop.json';
const EVENTS_FILE = 'events.csv';
const SIDE_FILES: readonly string[] = [CONFIG_FILE, EVENTS_FILE];

export type DatasetKeyKind =
  | { model: string; kind: 'object' }
  /** A folder of parts: every data file under `prefix` (markers and hidden files left out). */
  | { model: string; kind: 'parts'; prefix: string };

export const datasetKeys = {
  /** S3 event filter: keys under this prefix that end in one of `triggerSuffixes` start a run. */
  prefix: 'datasets/',
  /** A single dataset object (`datasets/<model>/<file>.csv`); kept for the single-CSV callers. */
  suffix: '.csv',
  objectSuffixes: DATASET_OBJECT_SUFFIXES,
  successMarker: SUCCESS_MARKER,
  /** Every key ending that starts a run: a dataset object, or the marker of a folder of parts. */
  triggerSuffixes: [...DATASET_OBJECT_SUFFIXES, `/${SUCCESS_MARKER}`] as readonly string[],
  dataset: (model: string, fileName: string) => `datasets/${model}/${fileName}`,
  /** A partitioned dataset: `datasets/<model>/<run>/part-*.csv.gz` ... then this marker. */
  partsFolder: (model: string, run: string) => `datasets/${model}/${run}/`,
  successKey: (model: string, run: string) => `datasets/${model}/${run}/${SUCCESS_MARKER}`,
  /** Optional per-model training config (see TrainingConfigSchema). */
  config: (model: string) => `datasets/${model}/${CONFIG_FILE}`,
  /**
   * Optional labelled event ranges for an anomaly model (series,start,end[,kind]): never
   * trained on, they score each run. Not a dataset: uploading it starts no run (kindOf).
   */
  events: (model: string) => `datasets/${model}/${EVENTS_FILE}`,
  /** Hard examples sampled by gateways land here (kept out of the training trigger). */
  feedbackPrefix: (model: string) => `feedback/${model}/`,
  /** One CSV of hard examples from one gateway (under feedbackPrefix). */
  feedbackFile: (model: string, thing: string, fileName: string) => `feedback/${model}/${thing}/${fileName}`,
  /**
   * Reviewed copies of feedback files (`edgeloop feedback accept|label`): outside the prefix
   * gateways may write to, so a gateway cannot mark its own labels reviewed.
   */
  reviewedFeedbackPrefix: (model: string) => `feedback-reviewed/${model}/`,
  reviewedFeedbackKey: (feedbackKey: string) => feedbackKey.replace(/^feedback\//, 'feedback-reviewed/'),
  /** The gateway (thing) a feedback or reviewed feedback key came from. */
  feedbackThing: (key: string) => key.split('/')[2] ?? '',
  /**
   * The key that starts a retrain the rollout controller copies from `baseKey`: an object of
   * the same format, or the marker of a folder of parts when the base was one.
   */
  retrain(model: string, fromVersion: number, tsMs: number, baseKey: string): string {
    const name = `retrain-v${fromVersion}-${tsMs}`;
    if (datasetKeys.kindOf(baseKey)?.kind === 'parts') return datasetKeys.successKey(model, name);
    const lower = baseKey.toLowerCase();
    const suffix = DATASET_OBJECT_SUFFIXES.find((ending) => lower.endsWith(ending));
    return `datasets/${model}/${name}${suffix ?? '.csv'}`;
  },
  /** What a key that starts a run names: one dataset object, or a folder of parts; else undefined. */
  kindOf(key: string): DatasetKeyKind | undefined {
    const object = /^datasets\/([^/]+)\/([^/]+)$/.exec(key);
    const lower = key.toLowerCase();
    // The config and events.csv sit beside the datasets: the S3 wildcard delivers events.csv
    // like a dataset, and the run's first step skips a key that names no dataset.
    if (object?.[2] && SIDE_FILES.includes(object[2])) return undefined;
    if (object?.[1] && DATASET_OBJECT_SUFFIXES.some((suffix) => lower.endsWith(suffix))) {
      return MODEL_NAME_PATTERN.test(object[1]) ? { model: object[1], kind: 'object' } : undefined;
    }
    const parts = /^(datasets\/([^/]+)\/(?:[^/]+\/)+)_SUCCESS$/.exec(key);
    if (parts?.[1] && parts[2] && MODEL_NAME_PATTERN.test(parts[2])) {
      return { model: parts[2], kind: 'parts', prefix: parts[1] };
    }
    return undefined;
  },
  /** The train step's output state when it ran on the managed engine (read back by collectTrain). */
  runState: (model: string, version: number) => `${RUN_STATE_PREFIX}${model}/v${version}/train-state.json`,
  /** Every run state is under this prefix (the managed train job may write only here). */
  runStatePrefix: RUN_STATE_PREFIX,
  /** The model a dataset key trains, or undefined when the key is not a dataset. */
  modelOf(key: string): string | undefined {
    return datasetKeys.kindOf(key)?.model;
  },
} as const;

/** Whether an object-created key is one the training trigger delivers (EventBridge wildcards). */
export function isTrainingTriggerKey(key: string): boolean {
  return datasetKeys.triggerSuffixes.some(
    (suffix) =>
      key.length >= datasetKeys.prefix.length + suffix.length &&
      key.startsWith(datasetKeys.prefix) &&
      key.endsWith(suffix),
  );
}

export const modelKeys = {
  versionPrefix: (model: string, version: number) => `${model}/v${version}/`,
  file: (model: string, version: number, name: string) => `${model}/v${version}/${name}`,
  manifest: (model: string, version: number) => `${model}/v${version}/manifest.json`,
  /** Public half of the manifest signing key, for devices that fetch it at provisioning. */
  signingPublicKey: '_keys/manifest-signing-public.pem',
} as const;

/** File names inside one model version folder. */
export const modelFiles = {
  topology: 'model.json',
  weights: 'weights.bin',
  manifest: 'manifest.json',
} as const;

// ---------------------------------------------------------------------------------------
// MQTT topics
// ---------------------------------------------------------------------------------------

export const topics = {
  /** Retained release notice per model: a gateway that was offline still receives it. */
  release: `${NAMESPACE}/models/{model}/release`,
  /**
   * Retained canary notice per model (cohort 'canary', or an explicit rollback for the canary
   * gateways). It coexists with the fleet-wide notice on `release`; each gateway picks one.
   */
  canary: `${NAMESPACE}/models/{model}/canary`,
  /** Result batches from one gateway. */
  results: `${NAMESPACE}/things/{thing}/results`,
  /** Status and heartbeat from one gateway. */
  status: `${NAMESPACE}/things/{thing}/status`,
  /** Anomaly events from one gateway: one message when an event opens, one when it closes. */
  events: `${NAMESPACE}/things/{thing}/events`,
} as const;
export type TopicName = keyof typeof topics;

export function topicFor(name: TopicName, vars: { thing?: string; model?: string }): string {
  return topics[name].replace(/\{(thing|model)\}/g, (_, key: 'thing' | 'model') => {
    const value = vars[key];
    if (!value) throw new Error(`topic '${name}' needs a value for {${key}}`);
    return value;
  });
}

/** The MQTT subscription filter that matches a topic template for any thing/model. */
export function topicFilter(name: TopicName): string {
  return topics[name].replace(/\{(thing|model)\}/g, '+');
}

/** True when an MQTT topic matches a subscription filter with + and # wildcards. */
export function mqttMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

// ---------------------------------------------------------------------------------------
// IoT topic rules: SQL is the same text in AWS and in the local rule router.
// ---------------------------------------------------------------------------------------

/**
 * The payload is passed base64-encoded (not `SELECT *`) so that malformed JSON and binary
 * garbage still reach the aggregator, which validates and sets them aside with a reason.
 * The local rule router implements exactly these SQL functions: encode(*, 'base64'),
 * topic(), topic(n) and timestamp().
 */
function ruleSql(name: TopicName): string {
  return `SELECT encode(*, 'base64') AS payload, topic() AS topic, topic(3) AS thing, timestamp() AS receivedAt FROM '${topicFilter(name)}'`;
}

export const rules = {
  results: {
    id: 'ResultsRule',
    ruleName: `${NAMESPACE}_results`,
    sql: ruleSql('results'),
    function: 'aggregateResults',
  },
  status: {
    id: 'StatusRule',
    ruleName: `${NAMESPACE}_status`,
    sql: ruleSql('status'),
    function: 'aggregateStatus',
  },
  events: {
    id: 'EventsRule',
    ruleName: `${NAMESPACE}_events`,
    sql: ruleSql('events'),
    function: 'recordEvents',
  },
} as const;
export type RuleName = keyof typeof rules;

/**
 * The fleet-scale results path: gateways publish result batches by Basic Ingest to this rule
 * (no broker, no messaging charge), which puts each one on the results stream with the thing
 * as partition key; a Lambda event source mapping hands the stream aggregator many gateways'
 * batches per invocation. Same SQL as the direct results rule, so the record it puts on the
 * stream is the same rule event. The rule name gets the stage suffix in AWS (ruleNameFor).
 */
export const streamRules = {
  results: {
    id: 'ResultsStreamRule',
    ruleName: `${NAMESPACE}_results_stream`,
    sql: ruleSql('results'),
    stream: 'results',
    function: 'aggregateResultsStream',
  },
} as const;

/** Kinesis data streams (kinesalite locally; in AWS the shard count is a deploy-time setting). */
export const streams = {
  /** Result batches from every gateway, partition key = thing (one thing, one shard, in order). */
  results: {
    id: 'ResultsStream',
    localName: 'edgeloop-results',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an IoT rule substitution template.
    partitionKey: '${topic(3)}',
    /** Shards of the local stack's stream: more than one, so per-shard ordering is exercised. */
    localShards: 4,
  },
} as const;
export type StreamName = keyof typeof streams;

/** IoT topic rule names allow only letters, digits and underscores; each stage has its own. */
export const ruleNameFor = (ruleName: string, stage: string) => `${ruleName}_${stage.replaceAll('-', '_')}`;

/** The stage the embedded local stack names its rules for (its Basic Ingest rule names). */
export const LOCAL_STAGE = 'local';

/**
 * The event source mapping of the stream aggregator. ParallelizationFactor stays 1: the
 * aggregates' exactly-once marks are per-shard sequence-number high-water marks, which need
 * each shard's records in order; the stream scales by shards instead.
 */
export const streamMapping = {
  batchSize: 10_000,
  maxBatchingWindowSeconds: 20,
  parallelizationFactor: 1,
  bisectBatchOnFunctionError: true,
  reportBatchItemFailures: true,
  retryAttempts: 10,
  maxRecordAgeSeconds: 86_400,
} as const;

/** The Basic Ingest topic a gateway publishes results to for `ruleName` (stage-suffixed in AWS). */
export const basicIngestTopic = (ruleName: string, thing: string) =>
  `$aws/rules/${ruleName}/${topicFor('results', { thing })}`;

/**
 * Where a gateway in summary mode (or any gateway set to Basic Ingest) publishes its result
 * batches: the results stream rule of its deployed `stage` (LOCAL_STAGE on the local stack).
 */
export const resultsStreamTopic = (stage: string, thing: string) =>
  basicIngestTopic(ruleNameFor(streamRules.results.ruleName, stage), thing);

// ---------------------------------------------------------------------------------------
// DynamoDB tables
// ---------------------------------------------------------------------------------------

export interface TableSpec {
  id: string;
  localName: string;
  partitionKey: { name: string; type: 'S' | 'N' };
  sortKey?: { name: string; type: 'S' | 'N' };
  /** Derived tables can be rebuilt from their sources and need no point-in-time recovery. */
  derived: boolean;
  /** Attribute holding an epoch-seconds expiry, when items age out. */
  ttlAttribute?: string;
}

export const tables = {
  /** One item per (model, version): status, metrics, lineage. */
  registry: {
    id: 'Registry',
    localName: 'edgeloop-registry',
    partitionKey: { name: 'model', type: 'S' },
    sortKey: { name: 'version', type: 'N' },
    derived: false,
  },
  /** Pre-aggregated results per (model, version[, thing], minute). */
  aggregates: {
    id: 'Aggregates',
    localName: 'edgeloop-aggregates',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
    derived: false,
  },
  /** Fleet registry: one item per thing. */
  fleet: {
    id: 'Fleet',
    localName: 'edgeloop-fleet',
    partitionKey: { name: 'thing', type: 'S' },
    derived: true,
  },
  /** Malformed messages set aside with their reason. */
  errors: {
    id: 'Errors',
    localName: 'edgeloop-errors',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
    derived: false,
    ttlAttribute: 'expiresAt',
  },
  /** Anomaly events from gateways: one item per (model, start, thing, series), open or closed. */
  events: {
    id: 'Events',
    localName: 'edgeloop-events',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
    derived: false,
  },
  /** Idempotency keys: S3 event object versions and result ids already counted. */
  idempotency: {
    id: 'Idempotency',
    localName: 'edgeloop-idempotency',
    partitionKey: { name: 'id', type: 'S' },
    derived: true,
    ttlAttribute: 'expiresAt',
  },
} as const satisfies Record<string, TableSpec>;
export type TableKey = keyof typeof tables;

// ---------------------------------------------------------------------------------------
// Environment variables: names are declared once; each function lists what it reads.
// ---------------------------------------------------------------------------------------

export const envVars = {
  datasetsBucket: 'EDGELOOP_DATASETS_BUCKET',
  modelsBucket: 'EDGELOOP_MODELS_BUCKET',
  registryTable: 'EDGELOOP_REGISTRY_TABLE',
  aggregatesTable: 'EDGELOOP_AGGREGATES_TABLE',
  fleetTable: 'EDGELOOP_FLEET_TABLE',
  errorsTable: 'EDGELOOP_ERRORS_TABLE',
  idempotencyTable: 'EDGELOOP_IDEMPOTENCY_TABLE',
  eventsTable: 'EDGELOOP_EVENTS_TABLE',
  /** Where anomaly events are announced in AWS: an SNS topic and an EventBridge bus (unset locally). */
  eventsTopicArn: 'EDGELOOP_EVENTS_TOPIC_ARN',
  eventBusName: 'EDGELOOP_EVENT_BUS',
  /** KMS key id (AWS) or a PEM file path (local) used to sign manifests. */
  signingKey: 'EDGELOOP_SIGNING_KEY',
  metricsNamespace: 'POWERTOOLS_METRICS_NAMESPACE',
  serviceName: 'POWERTOOLS_SERVICE_NAME',
} as const;
export type EnvVarKey = keyof typeof envVars;

export const functions = {
  train: {
    id: 'TrainFunction',
    env: ['datasetsBucket', 'modelsBucket', 'registryTable', 'idempotencyTable', 'signingKey'],
  },
  aggregateResults: {
    id: 'AggregateResultsFunction',
    env: ['aggregatesTable', 'errorsTable', 'idempotencyTable', 'registryTable', 'modelsBucket'],
  },
  aggregateStatus: {
    id: 'AggregateStatusFunction',
    env: ['fleetTable', 'errorsTable'],
  },
  /** IoT rule `events`: keeps the events store, and announces events on SNS and EventBridge in AWS. */
  recordEvents: {
    id: 'RecordEventsFunction',
    env: ['eventsTable', 'errorsTable'],
    /** Set in AWS only (the local stack has no SNS or EventBridge): the handler announces where they are set. */
    awsOnlyEnv: ['eventsTopicArn', 'eventBusName'],
  },
  /** Kinesis event source mapping: many gateways' batches per invocation (streamRules.results). */
  aggregateResultsStream: {
    id: 'AggregateResultsStreamFunction',
    env: ['aggregatesTable', 'errorsTable', 'modelsBucket'],
  },
  /** Scheduled: promotes or rolls back canaries, and starts retrains on sustained drift. */
  rolloutController: {
    id: 'RolloutControllerFunction',
    env: [
      'registryTable',
      'aggregatesTable',
      'eventsTable',
      'fleetTable',
      'modelsBucket',
      'datasetsBucket',
      'signingKey',
    ],
  },
} as const satisfies Record<
  string,
  { id: string; env: readonly EnvVarKey[]; awsOnlyEnv?: readonly EnvVarKey[] }
>;
export type FunctionName = keyof typeof functions;

/** The variables a function has in AWS only (the services they name do not run locally). */
export function awsOnlyEnvOf(name: FunctionName): readonly EnvVarKey[] {
  const spec = functions[name] as { awsOnlyEnv?: readonly EnvVarKey[] };
  return spec.awsOnlyEnv ?? [];
}

/**
 * Set on every Lambda function by the CDK stack for Powertools, which reads them itself
 * (handlers do not `requiredEnv` them, so the local stack need not set them).
 */
export const powertoolsEnv = ['metricsNamespace', 'serviceName'] as const satisfies readonly EnvVarKey[];

// ---------------------------------------------------------------------------------------
// The per-thing IoT policy. Written in IoT policy syntax (`*` wildcard, policy variables);
// CDK renders it into an AWS::IoT::Policy and the local broker enforces the same statements.
// ---------------------------------------------------------------------------------------

// biome-ignore lint/suspicious/noTemplateCurlyInString: an IoT policy variable, not a JS template.
export const THING_VARIABLE = '${iot:Connection.Thing.ThingName}';

export type IotAction = 'iot:Connect' | 'iot:Publish' | 'iot:Subscribe' | 'iot:Receive';

export interface PolicyStatement {
  action: IotAction;
  /** Resource kind in the ARN: client, topic or topicfilter. */
  resourceType: 'client' | 'topic' | 'topicfilter';
  /** Pattern after `arn:aws:iot:region:account:{resourceType}/`. */
  patterns: string[];
}

const ownTopic = (name: TopicName) => topics[name].replace('{thing}', THING_VARIABLE);
const releaseTopicPattern = topics.release.replace('{model}', '*');
const canaryTopicPattern = topics.canary.replace('{model}', '*');

export const thingPolicy: readonly PolicyStatement[] = [
  { action: 'iot:Connect', resourceType: 'client', patterns: [THING_VARIABLE] },
  {
    action: 'iot:Publish',
    resourceType: 'topic',
    // The last pattern is Basic Ingest to the results stream rule of any stage, own thing only.
    patterns: [
      ownTopic('results'),
      ownTopic('status'),
      ownTopic('events'),
      basicIngestTopic(`${streamRules.results.ruleName}_*`, THING_VARIABLE),
    ],
  },
  {
    action: 'iot:Subscribe',
    resourceType: 'topicfilter',
    patterns: [releaseTopicPattern, canaryTopicPattern],
  },
  { action: 'iot:Receive', resourceType: 'topic', patterns: [releaseTopicPattern, canaryTopicPattern] },
];

/**
 * Whether the thing policy lets `thing` do `action` on `resource` (a client id, topic or
 * topic filter). `*` in a pattern matches any characters, as in IoT policy resources.
 */
export function policyAllows(action: IotAction, thing: string, resource: string): boolean {
  return thingPolicy.some(
    (statement) =>
      statement.action === action &&
      statement.patterns.some((pattern) =>
        iotPatternMatches(pattern.replaceAll(THING_VARIABLE, thing), resource),
      ),
  );
}

function iotPatternMatches(pattern: string, resource: string): boolean {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*');
  return new RegExp(`^${escaped}$`).test(resource);
}

// ---------------------------------------------------------------------------------------
// Metrics: names shared by the EMF emitters, the CDK dashboard and the local dashboard.
// ---------------------------------------------------------------------------------------

export const METRICS_NAMESPACE = NAMESPACE;

export const metricNames = {
  inferences: 'Inferences',
  lowConfidence: 'LowConfidenceResults',
  latencyP99: 'LatencyP99Ms',
  liveAccuracy: 'LiveAccuracy',
  /** Regression models: the predictions' mean, and live RMSE where truth arrives. */
  predictionMean: 'PredictionMean',
  liveRmse: 'LiveRmse',
  devicesOnline: 'DevicesOnline',
  trainingRuns: 'TrainingRuns',
  trainingFailures: 'TrainingFailures',
  trainingDurationMs: 'TrainingDurationMs',
  trainingAccuracy: 'TrainingAccuracy',
  aggregatorErrors: 'AggregatorErrors',
  drift: 'DriftPSI',
  latencyP50: 'LatencyP50Ms',
  confidenceMean: 'ConfidenceMean',
  outboxDepth: 'OutboxDepth',
  /** One per rollout controller decision (dimensions model and decision). */
  rolloutDecisions: 'RolloutDecisions',
  retrainsStarted: 'RetrainsStarted',
  /** Anomaly models: events opened (dimension model), and results over the threshold. */
  anomalyEvents: 'AnomalyEvents',
  anomalyResults: 'AnomalyResults',
} as const;

/**
 * The `service` dimension of the events function's metrics. It also emits AnomalyEvents with
 * that dimension alone (a fleet-wide series), which the events-per-hour alarm watches.
 */
export const EVENTS_METRICS_SERVICE = 'record-events';

/**
 * The panels of the CloudWatch dashboard (infra/aws) and of the local dashboard page, in
 * display order: both render these titles over these metric names, so they read the same.
 */
export const dashboardPanels = {
  training: {
    title: 'Training runs and accuracy by version',
    metrics: [metricNames.trainingRuns, metricNames.trainingAccuracy, metricNames.trainingFailures],
  },
  rollout: { title: 'Devices per version, online and offline', metrics: [metricNames.devicesOnline] },
  inferences: { title: 'Inferences/min by version', metrics: [metricNames.inferences] },
  classMix: { title: 'Class mix by version', metrics: [metricNames.inferences] },
  confidence: { title: 'Confidence', metrics: [metricNames.confidenceMean] },
  lowConfidence: {
    title: 'Low-confidence rate',
    metrics: [metricNames.lowConfidence, metricNames.inferences],
  },
  latency: { title: 'Latency p50 / p99 (ms)', metrics: [metricNames.latencyP50, metricNames.latencyP99] },
  liveAccuracy: { title: 'Live accuracy', metrics: [metricNames.liveAccuracy] },
  prediction: {
    title: 'Prediction mean and live RMSE (regression)',
    metrics: [metricNames.predictionMean, metricNames.liveRmse],
  },
  anomaly: {
    title: 'Anomalous results and events (anomaly models)',
    metrics: [metricNames.anomalyResults, metricNames.anomalyEvents],
  },
  drift: { title: 'Drift (PSI)', metrics: [metricNames.drift] },
  outbox: { title: 'Outbox depth', metrics: [metricNames.outboxDepth] },
  errors: { title: 'Aggregator errors', metrics: [metricNames.aggregatorErrors] },
} as const satisfies Record<string, { title: string; metrics: readonly string[] }>;
export type DashboardPanel = keyof typeof dashboardPanels;

// ---------------------------------------------------------------------------------------
// Item key layouts of the aggregation tables (written by the aggregators, read by the CLI
// and the dashboards). Model and thing names cannot contain '#', so keys split cleanly.
// ---------------------------------------------------------------------------------------

export const aggregateKeys = {
  /** Partition of the per-(model, version, minute) items: all versions of a model, by minute. */
  model: (model: string) => `model#${model}`,
  /** Partition of the per-(model, version, thing, minute) items. */
  thing: (model: string, thing: string) => `thing#${model}#${thing}`,
  /** Sort key: minute first, so a time window is one key range. */
  sort: (minute: string, version: number) => `${minute}#v${version}`,
  /**
   * Write-sharded partition of the stream aggregator's model-level items: one of
   * AGGREGATE_WRITE_SHARDS per model, picked by the stream shard, so no key takes the fleet.
   */
  modelShard: (model: string, shard: number) => `model#${model}#w${shard}`,
  /** Every write shard of a model: what a reader queries and sums (with the `model` partition). */
  modelShards: (model: string) =>
    Array.from({ length: AGGREGATE_WRITE_SHARDS }, (_, shard) => `model#${model}#w${shard}`),
  /** Sort key of a stream shard's item: minute first (same window queries), then version, then writer. */
  shardSort: (minute: string, version: number, writer: string) => `${minute}#v${version}#${writer}`,
  /** The UTC minute a timestamp falls in, e.g. `2026-11-28T16:34Z` (sorts as text). */
  minute: (tsMs: number) => `${new Date(tsMs).toISOString().slice(0, 16)}Z`,
} as const;

/** Partition keys a fleet-level (model) cell is spread over by the stream aggregator. */
export const AGGREGATE_WRITE_SHARDS = 8;

export const eventKeys = {
  /** One partition per model: `edgeloop events --since` is one key range. */
  partition: (model: string) => `events#${model}`,
  /** Start first (a time window is a key range), then where it happened; unique per event. */
  sort: (startMs: number, thing: string, series: string) =>
    `${new Date(startMs).toISOString()}#${thing}#${series}`,
  /** The sort key of the first event starting at or after `sinceMs`. */
  since: (sinceMs: number) => new Date(sinceMs).toISOString(),
} as const;

export const idempotencyKeys = {
  /** One claim per result batch; the device keeps batch ids stable across outbox replays. */
  resultBatch: (thing: string, batchId: string) => `results#${thing}#${batchId}`,
} as const;

export const errorKeys = {
  /** One partition per UTC day keeps "latest errors" a single descending query. */
  partition: (tsMs: number) => `errors#${new Date(tsMs).toISOString().slice(0, 10)}`,
  sort: (tsMs: number, digest: string) => `${new Date(tsMs).toISOString()}#${digest}`,
  /** Errors are kept this long (the table's TTL attribute). */
  retentionDays: 14,
} as const;

/** Schedule of the rollout controller: EventBridge rate in AWS, a timer in the local stack. */
export const rolloutSchedule = {
  awsRateMinutes: 1,
  localIntervalMs: 1_000,
} as const;

// ---------------------------------------------------------------------------------------
// Deployment discovery: the CDK stack writes one SSM parameter per stage describing what a
// gateway needs (policy, role alias, buckets, signing key); `edgeloop provision` reads it.
// ---------------------------------------------------------------------------------------

export const deploymentParameter = (stage: string) => `/${NAMESPACE}/${stage}/deployment`;

/**
 * One stage per account and region. Topics, rule SQL and the thing policy carry no stage, and
 * IoT Core's topic space is per account and region, so two stages there would cross (one's
 * rules ingesting the other's gateways, one's retained notices replacing the other's). Every
 * stack creates this parameter under the same name, holding its stage: CloudFormation cannot
 * create a parameter that exists, so a second stage's deployment fails at this resource.
 */
export const ACCOUNT_STAGE_PARAMETER = `/${NAMESPACE}/account-stage`;

// ---------------------------------------------------------------------------------------
// The embedded local stack's data dir: other processes (CLI commands, devices) find the
// running stack and its manifest verification key through these files.
// ---------------------------------------------------------------------------------------

export const localStackFiles = {
  endpoints: 'endpoints.json',
  signingPrivateKey: 'keys/manifest-signing-private.pem',
  signingPublicKey: 'keys/manifest-signing-public.pem',
  /** The local S3's SigV4 credential, random per data dir (infra/local/credentials.ts). */
  s3Credential: 'keys/s3-credential.json',
} as const;
