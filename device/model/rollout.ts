/**
 * Staged rollout on the gateway: a model has two retained notices, fleet-wide (topics.release)
 * and canary (topics.canary). The selector keeps the latest of each and says which one this
 * gateway acts on (shared/rollout/cohort.ts decides; a gateway outside the canary cohort never
 * gets a canary-only version).
 */
import { chooseNotice } from '../../shared/rollout/cohort.ts';
import type { ReleaseNotice } from '../../shared/schemas.ts';
import { topicFor } from '../../shared/topology.ts';

export type NoticeSource = 'release' | 'canary';

export class NoticeSelector {
  private fleet: ReleaseNotice | undefined;
  private canary: ReleaseNotice | undefined;

  constructor(
    private readonly thing: string,
    private readonly model: string,
  ) {}

  /**
   * The topics to subscribe to, with the source each one feeds. Canary first: on a reconnect
   * its retained notice then arrives before the fleet notice, so a canary gateway learns its
   * canary still runs before it sees the (older) fleet version.
   */
  topics(): { topic: string; source: NoticeSource }[] {
    return (['canary', 'release'] as const).map((source) => ({
      topic: topicFor(source, { model: this.model }),
      source,
    }));
  }

  /**
   * Records a notice from `source` (already verified: signed and current) and returns the
   * notice to act on now (if any), given the version this gateway serves. When the chosen
   * notice is older than the version served and a newer canary notice names it as its
   * `fallbackVersion`, this gateway runs a canary that no notice names any more (replaced by
   * a canary for another cohort): it goes back to that version as a rollback, on the signed
   * word of the newer canary notice. Any other older notice is passed on as it is (the
   * updater refuses it: anti-rollback).
   */
  offer(source: NoticeSource, notice: ReleaseNotice, serving?: number): ReleaseNotice | undefined {
    if (source === 'canary') this.canary = notice;
    else this.fleet = notice;
    const chosen = chooseNotice(this.thing, this.fleet, this.canary);
    const withdrawn =
      chosen !== undefined &&
      serving !== undefined &&
      chosen.kind !== 'rollback' &&
      chosen.version < serving &&
      this.canary !== undefined &&
      this.canary.version > serving &&
      this.canary.fallbackVersion === chosen.version;
    return withdrawn ? { ...chosen, kind: 'rollback' } : chosen;
  }
}
