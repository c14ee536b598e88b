/**
 * The local manifest signing key (the stand-in for the KMS key in AWS): generated once per
 * data dir, private half readable by the owner only, public half published to the models
 * bucket where devices fetch it.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { generateSigningKeyPair } from '../../shared/manifest.ts';
import { localStackFiles } from '../../shared/topology.ts';

export interface SigningKeyFiles {
  privateKeyPath: string;
  publicKeyPem: string;
  created: boolean;
}

/** Where the public half lives, next to the private key. */
export function publicKeyPathFor(privateKeyPath: string): string {
  return join(dirname(privateKeyPath), basename(localStackFiles.signingPublicKey));
}

export function ensureSigningKey(privateKeyPath: string): SigningKeyFiles {
  const publicKeyPath = publicKeyPathFor(privateKeyPath);
  if (existsSync(privateKeyPath) && existsSync(publicKeyPath)) {
    // Tighten the mode in case the file was copied around with a looser one.
    chmodSync(privateKeyPath, 0o600);
    return { privateKeyPath, publicKeyPem: readFileSync(publicKeyPath, 'utf8'), created: false };
  }
  mkdirSync(dirname(privateKeyPath), { recursive: true, mode: 0o700 });
  const { privateKeyPem, publicKeyPem } = generateSigningKeyPair();
  writeFileSync(privateKeyPath, privateKeyPem, { mode: 0o600 });
  chmodSync(privateKeyPath, 0o600);
  writeFileSync(publicKeyPath, publicKeyPem);
  return { privateKeyPath, publicKeyPem, created: true };
}
