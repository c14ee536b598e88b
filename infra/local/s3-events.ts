/**
 * S3 event notifications for the local stack: the object-created events s3rver emits for
 * dataset uploads invoke the training function, filtered by the same prefix and endings the
 * CDK stack puts on the EventBridge rule (a dataset object, or a folder's `_SUCCESS`).
 */
import { buckets, isTrainingTriggerKey } from '../../shared/topology.ts';
import type { FunctionInvoker } from './invoker.ts';

interface S3EventRecord {
  eventName: string;
  s3: { bucket: { name: string }; object: { key: string } };
}

/** S3 puts keys into events URL-encoded, with spaces as '+'; s3rver emits them raw. */
export function encodeEventKey(key: string): string {
  return key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/%20/g, '+'))
    .join('/');
}

/** Whether a record is an object-created event the training notification would deliver. */
export function triggersTraining(record: S3EventRecord): boolean {
  const { key } = record.s3.object;
  return (
    record.eventName.startsWith('ObjectCreated:') &&
    record.s3.bucket.name === buckets.datasets.localName &&
    isTrainingTriggerKey(key)
  );
}

/** The listener to attach to s3rver's 'event': one async train invocation per matching record. */
export function s3EventListener(invoker: Pick<FunctionInvoker, 'invokeAsync'>) {
  return (event: { Records: S3EventRecord[] }): void => {
    for (const record of event.Records) {
      if (!triggersTraining(record)) continue;
      const encoded = {
        ...record,
        s3: { ...record.s3, object: { ...record.s3.object, key: encodeEventKey(record.s3.object.key) } },
      };
      invoker.invokeAsync('train', { Records: [encoded] });
    }
  };
}
