/**
 * The house function wiring. `bindFunction` is the one place a function gets its
 * environment and its permissions: it sets exactly the variables shared/topology.ts lists
 * for that function and grants exactly the buckets, tables and key actions asked for.
 * `functionBasics` gives a function its own log group and a role without managed policies.
 */
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import {
  type BucketKey,
  type EnvVarKey,
  envVars,
  type FunctionName,
  functions,
  METRICS_NAMESPACE,
  NAMESPACE,
  powertoolsEnv,
  type TableKey,
} from '../../../shared/topology.ts';
import { acknowledge, wildcardFinding } from '../nag.ts';
import type { Signing } from './signing.ts';

/** The stack resources a function may be bound to. */
export interface EdgeloopResources {
  buckets: Record<BucketKey, s3.IBucket>;
  tables: Record<TableKey, dynamodb.ITable>;
  signing: Signing;
}

/** What one function may touch. Anything not listed is denied. */
export interface Access {
  readBuckets?: readonly BucketKey[];
  writeBuckets?: readonly BucketKey[];
  readTables?: readonly TableKey[];
  writeTables?: readonly TableKey[];
  /** kms:Sign on the manifest signing key. */
  sign?: boolean;
}

const TABLE_READ = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:ConditionCheckItem',
];
const TABLE_WRITE = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:ConditionCheckItem',
];

const bucketOfEnv: Partial<Record<EnvVarKey, BucketKey>> = {
  datasetsBucket: 'datasets',
  modelsBucket: 'models',
};
const tableOfEnv: Partial<Record<EnvVarKey, TableKey>> = {
  registryTable: 'registry',
  aggregatesTable: 'aggregates',
  fleetTable: 'fleet',
  errorsTable: 'errors',
  idempotencyTable: 'idempotency',
  eventsTable: 'events',
};

/** The value of one topology environment variable in this stack. */
export function envValue(
  key: EnvVarKey,
  name: FunctionName,
  resources: EdgeloopResources,
  serviceSuffix = '',
): string {
  const bucket = bucketOfEnv[key];
  if (bucket) return resources.buckets[bucket].bucketName;
  const table = tableOfEnv[key];
  if (table) return resources.tables[table].tableName;
  if (key === 'signingKey') return resources.signing.key.keyArn;
  if (key === 'metricsNamespace') return METRICS_NAMESPACE;
  if (key === 'serviceName') return `${NAMESPACE}-${name}${serviceSuffix}`;
  throw new Error(`no value for environment variable ${envVars[key]} in the stack: add it to envValue`);
}

/** A role with no managed policies and a log group the function alone writes to. */
export function functionBasics(
  scope: Construct,
  id: string,
  retention: logs.RetentionDays,
): { role: iam.Role; logGroup: logs.LogGroup } {
  const role = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: `${NAMESPACE} ${id}: only what bindFunction grants`,
  });
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, { retention });
  logGroup.grantWrite(role);
  return { role, logGroup };
}

/** Exactly `functions[name].env` (plus `powertoolsEnv`) with this stack's values. */
export function environmentOf(
  name: FunctionName,
  resources: EdgeloopResources,
  serviceSuffix = '',
): Record<string, string> {
  return Object.fromEntries(
    [...functions[name].env, ...powertoolsEnv].map((key) => [
      envVars[key],
      envValue(key, name, resources, serviceSuffix),
    ]),
  );
}

/**
 * Sets exactly `functions[name].env` (plus `powertoolsEnv`) on `fn` and grants exactly `access`.
 * `serviceSuffix` distinguishes several functions built from one topology entry
 * (the training steps) in logs and metrics.
 */
export function bindFunction(
  fn: lambda.Function,
  name: FunctionName,
  resources: EdgeloopResources,
  access: Access,
  serviceSuffix = '',
): void {
  for (const [variable, value] of Object.entries(environmentOf(name, resources, serviceSuffix))) {
    fn.addEnvironment(variable, value);
  }
  const role = fn.role;
  if (!role) throw new Error(`${fn.node.path} has no role to grant to`);
  grantAccess(role, fn, name, resources, access);
}

/**
 * Grants `role` exactly `access`, and nothing else; `owner` is where the nag acknowledgements
 * of the per-bucket object wildcards are named (a function, or a container's job).
 */
export function grantAccess(
  role: iam.IRole,
  owner: Construct,
  name: FunctionName,
  resources: EdgeloopResources,
  access: Access,
): void {
  const readBuckets = new Set(access.readBuckets ?? []);
  const writeBuckets = new Set(access.writeBuckets ?? []);
  for (const key of new Set([...readBuckets, ...writeBuckets])) {
    const bucket = resources.buckets[key];
    const actions = [
      ...(readBuckets.has(key) ? ['s3:GetObject', 's3:GetObjectVersion'] : []),
      ...(writeBuckets.has(key) ? ['s3:PutObject'] : []),
    ];
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources: [bucket.arnForObjects('*')] }));
    // ListBucket turns a missing key into a clear 404 instead of an AccessDenied.
    if (readBuckets.has(key)) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }),
      );
    }
    acknowledge(
      role,
      wildcardFinding(owner, bucket.arnForObjects('*')),
      `${name} reads or writes objects whose keys are chosen at run time (datasets and model versions), so the grant covers the objects of this one bucket and no other.`,
    );
  }

  const readTables = new Set(access.readTables ?? []);
  const writeTables = new Set(access.writeTables ?? []);
  for (const key of new Set([...readTables, ...writeTables])) {
    const actions = new Set([
      ...(readTables.has(key) ? TABLE_READ : []),
      ...(writeTables.has(key) ? TABLE_WRITE : []),
    ]);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: [...actions], resources: [resources.tables[key].tableArn] }),
    );
  }

  if (access.sign) resources.signing.grantSign(role);
}

/** Retention as the enum CloudWatch Logs accepts (it allows only certain day counts). */
export function retentionDays(days: number): logs.RetentionDays {
  const allowed = Object.values(logs.RetentionDays).filter(
    (value): value is number => typeof value === 'number' && value > 0,
  );
  const chosen = allowed.sort((a, b) => a - b).find((value) => value >= days);
  return (chosen ?? logs.RetentionDays.INFINITE) as logs.RetentionDays;
}
