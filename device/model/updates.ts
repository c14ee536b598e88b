/**
 * Release notices to the serving model: each retained notice (release or canary topic) is
 * checked (JSON, schema, this model, signed and current), the selector picks the one this
 * gateway acts on, and one update runs at a time. A failure that would repeat (a bad
 * signature, a model that does not load) is not retried on every redelivery of the retained
 * notice; one refused for lack of disk space is retried once the disk has room.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { errorMessage } from '../../shared/errors.ts';
import { noticeRefusal } from '../../shared/notice.ts';
import {
  type DeviceState,
  describeZodError,
  type ReleaseNotice,
  ReleaseNoticeSchema,
  type UpdateStep,
} from '../../shared/schemas.ts';
import { enterStep } from '../platform/crash.ts';
import type { DiskMonitor } from '../platform/disk.ts';
import type { Engine } from './engine.ts';
import type { LoadedModel } from './model.ts';
import type { ModelStore } from './model-store.ts';
import { NoticeSelector, type NoticeSource } from './rollout.ts';
import { applyRelease, isNewNotice, type SwapPoint, UpdateFailure } from './updater.ts';

export interface UpdatesContext {
  thing: string;
  model: string;
  publicKeyPem: string;
  s3: S3Client;
  store: ModelStore;
  engine: Engine;
  disk: DiskMonitor;
  log: (line: string) => void;
  /** Serves a model that passed its checks. */
  serve: (model: LoadedModel) => void;
  setState: (state: DeviceState) => void;
  reportError: (step: UpdateStep, reason: string, version?: number) => void;
  /** A new version serves (the device clears its last error and tells its observers). */
  served: (version: number) => void;
  stopped: () => boolean;
  onSwapPoint?: (point: SwapPoint, version: number) => void | Promise<void>;
}

export class ModelUpdates {
  private readonly selector: NoticeSelector;
  private pending: ReleaseNotice | undefined;
  /** A release refused for lack of disk space: tried again once the disk has room. */
  private deferredForDisk: ReleaseNotice | undefined;
  private running: Promise<void> | undefined;
  /** Notices that failed in a way that would repeat (version, manifest digest, kind). */
  private readonly refused = new Set<string>();

  constructor(private readonly ctx: UpdatesContext) {
    this.selector = new NoticeSelector(ctx.thing, ctx.model);
  }

  /** The notice topics to subscribe to, and which source each feeds. */
  topics(): { topic: string; source: NoticeSource }[] {
    return this.selector.topics();
  }

  /** A notice arrived on `source`'s topic. */
  offer(source: NoticeSource, payload: Buffer): void {
    const notice = this.verified(payload);
    if (!notice) return;
    const chosen = this.selector.offer(source, notice, this.ctx.engine.version);
    if (!chosen) return;
    this.pending = chosen;
    this.start();
  }

  /** The notice in `payload` when it is this model's, well-formed, signed and current; else reported. */
  private verified(payload: Buffer): ReleaseNotice | undefined {
    const { ctx } = this;
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      ctx.reportError('download', 'the release notice is not JSON');
      return undefined;
    }
    const parsed = ReleaseNoticeSchema.safeParse(json);
    if (!parsed.success) {
      ctx.reportError('download', `the release notice is invalid: ${describeZodError(parsed.error)}`);
      return undefined;
    }
    if (parsed.data.model !== ctx.model) return undefined;
    const refusal = noticeRefusal(parsed.data, ctx.publicKeyPem, Date.now());
    if (refusal) {
      ctx.reportError('verify', refusal, parsed.data.version);
      return undefined;
    }
    return parsed.data;
  }

  /** The disk has room again: a release deferred for lack of it is tried now. */
  retryDeferred(): void {
    if (!this.deferredForDisk || this.ctx.stopped()) return;
    this.pending ??= this.deferredForDisk;
    this.deferredForDisk = undefined;
    this.start();
  }

  /** Resolves once the running update (if any) ended. */
  async settled(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  private start() {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
  }

  private async run() {
    const { ctx } = this;
    while (this.pending && !ctx.stopped()) {
      const notice = this.pending;
      this.pending = undefined;
      const key = `${notice.version}:${notice.manifestSha256}:${notice.kind}`;
      if (!isNewNotice(notice, ctx.engine.version) || this.refused.has(key)) continue;
      ctx.setState('updating');
      enterStep(`update v${notice.version}`);
      ctx.log(`release notice: ${notice.model} v${notice.version} (${notice.kind})`);
      try {
        const model = await applyRelease(notice, {
          s3: ctx.s3,
          store: ctx.store,
          publicKeyPem: ctx.publicKeyPem,
          currentVersion: ctx.engine.version,
          onSwapPoint: ctx.onSwapPoint,
          log: ctx.log,
          // Fresh figures: another writer may have filled the disk since the last look.
          diskRefusal: async (bytes) => {
            await ctx.disk.refresh();
            return ctx.disk.refusal(bytes);
          },
        });
        ctx.serve(model);
        ctx.log(`serving model ${ctx.model} v${model.version}`);
        ctx.served(model.version);
      } catch (error) {
        const failure =
          error instanceof UpdateFailure
            ? error
            : new UpdateFailure('load', errorMessage(error), notice.version);
        // Anything but a download failure or a full disk will fail the same way again: do not
        // retry it every time the retained notice is redelivered.
        if (failure.forLackOfSpace) this.deferredForDisk = notice;
        else if (failure.step !== 'download') this.refused.add(key);
        ctx.reportError(failure.step, failure.reason, notice.version);
      }
      ctx.setState(ctx.engine.version ? 'serving' : 'waiting');
      enterStep('serve');
    }
  }
}
