/**
 * One DynamoDB table per topology entry: on-demand, encrypted, PITR unless derived. Tables
 * are named `<localName>-<stage>` (awsTableName), the names `edgeloop stats --aws --stage S`
 * and `edgeloop fleet --aws --stage S` derive.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { type TableKey, type TableSpec, tables } from '../../../shared/topology.ts';
import { acknowledge } from '../nag.ts';

const attributeType = (type: 'S' | 'N') =>
  type === 'S' ? dynamodb.AttributeType.STRING : dynamodb.AttributeType.NUMBER;

/** The table's name in AWS for one stage. */
export const awsTableName = (spec: TableSpec, stage: string) => `${spec.localName}-${stage}`;

export class Tables extends Construct {
  readonly byKey: Record<TableKey, dynamodb.Table>;

  constructor(
    scope: Construct,
    id: string,
    private readonly stage: string,
  ) {
    super(scope, id);
    const entries = Object.entries(tables) as [TableKey, TableSpec][];
    this.byKey = Object.fromEntries(entries.map(([key, spec]) => [key, this.table(spec)])) as Record<
      TableKey,
      dynamodb.Table
    >;
  }

  private table(spec: TableSpec): dynamodb.Table {
    const table = new dynamodb.Table(this, spec.id, {
      tableName: awsTableName(spec, this.stage),
      partitionKey: { name: spec.partitionKey.name, type: attributeType(spec.partitionKey.type) },
      ...(spec.sortKey
        ? { sortKey: { name: spec.sortKey.name, type: attributeType(spec.sortKey.type) } }
        : {}),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: !spec.derived },
      ...(spec.ttlAttribute ? { timeToLiveAttribute: spec.ttlAttribute } : {}),
      removalPolicy: spec.derived ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    });
    if (spec.derived) {
      acknowledge(
        table,
        'AwsSolutions-DDB3',
        `The ${spec.id} table is derived state (declared derived in shared/topology.ts) that is rebuilt from its sources, so point-in-time recovery would only add cost.`,
      );
    }
    return table;
  }
}
