/**
 * The environment the handlers and SDK clients need to run against a local stack: the
 * topology's env var names set to the local resource names, the standard
 * AWS_ENDPOINT_URL_<SERVICE> variables pointing at the local servers, and the data dir's
 * credential (the local S3 checks it; the other local servers accept any).
 */
import { join } from 'node:path';
import {
  buckets,
  envVars,
  localStackFiles,
  METRICS_NAMESPACE,
  NAMESPACE,
  tables,
} from '../../shared/topology.ts';
import { localCredential } from './credentials.ts';
import type { Endpoints } from './endpoints.ts';

/**
 * For clients of dynalite and kinesalite only, which accept any signature. The local S3
 * requires the data dir's own credential (localCredential), which localEnv sets.
 */
export const LOCAL_CREDENTIALS = { accessKeyId: 'LOCALDYNAMO', secretAccessKey: 'LOCALDYNAMO' } as const;
export const LOCAL_REGION = 'us-east-1';

export function signingKeyPath(dataDir: string): string {
  return join(dataDir, localStackFiles.signingPrivateKey);
}

export function localEnv(endpoints: Endpoints, dataDir: string): Record<string, string> {
  const credential = localCredential(dataDir);
  return {
    [envVars.datasetsBucket]: buckets.datasets.localName,
    [envVars.modelsBucket]: buckets.models.localName,
    [envVars.registryTable]: tables.registry.localName,
    [envVars.aggregatesTable]: tables.aggregates.localName,
    [envVars.fleetTable]: tables.fleet.localName,
    [envVars.errorsTable]: tables.errors.localName,
    [envVars.idempotencyTable]: tables.idempotency.localName,
    [envVars.eventsTable]: tables.events.localName,
    [envVars.signingKey]: signingKeyPath(dataDir),
    [envVars.metricsNamespace]: METRICS_NAMESPACE,
    [envVars.serviceName]: NAMESPACE,
    AWS_ENDPOINT_URL_S3: endpoints.s3,
    AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb,
    AWS_ENDPOINT_URL_IOT_DATA_PLANE: endpoints.iotData,
    AWS_ENDPOINT_URL_KINESIS: endpoints.kinesis,
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: credential.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credential.secretAccessKey,
  };
}

/** Variables to remove while a local stack runs, so no real AWS profile or session leaks in. */
export const CLEARED_ENV = ['AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_ENDPOINT_URL'];
