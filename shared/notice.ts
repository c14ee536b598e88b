/**
 * Signed release notices. A notice tells gateways which version to run (kind, version,
 * cohort, fallback) and until when. The key that signs manifests signs canonicalJson(notice
 * without `signature`), so whoever can publish on the notice topics (a leaked device
 * credential, a web page on a laptop) cannot move a gateway backwards, and an old notice
 * cannot be replayed after its expiry. The device refuses any notice for which
 * `noticeRefusal` gives a reason.
 */
import { canonicalJson, type ManifestSigner, signatureRefusal } from './manifest.ts';
import type { ReleaseNotice } from './schemas.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * How long a notice is honoured after it is released. A release only moves gateways forward,
 * so it may stay retained for long; a rollback moves them back, so its replay window is short
 * (a gateway offline for longer stays on what it runs until the next release).
 */
export const NOTICE_TTL_MS: Record<ReleaseNotice['kind'], number> = {
  release: 365 * DAY_MS,
  rollback: 14 * DAY_MS,
};

/**
 * A released version's fleet-wide notice is re-signed this long after it was signed (the
 * rollout controller does it), so a gateway installed years after a release still gets a
 * current notice for the version the fleet runs.
 */
export const NOTICE_REFRESH_MS = NOTICE_TTL_MS.release / 2;

export type UnsignedNotice = Omit<ReleaseNotice, 'signature'>;

/** The bytes the signature covers: every field but the signature, keys sorted. */
export function noticeSignedBytes(notice: ReleaseNotice): Buffer {
  const { signature: _signature, ...unsigned } = notice;
  return Buffer.from(canonicalJson(unsigned), 'utf8');
}

/** Signs the notice, giving it an expiry of `NOTICE_TTL_MS[kind]` after `releasedAt` unless it has one. */
export async function signNotice(notice: UnsignedNotice, signer: ManifestSigner): Promise<ReleaseNotice> {
  const expiresAt =
    notice.expiresAt ?? new Date(Date.parse(notice.releasedAt) + NOTICE_TTL_MS[notice.kind]).toISOString();
  const unsigned: ReleaseNotice = { ...notice, expiresAt };
  const der = await signer.sign(noticeSignedBytes(unsigned));
  return {
    ...unsigned,
    signature: { alg: 'ECDSA_SHA_256', keyId: signer.keyId, value: der.toString('base64') },
  };
}

/** Why a device must not act on this notice at `nowMs`, or undefined when it is signed, valid and current. */
export function noticeRefusal(
  notice: ReleaseNotice,
  publicKeyPem: string,
  nowMs: number,
): string | undefined {
  const what = `the ${notice.kind} notice for ${notice.model} v${notice.version}`;
  if (!notice.signature)
    return `${what} is not signed: only the stack's signing key may tell a gateway what to run`;
  if (!notice.expiresAt) return `${what} has no expiry: a signed notice must carry expiresAt`;
  let refusal: string | undefined;
  try {
    refusal = signatureRefusal(noticeSignedBytes(notice), notice.signature, publicKeyPem);
  } catch (error) {
    return `${what} has an unreadable signature (${(error as Error).message})`;
  }
  if (refusal) return `${what}: its signature ${refusal}`;
  if (Date.parse(notice.expiresAt) <= nowMs)
    return `${what} expired at ${notice.expiresAt}: it is not acted on (a replayed or stale notice)`;
  return undefined;
}
