import { describe, expect, it } from 'vitest';
import { generateSigningKeyPair, pemSigner } from '../../shared/manifest.ts';
import { NOTICE_TTL_MS, noticeRefusal, signNotice, type UnsignedNotice } from '../../shared/notice.ts';
import { ReleaseNoticeSchema } from '../../shared/schemas.ts';

const keys = generateSigningKeyPair();
const releasedAt = '2026-12-01T00:00:00.000Z';
const now = Date.parse(releasedAt) + 60_000;
const rollback: UnsignedNotice = {
  model: 'm',
  version: 2,
  bucket: 'b',
  manifestKey: 'models/m/v2/manifest.json',
  manifestSha256: 'a'.repeat(64),
  releasedAt,
  kind: 'rollback',
  cohort: 'canary',
};

describe('signed release notices', () => {
  it('signs every field and sets the expiry from the kind', async () => {
    // Act
    const signed = await signNotice(rollback, pemSigner(keys.privateKeyPem, 'k1'));

    // Assess
    expect(ReleaseNoticeSchema.parse(signed)).toEqual(signed);
    expect(signed.signature).toMatchObject({ alg: 'ECDSA_SHA_256', keyId: 'k1' });
    expect(Date.parse(signed.expiresAt ?? '')).toBe(Date.parse(releasedAt) + NOTICE_TTL_MS.rollback);
    expect(noticeRefusal(signed, keys.publicKeyPem, now)).toBeUndefined();
  });

  it.each([
    ['kind', { kind: 'release' }],
    ['version', { version: 1 }],
    ['cohort', { cohort: 'all' }],
    ['expiry', { expiresAt: '2030-01-01T00:00:00.000Z' }],
    ['fallback', { fallbackVersion: 1 }],
  ] as const)('refuses a signed notice whose %s was changed', async (_field, change) => {
    // Prepare
    const signed = await signNotice(rollback, pemSigner(keys.privateKeyPem));

    // Act
    const refusal = noticeRefusal({ ...signed, ...change }, keys.publicKeyPem, now);

    // Assess
    expect(refusal).toMatch(/does not verify with the provisioned public key/);
  });

  it('refuses an unsigned, a foreign-key and an expired notice, each with its reason', async () => {
    // Prepare
    const foreign = await signNotice(rollback, pemSigner(generateSigningKeyPair().privateKeyPem, 'other'));
    const signed = await signNotice(rollback, pemSigner(keys.privateKeyPem));

    // Act
    const refusals = [
      noticeRefusal(rollback, keys.publicKeyPem, now),
      noticeRefusal({ ...signed, signature: undefined }, keys.publicKeyPem, now),
      noticeRefusal(foreign, keys.publicKeyPem, now),
      noticeRefusal(signed, keys.publicKeyPem, Date.parse(signed.expiresAt ?? '')),
      noticeRefusal(
        { ...signed, signature: { alg: 'ECDSA_SHA_256', keyId: 'x', value: '!!' } },
        keys.publicKeyPem,
        now,
      ),
    ];

    // Assess
    expect(refusals[0]).toMatch(/rollback notice for m v2 is not signed/);
    expect(refusals[1]).toMatch(/is not signed/);
    expect(refusals[2]).toMatch(/keyId other\): forged or altered/);
    expect(refusals[3]).toMatch(/expired at 2026-12-15/);
    expect(refusals[4]).toMatch(/does not verify|unreadable signature/);
  });
});
