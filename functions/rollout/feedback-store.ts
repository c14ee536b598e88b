/**
 * Hard examples in the datasets bucket (datasetKeys.feedbackPrefix): listing and reading the
 * CSVs gateways uploaded. The training run merges their labelled rows; the controller counts
 * them before a retrain; `edgeloop feedback` lists, labels and accepts them.
 *
 * One gateway must not be able to poison or starve retraining, so:
 * - a file's size is checked before it is read (from the listing, then the body itself);
 *   an oversized file is skipped with its reason, never read;
 * - each gateway gives at most FEEDBACK_LIMITS.maxRowsPerThing rows to one run (its newest);
 * - a gateway's own labels (truth carried by its readings) join training only once a person
 *   reviewed the file (`edgeloop feedback accept KEY` or `label`, which write a reviewed copy
 *   under datasetKeys.reviewedFeedbackPrefix, where gateways cannot write), unless the
 *   model's config says `trustGatewayLabels: true`.
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { InputError } from '../../shared/errors.ts';
import { countLabelled, type FeedbackTable, formatFeedback, parseFeedback } from '../../shared/feedback.ts';
import { datasetKeys } from '../../shared/topology.ts';

const READ_CONCURRENCY = 8;

export const FEEDBACK_LIMITS = {
  /** A gateway's feedback file is a few hundred rows; anything this big is not one. */
  maxFileBytes: 1024 * 1024,
  /** Rows one gateway may give one training run (its newest files first). */
  maxRowsPerThing: 2000,
} as const;

export interface FeedbackObject {
  key: string;
  size: number;
  lastModified?: Date;
}

export async function listFeedbackObjects(
  s3: S3Client,
  bucket: string,
  model: string,
  prefix: string = datasetKeys.feedbackPrefix(model),
): Promise<FeedbackObject[]> {
  const objects: FeedbackObject[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
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

/** Why a feedback object is not read, or undefined when its size is within the limit. */
export function oversized(
  object: FeedbackObject,
  maxBytes = FEEDBACK_LIMITS.maxFileBytes,
): string | undefined {
  return object.size > maxBytes
    ? `${object.key} is ${object.size} bytes, over the ${maxBytes}-byte limit of a feedback file: not read`
    : undefined;
}

/**
 * Reads one feedback CSV, refusing (InputError) one over `maxBytes`: by its listed size
 * before the download, and by the bytes received (at most one more is asked for).
 */
export async function readFeedbackTable(
  s3: S3Client,
  bucket: string,
  key: string,
  maxBytes: number = FEEDBACK_LIMITS.maxFileBytes,
): Promise<FeedbackTable> {
  let result: Awaited<ReturnType<typeof getRange>>;
  try {
    result = await getRange(s3, bucket, key, maxBytes);
  } catch (error) {
    // S3 answers any range of an empty object with 416 InvalidRange: the file holds no rows.
    if ((error as { name?: string }).name === 'InvalidRange') return parseFeedback('');
    throw error;
  }
  if (!result.Body) throw new Error(`s3://${bucket}/${key} has no body`);
  const bytes = await result.Body.transformToByteArray();
  if (bytes.byteLength > maxBytes)
    throw new InputError(`${key} is over the ${maxBytes}-byte limit of a feedback file: not read`);
  return parseFeedback(new TextDecoder().decode(bytes));
}

function getRange(s3: S3Client, bucket: string, key: string, maxBytes: number) {
  return s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=0-${maxBytes}` }));
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

export interface FeedbackEntry {
  /** The gateway's key (feedback/...), also for a reviewed copy. */
  key: string;
  table: FeedbackTable;
  labelled: number;
  unlabelled: number;
  reviewed: boolean;
}

export interface ModelFeedback {
  tables: FeedbackEntry[];
  labelled: number;
  unlabelled: number;
  /** Files not read, with the reason (oversized). */
  skipped: { key: string; reason: string }[];
}

export interface FeedbackPolicy {
  /** Gateways' own labels count without review (the model config's trustGatewayLabels). */
  trustGatewayLabels?: boolean;
  maxFileBytes?: number;
  maxRowsPerThing?: number;
}

/**
 * Every feedback file of a model, read (the reviewed copy where there is one), with
 * labelled/unlabelled row counts: what `edgeloop feedback list` shows. Oversized files are
 * skipped with their reason; no row cap applies.
 */
export async function readModelFeedback(
  s3: S3Client,
  bucket: string,
  model: string,
  policy: FeedbackPolicy = {},
): Promise<ModelFeedback> {
  const { objects, skipped } = await feedbackObjects(s3, bucket, model, {
    ...policy,
    trustGatewayLabels: true,
  });
  const tables = await readEntries(s3, bucket, objects, policy, skipped);
  return { tables, skipped, ...totals(tables) };
}

/**
 * What a training run may merge: reviewed files, and unreviewed ones only when the policy
 * trusts gateway labels; each gateway's rows capped (newest files first). Only files with
 * labelled rows are returned.
 */
export async function trainingFeedback(
  s3: S3Client,
  bucket: string,
  model: string,
  policy: FeedbackPolicy = {},
): Promise<ModelFeedback & { awaitingReview: string[] }> {
  const { objects, skipped, awaitingReview } = await feedbackObjects(s3, bucket, model, policy);
  const read = await readEntries(s3, bucket, objects, policy, skipped);
  const tables = capPerThing(read, policy.maxRowsPerThing).filter((entry) => entry.labelled > 0);
  return { tables, skipped, awaitingReview, ...totals(tables) };
}

/**
 * Labelled rows a training run may use, counted only until `enough`: the controller asks
 * whether a retrain has enough labelled rows on every tick while drift holds, and a
 * long-running fleet leaves thousands of small files that need not all be read for that.
 */
export async function countLabelledFeedback(
  s3: S3Client,
  bucket: string,
  model: string,
  enough: number,
  policy: FeedbackPolicy = {},
): Promise<number> {
  const { objects } = await feedbackObjects(s3, bucket, model, policy);
  const cap = policy.maxRowsPerThing ?? FEEDBACK_LIMITS.maxRowsPerThing;
  const perThing = new Map<string, number>();
  let labelled = 0;
  await readEach(s3, bucket, objects, policy, (i, table) => {
    const thing = datasetKeys.feedbackThing((objects[i] as Chosen).gatewayKey);
    const room = Math.max(0, cap - (perThing.get(thing) ?? 0));
    const counted = Math.min(room, countLabelled(table).labelled);
    perThing.set(thing, (perThing.get(thing) ?? 0) + counted);
    labelled += counted;
    return labelled >= enough;
  });
  return labelled;
}

/** The chosen objects read, in order; ones that turn out oversized are skipped. */
async function readEntries(
  s3: S3Client,
  bucket: string,
  objects: readonly Chosen[],
  policy: FeedbackPolicy,
  skipped: ModelFeedback['skipped'],
): Promise<FeedbackEntry[]> {
  const read: (FeedbackEntry | undefined)[] = new Array(objects.length);
  const visit = (i: number, table: FeedbackTable) => {
    const object = objects[i] as Chosen;
    read[i] = { key: object.gatewayKey, table, reviewed: object.reviewed, ...countLabelled(table) };
    return false;
  };
  await readEach(s3, bucket, objects, policy, visit, skipped);
  return read.filter((entry) => entry !== undefined);
}

interface Chosen extends FeedbackObject {
  gatewayKey: string;
  reviewed: boolean;
}

/** The objects to read: a reviewed copy replaces its gateway file; oversized ones are skipped. */
async function feedbackObjects(
  s3: S3Client,
  bucket: string,
  model: string,
  policy: FeedbackPolicy,
): Promise<{ objects: Chosen[]; skipped: ModelFeedback['skipped']; awaitingReview: string[] }> {
  const [raw, reviewed] = await Promise.all([
    listFeedbackObjects(s3, bucket, model),
    listFeedbackObjects(s3, bucket, model, datasetKeys.reviewedFeedbackPrefix(model)),
  ]);
  const reviewedKeys = new Set(reviewed.map((object) => object.key));
  const candidates: Chosen[] = reviewed.map((object) => ({
    ...object,
    gatewayKey: object.key.replace(/^feedback-reviewed\//, 'feedback/'),
    reviewed: true,
  }));
  const awaitingReview: string[] = [];
  for (const object of raw) {
    if (reviewedKeys.has(datasetKeys.reviewedFeedbackKey(object.key))) continue;
    if (policy.trustGatewayLabels) candidates.push({ ...object, gatewayKey: object.key, reviewed: false });
    else awaitingReview.push(object.key);
  }
  const skipped: ModelFeedback['skipped'] = [];
  const objects: Chosen[] = [];
  for (const object of candidates.sort((a, b) => (a.gatewayKey < b.gatewayKey ? -1 : 1))) {
    const reason = oversized(object, policy.maxFileBytes);
    if (reason) skipped.push({ key: object.key, reason });
    else objects.push(object);
  }
  return { objects, skipped, awaitingReview };
}

/** Keeps each gateway's newest rows up to the cap (files are ordered oldest first by key). */
function capPerThing(
  entries: FeedbackEntry[],
  maxRows: number = FEEDBACK_LIMITS.maxRowsPerThing,
): FeedbackEntry[] {
  const used = new Map<string, number>();
  const capped: FeedbackEntry[] = new Array(entries.length);
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i] as FeedbackEntry;
    const thing = datasetKeys.feedbackThing(entry.key);
    const room = Math.max(0, maxRows - (used.get(thing) ?? 0));
    const kept = room === 0 ? [] : entry.table.rows.slice(-room);
    used.set(thing, (used.get(thing) ?? 0) + kept.length);
    const table = { header: entry.table.header, rows: kept };
    capped[i] = { ...entry, table, ...countLabelled(table) };
  }
  return capped;
}

function totals(tables: readonly FeedbackEntry[]) {
  return {
    labelled: tables.reduce((sum, t) => sum + t.labelled, 0),
    unlabelled: tables.reduce((sum, t) => sum + t.unlabelled, 0),
  };
}

/** Reads the objects a few at a time (many small files from many gateways) until `visit` says stop. */
async function readEach(
  s3: S3Client,
  bucket: string,
  objects: readonly FeedbackObject[],
  policy: FeedbackPolicy,
  visit: (index: number, table: FeedbackTable) => boolean,
  skipped?: ModelFeedback['skipped'],
): Promise<void> {
  let next = 0;
  let stop = false;
  const worker = async () => {
    for (let i = next++; !stop && i < objects.length; i = next++) {
      const key = (objects[i] as FeedbackObject).key;
      let table: FeedbackTable;
      try {
        table = await readFeedbackTable(s3, bucket, key, policy.maxFileBytes);
      } catch (error) {
        // Grown past the limit since it was listed: skipped like one listed too big.
        if (!(error instanceof InputError)) throw error;
        skipped?.push({ key, reason: error.message });
        continue;
      }
      if (!stop && visit(i, table)) stop = true;
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, objects.length) }, worker));
}
