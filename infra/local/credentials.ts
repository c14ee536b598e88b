/**
 * The local S3's credential: random per data dir, created once (owner-only file, written
 * with `wx` so two starts cannot both create one), printed by `edgeloop up --json` and set
 * in the environment of the handlers and the CLI commands that attach to the stack. A web
 * page cannot know it, so it cannot sign an S3 request (infra/local/sigv4.ts).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { EdgeloopError } from '../../shared/errors.ts';
import { localStackFiles } from '../../shared/topology.ts';
import type { Credential } from './sigv4.ts';

const CredentialSchema = z.object({
  accessKeyId: z.string().regex(/^[A-Z0-9]{16,128}$/),
  secretAccessKey: z.string().min(32),
});

export function credentialPath(dataDir: string): string {
  return join(dataDir, localStackFiles.s3Credential);
}

/** The data dir's credential; created on first use. */
export function localCredential(dataDir: string): Credential {
  const path = credentialPath(dataDir);
  try {
    return readCredential(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const credential: Credential = {
    accessKeyId: `ELLOCAL${randomBytes(8).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(30).toString('base64url'),
  };
  try {
    writeFileSync(path, JSON.stringify(credential), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    // Another process created it first: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readCredential(path);
    throw error;
  }
  return credential;
}

function readCredential(path: string): Credential {
  const text = readFileSync(path, 'utf8');
  chmodSync(path, 0o600);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = CredentialSchema.safeParse(json);
  if (!parsed.success)
    throw new EdgeloopError(`${path} is not a local S3 credential: delete it and start the stack again`);
  return parsed.data;
}
