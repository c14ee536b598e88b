/**
 * Every HTTP listener of a running local stack, probed as a web page in the developer's
 * browser would reach it (a cross-origin request, a preflight, a Sec-Fetch-Site of another
 * site) and as a DNS-rebinding page would (a foreign Host): each is refused, with no effect
 * (no object stored, no training run, no item, no stream, no retained notice) and no CORS
 * grant, while the SDK clients keep working. The local S3 also takes only SigV4 requests
 * signed with the data dir's credential: no anonymous request, form POST or other key.
 */
import { GetRetainedMessageCommand } from '@aws-sdk/client-iot-data-plane';
import { ListStreamsCommand } from '@aws-sdk/client-kinesis';
import { HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordTrainEvents, startTestStack } from '../../bench/support/local-stack.ts';
import { localCredential } from '../../infra/local/credentials.ts';
import { localKinesisClient } from '../../infra/local/kinesis.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { dynamoClient, iotDataClient, s3Client } from '../../shared/aws.ts';
import { buckets, tables, topicFor } from '../../shared/topology.ts';
import { FROM_PAGE, formPost, outcome, type Probe, probe } from '../support/http-probe.ts';

let stack: LocalStack;
const train = recordTrainEvents();
const DATASET_KEY = 'datasets/guarded/from-a-page.csv';
const NOTICE_TOPIC = topicFor('release', { model: 'guarded' });

beforeAll(async () => {
  stack = await startTestStack({ handlers: train.handlers, dashboard: true });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

/** One request per listener that would change something if it got through. */
function effectful(): Record<string, { endpoint: string } & Probe> {
  const endpoints = stack.endpoints;
  return {
    s3: {
      endpoint: endpoints.s3,
      method: 'PUT',
      path: `/${buckets.datasets.localName}/${DATASET_KEY}`,
      headers: { 'content-type': 'text/plain' },
      body: 'a,b,label\n1,2,x\n',
    },
    dynamodb: {
      endpoint: endpoints.dynamodb,
      method: 'POST',
      headers: { 'content-type': 'text/plain', 'x-amz-target': 'DynamoDB_20120810.PutItem' },
      body: JSON.stringify({
        TableName: tables.registry.localName,
        Item: { model: { S: 'guarded' }, version: { N: '1' }, status: { S: 'released' } },
      }),
    },
    kinesis: {
      endpoint: endpoints.kinesis,
      method: 'POST',
      headers: { 'content-type': 'text/plain', 'x-amz-target': 'Kinesis_20131202.CreateStream' },
      body: JSON.stringify({ StreamName: 'from-a-page', ShardCount: 1 }),
    },
    iotData: {
      endpoint: endpoints.iotData,
      method: 'POST',
      path: `/topics/${encodeURIComponent(NOTICE_TOPIC)}?qos=1&retain=true`,
      headers: { 'content-type': 'text/plain' },
      body: '{"model":"guarded","version":1}',
    },
    dashboard: { endpoint: endpoints.dashboard ?? '', path: '/api/snapshot' },
  };
}

const hostOf = (endpoint: string) => new URL(endpoint).host;
const attacks = (endpoint: string, request: Probe): [string, Probe][] => [
  ['a foreign Origin', { ...request, headers: { ...request.headers, ...FROM_PAGE } }],
  ['an Origin alone', { ...request, headers: { ...request.headers, origin: 'null' } }],
  [
    'a cross-site Sec-Fetch-Site',
    { ...request, headers: { ...request.headers, 'sec-fetch-site': 'same-site' } },
  ],
  [
    'a foreign Host (DNS rebinding)',
    { ...request, headers: { ...request.headers, host: `evil.example:${new URL(endpoint).port}` } },
  ],
  [
    'a preflight',
    {
      method: 'OPTIONS',
      path: request.path ?? '/',
      headers: {
        ...FROM_PAGE,
        'access-control-request-method': request.method ?? 'GET',
        'access-control-request-headers': 'content-type,x-amz-target',
      },
    },
  ],
  // The page's own origin is still another origin than the listener's.
  [
    'an Origin on another loopback port',
    { ...request, headers: { ...request.headers, origin: `http://127.0.0.1:1`, host: hostOf(endpoint) } },
  ],
];

describe('the guard in front of every local listener', () => {
  it.each(['s3', 'dynamodb', 'kinesis', 'iotData', 'dashboard'])(
    '%s refuses what a web page sends, and grants no CORS',
    async (listener) => {
      // Prepare
      const { endpoint, ...request } = effectful()[listener] ?? { endpoint: '' };

      // Act
      const answers = [];
      for (const [what, attack] of attacks(endpoint, request))
        answers.push({ what, answer: await probe(endpoint, attack) });

      // Assess
      for (const { what, answer } of answers) {
        expect({ what, status: answer.status }).toEqual({ what, status: 403 });
        expect(answer.body).toMatch(/web page|not a loopback name/);
        expect(Object.keys(answer.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
      }
    },
  );

  it('the local S3 refuses anonymous and form-POST writes and any key but the data dir credential', async () => {
    // Prepare
    const form = formPost({ key: DATASET_KEY, file: 'a,b,label\n1,2,x\n' });
    const bucket = `/${buckets.datasets.localName}`;
    const credential = localCredential(stack.dataDir);
    const signedBy = (credentials: { accessKeyId: string; secretAccessKey: string }) =>
      new S3Client({ endpoint: stack.endpoints.s3, region: 'us-east-1', forcePathStyle: true, credentials });
    const put = (client: S3Client, body = 'a,b\n1,2\n', contentType?: string) =>
      outcome(
        client.send(
          new PutObjectCommand({
            Bucket: buckets.datasets.localName,
            Key: DATASET_KEY,
            Body: body,
            ...(contentType ? { ContentType: contentType } : {}),
          }),
        ),
        'stored',
        true,
      ).finally(() => client.destroy());

    // Act
    const anonymous = await probe(stack.endpoints.s3, {
      method: 'PUT',
      path: `${bucket}/${DATASET_KEY}`,
      headers: { 'content-type': 'text/plain' },
      body: 'a,b,label\n1,2,x\n',
    });
    const formUpload = await probe(stack.endpoints.s3, {
      method: 'POST',
      path: bucket,
      headers: { 'content-type': form.contentType },
      body: form.body,
    });
    const wellKnownKey = await put(signedBy({ accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }));
    // Even signed, a multipart (form) body is refused before the S3 server reads it.
    const signedMultipart = await put(signedBy(credential), form.body, form.contentType);
    const wrongSecret = await put(signedBy({ ...credential, secretAccessKey: 'x'.repeat(40) }));

    // Assess
    expect(anonymous.status).toBe(403);
    expect(anonymous.body).toMatch(/<Code>AccessDenied<\/Code><Message>anonymous requests are not accepted/);
    expect(formUpload.status).toBe(403);
    expect(formUpload.body).toMatch(/form uploads/);
    expect(wellKnownKey).toMatch(/AccessDenied: access key 'S3RVER' is not this local stack's/);
    expect(wrongSecret).toMatch(/AccessDenied: the SigV4 signature does not match/);
    expect(signedMultipart).toMatch(/AccessDenied: browser form uploads/);
  });

  it('leaves no trace of the refused requests: no object, no training run, no item, no stream, no notice', async () => {
    // Prepare
    for (const [listener, { endpoint, ...request }] of Object.entries(effectful()))
      if (listener !== 'dashboard')
        for (const [, attack] of attacks(endpoint, request)) await probe(endpoint, attack);
    await probe(stack.endpoints.s3, {
      method: 'PUT',
      path: `/${buckets.datasets.localName}/${DATASET_KEY}`,
      body: 'a,b,label\n1,2,x\n',
    });
    await stack.idle();

    // Act
    const object = await outcome(
      s3Client().send(new HeadObjectCommand({ Bucket: buckets.datasets.localName, Key: DATASET_KEY })),
      'stored',
    );
    const item = await dynamoClient().send(
      new GetCommand({ TableName: tables.registry.localName, Key: { model: 'guarded', version: 1 } }),
    );
    const kinesis = localKinesisClient(stack.endpoints.kinesis);
    const streams = await kinesis.send(new ListStreamsCommand({}));
    kinesis.destroy();
    const notice = await outcome(
      iotDataClient().send(new GetRetainedMessageCommand({ topic: NOTICE_TOPIC })),
      'retained',
    );

    // Assess
    expect(object).toBe('NotFound');
    expect(train.records).toEqual([]);
    expect(item.Item).toBeUndefined();
    expect(streams.StreamNames).not.toContain('from-a-page');
    expect(notice).toBe('ResourceNotFoundException');
  });

  it('serves the local tools: the SDK clients work and dynalite grants no CORS even when asked without an Origin', async () => {
    // Act
    await s3Client().send(
      new PutObjectCommand({ Bucket: buckets.models.localName, Key: 'guard/ok.txt', Body: 'ok' }),
    );
    const head = await s3Client().send(
      new HeadObjectCommand({ Bucket: buckets.models.localName, Key: 'guard/ok.txt' }),
    );
    const options = await probe(stack.endpoints.dynamodb, { method: 'OPTIONS', path: '/' });
    const dashboardOwnPage = await probe(stack.endpoints.dashboard ?? '', {
      path: '/api/snapshot',
      headers: {
        origin: `http://${hostOf(stack.endpoints.dashboard ?? '')}`,
        'sec-fetch-site': 'same-origin',
      },
    });

    // Assess
    expect(head.ContentLength).toBe(2);
    expect(Object.keys(options.headers).filter((name) => name.startsWith('access-control-'))).toEqual([]);
    expect(dashboardOwnPage.status).not.toBe(403);
  });
});
