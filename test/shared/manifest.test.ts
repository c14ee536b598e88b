import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureSigningKey, publicKeyPathFor } from '../../infra/local/signing-key.ts';
import {
  canonicalJson,
  generateSigningKeyPair,
  localKeyId,
  namedPublicKey,
  pemSigner,
  pinnedKeys,
  sha256Hex,
  signManifest,
  verifyManifestSignature,
} from '../../shared/manifest.ts';
import { noticeRefusal, signNotice } from '../../shared/notice.ts';
import type { Manifest } from '../../shared/schemas.ts';

const manifest: Manifest = {
  schemaVersion: 1,
  model: 'pumps',
  version: 3,
  createdAt: '2026-11-28T12:00:00.000Z',
  files: [{ name: 'model.json', sha256: sha256Hex('{}'), size: 2 }],
  preprocessing: {
    label: 'y',
    labels: ['a', 'b'],
    features: [{ kind: 'numeric', column: 'x', mean: 0, std: 1, fill: 0 }],
    inputWidth: 1,
  },
  metrics: { accuracy: 0.9 },
  classDistribution: { a: 0.5, b: 0.5 },
  golden: { rows: [{ x: '1' }], outputs: [[0.2, 0.8]], tolerance: 1e-4 },
  lowConfidence: 0.6,
  lineage: {
    datasetKey: 'datasets/pumps/a.csv',
    datasetSha256: sha256Hex('x'),
    rows: 10,
    backend: 'cpu',
    seed: 1,
  },
};

describe('canonicalJson', () => {
  it('is independent of key order', () => {
    expect(canonicalJson({ b: 1, a: { d: 2, c: [3, { f: 1, e: 2 }] } })).toBe(
      canonicalJson({ a: { c: [3, { e: 2, f: 1 }], d: 2 }, b: 1 }),
    );
  });
});

describe('manifest signatures', () => {
  const keys = generateSigningKeyPair();

  it('verify for the key that signed', async () => {
    const signed = await signManifest(manifest, pemSigner(keys.privateKeyPem, 'k1'));
    expect(signed.signature?.keyId).toBe('k1');
    expect(() => verifyManifestSignature(signed, keys.publicKeyPem)).not.toThrow();
  });

  it('fail when any field changes after signing', async () => {
    const signed = await signManifest(manifest, pemSigner(keys.privateKeyPem));
    const tampered = { ...signed, metrics: { accuracy: 0.99 } };
    expect(() => verifyManifestSignature(tampered, keys.publicKeyPem)).toThrow(/does not verify/);
  });

  it('fail for another key and for an unsigned manifest', async () => {
    const signed = await signManifest(manifest, pemSigner(keys.privateKeyPem));
    expect(() => verifyManifestSignature(signed, generateSigningKeyPair().publicKeyPem)).toThrow(
      /does not verify/,
    );
    expect(() => verifyManifestSignature(manifest, keys.publicKeyPem)).toThrow(/not signed/);
  });

  it('verify with any of several pinned keys without ids (a file from before keys were named)', async () => {
    // Prepare: the gateway pins the old and the new key side by side; a third key is a stranger.
    const next = generateSigningKeyPair();
    const pinned = `${keys.publicKeyPem}\n${next.publicKeyPem}`;
    const byOld = await signManifest(manifest, pemSigner(keys.privateKeyPem, 'old'));
    const byNew = await signManifest(manifest, pemSigner(next.privateKeyPem, 'new'));
    const byStranger = await signManifest(manifest, pemSigner(generateSigningKeyPair().privateKeyPem, 'x'));
    const notice = await signNotice(
      { ...rollback, releasedAt: new Date().toISOString() },
      pemSigner(next.privateKeyPem, 'new'),
    );

    // Act / Assess
    expect(pinnedKeys(pinned).map((key) => key.keyId)).toEqual([undefined, undefined]);
    expect(() => verifyManifestSignature(byOld, pinned)).not.toThrow();
    expect(() => verifyManifestSignature(byNew, pinned)).not.toThrow();
    expect(() => verifyManifestSignature(byStranger, pinned)).toThrow(/does not verify/);
    expect(noticeRefusal(notice, pinned, Date.now())).toBeUndefined();
    expect(() => pinnedKeys('not a key')).toThrow(/no PEM public key/);
  });
});

describe('a signing key rotation, keys pinned by keyId', () => {
  const OLD = 'arn:aws:kms:eu-west-1:111122223333:key/0ld00000-0000-0000-0000-000000000000';
  const NEW = 'arn:aws:kms:eu-west-1:111122223333:key/0e000000-0000-0000-0000-000000000000';
  const oldKey = generateSigningKeyPair();
  const newKey = generateSigningKeyPair();
  const both = namedPublicKey(OLD, oldKey.publicKeyPem) + namedPublicKey(NEW, newKey.publicKeyPem);
  const newOnly = namedPublicKey(NEW, newKey.publicKeyPem);
  const release = () => ({ ...rollback, kind: 'release' as const, releasedAt: new Date().toISOString() });

  it('step 1, old and new pinned: manifests and notices of either key are accepted', async () => {
    // Prepare
    const byOld = await signManifest(manifest, pemSigner(oldKey.privateKeyPem, OLD));
    const byNew = await signManifest(manifest, pemSigner(newKey.privateKeyPem, NEW));
    const noticeByOld = await signNotice(release(), pemSigner(oldKey.privateKeyPem, OLD));

    // Act / Assess
    expect(pinnedKeys(both).map((key) => key.keyId)).toEqual([OLD, NEW]);
    expect(() => verifyManifestSignature(byOld, both)).not.toThrow();
    expect(() => verifyManifestSignature(byNew, both)).not.toThrow();
    expect(noticeRefusal(noticeByOld, both, Date.now())).toBeUndefined();
  });

  it('step 2, only the new key pinned: an old-key manifest or notice is refused, naming the key and the fix', async () => {
    // Prepare
    const byOld = await signManifest(manifest, pemSigner(oldKey.privateKeyPem, OLD));
    const noticeByOld = await signNotice(release(), pemSigner(oldKey.privateKeyPem, OLD));

    // Act
    const refusal = () => verifyManifestSignature(byOld, newOnly);
    const noticeRefused = noticeRefusal(noticeByOld, newOnly, Date.now());

    // Assess
    expect(refusal).toThrow(
      `manifest signature is by key '${OLD}', which is not pinned on this gateway (pinned: ${NEW}): if that key is the stage's new signing key, pin it: add its public key, with the line 'keyId: ${OLD}' above it`,
    );
    expect(noticeRefused).toContain(
      `release notice for pumps v2: its signature is by key '${OLD}', which is not pinned`,
    );
  });

  it('refuses a manifest that names the new key but was signed with the old one', async () => {
    // Prepare: the old key's signature, relabelled (keyId is outside the signed bytes).
    const byOld = await signManifest(manifest, pemSigner(oldKey.privateKeyPem, OLD));
    const relabelled = { ...byOld, signature: { ...byOld.signature, keyId: NEW } as Manifest['signature'] };

    // Act / Assess: only the key it names is tried, though the old key is pinned too.
    expect(() => verifyManifestSignature(relabelled, both)).toThrow(
      `manifest signature does not verify with the pinned key '${NEW}': forged, altered, or signed by another key than it names`,
    );
  });

  it("names the local stack's key, also in a data dir written before keys were named", () => {
    // Prepare: an old data dir, its public key file without a keyId line.
    const dir = mkdtempSync(join(tmpdir(), 'edgeloop-keyid-'));
    const privateKeyPath = join(dir, 'keys', 'signing.pem');
    const fresh = ensureSigningKey(join(dir, 'fresh', 'signing.pem'));
    mkdirSync(join(dir, 'keys'));
    writeFileSync(privateKeyPath, oldKey.privateKeyPem);
    writeFileSync(publicKeyPathFor(privateKeyPath), oldKey.publicKeyPem);

    // Act
    const upgraded = ensureSigningKey(privateKeyPath);

    // Assess
    expect(pinnedKeys(upgraded.publicKeyPem)).toEqual([
      { keyId: localKeyId(oldKey.publicKeyPem), pem: oldKey.publicKeyPem.trim() },
    ]);
    expect(readFileSync(publicKeyPathFor(privateKeyPath), 'utf8')).toBe(upgraded.publicKeyPem);
    expect(pinnedKeys(fresh.publicKeyPem)[0]?.keyId).toMatch(/^local:[0-9a-f]{16}$/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('names local key pairs by their public key, the same id the signer and the pinned file use', () => {
    // Act
    const signer = pemSigner(oldKey.privateKeyPem);
    const [pinned] = pinnedKeys(namedPublicKey(localKeyId(oldKey.publicKeyPem), oldKey.publicKeyPem));

    // Assess
    expect(signer.keyId).toMatch(/^local:[0-9a-f]{16}$/);
    expect(pinned?.keyId).toBe(signer.keyId);
    expect(localKeyId(newKey.publicKeyPem)).not.toBe(signer.keyId);
  });
});

const rollback = {
  model: 'pumps',
  version: 2,
  bucket: 'b',
  manifestKey: 'models/pumps/v2/manifest.json',
  manifestSha256: 'a'.repeat(64),
  kind: 'rollback' as const,
};
