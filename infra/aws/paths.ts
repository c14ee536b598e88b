/** Where the CDK app finds the code it packages: the repository root and its handlers. */
import { fileURLToPath } from 'node:url';
import { Runtime } from 'aws-cdk-lib/aws-lambda';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Handler entry files (written by the training and aggregator work, see functions/). */
export const handlerEntries = {
  aggregateResults: 'functions/aggregate-results.ts',
  aggregateResultsStream: 'functions/aggregate-results-stream.ts',
  aggregateStatus: 'functions/aggregate-status.ts',
  recordEvents: 'functions/record-events.ts',
  trainingSteps: 'functions/training-steps.ts',
  rolloutController: 'functions/rollout-controller.ts',
} as const;

/** The train image's Dockerfile, relative to the repository root (the build context). */
export const trainDockerfile = 'infra/aws/train-image/Dockerfile';

/**
 * The Lambda Node.js runtime for the aggregators and the train image base. nodejs20.x is
 * deprecated in Lambda (creation blocked from 2027-02-01), so functions run on 24; the code
 * is built for node20 syntax, the floor package.json engines promise everywhere else.
 */
export const LAMBDA_RUNTIME = Runtime.NODEJS_24_X;
export const LAMBDA_NODE_TARGET = 'node20';
