/**
 * Manifests of released versions, read from the models bucket once per (model, version) and
 * kept for the life of the process: a version's manifest never changes once published. A
 * missing or unreadable manifest is remembered for a short while only, so a version published
 * a moment after its first results still gets its thresholds and drift baseline soon.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type Manifest, ManifestSchema } from '../../shared/schemas.ts';
import { modelKeys } from '../../shared/topology.ts';

export interface ManifestLookup {
  get(model: string, version: number): Promise<Manifest | undefined>;
}

export class ManifestCache implements ManifestLookup {
  readonly #found = new Map<string, Promise<Manifest | undefined>>();
  readonly #missingUntil = new Map<string, number>();

  constructor(
    /** A getter, so clients recreated after an endpoint change are picked up. */
    private readonly s3: () => S3Client,
    private readonly bucket: string,
    private readonly options: {
      retryMissingAfterMs?: number;
      now?: () => number;
      onMiss?: (why: string) => void;
    } = {},
  ) {}

  get(model: string, version: number): Promise<Manifest | undefined> {
    const key = modelKeys.manifest(model, version);
    const now = (this.options.now ?? Date.now)();
    if ((this.#missingUntil.get(key) ?? 0) > now) return Promise.resolve(undefined);
    let pending = this.#found.get(key);
    if (!pending) {
      pending = this.#load(key).then((manifest) => {
        if (!manifest) {
          this.#found.delete(key);
          this.#missingUntil.set(key, now + (this.options.retryMissingAfterMs ?? 60_000));
        }
        return manifest;
      });
      this.#found.set(key, pending);
    }
    return pending;
  }

  async #load(key: string): Promise<Manifest | undefined> {
    try {
      const response = await this.s3().send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      const text = (await response.Body?.transformToString('utf8')) ?? '';
      const parsed = ManifestSchema.safeParse(JSON.parse(text));
      if (parsed.success) return parsed.data;
      this.options.onMiss?.(`manifest s3://${this.bucket}/${key} does not match the manifest schema`);
    } catch (error) {
      this.options.onMiss?.(
        `manifest s3://${this.bucket}/${key} unreadable: ${(error as Error).name}: ${(error as Error).message}`,
      );
    }
    return undefined;
  }
}
