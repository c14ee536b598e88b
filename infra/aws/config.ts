/**
 * Stack configuration: every knob comes from CDK context (`-c edgeloop:KEY=VALUE` or
 * cdk.json) or from props, with defaults that suit a first deployment.
 */
import type { Node } from 'constructs';
import { z } from 'zod';
import { InputError } from '../../shared/errors.ts';
import { describeZodError } from '../../shared/schemas.ts';

export const CONTEXT_PREFIX = 'edgeloop:';

/** The memory range (GB) Fargate allows for each vCPU count a Batch job may ask for. */
const FARGATE_MEMORY_GB: Record<number, readonly [number, number]> = {
  1: [2, 8],
  2: [4, 16],
  4: [8, 30],
  8: [16, 60],
  16: [32, 120],
};

export const EdgeloopConfigSchema = z
  .object({
    /** Suffix for the stack and the per-stage names (IoT rules, SSM parameter). */
    stage: z.string().regex(/^[a-z][a-z0-9-]{0,19}$/, 'a stage is a-z, 0-9 and -, up to 20 chars'),
    /** CloudWatch Logs retention for function and state-machine logs. */
    logRetentionDays: z.coerce.number().int().min(1).default(30),
    /** Noncurrent object versions (overwritten datasets and models) expire after this. */
    noncurrentVersionDays: z.coerce.number().int().min(1).default(30),
    /** Datasets move to Infrequent Access after this many days (old training inputs). */
    datasetsInfrequentAccessDays: z.coerce.number().int().min(30).default(90),
    /** Server access logs are kept this long. */
    accessLogDays: z.coerce.number().int().min(1).default(90),
    /** The train step's Lambda memory (MB) and timeout (minutes). */
    trainMemoryMb: z.coerce.number().int().min(512).max(10240).default(3008),
    trainTimeoutMinutes: z.coerce.number().int().min(1).max(15).default(15),
    /**
     * The managed engine (AWS Batch on Fargate) for datasets beyond Lambda: one job's vCPUs,
     * memory (GB, within what Fargate allows for that many vCPUs) and timeout (hours), and the
     * vCPUs all running jobs may use at once (the compute environment's ceiling).
     */
    managedTrainVcpu: z.coerce
      .number()
      .refine((v) => v in FARGATE_MEMORY_GB, {
        message: `Fargate takes ${Object.keys(FARGATE_MEMORY_GB).join(', ')} vCPUs`,
      })
      .default(4),
    managedTrainMemoryGb: z.coerce.number().int().min(1).max(120).default(16),
    managedTrainTimeoutHours: z.coerce.number().int().min(1).max(48).default(8),
    managedMaxVcpus: z.coerce.number().int().min(1).max(256).default(16),
    /** Alarm thresholds: failed training runs per hour, aggregator errors per 5 min, DLQ messages. */
    trainingFailureThreshold: z.coerce.number().int().min(1).default(1),
    aggregatorErrorThreshold: z.coerce.number().int().min(1).default(5),
    dlqDepthThreshold: z.coerce.number().int().min(1).default(1),
    /** Anomaly events opened fleet-wide in an hour that page someone (each event is also on SNS and EventBridge). */
    anomalyEventsPerHourThreshold: z.coerce.number().int().min(1).default(20),
    /**
     * Shards of the fleet-scale results stream (Basic Ingest rule -> Kinesis -> stream
     * aggregator): one per ~350 batches/s (~3,500 gateways at one batch per 10 s), so one call
     * holds a 20 s batching window. 0 (the default)
     * deploys only the direct path (results rule -> one aggregator call per batch).
     */
    resultsStreamShards: z.coerce.number().int().min(0).max(500).default(0),
    /** Optional address subscribed to the alarm topic and the anomaly events topic. */
    alarmEmail: z.string().email().optional(),
  })
  .strict()
  .refine(
    (config) => {
      const [min, max] = FARGATE_MEMORY_GB[config.managedTrainVcpu] ?? [0, 0];
      return config.managedTrainMemoryGb >= min && config.managedTrainMemoryGb <= max;
    },
    {
      path: ['managedTrainMemoryGb'],
      message: 'Fargate allows 2-8 GB at 1 vCPU, 4-16 at 2, 8-30 at 4, 16-60 at 8 and 32-120 at 16',
    },
  );
export type EdgeloopConfig = z.infer<typeof EdgeloopConfigSchema>;
export type EdgeloopConfigInput = z.input<typeof EdgeloopConfigSchema>;

const keys = Object.keys(EdgeloopConfigSchema.shape) as (keyof EdgeloopConfig)[];

/** Reads `edgeloop:*` context values, lets `overrides` win, and validates the result. */
export function resolveConfig(node: Node, overrides: Partial<EdgeloopConfigInput> = {}): EdgeloopConfig {
  const fromContext: Record<string, unknown> = {};
  for (const key of keys) {
    const value = node.tryGetContext(`${CONTEXT_PREFIX}${key}`);
    if (value !== undefined && value !== '') fromContext[key] = value;
  }
  const parsed = EdgeloopConfigSchema.safeParse({ stage: 'dev', ...fromContext, ...overrides });
  if (!parsed.success) {
    throw new InputError(
      `invalid edgeloop CDK configuration: ${describeZodError(parsed.error)} ` +
        `(set it with -c ${CONTEXT_PREFIX}KEY=VALUE or in cdk.json "context")`,
    );
  }
  return parsed.data;
}
