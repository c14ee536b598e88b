/**
 * A retrain's dataset: the released version's base dataset copied under the retrain key
 * (datasetKeys.retrain), so the copy starts a run through the same trigger and gate. A folder
 * of parts is copied part by part and its `_SUCCESS` marker is written last, as a producer
 * would, so the run never starts on half a folder.
 */
import { CopyObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { datasetKeys } from '../../shared/topology.ts';
import { s3DatasetSource } from '../training/dataset-source.ts';

const copySource = (bucket: string, key: string) =>
  `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;

/** Copies `baseKey`'s dataset to `retrainKey` (both in `bucket`); returns the parts copied. */
export async function copyBaseDataset(
  s3: S3Client,
  bucket: string,
  baseKey: string,
  retrainKey: string,
): Promise<number> {
  const source = datasetKeys.kindOf(baseKey);
  const target = datasetKeys.kindOf(retrainKey);
  if (source?.kind !== 'parts' || target?.kind !== 'parts') {
    await s3.send(
      new CopyObjectCommand({ Bucket: bucket, Key: retrainKey, CopySource: copySource(bucket, baseKey) }),
    );
    return 1;
  }
  const { parts } = await s3DatasetSource(s3, { bucket, key: baseKey });
  for (const part of parts) {
    // The path below the folder is kept: Hive-style subfolders (`dt=1/part-0.csv`) may share names.
    await s3.send(
      new CopyObjectCommand({
        Bucket: bucket,
        Key: `${target.prefix}${part.name.slice(source.prefix.length)}`,
        CopySource: copySource(bucket, part.name),
      }),
    );
  }
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: retrainKey, Body: '' }));
  return parts.length;
}
