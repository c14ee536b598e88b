/**
 * The house Node.js Lambda: one handler file under functions/ bundled by esbuild from
 * node_modules (never Docker), ESM on arm64, with a role and log group from functionBasics.
 * The aggregators and the rollout controller are built with it.
 */
import type { Duration } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import type { Construct } from 'constructs';
import type { EdgeloopConfig } from '../config.ts';
import { LAMBDA_NODE_TARGET, LAMBDA_RUNTIME, repoRoot } from '../paths.ts';
import { functionBasics, retentionDays } from './function-binding.ts';

export interface NodeFunctionProps {
  /** Handler file relative to the repository root (see handlerEntries). */
  entry: string;
  description: string;
  memorySize: number;
  timeout: Duration;
  /** Anything else a function needs (async invoke settings, destinations). */
  extra?: Partial<nodejs.NodejsFunctionProps>;
}

export function nodeFunction(
  scope: Construct,
  id: string,
  config: EdgeloopConfig,
  props: NodeFunctionProps,
): nodejs.NodejsFunction {
  const { role, logGroup } = functionBasics(scope, id, retentionDays(config.logRetentionDays));
  return new nodejs.NodejsFunction(scope, id, {
    description: props.description,
    entry: `${repoRoot}${props.entry}`,
    handler: 'handler',
    projectRoot: repoRoot,
    depsLockFilePath: `${repoRoot}package-lock.json`,
    runtime: LAMBDA_RUNTIME,
    architecture: lambda.Architecture.ARM_64,
    memorySize: props.memorySize,
    timeout: props.timeout,
    role,
    logGroup,
    ...props.extra,
    bundling: {
      // esbuild from node_modules; never fall back to a Docker build.
      forceDockerBundling: false,
      format: nodejs.OutputFormat.ESM,
      target: LAMBDA_NODE_TARGET,
      mainFields: ['module', 'main'],
      // The SDK is bundled: the versions tested locally are the versions that run.
      externalModules: [],
      banner: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
  });
}
