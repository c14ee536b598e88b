/**
 * Puts a file into a bucket as a stream and reports the bytes the SDK has taken from it, so
 * `edgeloop upload` and the demo can show upload progress without a second code path.
 */
import { Readable } from 'node:stream';
import { PutObjectCommand, type PutObjectCommandOutput } from '@aws-sdk/client-s3';
import { s3Client } from '../../shared/aws.ts';

export interface PutProgress {
  sent: number;
  total: number;
}

const CHUNK_BYTES = 64 * 1024;

export async function putWithProgress(input: {
  bucket: string;
  key: string;
  body: Uint8Array;
  contentType: string;
  onProgress?: (progress: PutProgress) => void;
}): Promise<PutObjectCommandOutput> {
  const { body, onProgress } = input;
  const total = body.length;
  function* chunks() {
    for (let offset = 0; offset < total; offset += CHUNK_BYTES) {
      const chunk = body.subarray(offset, Math.min(total, offset + CHUNK_BYTES));
      yield chunk;
      // Reported once the SDK asks for the next chunk: this one has been handed to the socket.
      onProgress?.({ sent: offset + chunk.length, total });
    }
  }
  onProgress?.({ sent: 0, total });
  return s3Client().send(
    new PutObjectCommand({
      Bucket: input.bucket,
      Key: input.key,
      Body: Readable.from(chunks(), { objectMode: false }),
      ContentLength: total,
      ContentType: input.contentType,
    }),
  );
}
