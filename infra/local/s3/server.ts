/**
 * The local S3: the S3 REST operations edgeloop, its CLI, its tests and the AWS CLI use,
 * path-style, over ObjectStore (store.ts). HTTP only here: routing, headers, checksums,
 * S3's error documents, and S3-shaped object-created events ('event', as S3 notifications
 * deliver them: keys URL-encoded). Authentication is the caller's job (sigv4.ts runs in front,
 * behind shared/request-guard.ts); what gets here is signed with the data dir's credential,
 * and its body is checked against the hash the signature covers before it is stored.
 *
 * Operations: ListBuckets, CreateBucket, HeadBucket, ListObjects (V1 and V2), DeleteObjects,
 * PutObject (If-None-Match: *), GetObject and HeadObject (Range, If-Match, If-None-Match,
 * If-(Un)Modified-Since), CopyObject, DeleteObject, and multipart uploads (Create, UploadPart,
 * Complete, Abort). Anything else is answered 501 NotImplemented, naming what was asked.
 */
import { createHash, type Hash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import { AwsChunkedDecoder } from './aws-chunked.ts';
import { badDigest, noSuchBucket, S3Error } from './errors.ts';
import { importS3rverObjects } from './legacy.ts';
import { MAX_PARTS, type ObjectAttributes, type ObjectMeta, ObjectStore, STORED_HEADERS } from './store.ts';
import {
  completeUploadXml,
  copyResultXml,
  deleteResultXml,
  errorXml,
  initiateUploadXml,
  type ListRequest,
  listBucketsXml,
  listV1Xml,
  listV2Xml,
  parseComplete,
  parseDelete,
} from './xml.ts';

export interface LocalS3Options {
  /** Where objects live (created if missing). */
  directory: string;
  /** Buckets created at start when missing. */
  buckets?: readonly string[];
  region: string;
  /** Told about requests that failed on the server's side (500s). */
  log?: (line: string) => void;
}

/** One S3 notification record, as S3 delivers it (object key URL-encoded, spaces as '+'). */
export interface S3EventRecord {
  eventVersion: string;
  eventSource: 'aws:s3';
  awsRegion: string;
  eventTime: string;
  eventName: string;
  s3: {
    s3SchemaVersion: string;
    bucket: { name: string; arn: string };
    object: { key: string; size: number; eTag: string; sequencer: string };
  };
}

/** S3's limit for one PUT (and one part). */
const MAX_OBJECT_BYTES = 5 * 1024 ** 3;
/** DeleteObjects (1,000 keys of up to 1 KiB) and CompleteMultipartUpload (10,000 parts) fit. */
const MAX_XML_BYTES = 2 * 1024 * 1024;
/** S3 allows 2 KB of user metadata. */
const MAX_USER_METADATA_BYTES = 2048;
const STREAMING_UNSIGNED = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
/** Query parameters that select nothing (the SDK adds `x-id`). */
const IGNORED_PARAMS = new Set(['x-id']);

export class LocalS3 extends EventEmitter<{ event: [{ Records: S3EventRecord[] }] }> {
  private sequence = 0n;

  private constructor(
    readonly store: ObjectStore,
    private readonly options: LocalS3Options,
  ) {
    super();
  }

  static async open(options: LocalS3Options): Promise<LocalS3> {
    const store = await ObjectStore.open(options.directory, options.buckets);
    const imported = await importS3rverObjects(store, options.directory);
    if (imported > 0)
      options.log?.(`s3: imported ${imported} objects s3rver had stored in ${options.directory}`);
    return new LocalS3(store, options);
  }

  /** The request listener. */
  readonly handle = (request: IncomingMessage, response: ServerResponse): void => {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    response.setHeader('x-amz-request-id', requestId);
    this.route(request, response).catch((error: unknown) => this.fail(request, response, error, requestId));
  };

  private async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const { bucket, key, query } = parseUrl(request.url ?? '/');
    const method = request.method ?? 'GET';
    const params = [...query.keys()].filter((name) => !IGNORED_PARAMS.has(name));
    const only = (...allowed: string[]) => {
      const other = params.find((name) => !allowed.includes(name));
      if (other !== undefined)
        throw notImplemented(
          `${method} ${bucket ? (key ? 'on an object' : 'on a bucket') : '/'} with ?${other}`,
        );
    };

    if (!bucket) {
      if (method !== 'GET') throw methodNotAllowed(method);
      only();
      return send(response, 200, listBucketsXml(await this.store.listBuckets()));
    }
    if (!key) {
      switch (method) {
        case 'GET':
          if (query.get('list-type') === '2') {
            only(
              'list-type',
              'prefix',
              'delimiter',
              'max-keys',
              'continuation-token',
              'start-after',
              'encoding-type',
              'fetch-owner',
            );
            return this.listV2(response, bucket, query);
          }
          only('prefix', 'delimiter', 'max-keys', 'marker', 'encoding-type');
          return this.listV1(response, bucket, query);
        case 'HEAD':
          only();
          if (!(await this.store.bucketExists(bucket))) throw noSuchBucket(bucket);
          response.setHeader('x-amz-bucket-region', this.options.region);
          return send(response, 200);
        case 'PUT':
          only();
          await readBody(request, MAX_XML_BYTES); // CreateBucketConfiguration: one region here
          await this.store.createBucket(bucket);
          response.setHeader('location', `/${bucket}`);
          return send(response, 200);
        case 'POST':
          if (!query.has('delete'))
            throw notImplemented(
              'POST on a bucket other than ?delete (browser form uploads are not accepted)',
            );
          only('delete');
          return this.deleteObjects(request, response, bucket);
        default:
          throw methodNotAllowed(method);
      }
    }
    switch (method) {
      case 'GET':
      case 'HEAD':
        only();
        return this.getObject(request, response, bucket, key);
      case 'PUT':
        if (query.has('uploadId') || query.has('partNumber')) {
          only('uploadId', 'partNumber');
          return this.uploadPart(request, response, bucket, key, query);
        }
        only();
        if (request.headers['x-amz-copy-source'] !== undefined)
          return this.copyObject(request, response, bucket, key);
        return this.putObject(request, response, bucket, key);
      case 'POST':
        if (query.has('uploads')) {
          only('uploads');
          const uploadId = await this.store.createUpload(bucket, key, attributesOf(request));
          return send(response, 200, initiateUploadXml(bucket, key, uploadId));
        }
        only('uploadId');
        if (!query.has('uploadId'))
          throw notImplemented('POST on an object other than ?uploads or ?uploadId');
        return this.completeUpload(request, response, bucket, key, query.get('uploadId') ?? '');
      case 'DELETE':
        if (query.has('uploadId')) {
          only('uploadId');
          await this.store.abortUpload(bucket, key, query.get('uploadId') ?? '');
          return send(response, 204);
        }
        only();
        await this.store.delete(bucket, key);
        return send(response, 204);
      default:
        throw methodNotAllowed(method);
    }
  }

  // Listing ---------------------------------------------------------------------------

  private async listV2(response: ServerResponse, bucket: string, query: URLSearchParams) {
    const request = listRequest(bucket, query);
    const continuation = query.get('continuation-token') ?? undefined;
    const startAfter = query.get('start-after') ?? '';
    const after = continuation === undefined ? startAfter : decodeToken(continuation);
    const listing = await this.store.list(bucket, { ...request, after });
    const next = listing.truncated && listing.last !== undefined ? encodeToken(listing.last) : undefined;
    const fetchOwner = query.get('fetch-owner') === 'true';
    send(response, 200, listV2Xml({ ...request, startAfter, continuation, fetchOwner }, listing, next));
  }

  private async listV1(response: ServerResponse, bucket: string, query: URLSearchParams) {
    const request = listRequest(bucket, query);
    const marker = query.get('marker') ?? '';
    const listing = await this.store.list(bucket, { ...request, after: marker });
    send(response, 200, listV1Xml({ ...request, marker }, listing));
  }

  // Objects ---------------------------------------------------------------------------

  private async getObject(request: IncomingMessage, response: ServerResponse, bucket: string, key: string) {
    const object = await this.store.open(bucket, key);
    let streaming = false;
    try {
      const { meta } = object;
      const notModified = preconditions(request, meta);
      objectHeaders(response, meta);
      if (notModified) return send(response, 304);
      const range = parseRange(request.headers.range, meta.size);
      if (range) {
        response.setHeader('content-range', `bytes ${range.start}-${range.end}/${meta.size}`);
        response.setHeader('content-length', range.end - range.start + 1);
        response.statusCode = 206;
      } else {
        response.setHeader('content-length', meta.size);
        response.statusCode = 200;
      }
      if (request.method === 'HEAD' || meta.size === 0) return void response.end();
      streaming = true;
      // pipeline closes the file if the client goes away mid-body.
      pipeline(object.stream(range), response, () => {});
    } finally {
      if (!streaming) await object.close();
    }
  }

  private async putObject(request: IncomingMessage, response: ServerResponse, bucket: string, key: string) {
    const attributes = attributesOf(request);
    const createOnly = conditionalWrite(request);
    const body = checkedBody(request, MAX_OBJECT_BYTES);
    const meta = await this.store.put(bucket, key, body.stream, attributes, {
      createOnly,
      beforeCommit: body.verify,
    });
    response.setHeader('etag', meta.etag);
    send(response, 200);
    this.created('ObjectCreated:Put', bucket, key, meta);
  }

  private async copyObject(request: IncomingMessage, response: ServerResponse, bucket: string, key: string) {
    const source = parseCopySource(String(request.headers['x-amz-copy-source']));
    const unsupported = Object.keys(request.headers).find((name) => name.startsWith('x-amz-copy-source-'));
    if (unsupported) throw notImplemented(`CopyObject with ${unsupported}`);
    const directive = String(request.headers['x-amz-metadata-directive'] ?? 'COPY').toUpperCase();
    if (directive !== 'COPY' && directive !== 'REPLACE')
      throw new S3Error('InvalidArgument', 400, `Unknown metadata directive '${directive}'.`);
    if (directive === 'COPY' && source.bucket === bucket && source.key === key)
      throw new S3Error(
        'InvalidRequest',
        400,
        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
      );
    await readBody(request, 0);
    const meta = await this.store.copy(
      source,
      bucket,
      key,
      directive === 'REPLACE' ? attributesOf(request) : undefined,
    );
    send(response, 200, copyResultXml(meta.etag, meta.lastModified));
    this.created('ObjectCreated:Copy', bucket, key, meta);
  }

  private async deleteObjects(request: IncomingMessage, response: ServerResponse, bucket: string) {
    const checksums = Object.keys(request.headers).some(
      (name) => name === 'content-md5' || name.startsWith('x-amz-checksum-'),
    );
    if (!checksums)
      throw new S3Error(
        'InvalidRequest',
        400,
        'Missing required header for this request: Content-MD5 or x-amz-checksum-*',
      );
    const { keys, quiet } = parseDelete((await readBody(request, MAX_XML_BYTES)).toString('utf8'));
    const deleted: string[] = [];
    const errors: { key: string; code: string; message: string }[] = [];
    for (const key of keys) {
      try {
        await this.store.delete(bucket, key);
        if (!quiet) deleted.push(key);
      } catch (error) {
        if (!(error instanceof S3Error) || error.code === 'NoSuchBucket') throw error;
        errors.push({ key, code: error.code, message: error.message });
      }
    }
    send(response, 200, deleteResultXml(deleted, errors));
  }

  // Multipart -------------------------------------------------------------------------

  private async uploadPart(
    request: IncomingMessage,
    response: ServerResponse,
    bucket: string,
    key: string,
    query: URLSearchParams,
  ) {
    if (request.headers['x-amz-copy-source'] !== undefined) throw notImplemented('UploadPartCopy');
    const partNumber = Number(query.get('partNumber'));
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PARTS)
      throw new S3Error(
        'InvalidArgument',
        400,
        `Part number must be an integer between 1 and ${MAX_PARTS}, inclusive`,
      );
    const body = checkedBody(request, MAX_OBJECT_BYTES);
    const etag = await this.store.putPart(bucket, key, query.get('uploadId') ?? '', partNumber, body.stream, {
      beforeCommit: body.verify,
    });
    response.setHeader('etag', etag);
    send(response, 200);
  }

  private async completeUpload(
    request: IncomingMessage,
    response: ServerResponse,
    bucket: string,
    key: string,
    uploadId: string,
  ) {
    const createOnly = conditionalWrite(request);
    const parts = parseComplete((await readBody(request, MAX_XML_BYTES, false)).toString('utf8'));
    const meta = await this.store.completeUpload(bucket, key, uploadId, parts, { createOnly });
    const location = `http://${request.headers.host}/${bucket}/${encodeKeyPath(key)}`;
    send(response, 200, completeUploadXml(location, bucket, key, meta.etag));
    this.created('ObjectCreated:CompleteMultipartUpload', bucket, key, meta);
  }

  // Events and errors -----------------------------------------------------------------

  private created(eventName: string, bucket: string, key: string, meta: ObjectMeta) {
    // S3's sequencer grows per key; a time-based counter grows everywhere.
    this.sequence += 1n;
    const sequencer = (BigInt(meta.lastModified) * 1_000_000n + (this.sequence % 1_000_000n))
      .toString(16)
      .toUpperCase()
      .padStart(18, '0');
    const record: S3EventRecord = {
      eventVersion: '2.1',
      eventSource: 'aws:s3',
      awsRegion: this.options.region,
      eventTime: new Date(meta.lastModified).toISOString(),
      eventName,
      s3: {
        s3SchemaVersion: '1.0',
        bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
        object: { key: encodeEventKey(key), size: meta.size, eTag: meta.etag.slice(1, -1), sequencer },
      },
    };
    this.emit('event', { Records: [record] });
  }

  private fail(request: IncomingMessage, response: ServerResponse, error: unknown, requestId: string) {
    const s3Error =
      error instanceof S3Error
        ? error
        : new S3Error('InternalError', 500, 'We encountered an internal error. Please try again.');
    if (!(error instanceof S3Error))
      this.options.log?.(`s3: ${request.method} ${request.url}: ${(error as Error)?.stack ?? String(error)}`);
    if (response.headersSent) {
      response.destroy();
      return;
    }
    for (const [name, value] of Object.entries(s3Error.headers)) response.setHeader(name, value);
    // The body may be unread (an error before it was needed): do not keep the connection.
    if (!request.readableEnded) response.setHeader('connection', 'close');
    const body =
      request.method === 'HEAD'
        ? undefined
        : errorXml(s3Error.code, s3Error.message, {
            ...s3Error.detail,
            Resource: (request.url ?? '/').split('?')[0] ?? '/',
            RequestId: requestId,
          });
    send(response, s3Error.status, body);
    request.resume();
  }
}

/** S3 puts keys into events URL-encoded, with spaces as '+'. */
export function encodeEventKey(key: string): string {
  return key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/%20/g, '+'))
    .join('/');
}

// Requests ------------------------------------------------------------------------------

function parseUrl(url: string): { bucket: string; key: string; query: URLSearchParams } {
  const at = url.indexOf('?');
  const path = at < 0 ? url : url.slice(0, at);
  const query = new URLSearchParams(at < 0 ? '' : url.slice(at + 1));
  const slash = path.indexOf('/', 1);
  try {
    const bucket = decodeURIComponent(slash < 0 ? path.slice(1) : path.slice(1, slash));
    const key = slash < 0 ? '' : decodeURIComponent(path.slice(slash + 1));
    return { bucket, key, query };
  } catch {
    throw new S3Error('InvalidURI', 400, "Couldn't parse the specified URI.");
  }
}

function listRequest(bucket: string, query: URLSearchParams): ListRequest {
  const rawMax = query.get('max-keys');
  const maxKeys = rawMax === null ? 1000 : Number(rawMax);
  if (!Number.isInteger(maxKeys) || maxKeys < 0)
    throw new S3Error('InvalidArgument', 400, 'Provided max-keys not an integer or within integer range');
  const encoding = query.get('encoding-type');
  if (encoding !== null && encoding !== 'url')
    throw new S3Error('InvalidArgument', 400, 'Invalid Encoding Method specified in Request');
  return {
    bucket,
    prefix: query.get('prefix') ?? '',
    delimiter: query.get('delimiter') ?? '',
    maxKeys: Math.min(maxKeys, 1000),
    urlEncoded: encoding === 'url',
  };
}

const encodeToken = (last: string) => Buffer.from(`1\n${last}`, 'utf8').toString('base64url');

function decodeToken(token: string): string {
  const text = Buffer.from(token, 'base64url').toString('utf8');
  if (!text.startsWith('1\n'))
    throw new S3Error('InvalidArgument', 400, 'The continuation token provided is incorrect');
  return text.slice(2);
}

function attributesOf(request: IncomingMessage): ObjectAttributes {
  const headers: Record<string, string> = {};
  const userMetadata: Record<string, string> = {};
  let metadataBytes = 0;
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value.join(',') : value;
    if (name.startsWith('x-amz-meta-')) {
      userMetadata[name.slice('x-amz-meta-'.length)] = text;
      metadataBytes += Buffer.byteLength(name.slice('x-amz-meta-'.length)) + Buffer.byteLength(text);
    } else if (STORED_HEADERS.includes(name)) {
      // aws-chunked is how the body travelled, not how the object is encoded (S3 drops it).
      const value = name === 'content-encoding' ? withoutAwsChunked(text) : text;
      if (value) headers[name] = value;
    }
  }
  if (metadataBytes > MAX_USER_METADATA_BYTES)
    throw new S3Error(
      'MetadataTooLarge',
      400,
      'Your metadata headers exceed the maximum allowed metadata size.',
      {
        Size: String(metadataBytes),
        MaxSizeAllowed: String(MAX_USER_METADATA_BYTES),
      },
    );
  return { contentType: request.headers['content-type'] ?? 'binary/octet-stream', headers, userMetadata };
}

/** `If-None-Match: *` makes a write create-only; other conditional writes are not offered. */
function conditionalWrite(request: IncomingMessage): boolean {
  const ifNoneMatch = request.headers['if-none-match'];
  if (request.headers['if-match'] !== undefined) throw notImplemented('conditional writes with If-Match');
  if (ifNoneMatch === undefined) return false;
  if (ifNoneMatch.trim() !== '*')
    throw notImplemented(`If-None-Match '${ifNoneMatch}' on a write (S3 accepts only '*')`);
  return true;
}

function parseCopySource(header: string): { bucket: string; key: string } {
  if (header.includes('?versionId=')) throw notImplemented('CopyObject of a version (versioning is off)');
  const path = header.startsWith('/') ? header.slice(1) : header;
  const slash = path.indexOf('/');
  try {
    if (slash > 0 && slash < path.length - 1)
      return {
        bucket: decodeURIComponent(path.slice(0, slash)),
        key: decodeURIComponent(path.slice(slash + 1)),
      };
  } catch {
    // fall through
  }
  throw new S3Error(
    'InvalidArgument',
    400,
    'Copy Source must mention the source bucket and key: sourcebucket/sourcekey',
  );
}

/** A digest of the body and the value the client sent for it (a header, or an aws-chunked trailer). */
interface BodyCheck {
  name: string;
  update(chunk: Buffer): void;
  actual(): string;
  expected(): string | undefined;
}

/** x-amz-checksum-* algorithms this server can verify (Node has no CRC32C or CRC64NVME). */
const CHECKSUMS = ['crc32', 'sha1', 'sha256'] as const;

function digestCheck(
  name: string,
  algorithm: 'md5' | 'sha1' | 'sha256' | 'crc32',
  encoding: 'hex' | 'base64',
  expected: () => string | undefined,
): BodyCheck {
  if (algorithm === 'crc32') {
    let value = 0;
    return {
      name,
      update: (chunk) => {
        value = crc32(chunk, value);
      },
      actual: () => {
        const bytes = Buffer.alloc(4);
        bytes.writeUInt32BE(value >>> 0);
        return bytes.toString('base64');
      },
      expected,
    };
  }
  const hash: Hash = createHash(algorithm);
  return { name, update: (chunk) => hash.update(chunk), actual: () => hash.digest(encoding), expected };
}

/**
 * The request body as a stream that fails unless it is exactly its declared length, and a
 * check (for the store's beforeCommit) of the digests the client sent: the payload hash the
 * SigV4 signature covers, Content-MD5, and x-amz-checksum-crc32/sha1/sha256 (as a header, or
 * as the trailer of an aws-chunked body, which is decoded here).
 */
function checkedBody(
  request: IncomingMessage,
  maxBytes: number,
  /** false for CompleteMultipartUpload, whose x-amz-checksum-* headers are the object's, not the XML's. */
  checksumsOfBody = true,
): { stream: Transform; verify: () => void } {
  const payloadHash = headerText(request, 'x-amz-content-sha256');
  const chunked = (headerText(request, 'content-encoding') ?? '')
    .split(',')
    .some((coding) => coding.trim() === 'aws-chunked');
  if (payloadHash?.startsWith('STREAMING-') && payloadHash !== STREAMING_UNSIGNED)
    throw notImplemented(
      `signed aws-chunked uploads (${payloadHash}): send a plain body, or ${STREAMING_UNSIGNED}`,
    );
  if (chunked !== (payloadHash === STREAMING_UNSIGNED))
    throw new S3Error(
      'InvalidArgument',
      400,
      `An aws-chunked body comes with Content-Encoding: aws-chunked and x-amz-content-sha256: ${STREAMING_UNSIGNED}.`,
    );
  const lengthHeader = headerText(request, chunked ? 'x-amz-decoded-content-length' : 'content-length');
  if (lengthHeader === undefined)
    throw new S3Error(
      'MissingContentLength',
      411,
      `You must provide the ${chunked ? 'x-amz-decoded-content-length' : 'Content-Length'} HTTP header.`,
    );
  const expected = Number(lengthHeader);
  if (expected > maxBytes)
    throw new S3Error('EntityTooLarge', 400, 'Your proposed upload exceeds the maximum allowed size', {
      ProposedSize: String(expected),
      MaxSizeAllowed: String(maxBytes),
    });

  const decoder = chunked ? new AwsChunkedDecoder() : undefined;
  const checks: BodyCheck[] = [];
  if (payloadHash && /^[0-9a-f]{64}$/.test(payloadHash))
    checks.push(digestCheck('x-amz-content-sha256', 'sha256', 'hex', () => payloadHash));
  const contentMd5 = headerText(request, 'content-md5');
  if (contentMd5 !== undefined) {
    if (Buffer.from(contentMd5, 'base64').length !== 16)
      throw new S3Error('InvalidDigest', 400, 'The Content-MD5 you specified was invalid.');
    checks.push(digestCheck('Content-MD5', 'md5', 'base64', () => contentMd5));
  }
  const trailerNames = (headerText(request, 'x-amz-trailer') ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  const claimed = checksumsOfBody
    ? [
        ...Object.keys(request.headers).filter((name) => /^x-amz-checksum-(?!type$|algorithm$)/.test(name)),
        ...trailerNames,
      ]
    : [];
  for (const name of claimed) {
    const algorithm = CHECKSUMS.find((known) => name === `x-amz-checksum-${known}`);
    if (!algorithm)
      throw notImplemented(`${name} (this server verifies x-amz-checksum-${CHECKSUMS.join(', -')} only)`);
    const fromTrailer = trailerNames.includes(name);
    if (fromTrailer && !decoder)
      throw new S3Error('InvalidArgument', 400, 'x-amz-trailer needs an aws-chunked body.');
    checks.push(
      digestCheck(name, algorithm, 'base64', () =>
        fromTrailer ? decoder?.trailers.get(name) : headerText(request, name),
      ),
    );
  }

  let received = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      received += chunk.length;
      if (received > expected) {
        done(new S3Error('IncompleteBody', 400, 'The request body is longer than its declared length.'));
        return;
      }
      for (const check of checks) check.update(chunk);
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      done(
        received === expected
          ? null
          : new S3Error(
              'IncompleteBody',
              400,
              'You did not provide the number of bytes specified by the Content-Length HTTP header.',
            ),
      );
    },
  });
  // The store reads the stream (and meets its error) only once it checked the bucket: an error
  // before then must not go unhandled.
  stream.on('error', () => {});
  request.on('aborted', () =>
    stream.destroy(new S3Error('IncompleteBody', 400, 'The client closed the request.')),
  );
  request.on('error', (error) => stream.destroy(error));
  if (decoder) {
    decoder.on('error', (error) => stream.destroy(error));
    request.pipe(decoder).pipe(stream);
  } else request.pipe(stream);
  const verify = () => {
    for (const check of checks) {
      const sent = check.expected();
      if (sent === undefined) throw badDigest(`${check.name} trailer (missing)`);
      if (check.actual() === sent) continue;
      if (check.name === 'x-amz-content-sha256')
        throw new S3Error(
          'XAmzContentSHA256Mismatch',
          400,
          "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
      throw badDigest(check.name);
    }
  };
  return { stream, verify };
}

function withoutAwsChunked(encoding: string): string {
  return encoding
    .split(',')
    .map((coding) => coding.trim())
    .filter((coding) => coding && coding !== 'aws-chunked')
    .join(', ');
}

function headerText(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** A small body (XML), read whole with a limit and checked like an object's. */
async function readBody(request: IncomingMessage, maxBytes: number, checksumsOfBody = true): Promise<Buffer> {
  if (Number(request.headers['content-length'] ?? 0) > maxBytes)
    throw new S3Error('MaxMessageLengthExceeded', 400, `Your request was too big (over ${maxBytes} bytes).`);
  if (request.headers['content-length'] === undefined && !request.headers['transfer-encoding'])
    return Buffer.alloc(0);
  const body = checkedBody(request, maxBytes, checksumsOfBody);
  const chunks: Buffer[] = [];
  for await (const chunk of body.stream as AsyncIterable<Buffer>) chunks.push(chunk);
  body.verify();
  return Buffer.concat(chunks);
}

/**
 * GET/HEAD conditions in S3's order: a failed If-Match or If-Unmodified-Since is 412; a
 * matched If-None-Match or an unmodified If-Modified-Since is true (answer 304).
 */
function preconditions(request: IncomingMessage, meta: ObjectMeta): boolean {
  const matches = (header: string) =>
    header
      .split(',')
      .map((tag) => tag.trim())
      .some((tag) => tag === '*' || tag === meta.etag || `"${tag}"` === meta.etag);
  const seconds = Math.floor(meta.lastModified / 1000);
  const since = (header: string | undefined) => {
    const at = header ? Date.parse(header) : Number.NaN;
    return Number.isFinite(at) ? Math.floor(at / 1000) : undefined;
  };
  const { 'if-match': ifMatch, 'if-none-match': ifNoneMatch } = request.headers;
  if (ifMatch !== undefined && !matches(ifMatch))
    throw new S3Error(
      'PreconditionFailed',
      412,
      'At least one of the pre-conditions you specified did not hold',
      {
        Condition: 'If-Match',
      },
    );
  const unmodifiedSince = since(request.headers['if-unmodified-since']);
  if (ifMatch === undefined && unmodifiedSince !== undefined && seconds > unmodifiedSince)
    throw new S3Error(
      'PreconditionFailed',
      412,
      'At least one of the pre-conditions you specified did not hold',
      {
        Condition: 'If-Unmodified-Since',
      },
    );
  if (ifNoneMatch !== undefined) return matches(ifNoneMatch);
  const modifiedSince = since(request.headers['if-modified-since']);
  return modifiedSince !== undefined && seconds <= modifiedSince;
}

/**
 * One `bytes=` range, clamped to the object; undefined when there is none or it is not a
 * single well-formed range (S3 then sends the whole object); 416 InvalidRange when it
 * starts past the end (any range of an empty object does).
 */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  const match = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  const [first, last] = [match[1] ?? '', match[2] ?? ''];
  let start: number;
  let end: number;
  if (first === '') {
    const suffix = Number(last);
    start = Math.max(0, size - suffix);
    end = size - 1;
    if (suffix === 0) start = size; // unsatisfiable
  } else {
    start = Number(first);
    end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
    if (last !== '' && Number(last) < start) return undefined;
  }
  if (start >= size)
    throw new S3Error(
      'InvalidRange',
      416,
      'The requested range is not satisfiable',
      { RangeRequested: header ?? '', ActualObjectSize: String(size) },
      { 'content-range': `bytes */${size}` },
    );
  return { start, end };
}

// Responses -----------------------------------------------------------------------------

function objectHeaders(response: ServerResponse, meta: ObjectMeta) {
  response.setHeader('content-type', meta.contentType);
  response.setHeader('etag', meta.etag);
  response.setHeader('last-modified', new Date(meta.lastModified).toUTCString());
  response.setHeader('accept-ranges', 'bytes');
  for (const [name, value] of Object.entries(meta.headers)) response.setHeader(name, value);
  for (const [name, value] of Object.entries(meta.userMetadata))
    response.setHeader(`x-amz-meta-${name}`, value);
}

function send(response: ServerResponse, status: number, xml?: string): void {
  response.statusCode = status;
  if (xml === undefined) {
    if (status !== 204 && status !== 304 && !response.hasHeader('content-length'))
      response.setHeader('content-length', 0);
    response.end();
    return;
  }
  response.setHeader('content-type', 'application/xml');
  response.setHeader('content-length', Buffer.byteLength(xml));
  response.end(xml);
}

function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

function notImplemented(what: string): S3Error {
  return new S3Error('NotImplemented', 501, `The local S3 does not implement ${what}.`);
}

function methodNotAllowed(method: string): S3Error {
  return new S3Error(
    'MethodNotAllowed',
    405,
    `The specified method (${method}) is not allowed against this resource.`,
  );
}
