/**
 * IoT rule `status` -> this Lambda: validate the device status and keep the fleet registry
 * current. The work is in functions/aggregation/status.ts.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { dynamoClient } from '../shared/aws.ts';
import { EdgeloopMetrics } from '../shared/metrics.ts';
import { functionEnv } from './aggregation/config.ts';
import { aggregateStatusEvent, type StatusOutcome } from './aggregation/status.ts';

const env = functionEnv('aggregateStatus');
const logger = new Logger({ serviceName: 'aggregate-status' });
const metrics = new EdgeloopMetrics('aggregate-status');

export async function handler(event: unknown): Promise<StatusOutcome> {
  return aggregateStatusEvent(event, {
    ddb: dynamoClient(),
    tables: { fleet: env.fleetTable, errors: env.errorsTable },
    metrics,
    logger,
  });
}
