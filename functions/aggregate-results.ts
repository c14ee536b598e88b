/**
 * IoT rule `results` -> this Lambda: validate, count each batch once, keep per-minute
 * aggregates, emit EMF metrics. The work is in functions/aggregation/results.ts.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { dynamoClient, s3Client } from '../shared/aws.ts';
import { EdgeloopMetrics } from '../shared/metrics.ts';
import { functionEnv } from './aggregation/config.ts';
import { ManifestCache } from './aggregation/manifests.ts';
import { aggregateResultEvent, type ResultsOutcome } from './aggregation/results.ts';

const env = functionEnv('aggregateResults');
const logger = new Logger({ serviceName: 'aggregate-results' });
const metrics = new EdgeloopMetrics('aggregate-results');
const manifests = new ManifestCache(s3Client, env.modelsBucket, { onMiss: (why) => logger.warn(why) });

export async function handler(event: unknown): Promise<ResultsOutcome> {
  return aggregateResultEvent(event, {
    ddb: dynamoClient(),
    tables: { aggregates: env.aggregatesTable, errors: env.errorsTable, idempotency: env.idempotencyTable },
    manifests,
    metrics,
    logger,
  });
}
