/**
 * AWS Signature Version 4 for the local S3. Every request must carry an
 * `Authorization: AWS4-HMAC-SHA256 ...` header signed with the data dir's credential
 * (infra/local/credentials.ts); anything else is refused before the S3 server sees it:
 * anonymous requests, browser form POSTs (policy uploads), presigned URLs, other keys, stale
 * dates. The header signature covers `x-amz-content-sha256`; the server (s3/server.ts) then
 * checks the body against that hash before it stores anything.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export interface Credential {
  accessKeyId: string;
  secretAccessKey: string;
}

/** How far a request's X-Amz-Date may be from this clock, as in S3. */
const MAX_SKEW_MS = 15 * 60 * 1000;

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/\s,]+)\/(\d{8})\/([^/\s,]+)\/([^/\s,]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/;

/** Why the request is not signed by `credential`, or undefined when its SigV4 signature verifies. */
export function sigV4Refusal(
  request: IncomingMessage,
  credential: Credential,
  nowMs = Date.now(),
): string | undefined {
  const url = new URL(request.url ?? '/', 'http://local');
  if (url.searchParams.has('X-Amz-Algorithm') || url.searchParams.has('Signature'))
    return 'presigned URLs are not accepted by the local S3: sign the request with the credential `edgeloop up --json` prints';
  if ((request.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data'))
    return 'browser form uploads (POST policy) are not accepted by the local S3';
  const authorization = request.headers.authorization;
  if (!authorization)
    return 'anonymous requests are not accepted by the local S3: sign them (SigV4) with the credential `edgeloop up --json` prints';
  const match = AUTHORIZATION.exec(authorization.trim());
  if (!match) return 'the Authorization header is not an AWS4-HMAC-SHA256 (SigV4) signature';
  const [, keyId, date, region, service, signedHeaderList, signature] = match as unknown as string[];
  if (keyId !== credential.accessKeyId)
    return `access key '${keyId}' is not this local stack's: use the credential \`edgeloop up --json\` prints`;
  const amzDate = header(request, 'x-amz-date');
  if (!amzDate || !/^\d{8}T\d{6}Z$/.test(amzDate) || !amzDate.startsWith(date ?? ''))
    return 'X-Amz-Date is missing or does not match the credential scope date';
  const at = Date.parse(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  if (!Number.isFinite(at) || Math.abs(at - nowMs) > MAX_SKEW_MS)
    return `X-Amz-Date ${amzDate} is more than 15 minutes from this machine's clock`;
  const signedHeaders = (signedHeaderList ?? '').split(';');
  if (!signedHeaders.includes('host')) return 'the signature must cover the Host header';
  const payloadHash = header(request, 'x-amz-content-sha256');
  if (!payloadHash) return 'x-amz-content-sha256 is missing (S3 SigV4 requires it)';

  const rawPath = (request.url ?? '/').split('?')[0] ?? '/';
  const canonicalRequest = [
    request.method ?? 'GET',
    // As sent: S3 signs the path encoded once, as the client encoded it.
    rawPath,
    canonicalQuery(request.url ?? '/'),
    ...signedHeaders.map((name) => `${name}:${header(request, name) ?? ''}`),
    '',
    signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  let key: Buffer = hmac(`AWS4${credential.secretAccessKey}`, date ?? '');
  for (const part of [region ?? '', service ?? '', 'aws4_request']) key = hmac(key, part);
  const expected = hmac(key, stringToSign);
  const given = Buffer.from(signature ?? '', 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return 'the SigV4 signature does not match: wrong secret key, or the request was altered';
  return undefined;
}

/** A header's value as SigV4 canonicalizes it: repeated values joined by ',', spaces squeezed. */
function header(request: IncomingMessage, name: string): string | undefined {
  const values: string[] = [];
  const raw = request.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2)
    if (raw[i]?.toLowerCase() === name) values.push((raw[i + 1] ?? '').trim().replace(/\s+/g, ' '));
  return values.length > 0 ? values.join(',') : undefined;
}

/** The query string as SigV4 signs it: each name and value RFC 3986-encoded, sorted. */
function canonicalQuery(rawUrl: string): string {
  const query = rawUrl.includes('?') ? rawUrl.slice(rawUrl.indexOf('?') + 1) : '';
  if (!query) return '';
  return query
    .split('&')
    .filter((pair) => pair.length > 0)
    .map((pair) => {
      const at = pair.indexOf('=');
      const name = at < 0 ? pair : pair.slice(0, at);
      const value = at < 0 ? '' : pair.slice(at + 1);
      return [rfc3986(decode(name)), rfc3986(decode(value))] as const;
    })
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

function decode(component: string): string {
  try {
    return decodeURIComponent(component.replace(/\+/g, '%20'));
  } catch {
    return component;
  }
}

function rfc3986(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function hmac(key: string | Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text, 'utf8').digest();
}
