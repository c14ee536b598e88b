/**
 * The local S3's credential: random per data dir, created once (owner-only file, written
 * with `wx` so two starts cannot both create one), printed by `edgeloop up --json` and set
 * in the environment of the handlers and the CLI commands that attach to the stack. A web
 * page cannot know it, so it cannot sign an S3 request (infra/local/sigv4.ts).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { credentialPath, type LocalCredential, readLocalCredential } from '../../shared/local-credential.ts';

export { credentialPath };

/** The data dir's credential; created on first use. */
export function localCredential(dataDir: string): LocalCredential {
  const path = credentialPath(dataDir);
  try {
    return readLocalCredential(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const credential: LocalCredential = {
    accessKeyId: `ELLOCAL${randomBytes(8).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(30).toString('base64url'),
  };
  try {
    writeFileSync(path, JSON.stringify(credential), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    // Another process created it first: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readLocalCredential(path);
    throw error;
  }
  return credential;
}
