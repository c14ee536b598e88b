/**
 * Builds the CDK app exactly as `cdk synth` does (infra/aws/app.ts), with cdk-nag's
 * AwsSolutions checks registered, so tests synthesize the same thing users deploy.
 */
import { App, type AppProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { NAMESPACE } from '../../shared/topology.ts';
import { type EdgeloopConfigInput, resolveConfig } from './config.ts';
import { EdgeloopStack } from './stack.ts';

export interface BuiltApp {
  app: App;
  stack: EdgeloopStack;
}

export const stackName = (stage: string) => `${NAMESPACE[0]?.toUpperCase()}${NAMESPACE.slice(1)}-${stage}`;

/** Feature flags the stack relies on (cdk.json or -c may still set them explicitly). */
export const featureFlags = {
  // Grant S3 log delivery through a bucket policy instead of the legacy ACL.
  '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true,
};

export function buildApp(appProps: AppProps = {}, overrides: Partial<EdgeloopConfigInput> = {}): BuiltApp {
  const app = new App({ ...appProps, context: { ...featureFlags, ...appProps.context } });
  const config = resolveConfig(app.node, overrides);
  const stack = new EdgeloopStack(app, stackName(config.stage), {
    config,
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}
