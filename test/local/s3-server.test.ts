/**
 * The local S3 (infra/local/s3) as the stack serves it (guard + SigV4 + server), driven by
 * its real clients: the AWS SDK v3 S3 client with the settings the handlers get from
 * `localEnv`, and the AWS CLI (Debian `awscli`). Each operation the product uses, with S3's
 * semantics and error codes; an event per created object, keys URL-encoded; no object is
 * visible before its body is whole, neither during a slow upload nor after a crash.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type {
  FinalizeHandler,
  FinalizeHandlerArguments,
  FinalizeRequestMiddleware,
  MetadataBearer,
} from '@smithy/types';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LocalS3, type S3EventRecord } from '../../infra/local/s3/server.ts';
import { localS3Server } from '../../infra/local/stack.ts';
import { peerAvailable } from '../support/peers.ts';

const run = promisify(execFile);
const BUCKET = 'things';
const REGION = 'us-east-1';
const credential = { accessKeyId: 'ELLOCALTEST', secretAccessKey: randomBytes(30).toString('base64url') };

let dir: string;
let s3: LocalS3;
let server: Server;
let endpoint: string;
let client: S3Client;
let events: S3EventRecord[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'edgeloop-s3-server-'));
  s3 = await LocalS3.open({ directory: join(dir, 's3'), buckets: [BUCKET], region: REGION });
  s3.on('event', (event) => events.push(...event.Records));
  server = localS3Server(s3, credential);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  client = sdkClient();
});

afterAll(async () => {
  client?.destroy();
  server?.closeAllConnections();
  await new Promise((done) => server?.close(done));
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  events = [];
});

/** The SDK as the handlers use it against the stack (localEnv: path style, default checksums). */
function sdkClient(credentials = credential): S3Client {
  return new S3Client({ endpoint, region: REGION, credentials, forcePathStyle: true });
}

const put = (Key: string, Body: string | Uint8Array, extra: Partial<PutObjectCommand['input']> = {}) =>
  client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body, ...extra }));
const text = async (Key: string, Range?: string) => {
  const result = await client.send(
    new GetObjectCommand({ Bucket: BUCKET, Key, ...(Range ? { Range } : {}) }),
  );
  return { result, body: (await result.Body?.transformToString()) ?? '' };
};
/** The S3 error code (the SDK's error name) and HTTP status a call fails with. */
const failure = (call: Promise<unknown>) =>
  call.then(
    () => 'succeeded',
    (error: { name: string; $metadata?: { httpStatusCode?: number } }) =>
      `${error.name} ${error.$metadata?.httpStatusCode}`,
  );
const md5 = (data: string | Uint8Array) => `"${createHash('md5').update(data).digest('hex')}"`;

describe('objects through the AWS SDK v3', () => {
  it('round-trips bytes, ETag (quoted MD5), Content-Type, stored headers and user metadata', async () => {
    // Prepare
    const body = 'a,b\n1,2\n';

    // Act
    const written = await put('docs/readings.csv', body, {
      ContentType: 'text/csv',
      ContentDisposition: 'attachment; filename="r.csv"',
      Metadata: { origin: 'gateway-7', 'run-id': '42' },
    });
    const { result, body: read } = await text('docs/readings.csv');
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'docs/readings.csv' }));

    // Assess
    expect(written.ETag).toBe(md5(body));
    expect(read).toBe(body);
    for (const answer of [result, head]) {
      expect(answer).toMatchObject({
        ETag: md5(body),
        ContentType: 'text/csv',
        ContentLength: body.length,
        ContentDisposition: 'attachment; filename="r.csv"',
        Metadata: { origin: 'gateway-7', 'run-id': '42' },
      });
      expect(Date.now() - (answer.LastModified?.getTime() ?? 0)).toBeLessThan(60_000);
    }
  });

  it('serves byte ranges as S3 does, and InvalidRange (416) past the end or on an empty object', async () => {
    // Prepare
    await put('range/digits', '0123456789');
    await put('range/empty', '');

    // Act
    const middle = await text('range/digits', 'bytes=2-5');
    const suffix = await text('range/digits', 'bytes=-3');
    const open = await text('range/digits', 'bytes=7-');
    const clamped = await text('range/digits', 'bytes=8-100');
    const multiple = await text('range/digits', 'bytes=0-1,4-5');
    const pastEnd = await failure(text('range/digits', 'bytes=10-12'));
    const empty = await failure(text('range/empty', 'bytes=0-100'));

    // Assess
    expect([middle.body, middle.result.ContentRange, middle.result.ContentLength]).toEqual([
      '2345',
      'bytes 2-5/10',
      4,
    ]);
    expect([suffix.body, suffix.result.ContentRange]).toEqual(['789', 'bytes 7-9/10']);
    expect(open.body).toBe('789');
    expect([clamped.body, clamped.result.ContentRange]).toEqual(['89', 'bytes 8-9/10']);
    expect([multiple.body, multiple.result.ContentRange]).toEqual(['0123456789', undefined]);
    expect(pastEnd).toBe('InvalidRange 416');
    expect(empty).toBe('InvalidRange 416');
  });

  it('honours If-None-Match: * on writes and If-Match / If-None-Match on reads', async () => {
    // Prepare
    const first = await put('cond/model.json', '{"v":1}', { IfNoneMatch: '*' });

    // Act
    const second = await failure(put('cond/model.json', '{"v":2}', { IfNoneMatch: '*' }));
    const stored = await text('cond/model.json');
    const wrongTag = await failure(
      client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'cond/model.json', IfMatch: '"0000"' })),
    );
    const rightTag = await client.send(
      new GetObjectCommand({ Bucket: BUCKET, Key: 'cond/model.json', IfMatch: first.ETag }),
    );
    const notModified = await failure(
      client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'cond/model.json', IfNoneMatch: first.ETag })),
    );
    await rightTag.Body?.transformToString();

    // Assess
    expect(second).toBe('PreconditionFailed 412');
    expect(stored.body).toBe('{"v":1}');
    expect(wrongTag).toBe('PreconditionFailed 412');
    expect(rightTag.ETag).toBe(first.ETag);
    expect(notModified).toMatch(/ 304$/); // no body: the SDK names it by its status alone
  });

  it("answers S3's error codes: NoSuchKey, NoSuchBucket, NotFound on HEAD, NoSuchUpload, BadDigest, AccessDenied", async () => {
    // Act
    const missingKey = await failure(text('nothing/here'));
    const missingBucket = await failure(
      client.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'k' })),
    );
    const headMissing = await failure(
      client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'nothing/here' })),
    );
    const headBucket = await failure(client.send(new HeadBucketCommand({ Bucket: 'no-such-bucket' })));
    const abortUnknown = await failure(
      client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'k', UploadId: 'A'.repeat(32) })),
    );
    const badMd5 = await failure(
      put('digest/x', 'hello', { ContentMD5: Buffer.alloc(16).toString('base64') }),
    );
    const stranger = sdkClient({ accessKeyId: 'SOMEONE', secretAccessKey: 'ELSE' });
    const denied = await failure(
      stranger.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'docs/readings.csv' })),
    );
    stranger.destroy();
    const written = await failure(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'digest/x' })));

    // Assess
    expect(missingKey).toBe('NoSuchKey 404');
    expect(missingBucket).toBe('NoSuchBucket 404');
    expect(headMissing).toBe('NotFound 404');
    expect(headBucket).toBe('NotFound 404');
    expect(abortUnknown).toBe('NoSuchUpload 404');
    expect(badMd5).toBe('BadDigest 400');
    expect(denied).toBe('AccessDenied 403');
    expect(written).toBe('NotFound 404');
  });

  it('refuses a body that is not the one the signature covers (XAmzContentSHA256Mismatch), storing nothing', async () => {
    // Prepare: a client that swaps the body after signing, as a man in the middle would.
    const tampering = sdkClient();
    tampering.middlewareStack.addRelativeTo(
      ((next: FinalizeHandler<object, MetadataBearer>) => async (args: FinalizeHandlerArguments<object>) => {
        (args.request as { body: unknown }).body = 'EVIL!';
        return next(args);
      }) as FinalizeRequestMiddleware<object, MetadataBearer>,
      { relation: 'after', toMiddleware: 'httpSigningMiddleware', name: 'swapBody' },
    );

    // Act
    const refused = await failure(
      tampering.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'signed/body', Body: 'good!' })),
    );
    tampering.destroy();
    const stored = await failure(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'signed/body' })));

    // Assess
    expect(refused).toBe('XAmzContentSHA256Mismatch 400');
    expect(stored).toBe('NotFound 404');
  });

  it('copies with the source metadata (COPY) or new metadata (REPLACE), and refuses a copy onto itself', async () => {
    // Prepare
    await put('copy/source.csv', 'x\n1\n', { ContentType: 'text/csv', Metadata: { origin: 'a' } });

    // Act
    const copied = await client.send(
      new CopyObjectCommand({
        Bucket: BUCKET,
        Key: 'copy/kept.csv',
        CopySource: `${BUCKET}/copy/source.csv`,
      }),
    );
    await client.send(
      new CopyObjectCommand({
        Bucket: BUCKET,
        Key: 'copy/replaced.csv',
        CopySource: `${BUCKET}/copy/source.csv`,
        MetadataDirective: 'REPLACE',
        ContentType: 'text/plain',
        Metadata: { origin: 'b' },
      }),
    );
    const kept = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'copy/kept.csv' }));
    const replaced = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'copy/replaced.csv' }));
    const onItself = await failure(
      client.send(
        new CopyObjectCommand({
          Bucket: BUCKET,
          Key: 'copy/source.csv',
          CopySource: `${BUCKET}/copy/source.csv`,
        }),
      ),
    );

    // Assess
    expect(copied.CopyObjectResult?.ETag).toBe(md5('x\n1\n'));
    expect(kept).toMatchObject({ ContentType: 'text/csv', Metadata: { origin: 'a' }, ETag: md5('x\n1\n') });
    expect(replaced).toMatchObject({ ContentType: 'text/plain', Metadata: { origin: 'b' } });
    expect(onItself).toBe('InvalidRequest 400');
    expect(events.map((e) => [e.eventName, e.s3.object.key])).toEqual([
      ['ObjectCreated:Put', 'copy/source.csv'],
      ['ObjectCreated:Copy', 'copy/kept.csv'],
      ['ObjectCreated:Copy', 'copy/replaced.csv'],
    ]);
  });

  it('deletes one key (idempotent) and many (DeleteObjects, missing keys reported deleted, Quiet)', async () => {
    // Prepare
    for (const key of ['del/a', 'del/b', 'del/c', 'del/d']) await put(key, key);

    // Act
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'del/a' }));
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'del/a' }));
    const many = await client.send(
      new DeleteObjectsCommand({
        Bucket: BUCKET,
        Delete: { Objects: [{ Key: 'del/b' }, { Key: 'del/c' }, { Key: 'del/never' }] },
      }),
    );
    const quiet = await client.send(
      new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key: 'del/d' }], Quiet: true } }),
    );
    const left = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'del/' }));

    // Assess
    expect(many.Deleted?.map((d) => d.Key)).toEqual(['del/b', 'del/c', 'del/never']);
    expect(many.Errors).toBeUndefined();
    expect(quiet.Deleted).toBeUndefined();
    expect(left.KeyCount).toBe(0);
    expect(left.Contents).toBeUndefined();
  });

  it('pages a listing with a delimiter: common prefixes and keys in order, continuation tokens, StartAfter, V1 markers', async () => {
    // Prepare
    const keys = [
      'list/2024/a.csv',
      'list/2024/b.csv',
      'list/2025/c.csv',
      'list/top1.csv',
      'list/top2.csv',
      'list/top3.csv',
      'list-other/x',
    ];
    for (const key of keys) await put(key, key);

    // Act
    const pages: ListObjectsV2CommandOutput[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({
          Bucket: BUCKET,
          Prefix: 'list/',
          Delimiter: '/',
          MaxKeys: 2,
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      pages.push(page);
      token = page.NextContinuationToken;
    } while (token);
    const after = await client.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/', StartAfter: 'list/2024/a.csv' }),
    );
    const v1First = await client.send(
      new ListObjectsCommand({ Bucket: BUCKET, Prefix: 'list/', Delimiter: '/', MaxKeys: 1 }),
    );
    const v1Next = await client.send(
      new ListObjectsCommand({ Bucket: BUCKET, Prefix: 'list/', Delimiter: '/', Marker: v1First.NextMarker }),
    );

    // Assess
    const items = (page: ListObjectsV2CommandOutput) => [
      ...(page.CommonPrefixes ?? []).map((p) => p.Prefix),
      ...(page.Contents ?? []).map((c) => c.Key),
    ];
    expect(pages.map(items)).toEqual([
      ['list/2024/', 'list/2025/'],
      ['list/top1.csv', 'list/top2.csv'],
      ['list/top3.csv'],
    ]);
    expect(pages.map((p) => [p.KeyCount, p.IsTruncated])).toEqual([
      [2, true],
      [2, true],
      [1, false],
    ]);
    expect(pages[1]?.Contents?.[0]).toMatchObject({ Size: 13, ETag: md5('list/top1.csv') });
    expect(after.Contents?.map((c) => c.Key)).toEqual(keys.slice(1, 6));
    expect([v1First.CommonPrefixes?.[0]?.Prefix, v1First.NextMarker, v1First.IsTruncated]).toEqual([
      'list/2024/',
      'list/2024/',
      true,
    ]);
    expect(v1Next.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['list/2025/']);
    expect(v1Next.Contents?.map((c) => c.Key)).toEqual(['list/top1.csv', 'list/top2.csv', 'list/top3.csv']);
  });

  it('sends an event per created object, its key URL-encoded as S3 does, and none for a delete', async () => {
    // Act
    const written = await put('events/a b+c/ü.csv', 'x');
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'events/a b+c/ü.csv' }));
    await put('events/plain.csv', 'yy');

    // Assess
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({
      eventSource: 'aws:s3',
      eventName: 'ObjectCreated:Put',
      awsRegion: REGION,
      s3: {
        bucket: { name: BUCKET, arn: `arn:aws:s3:::${BUCKET}` },
        object: { key: 'events/a+b%2Bc/%C3%BC.csv', size: 1, eTag: written.ETag?.slice(1, -1) },
      },
    });
    expect(events[1]?.s3.object.key).toBe('events/plain.csv');
    expect((events[1]?.s3.object.sequencer ?? '') > (events[0]?.s3.object.sequencer ?? '')).toBe(true);
  });

  it('completes a multipart upload from the SDK only with its parts in order and all but the last >= 5 MiB', async () => {
    // Prepare
    const key = 'mp/sdk.bin';
    const start = () => client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    const small = await start();
    const part = async (UploadId: string, PartNumber: number, Body: Uint8Array) =>
      (await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber, Body })))
        .ETag ?? '';
    const complete = (UploadId: string, Parts: { ETag: string; PartNumber: number }[]) =>
      client.send(
        new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: key,
          UploadId,
          MultipartUpload: { Parts },
        }),
      );
    const tiny = Buffer.from('tiny');
    const smallTag = await part(small.UploadId ?? '', 1, tiny);
    const smallTag2 = await part(small.UploadId ?? '', 2, tiny);

    // Act
    const tooSmall = await failure(
      complete(small.UploadId ?? '', [
        { ETag: smallTag, PartNumber: 1 },
        { ETag: smallTag2, PartNumber: 2 },
      ]),
    );
    const wrongTag = await failure(complete(small.UploadId ?? '', [{ ETag: '"00"', PartNumber: 1 }]));
    const outOfOrder = await failure(
      complete(small.UploadId ?? '', [
        { ETag: smallTag2, PartNumber: 2 },
        { ETag: smallTag, PartNumber: 1 },
      ]),
    );
    const big = randomBytes(5 * 1024 * 1024);
    const upload = await start();
    const tags = [await part(upload.UploadId ?? '', 1, big), await part(upload.UploadId ?? '', 2, tiny)];
    const done = await complete(
      upload.UploadId ?? '',
      tags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })),
    );
    const again = await failure(complete(upload.UploadId ?? '', [{ ETag: tags[0] ?? '', PartNumber: 1 }]));
    const stored = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    const bytes = Buffer.from((await stored.Body?.transformToByteArray()) ?? []);

    // Assess
    expect([tooSmall, wrongTag, outOfOrder]).toEqual([
      'EntityTooSmall 400',
      'InvalidPart 400',
      'InvalidPartOrder 400',
    ]);
    const partsDigest = createHash('md5')
      .update(Buffer.concat(tags.map((tag) => Buffer.from(tag.slice(1, -1), 'hex'))))
      .digest('hex');
    expect(done.ETag).toBe(`"${partsDigest}-2"`);
    expect(stored.ETag).toBe(done.ETag);
    expect(bytes.equals(Buffer.concat([big, tiny]))).toBe(true);
    expect(again).toBe('NoSuchUpload 404');
    expect(events.map((e) => e.eventName)).toEqual(['ObjectCreated:CompleteMultipartUpload']);
  });
});

describe('streamed uploads as the SDK sends them by default (aws-chunked with a checksum trailer)', () => {
  it('stores the decoded bytes, without aws-chunked as their encoding', async () => {
    // Prepare: the SDK with its default checksum settings, recording how it sent the body.
    const defaults = new S3Client({
      endpoint,
      region: REGION,
      credentials: credential,
      forcePathStyle: true,
    });
    const sent: Record<string, string>[] = [];
    defaults.middlewareStack.add(
      ((next: FinalizeHandler<object, MetadataBearer>) => async (args: FinalizeHandlerArguments<object>) => {
        sent.push({ ...(args.request as { headers: Record<string, string> }).headers });
        return next(args);
      }) as FinalizeRequestMiddleware<object, MetadataBearer>,
      { step: 'finalizeRequest', name: 'recordHeaders' },
    );
    const bytes = randomBytes(200_000);
    const body = new PassThrough();
    body.end(bytes);

    // Act
    await defaults.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'chunked/a.bin', Body: body, ContentLength: bytes.length }),
    );
    const stored = await defaults.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'chunked/a.bin' }));
    const read = Buffer.from((await stored.Body?.transformToByteArray()) ?? []);
    defaults.destroy();

    // Assess
    expect(sent[0]).toMatchObject({
      'content-encoding': 'aws-chunked',
      'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
      'x-amz-trailer': 'x-amz-checksum-crc32',
    });
    expect(read.equals(bytes)).toBe(true);
    expect(stored.ETag).toBe(md5(bytes));
    expect(stored.ContentEncoding).toBeUndefined();
  });

  it('refuses a body whose trailer checksum does not match, and a broken framing, storing nothing', async () => {
    // Prepare: the server alone (no guard), spoken to in raw HTTP.
    const bare = createHttpServer(s3.handle);
    await new Promise<void>((done) => bare.listen(0, '127.0.0.1', done));
    const port = (bare.address() as { port: number }).port;
    const send = (key: string, framed: string) =>
      new Promise<{ status: number; body: string }>((done, fail) => {
        const request = httpRequest(
          {
            host: '127.0.0.1',
            port,
            method: 'PUT',
            path: `/${BUCKET}/${key}`,
            headers: {
              'content-encoding': 'aws-chunked',
              'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
              'x-amz-trailer': 'x-amz-checksum-crc32',
              'x-amz-decoded-content-length': 5,
              'content-length': Buffer.byteLength(framed),
            },
          },
          (response) => {
            let body = '';
            response.on('data', (chunk: Buffer) => {
              body += chunk.toString();
            });
            response.on('end', () => done({ status: response.statusCode ?? 0, body }));
          },
        );
        request.on('error', fail);
        request.end(framed);
      });
    const crc = (text: string) => {
      const value = Buffer.alloc(4);
      value.writeUInt32BE(crc32(Buffer.from(text)) >>> 0);
      return value.toString('base64');
    };

    // Act
    const good = await send(
      'chunked/good',
      `5\r\nhello\r\n0\r\nx-amz-checksum-crc32:${crc('hello')}\r\n\r\n`,
    );
    const wrong = await send(
      'chunked/wrong',
      `5\r\nhello\r\n0\r\nx-amz-checksum-crc32:${crc('HELLO')}\r\n\r\n`,
    );
    const broken = await send('chunked/broken', `5\r\nhelloXX\r\n0\r\n\r\n`);
    bare.closeAllConnections();
    await new Promise((done) => bare.close(done));
    const stored = await Promise.all(
      ['chunked/good', 'chunked/wrong', 'chunked/broken'].map((Key) =>
        failure(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key }))),
      ),
    );

    // Assess
    expect(good.status).toBe(200);
    expect([wrong.status, wrong.body]).toEqual([400, expect.stringContaining('<Code>BadDigest</Code>')]);
    expect([broken.status, broken.body]).toEqual([
      400,
      expect.stringContaining('<Code>IncompleteBody</Code>'),
    ]);
    expect(stored).toEqual(['succeeded', 'NotFound 404', 'NotFound 404']);
  });
});

describe('crash safety', () => {
  it('shows no part of an object while its body is arriving, and keeps the old one when the upload breaks off', async () => {
    // Prepare: an old version, and a slow upload of a new one (half the body, then a pause).
    await put('slow/model.bin', 'old version');
    events = [];
    const abort = new AbortController();
    const size = 1024 * 1024;
    const slowUpload = (Key: string) => {
      const body = new PassThrough();
      body.write(Buffer.alloc(size / 2, 1));
      return client
        .send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: body, ContentLength: size }), {
          abortSignal: abort.signal,
        })
        .catch((error: Error) => error.name);
    };
    const uploads = [slowUpload('slow/model.bin'), slowUpload('slow/new.bin')];
    await waitFor(() => tempFiles(join(dir, 's3')).filter((file) => file.size >= size / 2).length === 2);

    // Act: read while the bytes are half there, then break the upload off.
    const during = await text('slow/model.bin');
    const freshDuring = await failure(
      client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'slow/new.bin' })),
    );
    const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'slow/' }));
    abort.abort();
    const outcomes = await Promise.all(uploads);
    await waitFor(() => tempFiles(join(dir, 's3')).length === 0);
    const after = await text('slow/model.bin');

    // Assess
    expect(during.body).toBe('old version');
    expect(freshDuring).toBe('NotFound 404');
    expect(listed.Contents?.map((c) => c.Key)).toEqual(['slow/model.bin']);
    expect(listed.Contents?.[0]?.Size).toBe('old version'.length);
    expect(after.body).toBe('old version');
    expect(outcomes).toEqual(['AbortError', 'AbortError']);
    expect(events).toEqual([]);
  });

  it('leaves no object after the server process is killed mid-upload, and clears the partial file at the next start', async () => {
    // Prepare: the server in a child process, a 1 MiB PUT of which half is sent.
    const root = join(dir, 'crash');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', new URL('../support/s3-server-process.ts', import.meta.url).pathname, root, BUCKET],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const port = await new Promise<number>((done, fail) => {
      child.stdout?.once('data', (chunk: Buffer) => done(Number(chunk.toString().trim())));
      child.once('exit', (code) => fail(new Error(`the S3 server process exited with ${code}`)));
    });
    const request = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'PUT',
      path: `/${BUCKET}/crash/model.bin`,
      headers: { 'content-length': 1024 * 1024 },
    });
    request.on('error', () => {});
    request.write(Buffer.alloc(512 * 1024, 7));
    await waitFor(() => tempFiles(root).some((file) => file.size >= 512 * 1024));

    // Act
    child.kill('SIGKILL');
    await new Promise((done) => child.once('exit', done));
    const leftByCrash = tempFiles(root).length;
    const restarted = await LocalS3.open({ directory: root, buckets: [BUCKET], region: REGION });
    const listing = await restarted.store.list(BUCKET, {
      prefix: '',
      delimiter: '',
      after: '',
      maxKeys: 1000,
    });

    // Assess
    expect(leftByCrash).toBe(1);
    await expect(restarted.store.head(BUCKET, 'crash/model.bin')).rejects.toMatchObject({
      code: 'NoSuchKey',
    });
    expect(listing.objects).toEqual([]);
    expect(tempFiles(root)).toEqual([]);
  });

  it('reads a data dir s3rver wrote: its objects, types and metadata are imported, its files removed', async () => {
    // Prepare: the files s3rver 3.7 leaves for datasets/old run.csv (metadata.json, md5).
    const root = join(dir, 'legacy');
    const folder = join(root, BUCKET, 'datasets', 'old run');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'data.csv._S3rver_object'), 'a,b\n1,2\n');
    writeFileSync(
      join(folder, 'data.csv._S3rver_object.md5'),
      createHash('md5').update('a,b\n1,2\n').digest('hex'),
    );
    writeFileSync(
      join(folder, 'data.csv._S3rver_metadata.json'),
      JSON.stringify({ 'content-type': 'text/csv', 'x-amz-meta-origin': 'gateway-1' }),
    );
    mkdirSync(join(root, BUCKET, '._S3rver_uploads', 'abc'), { recursive: true });

    // Act
    const opened = await LocalS3.open({ directory: root, buckets: [BUCKET], region: REGION });
    const object = await opened.store.open(BUCKET, 'datasets/old run/data.csv');
    const data = await new Promise<string>((done) => {
      let read = '';
      object
        .stream()
        .on('data', (chunk: Buffer) => {
          read += chunk.toString();
        })
        .on('end', () => done(read));
    });

    // Assess
    expect(data).toBe('a,b\n1,2\n');
    expect(object.meta).toMatchObject({
      contentType: 'text/csv',
      userMetadata: { origin: 'gateway-1' },
      etag: md5('a,b\n1,2\n'),
    });
    expect(readdirSync(folder).filter((name) => name.includes('_S3rver_'))).toEqual([]);
    expect(readdirSync(join(root, BUCKET))).not.toContain('._S3rver_uploads');
  });
});

const aws = spawnSync('aws', ['--version'], { encoding: 'utf8' });
const awsAvailable = peerAvailable(
  'local S3 with the AWS CLI',
  aws.status === 0 ? undefined : '`aws` is missing',
  'apt-get install awscli',
);

describe.runIf(awsAvailable)('the AWS CLI', () => {
  const cli = (...args: string[]) =>
    run('aws', ['--endpoint-url', endpoint, ...args], {
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: credential.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credential.secretAccessKey,
        AWS_DEFAULT_REGION: REGION,
        AWS_CONFIG_FILE: join(dir, 'no-config'),
        AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-credentials'),
      },
      maxBuffer: 16 * 1024 * 1024,
    });

  it('uploads a file over 8 MB as a multipart upload (one event), downloads it whole, lists and removes', async () => {
    // Prepare
    const local = join(dir, 'big.bin');
    const bytes = randomBytes(9 * 1024 * 1024 + 123);
    writeFileSync(local, bytes);
    writeFileSync(join(dir, 'small.txt'), 'small');
    await cli('s3', 'cp', local, `s3://${BUCKET}/cli/a b/big.bin`);
    await cli(
      's3',
      'cp',
      join(dir, 'small.txt'),
      `s3://${BUCKET}/cli/small+1.txt`,
      '--content-type',
      'text/plain',
    );
    const uploadEvents = events.map((e) => [e.eventName, e.s3.object.key]);

    // Act
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'cli/a b/big.bin' }));
    await cli('s3', 'cp', `s3://${BUCKET}/cli/a b/big.bin`, join(dir, 'back.bin'));
    const listing = (await cli('s3', 'ls', `s3://${BUCKET}/cli/`)).stdout;
    const recursive = (await cli('s3', 'ls', '--recursive', `s3://${BUCKET}/cli/`)).stdout;
    await cli('s3', 'rm', '--recursive', `s3://${BUCKET}/cli/`);
    const left = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'cli/' }));

    // Assess
    expect(head.ETag).toMatch(/^"[0-9a-f]{32}-2"$/);
    expect(head.ContentLength).toBe(bytes.length);
    expect(readFileSync(join(dir, 'back.bin')).equals(bytes)).toBe(true);
    expect(uploadEvents).toEqual([
      ['ObjectCreated:CompleteMultipartUpload', 'cli/a+b/big.bin'],
      ['ObjectCreated:Put', 'cli/small%2B1.txt'],
    ]);
    expect(listing).toMatch(/PRE a b\//);
    expect(listing).toMatch(/small\+1\.txt/);
    expect(recursive).toMatch(/cli\/a b\/big\.bin/);
    expect(left.KeyCount).toBe(0);
  }, 120_000);

  it('answers the CLI with the error code it prints', async () => {
    // Act
    const missing = await run(
      'aws',
      ['--endpoint-url', endpoint, 's3api', 'head-bucket', '--bucket', BUCKET],
      {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: 'NOT-OURS',
          AWS_SECRET_ACCESS_KEY: 'x',
          AWS_DEFAULT_REGION: REGION,
        },
      },
    ).then(
      () => 'succeeded',
      (error: { stderr: string }) => error.stderr,
    );
    const noKey = await cli(
      's3api',
      'get-object',
      '--bucket',
      BUCKET,
      '--key',
      'cli/none',
      join(dir, 'none'),
    ).then(
      () => 'succeeded',
      (error: { stderr: string }) => error.stderr,
    );

    // Assess
    expect(missing).toMatch(/403/);
    expect(noKey).toMatch(/NoSuchKey/);
  });
});

async function waitFor(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((done) => setTimeout(done, 20));
  }
}

/** The files an S3 root holds in its temp folder (uploads in progress). */
function tempFiles(root: string): { name: string; size: number }[] {
  try {
    return readdirSync(join(root, '.tmp')).map((name) => ({
      name,
      size: readFileSync(join(root, '.tmp', name)).length,
    }));
  } catch {
    return [];
  }
}
