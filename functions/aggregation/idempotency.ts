/**
 * Per-batch claims in tables.idempotency, keyed results#<thing>#<batchId>.
 *
 * Why claim 'pending' -> apply -> 'done' and not one TransactWriteItems: dynalite (the local
 * DynamoDB) has no transactions, and one code path must serve both. The failure window of the
 * pending scheme (the aggregate writes fail or the process dies after the claim) is closed by
 * the aggregate items themselves: each item's ADD is conditional on the batch's tag not being
 * in the item yet (see aggregate-item.ts). So a redelivery that finds the claim still
 * 'pending' simply re-applies every key: keys already written refuse the second ADD, the
 * missing ones get it, and then the claim is marked 'done'. A claim found 'done' is a true
 * duplicate and costs one read. Claims expire (TTL) long after any outbox replay; even then
 * the per-item tags keep a late replay from counting twice.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';

export type ClaimState = 'new' | 'pending' | 'done';

export const CLAIM_TTL_DAYS = 30;

export async function claim(
  ddb: DynamoDBDocumentClient,
  table: string,
  id: string,
  now: number,
): Promise<ClaimState> {
  try {
    await ddb.send(
      new PutCommand({
        TableName: table,
        Item: {
          id,
          state: 'pending',
          claimedAt: now,
          expiresAt: Math.floor(now / 1000) + CLAIM_TTL_DAYS * 86_400,
        },
        ConditionExpression: 'attribute_not_exists(id)',
      }),
    );
    return 'new';
  } catch (error) {
    if (!isConditionFailure(error)) throw error;
  }
  const existing = await ddb.send(new GetCommand({ TableName: table, Key: { id }, ConsistentRead: true }));
  return existing.Item?.state === 'done' ? 'done' : 'pending';
}

export async function markDone(
  ddb: DynamoDBDocumentClient,
  table: string,
  id: string,
  detail: Record<string, number>,
): Promise<void> {
  await ddb.send(
    new UpdateCommand({
      TableName: table,
      Key: { id },
      UpdateExpression: 'SET #state = :done, #detail = :detail',
      ExpressionAttributeNames: { '#state': 'state', '#detail': 'detail' },
      ExpressionAttributeValues: { ':done': 'done', ':detail': detail },
    }),
  );
}

export function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException ||
    (error instanceof Error && error.name === 'ConditionalCheckFailedException')
  );
}
