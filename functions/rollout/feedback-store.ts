/**
 * Hard examples in the datasets bucket (datasetKeys.feedbackPrefix): listing and reading the
 * CSVs gateways uploaded. The training run merges their labelled rows; the controller counts
 * them before a retrain; `edgeloop feedback` lists and labels them.
 */
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { countLabelled, type FeedbackTable, formatFeedback, parseFeedback } from '../../shared/feedback.ts';
import { datasetKeys } from '../../shared/topology.ts';
import { getObjectBytes } from '../training/config.ts';

const READ_CONCURRENCY = 8;

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
  const objects = await listFeedbackObjects(s3, bucket, model);
  const tables: ModelFeedback['tables'] = new Array(objects.length);
  // A few reads at a time: many small files from many gateways.
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < objects.length; i = next++) {
      const key = (objects[i] as FeedbackObject).key;
      const table = await readFeedbackTable(s3, bucket, key);
      tables[i] = { key, table, ...countLabelled(table) };
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, objects.length) }, worker));
  return {
    tables,
    labelled: tables.reduce((sum, t) => sum + t.labelled, 0),
    unlabelled: tables.reduce((sum, t) => sum + t.unlabelled, 0),
  };
}
