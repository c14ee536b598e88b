/**
 * Scheduled (EventBridge rate, or the local stack's timer) -> this Lambda: promote or roll
 * back canaries and start retrains on sustained drift. The work is in functions/rollout/.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { dynamoClient, iotDataClient, s3Client } from '../shared/aws.ts';
import type { ManifestSigner } from '../shared/manifest.ts';
import { EdgeloopMetrics } from '../shared/metrics.ts';
import { signerFromEnv } from '../shared/signing.ts';
import { functionEnv } from './aggregation/config.ts';
import { ManifestCache } from './aggregation/manifests.ts';
import { type ControllerReport, runRolloutController } from './rollout/controller.ts';
import { powertoolsLog } from './training/deps.ts';

const env = functionEnv('rolloutController');
const logger = new Logger({ serviceName: 'rollout-controller' });
const metrics = new EdgeloopMetrics('rollout-controller');
/** Resolved once per container: the KMS key (or local PEM) that signs the notices. */
let signer: Promise<ManifestSigner> | undefined;
const manifests = new ManifestCache(s3Client, env.modelsBucket, { onMiss: (why) => logger.warn(why) });

export async function handler(_event: unknown): Promise<ControllerReport> {
  return runRolloutController({
    ddb: dynamoClient(),
    s3: s3Client(),
    iot: iotDataClient(),
    registryTable: env.registryTable,
    aggregatesTable: env.aggregatesTable,
    eventsTable: env.eventsTable,
    fleetTable: env.fleetTable,
    modelsBucket: env.modelsBucket,
    datasetsBucket: env.datasetsBucket,
    manifests,
    metrics,
    log: powertoolsLog(logger),
    signer: () => {
      signer ??= signerFromEnv(env.signingKey);
      return signer;
    },
  });
}
