/**
 * The per-model training config (datasetKeys.config, optional) read from the datasets
 * bucket: the training run and the rollout controller (drift -> retrain policy) read it.
 */
import { GetObjectCommand, NoSuchKey, type S3Client } from '@aws-sdk/client-s3';
import { InputError } from '../../shared/errors.ts';
import { describeZodError, type TrainingConfig, TrainingConfigSchema } from '../../shared/schemas.ts';
import { datasetKeys } from '../../shared/topology.ts';
import { type LabelledRange, parseEventsCsv } from '../../shared/training/labelled-events.ts';

/** An object's bytes; throws the SDK's error (NoSuchKey when absent). */
export async function getObjectBytes(
  s3: S3Client,
  bucket: string,
  key: string,
  versionId?: string,
): Promise<Uint8Array> {
  const result = await s3.send(
    new GetObjectCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
  );
  if (!result.Body) throw new Error(`s3://${bucket}/${key} has no body`);
  return result.Body.transformToByteArray();
}

export function isNoSuchKey(error: unknown): boolean {
  return error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey';
}

/** The model's training config, or the defaults when it has none; InputError when it is invalid. */
export async function readTrainingConfig(
  s3: S3Client,
  bucket: string,
  model: string,
): Promise<TrainingConfig> {
  const key = datasetKeys.config(model);
  let text: string;
  try {
    text = new TextDecoder().decode(await getObjectBytes(s3, bucket, key));
  } catch (error) {
    if (isNoSuchKey(error)) return TrainingConfigSchema.parse({});
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InputError(
      `s3://${bucket}/${key} is not valid JSON (${(error as Error).message}): fix or delete it`,
    );
  }
  const parsed = TrainingConfigSchema.safeParse(json);
  if (!parsed.success) {
    throw new InputError(
      `s3://${bucket}/${key} is not a valid training config: ${describeZodError(parsed.error)}`,
    );
  }
  return parsed.data;
}

/**
 * The model's labelled event ranges (datasetKeys.events, optional) for an anomaly run, or
 * undefined when it has none; InputError naming the object when they cannot be read.
 */
export async function readEventRanges(
  s3: S3Client,
  bucket: string,
  model: string,
  config: Pick<TrainingConfig, 'window'>,
): Promise<LabelledRange[] | undefined> {
  const key = datasetKeys.events(model);
  let text: string;
  try {
    text = new TextDecoder().decode(await getObjectBytes(s3, bucket, key));
  } catch (error) {
    if (isNoSuchKey(error)) return undefined;
    throw error;
  }
  return parseEventsCsv(text, `s3://${bucket}/${key}: `, config.window?.timeUnit ?? 'ms');
}
