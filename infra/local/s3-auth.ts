/**
 * The local S3's side of authentication: s3rver must know the data dir's key id (it looks
 * every signed request's key up in its account registry), and a refused request is answered
 * as S3 answers it, so the SDKs and the AWS CLI show the reason.
 */
import { createRequire } from 'node:module';
import type { Credential } from './sigv4.ts';

interface S3rverAccounts {
  DUMMY_ACCOUNT: { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
}

/** Adds the key to s3rver's one account. The signature itself is checked in front (sigv4.ts). */
export function registerWithS3rver(credential: Credential): void {
  const accounts = createRequire(import.meta.url)('s3rver/lib/models/account.js') as S3rverAccounts;
  accounts.DUMMY_ACCOUNT.createKeyPair(credential.accessKeyId, credential.secretAccessKey);
}

const xmlEscape = (text: string) =>
  text.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c,
  );

export function s3AccessDenied(reason: string): { contentType: string; body: string } {
  return {
    contentType: 'application/xml',
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>${xmlEscape(reason)}</Message></Error>`,
  };
}
