import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  generateSigningKeyPair,
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

  it('verify with any of several pinned keys, so a rotation needs no re-provisioning', async () => {
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
    expect(pinnedKeys(pinned)).toHaveLength(2);
    expect(() => verifyManifestSignature(byOld, pinned)).not.toThrow();
    expect(() => verifyManifestSignature(byNew, pinned)).not.toThrow();
    expect(() => verifyManifestSignature(byStranger, pinned)).toThrow(/does not verify/);
    expect(noticeRefusal(notice, pinned, Date.now())).toBeUndefined();
    expect(() => pinnedKeys('not a key')).toThrow(/no PEM public key/);
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
