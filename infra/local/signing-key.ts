/**
 * The local manifest signing key (the stand-in for the KMS key in AWS): generated once per
 * data dir, private half readable by the owner only, public half (named `keyId: local:<hash>`,
 * the id its signatures carry) published to the models bucket where devices fetch it.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { generateSigningKeyPair, localKeyId, namedPublicKey, pinnedKeys } from '../../shared/manifest.ts';
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
    let publicKeyPem = readFileSync(publicKeyPath, 'utf8');
    // A data dir from before keys were named: name its key, so gateways pin it by id.
    if (pinnedKeys(publicKeyPem).every((key) => key.keyId === undefined)) {
      const publicKey = createPublicKey(createPrivateKey(readFileSync(privateKeyPath, 'utf8')));
      publicKeyPem = namedPublicKey(
        localKeyId(publicKey),
        publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      );
      writeFileSync(publicKeyPath, publicKeyPem);
    }
    return { privateKeyPath, publicKeyPem, created: false };
  }
  mkdirSync(dirname(privateKeyPath), { recursive: true, mode: 0o700 });
  const pair = generateSigningKeyPair();
  writeFileSync(privateKeyPath, pair.privateKeyPem, { mode: 0o600 });
  chmodSync(privateKeyPath, 0o600);
  const publicKeyPem = namedPublicKey(localKeyId(pair.publicKeyPem), pair.publicKeyPem);
  writeFileSync(publicKeyPath, publicKeyPem);
  return { privateKeyPath, publicKeyPem, created: true };
}
