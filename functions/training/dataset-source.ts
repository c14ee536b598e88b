/**
 * The dataset a training run reads from S3: one object, or every part of a folder whose
 * `_SUCCESS` marker started the run (datasetKeys.kindOf). Parts stream from GetObject (never
 * buffered whole); Parquet reads byte ranges. The first read of a part records its version
 * id, and later passes read that version, so a run's passes see the same bytes.
 */
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { DatasetSource } from '../../shared/dataset/read.ts';
import { type DatasetPart, isDataPartName } from '../../shared/dataset/source.ts';
import { InputError } from '../../shared/errors.ts';
import { datasetKeys } from '../../shared/topology.ts';
import type { DatasetObject } from './state.ts';

/** The parts of the dataset an event names (listed once, in key order). */
export async function s3DatasetSource(s3: S3Client, object: DatasetObject): Promise<DatasetSource> {
  const kind = datasetKeys.kindOf(object.key);
  if (kind?.kind !== 'parts') {
    return {
      name: object.key,
      parts: [
        s3Part(s3, object.bucket, object.key, {
          ...(object.size !== undefined ? { size: object.size } : {}),
          ...(object.versionId ? { versionId: object.versionId } : {}),
          ...(object.etag ? { etag: object.etag } : {}),
        }),
      ],
    };
  }
  const parts: DatasetPart[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: object.bucket, Prefix: kind.prefix, ContinuationToken: token }),
    );
    for (const item of page.Contents ?? []) {
      if (!item.Key || !isDataPartName(item.Key)) continue;
      parts.push(
        s3Part(s3, object.bucket, item.Key, {
          ...(item.Size !== undefined ? { size: item.Size } : {}),
          ...(item.ETag ? { etag: item.ETag.replace(/^"|"$/g, '') } : {}),
        }),
      );
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  if (parts.length === 0) {
    throw new InputError(
      `${object.key}: the folder ${kind.prefix} holds no dataset parts (keys ending in ${datasetKeys.objectSuffixes.join(', ')}): upload the parts before the ${datasetKeys.successMarker} marker`,
    );
  }
  parts.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { name: kind.prefix, parts };
}

function s3Part(
  s3: S3Client,
  bucket: string,
  key: string,
  known: { size?: number; versionId?: string; etag?: string },
): DatasetPart {
  const part: DatasetPart = {
    name: key,
    ...known,
    async open() {
      const result = await s3.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ...(part.versionId ? { VersionId: part.versionId } : {}),
        }),
      );
      if (result.VersionId && result.VersionId !== 'null') part.versionId = result.VersionId;
      if (result.ETag) part.etag = result.ETag.replace(/^"|"$/g, '');
      if (result.ContentLength !== undefined) part.size = result.ContentLength;
      if (!result.Body) throw new Error(`s3://${bucket}/${key} has no body`);
      return result.Body as AsyncIterable<Uint8Array>;
    },
    async randomAccess() {
      const byteLength =
        part.size ??
        Number(
          (
            await s3.send(
              new HeadObjectCommand({
                Bucket: bucket,
                Key: key,
                ...(part.versionId ? { VersionId: part.versionId } : {}),
              }),
            )
          ).ContentLength,
        );
      return {
        byteLength,
        async slice(start: number, end?: number) {
          const last = (end ?? byteLength) - 1;
          if (last < start) return new ArrayBuffer(0);
          const result = await s3.send(
            new GetObjectCommand({
              Bucket: bucket,
              Key: key,
              Range: `bytes=${start}-${last}`,
              ...(part.versionId ? { VersionId: part.versionId } : {}),
            }),
          );
          const bytes = await (
            result.Body as { transformToByteArray(): Promise<Uint8Array> }
          ).transformToByteArray();
          return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
        },
      };
    },
  };
  return part;
}
