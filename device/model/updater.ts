/**
 * One model update, from a release notice to a serving model: download -> verify ->
 * stage -> probation -> switch. Any failure throws an UpdateFailure naming the step and the
 * reason; the caller keeps serving the old model and reports it on the status topic.
 * The notice's signature and expiry were checked on arrival (shared/notice.ts), so its
 * `kind` is the signer's word: only a rollback goes below the highest version verified.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { errorMessage } from '../../shared/errors.ts';
import { sha256Hex, verifyManifestSignature } from '../../shared/manifest.ts';
import {
  describeZodError,
  type Manifest,
  ManifestSchema,
  type ReleaseNotice,
  type UpdateStep,
} from '../../shared/schemas.ts';
import { modelFiles, modelKeys } from '../../shared/topology.ts';
import { storageFault } from '../platform/disk.ts';
import { type LoadedModel, loadModelFromBytes, probationFailure } from './model.ts';
import { digestMismatch, type ModelStore, type SlotFiles } from './model-store.ts';

export class UpdateFailure extends Error {
  constructor(
    readonly step: UpdateStep,
    readonly reason: string,
    readonly version?: number,
    /** The disk had no room for it: worth another try once the disk has room again. */
    readonly forLackOfSpace = false,
  ) {
    super(`${step}: ${reason}`);
    this.name = 'UpdateFailure';
  }
}

/** Points the fault tests can crash at: after the staging dir is written, after the slot is verified, after the pointer switch. */
export type SwapPoint = 'staged' | 'verified' | 'switched';

export interface UpdateContext {
  s3: S3Client;
  store: ModelStore;
  publicKeyPem: string;
  currentVersion: number | undefined;
  /** Test hook called after each swap point (fault injection). */
  onSwapPoint?: (point: SwapPoint, version: number) => void | Promise<void>;
  log?: (line: string) => void;
  retries?: number;
  /** Why `bytes` more must not be written to the state dir's disk now (undefined: they may). */
  diskRefusal?: (bytes: number) => Promise<string | undefined>;
}

/** What a file costs on disk at most beyond its bytes (its last block). */
const BLOCK_SLACK = 4096;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function getObject(ctx: UpdateContext, bucket: string, key: string): Promise<Buffer> {
  const attempts = ctx.retries ?? 3;
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const response = await ctx.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if (!response.Body) throw new Error('empty body');
      return Buffer.from(await response.Body.transformToByteArray());
    } catch (error) {
      lastError = error;
      const name = (error as { name?: string }).name;
      if (name === 'NoSuchKey' || name === 'AccessDenied' || name === 'NoSuchBucket') break;
      if (attempt < attempts) await sleep(200 * 2 ** attempt);
    }
  }
  throw new UpdateFailure('download', `s3://${bucket}/${key}: ${errorMessage(lastError)}`);
}

/** Whether a notice asks for work: false when it names the version already serving. */
export function isNewNotice(notice: ReleaseNotice, currentVersion: number | undefined): boolean {
  return notice.version !== currentVersion;
}

/** Runs the whole update; returns the new model, already switched to and loaded. */
export async function applyRelease(notice: ReleaseNotice, ctx: UpdateContext): Promise<LoadedModel> {
  const v = notice.version;
  const fail = (step: UpdateStep, reason: string): never => {
    throw new UpdateFailure(step, reason, v);
  };
  // The floor survives restarts and rollbacks: a replayed older release cannot undo a newer one.
  const highest = await ctx.store.highestVersion();
  const floor = Math.max(ctx.currentVersion ?? 0, highest ?? 0);
  if (v < floor && notice.kind !== 'rollback')
    fail(
      'verify',
      `version ${v} is older than version ${floor}, the highest this gateway has verified (anti-rollback; only a signed notice with kind "rollback" naming v${v} goes back)`,
    );

  // download + verify the manifest first: its digest, schema, identity and signature.
  const manifestBytes = await getObject(ctx, notice.bucket, notice.manifestKey);
  const manifestDigest = sha256Hex(manifestBytes);
  if (manifestDigest !== notice.manifestSha256)
    fail(
      'verify',
      `manifest sha256 ${manifestDigest} does not match the release notice's ${notice.manifestSha256}`,
    );
  let manifest: Manifest;
  try {
    const parsed = ManifestSchema.safeParse(JSON.parse(manifestBytes.toString('utf8')));
    if (!parsed.success) return fail('verify', `manifest is invalid: ${describeZodError(parsed.error)}`);
    manifest = parsed.data;
  } catch (error) {
    return fail('verify', `manifest is not JSON: ${errorMessage(error)}`);
  }
  if (manifest.model !== notice.model || manifest.version !== v)
    fail(
      'verify',
      `manifest is for ${manifest.model} v${manifest.version}, the notice names ${notice.model} v${v}`,
    );
  try {
    verifyManifestSignature(manifest, ctx.publicKeyPem);
  } catch (error) {
    fail('verify', errorMessage(error));
  }

  const files = new Map<string, Buffer>();
  for (const entry of manifest.files)
    files.set(entry.name, await getObject(ctx, notice.bucket, modelKeys.file(manifest.model, v, entry.name)));
  const mismatch = digestMismatch(manifest, files);
  if (mismatch) fail('verify', mismatch);

  // stage, then promote the staging dir to a verified slot; not on a disk without room
  // for it (the outbox's reserve is not the model's to take).
  const keeps =
    ctx.currentVersion !== undefined ? `v${ctx.currentVersion} keeps serving` : 'no model serves yet';
  const noRoom = (step: UpdateStep, why: string): never => {
    throw new UpdateFailure(
      step,
      `${why}: v${v} is not staged and ${keeps}; it is tried again once the disk has room`,
      v,
      true,
    );
  };
  let bytes = manifestBytes.length + BLOCK_SLACK;
  for (const file of files.values()) bytes += file.length + BLOCK_SLACK;
  const refusal = await ctx.diskRefusal?.(bytes);
  if (refusal) noRoom('stage', refusal);
  let staging: string;
  try {
    staging = await ctx.store.stage({ manifestBytes, manifest, files });
  } catch (error) {
    if (storageFault(error)) noRoom('stage', `the disk refused the staging write (${errorMessage(error)})`);
    return fail('stage', errorMessage(error));
  }
  await ctx.onSwapPoint?.('staged', v);
  try {
    await ctx.store.promote(staging, v);
  } catch (error) {
    if (storageFault(error)) noRoom('verify', `the disk refused the slot (${errorMessage(error)})`);
    fail('verify', errorMessage(error));
  }
  await ctx.onSwapPoint?.('verified', v);

  // probation: load it and run the golden vectors.
  let model: LoadedModel;
  try {
    model = await loadFromSlotFiles(manifest, files);
  } catch (error) {
    return fail('probation', `the model does not load: ${errorMessage(error)}`);
  }
  const failure = probationFailure(model);
  if (failure) {
    model.dispose();
    fail('probation', failure);
  }

  try {
    await ctx.store.switchTo(v);
  } catch (error) {
    model.dispose();
    if (storageFault(error)) noRoom('switch', `the disk refused the pointer switch (${errorMessage(error)})`);
    fail('switch', errorMessage(error));
  }
  await ctx.onSwapPoint?.('switched', v);
  try {
    await ctx.store.recordVerified(v);
  } catch (error) {
    // v serves; the floor stays at the last version recorded (still at or above the old one).
    ctx.log?.(`the highest verified version v${v} was not recorded: ${errorMessage(error)}`);
  }
  return model;
}

/** The boot check of a stored slot: a manifest the provisioned key did not sign is not loaded. */
export function signedBy(publicKeyPem: string): (slot: SlotFiles) => string | undefined {
  return (slot) => {
    try {
      verifyManifestSignature(slot.manifest, publicKeyPem);
      return undefined;
    } catch (error) {
      return `${errorMessage(error)} (a model placed in the state dir is not trusted)`;
    }
  };
}

export function loadFromSlotFiles(
  manifest: Manifest,
  files: ReadonlyMap<string, Buffer>,
): Promise<LoadedModel> {
  const topology = files.get(modelFiles.topology);
  const weights = files.get(modelFiles.weights);
  if (!topology || !weights)
    throw new Error(`the manifest must list ${modelFiles.topology} and ${modelFiles.weights}`);
  return loadModelFromBytes(topology, weights, manifest);
}
