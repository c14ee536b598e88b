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
  await readEach(s3, bucket, objects, (i, key, table) => {
    tables[i] = { key, table, ...countLabelled(table) };
    return false;
  });
  return {
    tables,
    labelled: tables.reduce((sum, t) => sum + t.labelled, 0),
    unlabelled: tables.reduce((sum, t) => sum + t.unlabelled, 0),
  };
}

/**
 * Labelled feedback rows of a model, counted only until `enough`: the controller asks
 * whether a retrain has enough labelled rows on every tick while drift holds, and a
 * long-running fleet leaves thousands of small files that need not all be read for that.
 */
export async function countLabelledFeedback(
  s3: S3Client,
  bucket: string,
  model: string,
  enough: number,
): Promise<number> {
  let labelled = 0;
  await readEach(s3, bucket, await listFeedbackObjects(s3, bucket, model), (_i, _key, table) => {
    labelled += countLabelled(table).labelled;
    return labelled >= enough;
  });
  return labelled;
}

/** Reads the objects a few at a time (many small files from many gateways) until `visit` says stop. */
async function readEach(
  s3: S3Client,
  bucket: string,
  objects: readonly FeedbackObject[],
  visit: (index: number, key: string, table: FeedbackTable) => boolean,
): Promise<void> {
  let next = 0;
  let stop = false;
  const worker = async () => {
    for (let i = next++; !stop && i < objects.length; i = next++) {
      const key = (objects[i] as FeedbackObject).key;
      const table = await readFeedbackTable(s3, bucket, key);
      if (!stop && visit(i, key, table)) stop = true;
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, objects.length) }, worker));
}
