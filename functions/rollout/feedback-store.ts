/**
 * Hard examples in the datasets bucket (datasetKeys.feedbackPrefix): listing and reading the
 * CSVs gateways uploaded. The training run merges their labelled rows; the controller counts
 * them before a retrain; `edgeloop feedback` lists and labels them.
 */
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { countLabelled, type FeedbackTable, formatFeedback, parseFeedback } from '../../shared/feedback.ts';
import { datasetKeys } from '../../shared/topology.ts';
import { getObjectBytes } from '../training/config.ts';

export interface FeedbackObject {
  key: string;
  size: number;
  lastModified?: Date;
}

export async function listFeedbackObjects(
  s3: S3Client,
  bucket: string,
  model: string,
): Promise<FeedbackObject[]> {
  const objects: FeedbackObject[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: datasetKeys.feedbackPrefix(model),
        ...(token ? { ContinuationToken: token } : {}),
      }),
    );
    for (const item of page.Contents ?? [])
      if (item.Key?.endsWith('.csv'))
        objects.push({
          key: item.Key,
          size: item.Size ?? 0,
          ...(item.LastModified ? { lastModified: item.LastModified } : {}),
        });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

export async function readFeedbackTable(s3: S3Client, bucket: string, key: string): Promise<FeedbackTable> {
  return parseFeedback(new TextDecoder().decode(await getObjectBytes(s3, bucket, key)));
}

export async function writeFeedbackTable(
  s3: S3Client,
  bucket: string,
  key: string,
  table: FeedbackTable,
): Promise<void> {
  await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: formatFeedback(table), ContentType: 'text/csv' }),
  );
}

export interface ModelFeedback {
  tables: { key: string; table: FeedbackTable; labelled: number; unlabelled: number }[];
  labelled: number;
  unlabelled: number;
}

/** Every feedback CSV of a model, read, with labelled/unlabelled row counts. */
export async function readModelFeedback(s3: S3Client, bucket: string, model: string): Promise<ModelFeedback> {
  const tables: ModelFeedback['tables'] = [];
  for (const object of await listFeedbackObjects(s3, bucket, model)) {
    const table = await readFeedbackTable(s3, bucket, object.key);
    tables.push({ key: object.key, table, ...countLabelled(table) });
  }
  return {
    tables,
    labelled: tables.reduce((sum, t) => sum + t.labelled, 0),
    unlabelled: tables.reduce((sum, t) => sum + t.unlabelled, 0),
  };
}
