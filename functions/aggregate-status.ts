/**
 * IoT rule `status` -> this Lambda: validate the device status and keep the fleet registry
 * current. A scheduled (EventBridge) tick instead re-counts the devices online per version.
 * The work is in functions/aggregation/status.ts.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { dynamoClient } from '../shared/aws.ts';
import { EdgeloopMetrics } from '../shared/metrics.ts';
import { functionEnv } from './aggregation/config.ts';
import {
  aggregateStatusEvent,
  emitDevicesOnline,
  isScheduledEvent,
  type StatusOutcome,
} from './aggregation/status.ts';

const env = functionEnv('aggregateStatus');
const logger = new Logger({ serviceName: 'aggregate-status' });
const metrics = new EdgeloopMetrics('aggregate-status');

export async function handler(event: unknown): Promise<StatusOutcome> {
  const deps = {
    ddb: dynamoClient(),
    tables: { fleet: env.fleetTable, errors: env.errorsTable },
    metrics,
    logger,
  };
  if (isScheduledEvent(event)) {
    await emitDevicesOnline(deps, Date.now());
    return { status: 'counted-online' };
  }
  return aggregateStatusEvent(event, deps);
}
