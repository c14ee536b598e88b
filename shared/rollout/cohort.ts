/**
 * Canary cohorts: which gateways install a canary version, and which of the two retained
 * notices of a model (fleet-wide on topics.release, canary on topics.canary) a gateway acts
 * on. Pure and deterministic: the device decides, the controller and the tests predict.
 */
import { createHash } from 'node:crypto';
import type { ReleaseNotice } from '../schemas.ts';

/** A stable point in [0, 100) for (thing, version): the first 32 bits of sha256, scaled. */
export function cohortPoint(thing: string, version: number): number {
  const digest = createHash('sha256').update(`${thing}:${version}`).digest();
  return (digest.readUInt32BE(0) / 2 ** 32) * 100;
}

/** Whether `thing` is in the canary cohort of `version` for a plan of `percent` percent. */
export function inCanaryCohort(thing: string, version: number, percent: number): boolean {
  return cohortPoint(thing, version) < percent;
}

/**
 * The notice a gateway should act on, given the latest fleet-wide and canary notices:
 * - a canary release, when the gateway is in its cohort and it is newer than the fleet's;
 * - a canary rollback (the canary gateways return to the fleet's version), unless the fleet
 *   notice is newer than the version it returns to;
 * - otherwise the fleet-wide notice. A gateway outside the cohort never gets a canary release.
 */
export function chooseNotice(
  thing: string,
  fleet: ReleaseNotice | undefined,
  canary: ReleaseNotice | undefined,
): ReleaseNotice | undefined {
  if (!canary || canary.model !== (fleet?.model ?? canary.model)) return fleet;
  const fleetVersion = fleet?.version ?? 0;
  if (canary.kind === 'rollback') return canary.version >= fleetVersion ? canary : fleet;
  if (canary.cohort !== 'canary') return canary.version > fleetVersion ? canary : fleet;
  const percent = canary.rollout?.canaryPercent ?? 0;
  if (canary.version > fleetVersion && inCanaryCohort(thing, canary.version, percent)) return canary;
  return fleet;
}
