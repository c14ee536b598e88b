/**
 * The model registry (tables.registry): one item per (model, version). Versions are
 * allocated with a conditional put, so two concurrent runs can never share one.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { type RegistryItem, RegistryItemSchema, type RunStatus } from '../../shared/schemas.ts';

export interface RegistryStore {
  ddb: DynamoDBDocumentClient;
  table: string;
}

/** The highest version recorded for a model (0 when there is none). */
export async function latestVersion({ ddb, table }: RegistryStore, model: string): Promise<number> {
  const { Items } = await ddb.send(
    new QueryCommand({
      TableName: table,
      KeyConditionExpression: '#model = :model',
      ExpressionAttributeNames: { '#model': 'model', '#version': 'version' },
      ExpressionAttributeValues: { ':model': model },
      ProjectionExpression: '#version',
      ScanIndexForward: false,
      Limit: 1,
      ConsistentRead: true,
    }),
  );
  return Number(Items?.[0]?.version ?? 0);
}

/**
 * Writes a `training` item at the next free version: reads the latest, then puts with
 * attribute_not_exists; on a lost race it re-reads and tries the next number.
 */
export async function allocateVersion(
  store: RegistryStore,
  item: Omit<RegistryItem, 'version' | 'status'>,
  attempts = 50,
): Promise<number> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const version = (await latestVersion(store, item.model)) + 1;
    try {
      await store.ddb.send(
        new PutCommand({
          TableName: store.table,
          Item: { ...item, version, status: 'training' satisfies RunStatus },
          ConditionExpression: 'attribute_not_exists(#version)',
          ExpressionAttributeNames: { '#version': 'version' },
        }),
      );
      return version;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 5 + Math.random() * 20 * (attempt + 1)));
    }
  }
  throw new Error(`could not allocate a version for model ${item.model} after ${attempts} attempts`);
}

/** The current release: the highest version whose status is `released`. */
export async function currentRelease(
  { ddb, table }: RegistryStore,
  model: string,
): Promise<RegistryItem | undefined> {
  let start: Record<string, unknown> | undefined;
  do {
    const page = await ddb.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: '#model = :model',
        FilterExpression: '#status = :released',
        ExpressionAttributeNames: { '#model': 'model', '#status': 'status' },
        ExpressionAttributeValues: { ':model': model, ':released': 'released' },
        ScanIndexForward: false,
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }),
    );
    const first = page.Items?.[0];
    if (first) return RegistryItemSchema.parse(first);
    start = page.LastEvaluatedKey;
  } while (start);
  return undefined;
}

/**
 * Moves a run out of `training` (or updates it while training) with new attributes. The
 * condition keeps a late or repeated step from overwriting a finished run.
 */
export async function updateRun(
  { ddb, table }: RegistryStore,
  key: { model: string; version: number },
  fields: Partial<Omit<RegistryItem, 'model' | 'version'>>,
): Promise<void> {
  const entries = Object.entries(fields).filter(([, value]) => value !== undefined);
  const names: Record<string, string> = { '#status': 'status' };
  const values: Record<string, unknown> = { ':training': 'training' };
  const sets = entries.map(([name, value], i) => {
    names[`#f${i}`] = name;
    values[`:v${i}`] = value;
    return `#f${i} = :v${i}`;
  });
  await ddb.send(
    new UpdateCommand({
      TableName: table,
      Key: key,
      UpdateExpression: `SET ${sets.join(', ')}`,
      ConditionExpression: '#status = :training',
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    }),
  );
}

/**
 * Every registry item of one model (newest first), or of every model. With `skipInvalid`,
 * items that do not match the schema are left out instead of failing the whole list.
 */
export async function listRegistry(
  { ddb, table }: RegistryStore,
  model?: string,
  options: { skipInvalid?: boolean } = {},
): Promise<RegistryItem[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = model
      ? await ddb.send(
          new QueryCommand({
            TableName: table,
            KeyConditionExpression: '#model = :model',
            ExpressionAttributeNames: { '#model': 'model' },
            ExpressionAttributeValues: { ':model': model },
            ScanIndexForward: false,
            ExclusiveStartKey: start,
          }),
        )
      : await ddb.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  const parsed = options.skipInvalid
    ? items.flatMap((item) => {
        const result = RegistryItemSchema.safeParse(item);
        return result.success ? [result.data] : [];
      })
    : items.map((item) => RegistryItemSchema.parse(item));
  return parsed.sort((a, b) => (a.model === b.model ? b.version - a.version : a.model < b.model ? -1 : 1));
}
