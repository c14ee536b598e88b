/** What the training steps talk to; built once from the environment in Lambda. */

import { Logger } from '@aws-lambda-powertools/logger';
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { dynamoClient, iotDataClient, s3Client } from '../../shared/aws.ts';
import { requiredEnv } from '../../shared/env.ts';
import type { ManifestSigner } from '../../shared/manifest.ts';
import { signerFromEnv } from '../../shared/signing.ts';
import { functions } from '../../shared/topology.ts';

export interface TrainingLog {
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

export interface TrainingDeps {
  s3: S3Client;
  ddb: DynamoDBDocumentClient;
  iot: IoTDataPlaneClient;
  datasetsBucket: string;
  modelsBucket: string;
  registryTable: string;
  idempotencyTable: string;
  signer: () => Promise<ManifestSigner>;
  log: TrainingLog;
  now?: () => Date;
}

/**
 * Deps from the `functions.train.env` variables (each read once, throwing with its name when
 * unset) and the shared AWS clients. Call at module load.
 */
export function trainingDepsFromEnv(env: NodeJS.ProcessEnv = process.env): TrainingDeps {
  const read = Object.fromEntries(functions.train.env.map((key) => [key, requiredEnv(key, env)])) as Record<
    (typeof functions.train.env)[number],
    string
  >;
  let signer: Promise<ManifestSigner> | undefined;
  return {
    s3: s3Client(),
    ddb: dynamoClient(),
    iot: iotDataClient(),
    datasetsBucket: read.datasetsBucket,
    modelsBucket: read.modelsBucket,
    registryTable: read.registryTable,
    idempotencyTable: read.idempotencyTable,
    signer: () => {
      signer ??= signerFromEnv(read.signingKey);
      return signer;
    },
    log: powertoolsLog(new Logger({ serviceName: 'edgeloop-train' })),
  };
}

/** Structured logs: the message plus the extra keys as top-level JSON attributes. */
export function powertoolsLog(logger: Logger): TrainingLog {
  return {
    info: (message, extra) => (extra ? logger.info(message, extra) : logger.info(message)),
    warn: (message, extra) => (extra ? logger.warn(message, extra) : logger.warn(message)),
    error: (message, extra) => (extra ? logger.error(message, extra) : logger.error(message)),
  };
}
