/** Creates the topology's DynamoDB tables in the local dynalite when they are missing. */
import {
  type AttributeDefinition,
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  type KeySchemaElement,
  ListTablesCommand,
} from '@aws-sdk/client-dynamodb';
import { type TableSpec, tables } from '../../shared/topology.ts';

export function createTableInput(spec: TableSpec) {
  const keys = [spec.partitionKey, ...(spec.sortKey ? [spec.sortKey] : [])];
  return {
    TableName: spec.localName,
    BillingMode: 'PAY_PER_REQUEST' as const,
    AttributeDefinitions: keys.map(
      ({ name, type }): AttributeDefinition => ({ AttributeName: name, AttributeType: type }),
    ),
    KeySchema: keys.map(
      ({ name }, index): KeySchemaElement => ({
        AttributeName: name,
        KeyType: index === 0 ? 'HASH' : 'RANGE',
      }),
    ),
  };
}

/** Creates every missing table and waits until all are ACTIVE; returns the names it created. */
export async function ensureTables(
  client: DynamoDBClient,
  specs: readonly TableSpec[] = Object.values(tables),
): Promise<string[]> {
  const existing = new Set<string>();
  let start: string | undefined;
  do {
    const page = await client.send(new ListTablesCommand({ ExclusiveStartTableName: start }));
    for (const name of page.TableNames ?? []) existing.add(name);
    start = page.LastEvaluatedTableName;
  } while (start);

  const missing = specs.filter((spec) => !existing.has(spec.localName));
  for (const spec of missing) await client.send(new CreateTableCommand(createTableInput(spec)));
  for (const spec of specs) await waitActive(client, spec.localName);
  return missing.map((spec) => spec.localName);
}

async function waitActive(client: DynamoDBClient, name: string): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: name }));
    if (Table?.TableStatus === 'ACTIVE') return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`table ${name} did not become ACTIVE`);
}
