import { describe, expect, it } from 'vitest';
import { datasetEventRecords, datasetObjectOf, idempotencyKey } from '../../functions/training/event.ts';
import { failureOf } from '../../functions/training/steps.ts';
import { InputError } from '../../shared/errors.ts';

const s3Record = {
  eventSource: 'aws:s3',
  eventName: 'ObjectCreated:Put',
  s3: {
    bucket: { name: 'edgeloop-datasets' },
    object: { key: 'datasets/pump/day+1%2Bb.csv', eTag: '"abc"', sequencer: '0A1B', size: 10 },
  },
};

const bridgeEvent = {
  source: 'aws.s3',
  'detail-type': 'Object Created',
  detail: {
    bucket: { name: 'edgeloop-datasets' },
    object: { key: 'datasets/pump/day 1.csv', etag: 'abc', 'version-id': 'v7', sequencer: '0A1B', size: 10 },
  },
};

describe('dataset upload events', () => {
  it('decodes an S3 notification key (+ is a space, %2B a plus) and unquotes the ETag', () => {
    expect(datasetObjectOf(s3Record)).toEqual({
      bucket: 'edgeloop-datasets',
      key: 'datasets/pump/day 1+b.csv',
      etag: 'abc',
      sequencer: '0A1B',
      size: 10,
    });
  });

  it('reads an EventBridge Object Created event, version id included', () => {
    expect(datasetObjectOf(bridgeEvent)).toMatchObject({ key: 'datasets/pump/day 1.csv', versionId: 'v7' });
    expect(datasetEventRecords(bridgeEvent)).toEqual([bridgeEvent]);
    expect(datasetEventRecords({ Records: [s3Record, s3Record] })).toHaveLength(2);
  });

  it('refuses anything else with a hint about the wiring', () => {
    expect(() => datasetObjectOf({ hello: 'world' })).toThrow(InputError);
    expect(() => datasetObjectOf({ hello: 'world' })).toThrow(/wire the datasets bucket notification/);
  });

  it('keys idempotency by object version, else by ETag and sequencer', () => {
    const plain = datasetObjectOf(s3Record);
    expect(idempotencyKey(plain)).toBe('train:edgeloop-datasets/datasets/pump/day 1+b.csv@abc#0A1B');
    expect(idempotencyKey({ ...plain, sequencer: '0A1C' })).not.toBe(idempotencyKey(plain));
    expect(idempotencyKey(datasetObjectOf(bridgeEvent))).toBe(
      'train:edgeloop-datasets/datasets/pump/day 1.csv@v7',
    );
  });
});

describe('failureOf', () => {
  it('reads a Step Functions Catch result as well as the in-process runner error', () => {
    const cause = JSON.stringify({ errorType: 'InputError', errorMessage: 'x.csv: the file is empty' });
    expect(failureOf({ Error: 'InputError', Cause: cause })).toEqual({
      name: 'InputError',
      message: 'x.csv: the file is empty',
    });
    expect(failureOf({ Error: 'States.Timeout', Cause: 'task timed out' })).toEqual({
      name: 'States.Timeout',
      message: 'task timed out',
    });
    expect(failureOf({ name: 'Error', message: 'boom' })).toEqual({ name: 'Error', message: 'boom' });
  });
});
