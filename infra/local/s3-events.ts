/**
 * S3 event notifications for the local stack: the object-created events the local S3
 * (s3/server.ts) emits for dataset uploads invoke the training function, filtered by the same
 * prefix and endings the CDK stack puts on the EventBridge rule (a dataset object, or a
 * folder's `_SUCCESS`). Records arrive as S3 delivers them: keys URL-encoded, spaces as '+'.
 */
import { buckets, isTrainingTriggerKey } from '../../shared/topology.ts';
import type { FunctionInvoker } from './invoker.ts';

interface S3EventRecord {
  eventName: string;
  s3: { bucket: { name: string }; object: { key: string } };
}

/** The key an S3 record names (S3 URL-encodes it, with spaces as '+'). */
function recordKey(record: S3EventRecord): string {
  return decodeURIComponent(record.s3.object.key.replace(/\+/g, ' '));
}

/** Whether a record is an object-created event the training notification would deliver. */
export function triggersTraining(record: S3EventRecord): boolean {
  return (
    record.eventName.startsWith('ObjectCreated:') &&
    record.s3.bucket.name === buckets.datasets.localName &&
    isTrainingTriggerKey(recordKey(record))
  );
}

/** The listener for the local S3's 'event': one async train invocation per matching record. */
export function s3EventListener(invoker: Pick<FunctionInvoker, 'invokeAsync'>) {
  return (event: { Records: S3EventRecord[] }): void => {
    for (const record of event.Records)
      if (triggersTraining(record)) invoker.invokeAsync('train', { Records: [record] });
  };
}
