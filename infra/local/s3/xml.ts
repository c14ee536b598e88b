/**
 * The local S3's XML: response documents written here (small templates, every value
 * escaped), and the two request bodies the product's clients send (DeleteObjects and
 * CompleteMultipartUpload) read with fast-xml-parser 5, without DOCTYPE entities.
 */
import { XMLParser } from 'fast-xml-parser';
import { S3Error } from './errors.ts';
import type { Listing } from './store.ts';

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';

export function escapeXml(text: string): string {
  return text.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c,
  );
}

type Fields = Record<string, string | number | boolean | undefined>;

/** `<name>value</name>` for each defined value, escaped. */
function elements(fields: Fields): string {
  return Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `<${name}>${escapeXml(String(value))}</${name}>`)
    .join('');
}

function document(root: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${NS}">${body}</${root}>`;
}

export function errorXml(code: string, message: string, detail: Record<string, string>): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error>${elements({ Code: code, Message: message, ...detail })}</Error>`;
}

/** A refusal in front of the S3 server (shared/request-guard.ts), in S3's shape so clients show why. */
export function accessDenied(reason: string): { contentType: string; body: string } {
  return { contentType: 'application/xml', body: errorXml('AccessDenied', reason, {}) };
}

export const OWNER = { ID: 'edgeloop-local', DisplayName: 'edgeloop' };

export function listBucketsXml(buckets: { name: string; created: Date }[]): string {
  const list = buckets
    .map((b) => `<Bucket>${elements({ Name: b.name, CreationDate: b.created.toISOString() })}</Bucket>`)
    .join('');
  return document('ListAllMyBucketsResult', `<Owner>${elements(OWNER)}</Owner><Buckets>${list}</Buckets>`);
}

export interface ListRequest {
  bucket: string;
  prefix: string;
  delimiter: string;
  maxKeys: number;
  /** `encoding-type=url`: keys and prefixes URL-encoded in the answer (the AWS CLI asks for it). */
  urlEncoded: boolean;
}

/** ListBucketResult, both versions: the request's echo, the page, and `fields` of the version. */
function listBucketResult(
  request: ListRequest,
  listing: Listing,
  owner: boolean,
  fields: (enc: (value: string) => string) => Fields,
): string {
  const enc = request.urlEncoded ? encodeListValue : (value: string) => value;
  return document(
    'ListBucketResult',
    elements({
      Name: request.bucket,
      Prefix: enc(request.prefix),
      Delimiter: request.delimiter ? enc(request.delimiter) : undefined,
      MaxKeys: request.maxKeys,
      EncodingType: request.urlEncoded ? 'url' : undefined,
      IsTruncated: listing.truncated,
      ...fields(enc),
    }) + contentsXml(listing, enc, owner),
  );
}

/** ListObjectsV2's answer; `continuation` is the request's token, `next` the one for the next page. */
export function listV2Xml(
  request: ListRequest & { startAfter: string; continuation: string | undefined; fetchOwner: boolean },
  listing: Listing,
  next: string | undefined,
): string {
  return listBucketResult(request, listing, request.fetchOwner, (enc) => ({
    KeyCount: listing.objects.length + listing.commonPrefixes.length,
    ContinuationToken: request.continuation,
    NextContinuationToken: next,
    StartAfter: request.startAfter ? enc(request.startAfter) : undefined,
  }));
}

/** ListObjects (V1): `marker` in, `NextMarker` out when a delimiter is given (as S3 does). */
export function listV1Xml(request: ListRequest & { marker: string }, listing: Listing): string {
  return listBucketResult(request, listing, true, (enc) => ({
    Marker: enc(request.marker),
    NextMarker: listing.truncated && request.delimiter && listing.last ? enc(listing.last) : undefined,
  }));
}

function contentsXml(listing: Listing, enc: (v: string) => string, owner: boolean): string {
  const contents = listing.objects
    .map(
      ({ key, meta }) =>
        `<Contents>${elements({
          Key: enc(key),
          LastModified: new Date(meta.lastModified).toISOString(),
          ETag: meta.etag,
          Size: meta.size,
          StorageClass: 'STANDARD',
        })}${owner ? `<Owner>${elements(OWNER)}</Owner>` : ''}</Contents>`,
    )
    .join('');
  const prefixes = listing.commonPrefixes
    .map((prefix) => `<CommonPrefixes>${elements({ Prefix: enc(prefix) })}</CommonPrefixes>`)
    .join('');
  return contents + prefixes;
}

/** S3's `encoding-type=url`: every byte but unreserved ones percent-encoded ('/' kept). */
function encodeListValue(value: string): string {
  return encodeURIComponent(value)
    .replace(/%2F/g, '/')
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function copyResultXml(etag: string, lastModified: number): string {
  return document(
    'CopyObjectResult',
    elements({ LastModified: new Date(lastModified).toISOString(), ETag: etag }),
  );
}

export function initiateUploadXml(bucket: string, key: string, uploadId: string): string {
  return document(
    'InitiateMultipartUploadResult',
    elements({ Bucket: bucket, Key: key, UploadId: uploadId }),
  );
}

export function completeUploadXml(location: string, bucket: string, key: string, etag: string): string {
  return document(
    'CompleteMultipartUploadResult',
    elements({ Location: location, Bucket: bucket, Key: key, ETag: etag }),
  );
}

export function deleteResultXml(
  deleted: string[],
  errors: { key: string; code: string; message: string }[],
): string {
  return document(
    'DeleteResult',
    deleted.map((key) => `<Deleted>${elements({ Key: key })}</Deleted>`).join('') +
      errors
        .map((e) => `<Error>${elements({ Key: e.key, Code: e.code, Message: e.message })}</Error>`)
        .join(''),
  );
}

// Request bodies ----------------------------------------------------------------------------

const parser = new XMLParser({
  ignoreAttributes: true,
  // Keys are strings: "007" stays "007", and leading/trailing spaces are part of a key.
  parseTagValue: false,
  trimValues: false,
  removeNSPrefix: true,
  processEntities: true,
  htmlEntities: false,
  isArray: (name) => name === 'Object' || name === 'Part',
});

function parse(xml: string, root: string): Record<string, unknown> {
  let parsed: Record<string, unknown>;
  try {
    parsed = parser.parse(xml, true) as Record<string, unknown>;
  } catch (error) {
    throw malformed(`the XML is not well-formed (${(error as Error).message})`);
  }
  const body = parsed[root];
  if (!body || typeof body !== 'object') throw malformed(`the body's root element is not <${root}>`);
  return body as Record<string, unknown>;
}

function malformed(why: string) {
  return new S3Error(
    'MalformedXML',
    400,
    `The XML you provided was not well-formed or did not validate against our published schema: ${why}`,
  );
}

/** DeleteObjects' body: 1 to 1,000 keys, and Quiet. */
export function parseDelete(xml: string): { keys: string[]; quiet: boolean } {
  const body = parse(xml, 'Delete');
  const objects = (body.Object ?? []) as { Key?: unknown }[];
  if (objects.length === 0 || objects.length > 1000)
    throw malformed(`a Delete names 1 to 1000 objects, this one ${objects.length}`);
  const keys = objects.map((object) => {
    if (typeof object?.Key !== 'string' || object.Key === '') throw malformed('an <Object> without a <Key>');
    return object.Key;
  });
  return { keys, quiet: String(body.Quiet ?? '').trim() === 'true' };
}

/** CompleteMultipartUpload's body: the parts, by number and ETag. */
export function parseComplete(xml: string): { partNumber: number; etag: string }[] {
  const body = parse(xml, 'CompleteMultipartUpload');
  const parts = (body.Part ?? []) as { PartNumber?: unknown; ETag?: unknown }[];
  if (parts.length === 0) throw malformed('a CompleteMultipartUpload names at least one <Part>');
  return parts.map((part) => {
    const partNumber = Number(String(part?.PartNumber ?? '').trim());
    if (!Number.isInteger(partNumber) || typeof part?.ETag !== 'string')
      throw malformed('each <Part> needs a <PartNumber> and an <ETag>');
    return { partNumber, etag: part.ETag };
  });
}
