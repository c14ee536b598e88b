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
  type KeyObject,
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

/** Throws with the reason when the manifest is unsigned or its signature is refused. */
export function verifyManifestSignature(manifest: Manifest, publicKeyPem: string): void {
  if (!manifest.signature) throw new Error('manifest is not signed');
  const refusal = signatureRefusal(signedBytes(manifest), manifest.signature, publicKeyPem);
  if (refusal) throw new Error(`manifest signature ${refusal}`);
}

const PEM_PUBLIC_KEY = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g;
/** The line naming the key below it, in the text before its BEGIN line (PEM's explanatory text). */
const KEY_ID_LINE = /^keyId:[ \t]*(\S+)[ \t]*$/gm;

/** A public key pinned on a gateway, and the id signatures by it carry (absent in old files). */
export interface PinnedKey {
  keyId: string | undefined;
  pem: string;
}

/**
 * The public keys pinned in a PEM text: one, or several concatenated (a key rotation pins the
 * old and the new key side by side until every signer uses the new one). A `keyId: <id>` line
 * above a key names it: the KMS key ARN (written by `edgeloop provision`), or `local:<hash>`
 * for a PEM key pair (localKeyId).
 */
export function pinnedKeys(publicKeyPem: string): PinnedKey[] {
  const keys: PinnedKey[] = [];
  let from = 0;
  for (const match of publicKeyPem.matchAll(PEM_PUBLIC_KEY)) {
    const before = publicKeyPem.slice(from, match.index);
    const ids = [...before.matchAll(KEY_ID_LINE)];
    keys.push({ keyId: ids.at(-1)?.[1], pem: match[0] });
    from = match.index + match[0].length;
  }
  if (keys.length === 0) throw new Error('no PEM public key (-----BEGIN PUBLIC KEY-----) is provisioned');
  return keys;
}

/** A public key as a gateway pins it: named by the id its signer puts in signatures. */
export function namedPublicKey(keyId: string, publicKeyPem: string): string {
  return `keyId: ${keyId}\n${publicKeyPem.trim()}\n`;
}

/** The id of a PEM key pair's signatures: a hash of the public key, the same wherever it is used. */
export function localKeyId(publicKey: string | KeyObject): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  return `local:${sha256Hex(key.export({ type: 'spki', format: 'der' })).slice(0, 16)}`;
}

/**
 * Why a base64 DER ECDSA P-256 / SHA-256 signature over `message` is refused, or undefined
 * when it verifies. The key is the pinned one the signature's keyId names; only that key is
 * tried, so a signature claiming one key but made with another fails. A keyId no pinned key
 * carries is refused, unless keys without an id are pinned (a file from before keys were
 * named): those are tried, as any key was then, so old gateways keep working until they are
 * given a named file.
 */
export function signatureRefusal(
  message: Buffer,
  signature: { keyId: string; value: string },
  publicKeyPem: string,
): string | undefined {
  const pinned = pinnedKeys(publicKeyPem);
  const named = pinned.filter((key) => key.keyId === signature.keyId);
  const candidates = named.length > 0 ? named : pinned.filter((key) => key.keyId === undefined);
  if (candidates.length === 0) {
    const ids = pinned.map((key) => key.keyId).join(', ');
    return `is by key '${signature.keyId}', which is not pinned on this gateway (pinned: ${ids}): if that key is the stage's new signing key, pin it: add its public key, with the line 'keyId: ${signature.keyId}' above it, to the gateway's public key file (publicKeyFile; see DEPLOY.md, key rotation)`;
  }
  const der = Buffer.from(signature.value, 'base64');
  const verifies = candidates.some((key) =>
    verify('sha256', message, { key: createPublicKey(key.pem), dsaEncoding: 'der' }, der),
  );
  if (verifies) return undefined;
  return named.length > 0
    ? `does not verify with the pinned key '${signature.keyId}': forged, altered, or signed by another key than it names`
    : `does not verify with the provisioned public key (keyId ${signature.keyId}): forged or altered`;
}

/** Signs with a PEM private key; its keyId is localKeyId of the public half unless given. */
export function pemSigner(privateKeyPem: string, keyId?: string): ManifestSigner {
  const key = createPrivateKey(privateKeyPem);
  return {
    keyId: keyId ?? localKeyId(createPublicKey(key)),
    sign: async (message) => sign('sha256', message, { key, dsaEncoding: 'der' }),
  };
}

export function generateSigningKeyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}
