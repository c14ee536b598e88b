/**
 * The local stack's S3 credential file (`<dataDir>/keys/s3-credential.json`, owner-only):
 * random per data dir, created by the stack (infra/local/credentials.ts) and read by whoever
 * talks to its S3 from another process (CLI commands, a local gateway).
 */
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { EdgeloopError } from './errors.ts';
import { localStackFiles } from './topology.ts';

export interface LocalCredential {
  accessKeyId: string;
  secretAccessKey: string;
}

const LocalCredentialSchema = z.object({
  accessKeyId: z.string().regex(/^[A-Z0-9]{16,128}$/),
  secretAccessKey: z.string().min(32),
});

export function credentialPath(dataDir: string): string {
  return join(dataDir, localStackFiles.s3Credential);
}

/** Reads (and keeps owner-only) the credential file; ENOENT passes through as it is. */
export function readLocalCredential(path: string): LocalCredential {
  const text = readFileSync(path, 'utf8');
  chmodSync(path, 0o600);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = LocalCredentialSchema.safeParse(json);
  if (!parsed.success)
    throw new EdgeloopError(`${path} is not a local S3 credential: delete it and start the stack again`);
  return parsed.data;
}
