/**
 * Manifest digests and signatures. The trainer signs canonicalJson(manifest without its
 * signature) with ECDSA P-256 / SHA-256 (a KMS key in AWS, a local PEM key pair on a
 * laptop); the device verifies with the public key it was provisioned with.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
} from 'node:crypto';
import type { Manifest } from './schemas.ts';

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** JSON with object keys sorted at every level, so signer and verifier hash the same bytes. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) => {
    if (inner && typeof inner === 'object' && !Array.isArray(inner)) {
      return Object.fromEntries(Object.entries(inner).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return inner;
  });
}

export function signedBytes(manifest: Manifest): Buffer {
  const { signature: _signature, ...unsigned } = manifest;
  return Buffer.from(canonicalJson(unsigned), 'utf8');
}

/** Something that signs a SHA-256 digest input with ECDSA P-256 and returns a DER signature. */
export interface ManifestSigner {
  keyId: string;
  sign(message: Buffer): Promise<Buffer>;
}

export async function signManifest(manifest: Manifest, signer: ManifestSigner): Promise<Manifest> {
  const der = await signer.sign(signedBytes(manifest));
  return {
    ...manifest,
    signature: { alg: 'ECDSA_SHA_256', keyId: signer.keyId, value: der.toString('base64') },
  };
}

/** Throws with the reason when the manifest is unsigned or its signature does not verify. */
export function verifyManifestSignature(manifest: Manifest, publicKeyPem: string): void {
  if (!manifest.signature) throw new Error('manifest is not signed');
  if (!signatureVerifies(signedBytes(manifest), manifest.signature.value, publicKeyPem))
    throw new Error(
      `manifest signature does not verify with the provisioned public key (keyId ${manifest.signature.keyId})`,
    );
}

const PEM_PUBLIC_KEY = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g;

/**
 * The public keys pinned in a PEM text: one, or several concatenated (a key rotation pins the
 * old and the new key side by side until every signer uses the new one).
 */
export function pinnedKeys(publicKeyPem: string): string[] {
  const blocks = publicKeyPem.match(PEM_PUBLIC_KEY) ?? [];
  if (blocks.length === 0) throw new Error('no PEM public key (-----BEGIN PUBLIC KEY-----) is provisioned');
  return blocks;
}

/**
 * Whether a base64 DER ECDSA P-256 / SHA-256 signature over `message` verifies with one of
 * the pinned keys.
 */
export function signatureVerifies(message: Buffer, base64Der: string, publicKeyPem: string): boolean {
  const signature = Buffer.from(base64Der, 'base64');
  return pinnedKeys(publicKeyPem).some((pem) =>
    verify('sha256', message, { key: createPublicKey(pem), dsaEncoding: 'der' }, signature),
  );
}

export function pemSigner(privateKeyPem: string, keyId = 'local'): ManifestSigner {
  const key = createPrivateKey(privateKeyPem);
  return { keyId, sign: async (message) => sign('sha256', message, { key, dsaEncoding: 'der' }) };
}

export function generateSigningKeyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}
