/**
 * Where manifest signatures come from. EDGELOOP_SIGNING_KEY is either a PEM file path (the
 * local stack's key pair, or a key given to `edgeloop train --key`) or a KMS key (`kms:`
 * prefix, a key id/alias, or a key/alias ARN) that signs ECDSA_SHA_256 over the raw bytes.
 */
import { readFile } from 'node:fs/promises';
import { KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { InputError } from './errors.ts';
import { type ManifestSigner, pemSigner } from './manifest.ts';

const KMS_ARN = /^arn:aws[a-z-]*:kms:/;
const KMS_KEY_ID =
  /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|alias\/[\w/-]+)$/;

/** True when the value names a KMS key rather than a PEM file. */
export function isKmsKeyRef(value: string): boolean {
  return value.startsWith('kms:') || KMS_ARN.test(value) || KMS_KEY_ID.test(value);
}

export async function signerFromEnv(
  value: string,
  kms: () => KMSClient = () => new KMSClient({}),
): Promise<ManifestSigner> {
  if (isKmsKeyRef(value)) return kmsSigner(value.replace(/^kms:/, ''), kms());
  let pem: string;
  try {
    pem = await readFile(value, 'utf8');
  } catch (error) {
    throw new InputError(
      `signing key file '${value}' cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}): point EDGELOOP_SIGNING_KEY at a PKCS#8 PEM private key or a KMS key id`,
      { cause: error },
    );
  }
  try {
    return pemSigner(pem);
  } catch (error) {
    throw new InputError(
      `signing key file '${value}' is not a PEM private key: generate one with edgeloop up`,
      {
        cause: error,
      },
    );
  }
}

/**
 * ECDSA P-256 with KMS: MessageType RAW lets KMS hash the canonical manifest bytes itself.
 * The keyId signatures carry becomes the key ARN KMS answers with, whatever alias or id
 * configured the signer: the id `edgeloop provision` pins the public key under.
 */
export function kmsSigner(keyId: string, client: KMSClient): ManifestSigner {
  return {
    keyId,
    async sign(message) {
      const result = await client.send(
        new SignCommand({
          KeyId: keyId,
          Message: message,
          MessageType: 'RAW',
          SigningAlgorithm: 'ECDSA_SHA_256',
        }),
      );
      if (!result.Signature) throw new Error(`KMS returned no signature for key ${keyId}`);
      if (result.KeyId) this.keyId = result.KeyId;
      return Buffer.from(result.Signature);
    },
  };
}
