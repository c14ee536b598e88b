/**
 * Dataset upload events: an S3 notification record or an EventBridge "Object Created"
 * event, both reduced to the object they name.
 */
import { InputError } from '../../shared/errors.ts';
import type { DatasetObject } from './state.ts';

interface S3NotificationRecord {
  eventSource?: string;
  eventName?: string;
  s3?: {
    bucket?: { name?: string };
    object?: { key?: string; eTag?: string; versionId?: string; sequencer?: string; size?: number };
  };
}

interface EventBridgeObjectCreated {
  source?: string;
  'detail-type'?: string;
  detail?: {
    bucket?: { name?: string };
    object?: { key?: string; etag?: string; 'version-id'?: string; sequencer?: string; size?: number };
  };
}

/** The records of a handler event: S3 notification records, or the EventBridge event itself. */
export function datasetEventRecords(event: unknown): unknown[] {
  const records = (event as { Records?: unknown })?.Records;
  if (Array.isArray(records)) return records;
  return [event];
}

/** The dataset object an S3 record or EventBridge event names, or an InputError. */
export function datasetObjectOf(record: unknown): DatasetObject {
  const s3 = (record as S3NotificationRecord)?.s3;
  if (s3?.bucket?.name && s3.object?.key !== undefined) {
    const { object } = s3;
    return clean({
      bucket: s3.bucket.name,
      // S3 notifications URL-encode keys and turn spaces into '+'.
      key: decodeURIComponent(String(object.key).replace(/\+/g, ' ')),
      etag: unquote(object.eTag),
      versionId: object.versionId,
      sequencer: object.sequencer,
      size: object.size,
    });
  }
  const bridge = record as EventBridgeObjectCreated;
  if (
    bridge?.['detail-type'] === 'Object Created' &&
    bridge.detail?.bucket?.name &&
    bridge.detail.object?.key
  ) {
    const { object } = bridge.detail;
    return clean({
      bucket: bridge.detail.bucket.name,
      key: String(object.key),
      etag: unquote(object.etag),
      versionId: object['version-id'],
      sequencer: object.sequencer,
      size: object.size,
    });
  }
  throw new InputError(
    'the event is neither an S3 object-created record nor an EventBridge "Object Created" event: wire the datasets bucket notification to this function',
  );
}

/**
 * The idempotency key of one delivery: the same object version (or, unversioned, the same
 * ETag and event sequencer) is trained once, however often the event is delivered.
 */
export function idempotencyKey(object: DatasetObject): string {
  const version = object.versionId ?? `${object.etag ?? 'no-etag'}#${object.sequencer ?? ''}`;
  return `train:${object.bucket}/${object.key}@${version}`;
}

function unquote(value: string | undefined): string | undefined {
  return value?.replace(/^"|"$/g, '');
}

function clean(object: DatasetObject): DatasetObject {
  return Object.fromEntries(
    Object.entries(object).filter(([, v]) => v !== undefined && v !== ''),
  ) as unknown as DatasetObject;
}
