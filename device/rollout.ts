/**
 * Staged rollout on the gateway: a model has two retained notices, fleet-wide (topics.release)
 * and canary (topics.canary). The selector keeps the latest of each and says which one this
 * gateway acts on (shared/rollout/cohort.ts decides; a gateway outside the canary cohort never
 * gets a canary-only version).
 */
import { chooseNotice } from '../shared/rollout/cohort.ts';
import type { ReleaseNotice } from '../shared/schemas.ts';
import { topicFor } from '../shared/topology.ts';

export type NoticeSource = 'release' | 'canary';

export class NoticeSelector {
  private fleet: ReleaseNotice | undefined;
  private canary: ReleaseNotice | undefined;

  constructor(
    private readonly thing: string,
    private readonly model: string,
  ) {}

  /** The topics to subscribe to, with the source each one feeds. */
  topics(): { topic: string; source: NoticeSource }[] {
    return (['release', 'canary'] as const).map((source) => ({
      topic: topicFor(source, { model: this.model }),
      source,
    }));
  }

  /** Records a notice from `source` and returns the notice to act on now (if any). */
  offer(source: NoticeSource, notice: ReleaseNotice): ReleaseNotice | undefined {
    if (source === 'canary') this.canary = notice;
    else this.fleet = notice;
    return chooseNotice(this.thing, this.fleet, this.canary);
  }
}
