/**
 * Kinesis results stream -> this Lambda (event source mapping, streamMapping in topology):
 * many gateways' batches per invocation, each item written once per call. The work is in
 * functions/aggregation/stream.ts; this maps the Kinesis event in and the partial batch
 * response out (an AWS failure retries the batch from its first record, which the
 * aggregates' high-water marks make safe).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { dynamoClient, s3Client } from '../shared/aws.ts';
import { EdgeloopMetrics } from '../shared/metrics.ts';
import { functionEnv } from './aggregation/config.ts';
import { ManifestCache } from './aggregation/manifests.ts';
import { aggregateKinesisEvent } from './aggregation/stream-event.ts';

const env = functionEnv('aggregateResultsStream');
const logger = new Logger({ serviceName: 'aggregate-results-stream' });
const metrics = new EdgeloopMetrics('aggregate-results-stream');
const manifests = new ManifestCache(s3Client, env.modelsBucket, { onMiss: (why) => logger.warn(why) });

export async function handler(event: KinesisStreamEvent): Promise<KinesisStreamBatchResponse> {
  return aggregateKinesisEvent(event, {
    ddb: dynamoClient(),
    tables: { aggregates: env.aggregatesTable, errors: env.errorsTable },
    manifests,
    metrics,
    logger,
  });
}
