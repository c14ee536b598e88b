/**
 * The local S3's objects on the filesystem, with S3's semantics and none of HTTP.
 *
 * Layout under the root: `<bucket>/<segment>/…/<last segment>%obj`, one file per object,
 * each key segment percent-encoded (RFC 3986, plus `.`/`..` and the empty segment), so no key
 * can leave its bucket and `%obj` (which encoding never produces) marks an object file apart
 * from the directories of longer keys. An object file is the data followed by its metadata
 * (JSON), the JSON's length and a magic: one file, so one rename publishes data and metadata
 * together. Every write goes to `.tmp/` first and is renamed into place (linked, for a
 * create-only put) after the body was received whole and checked: a reader sees the old
 * object or the new one, never a part, and a crash leaves only a temp file, removed at the
 * next start. Multipart parts live in `.uploads/<id>/` until the upload is completed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, type Dirent } from 'node:fs';
import {
  type FileHandle,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { noSuchBucket, noSuchKey, noSuchUpload, preconditionFailed, S3Error } from './errors.ts';

/** What a writer says about an object besides its bytes. */
export interface ObjectAttributes {
  contentType: string;
  /** content-encoding, content-disposition, cache-control, content-language, expires (lower case). */
  headers: Record<string, string>;
  /** x-amz-meta-* without the prefix, names in lower case. */
  userMetadata: Record<string, string>;
}

export interface ObjectMeta extends ObjectAttributes {
  /** Quoted, as S3 sends it: the MD5 of the data, or MD5-of-part-MD5s-N after a multipart upload. */
  etag: string;
  size: number;
  lastModified: number;
}

export interface OpenObject {
  meta: ObjectMeta;
  /** The data (or bytes `start`..`end` inclusive); the file is closed when the stream ends. */
  stream(range?: { start: number; end: number }): Readable;
  close(): Promise<void>;
}

export interface ListOptions {
  prefix: string;
  delimiter: string;
  /** Keys (and common prefixes) up to and including this one are skipped. */
  after: string;
  maxKeys: number;
}

export interface Listing {
  objects: { key: string; meta: ObjectMeta }[];
  commonPrefixes: string[];
  truncated: boolean;
  /** The last key or common prefix returned: where the next page starts. */
  last: string | undefined;
}

export interface WriteOptions {
  /** `If-None-Match: *`: refuse (412) when the key exists, checked at the moment of publishing. */
  createOnly?: boolean;
  /** Called once the body is stored in the temp file, before it is published; throw to refuse it. */
  beforeCommit?: () => void;
}

/** The headers an object keeps besides its type and user metadata (lower case). */
export const STORED_HEADERS = [
  'content-encoding',
  'content-disposition',
  'cache-control',
  'content-language',
  'expires',
];

const OBJECT_SUFFIX = '%obj';
const MAGIC = Buffer.from('ELS3');
const FOOTER_BYTES = 8;
/** S3: parts other than the last are at least 5 MiB; at most 10,000 parts. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
export const MAX_PARTS = 10_000;
const UPLOAD_ID = /^[A-Za-z0-9_-]{32}$/;

/** Bucket names as S3 accepts them (no dots-only tricks: the name is a directory here). */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export class ObjectStore {
  private constructor(private readonly root: string) {}

  /** Opens (creating) the store, drops temp files a crash left, and creates `buckets` if missing. */
  static async open(root: string, buckets: readonly string[] = []): Promise<ObjectStore> {
    const store = new ObjectStore(root);
    await mkdir(root, { recursive: true });
    await rm(store.tmpDir, { recursive: true, force: true });
    await mkdir(store.tmpDir, { recursive: true });
    await mkdir(store.uploadsDir, { recursive: true });
    for (const bucket of buckets) if (!(await store.bucketExists(bucket))) await store.createBucket(bucket);
    return store;
  }

  private get tmpDir() {
    return join(this.root, '.tmp');
  }

  private get uploadsDir() {
    return join(this.root, '.uploads');
  }

  // Buckets ---------------------------------------------------------------------------

  async listBuckets(): Promise<{ name: string; created: Date }[]> {
    const entries = await readdir(this.root, { withFileTypes: true });
    const names = entries.filter((e) => e.isDirectory() && BUCKET_NAME.test(e.name)).map((e) => e.name);
    return Promise.all(
      names.sort().map(async (name) => ({ name, created: (await stat(join(this.root, name))).birthtime })),
    );
  }

  async bucketExists(bucket: string): Promise<boolean> {
    if (!BUCKET_NAME.test(bucket)) return false;
    try {
      return (await stat(join(this.root, bucket))).isDirectory();
    } catch (error) {
      if (isCode(error, 'ENOENT')) return false;
      throw error;
    }
  }

  async createBucket(bucket: string): Promise<void> {
    if (!BUCKET_NAME.test(bucket))
      throw new S3Error('InvalidBucketName', 400, 'The specified bucket is not valid.', {
        BucketName: bucket,
      });
    try {
      await mkdir(join(this.root, bucket));
    } catch (error) {
      if (!isCode(error, 'EEXIST')) throw error;
      throw new S3Error(
        'BucketAlreadyOwnedByYou',
        409,
        'Your previous request to create the named bucket succeeded and you already own it.',
        { BucketName: bucket },
      );
    }
  }

  private async requireBucket(bucket: string): Promise<void> {
    if (!(await this.bucketExists(bucket))) throw noSuchBucket(bucket);
  }

  // Objects ---------------------------------------------------------------------------

  async head(bucket: string, key: string): Promise<ObjectMeta> {
    const object = await this.open(bucket, key);
    await object.close();
    return object.meta;
  }

  async open(bucket: string, key: string): Promise<OpenObject> {
    await this.requireBucket(bucket);
    let handle: FileHandle;
    try {
      handle = await open(this.objectPath(bucket, key), 'r');
    } catch (error) {
      if (isCode(error, 'ENOENT') || isCode(error, 'ENOTDIR') || isCode(error, 'ENAMETOOLONG'))
        throw noSuchKey(key);
      throw error;
    }
    try {
      const meta = await readFooter(handle, key);
      return {
        meta,
        stream: (range) =>
          handle.createReadStream({
            start: range?.start ?? 0,
            end: range ? range.end : meta.size - 1,
            autoClose: true,
          }),
        close: () => handle.close(),
      };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Stores `body` as the object, published only when it was read whole (and `beforeCommit` passed). */
  async put(
    bucket: string,
    key: string,
    body: Readable,
    attributes: ObjectAttributes,
    options: WriteOptions = {},
  ): Promise<ObjectMeta> {
    await this.requireBucket(bucket);
    const target = this.objectPath(bucket, key);
    const temp = this.tempPath();
    try {
      await writeObjectFile(temp, [body], (digest, bytes) => ({
        ...attributes,
        etag: `"${digest.toString('hex')}"`,
        size: bytes,
        lastModified: Date.now(),
      }));
      options.beforeCommit?.();
      await publish(temp, target, options.createOnly === true);
      return await this.head(bucket, key);
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** CopyObject: the source's bytes under a new key, with its attributes or `replace`d ones. */
  async copy(
    source: { bucket: string; key: string },
    bucket: string,
    key: string,
    replace: ObjectAttributes | undefined,
  ): Promise<ObjectMeta> {
    await this.requireBucket(bucket);
    const from = await this.open(source.bucket, source.key);
    const { meta } = from;
    const attributes = replace ?? {
      contentType: meta.contentType,
      headers: meta.headers,
      userMetadata: meta.userMetadata,
    };
    const data = from.stream();
    try {
      return await this.put(bucket, key, data, attributes);
    } finally {
      data.destroy(); // closes the source file if the put failed before reading it
    }
  }

  /** DeleteObject: idempotent, as in S3 (a missing key is no error, a missing bucket is). */
  async delete(bucket: string, key: string): Promise<void> {
    await this.requireBucket(bucket);
    const path = this.objectPath(bucket, key);
    try {
      await unlink(path);
    } catch (error) {
      if (isCode(error, 'ENOENT') || isCode(error, 'ENOTDIR') || isCode(error, 'ENAMETOOLONG')) return;
      throw error;
    }
    await this.pruneDirs(dirname(path), join(this.root, bucket));
  }

  /** Keys in UTF-8 byte order (as S3 lists them), grouped by `delimiter` after `prefix`. */
  async list(bucket: string, options: ListOptions): Promise<Listing> {
    await this.requireBucket(bucket);
    const { prefix, delimiter, after } = options;
    // Only the folder holding the prefix's whole segments can contain matching keys.
    const folderSegments = prefix.split('/').slice(0, -1);
    const start = join(this.root, bucket, ...folderSegments.map(encodeSegment));
    const keys = (await this.keysUnder(start, folderSegments)).filter((key) => key.startsWith(prefix));
    keys.sort(byUtf8);
    const objects: string[] = [];
    const commonPrefixes: string[] = [];
    let last: string | undefined;
    let truncated = false;
    const afterIsPrefix =
      delimiter !== '' &&
      after.startsWith(prefix) &&
      after.indexOf(delimiter, prefix.length) === after.length - delimiter.length;
    for (const key of keys) {
      if (byUtf8(key, after) <= 0) continue;
      // A marker that is a common prefix (the last item of the previous page) skips its keys.
      if (afterIsPrefix && key.startsWith(after)) continue;
      const at = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
      const item = at >= 0 ? key.slice(0, at + delimiter.length) : key;
      if (item === last) continue;
      if (objects.length + commonPrefixes.length >= options.maxKeys) {
        truncated = true;
        break;
      }
      if (at >= 0) commonPrefixes.push(item);
      else objects.push(item);
      last = item;
    }
    const metas = await Promise.all(
      objects.map((key) =>
        this.head(bucket, key).catch((error: unknown) => {
          // Deleted since the directory was read.
          if (error instanceof S3Error && error.code === 'NoSuchKey') return undefined;
          throw error;
        }),
      ),
    );
    return {
      objects: objects.flatMap((key, i) => {
        const meta = metas[i];
        return meta ? [{ key, meta }] : [];
      }),
      commonPrefixes,
      truncated,
      last,
    };
  }

  // Multipart uploads -----------------------------------------------------------------

  async createUpload(bucket: string, key: string, attributes: ObjectAttributes): Promise<string> {
    await this.requireBucket(bucket);
    const uploadId = randomBytes(24).toString('base64url');
    const dir = join(this.uploadsDir, uploadId);
    await mkdir(dir);
    await writeFile(join(dir, 'upload.json'), JSON.stringify({ bucket, key, attributes }));
    return uploadId;
  }

  /** Stores one part (replacing an earlier upload of the same number); returns its quoted ETag. */
  async putPart(
    bucket: string,
    key: string,
    uploadId: string,
    partNumber: number,
    body: Readable,
    options: Pick<WriteOptions, 'beforeCommit'> = {},
  ): Promise<string> {
    const dir = await this.uploadDir(bucket, key, uploadId);
    const temp = this.tempPath();
    try {
      const { md5 } = await writeObjectFile(temp, [body], (digest, size) => ({
        contentType: '',
        headers: {},
        userMetadata: {},
        etag: `"${digest.toString('hex')}"`,
        size,
        lastModified: Date.now(),
      }));
      options.beforeCommit?.();
      await rename(temp, join(dir, String(partNumber)));
      return `"${md5.toString('hex')}"`;
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** CompleteMultipartUpload: the listed parts, in order, become the object. */
  async completeUpload(
    bucket: string,
    key: string,
    uploadId: string,
    parts: { partNumber: number; etag: string }[],
    options: Pick<WriteOptions, 'createOnly'> = {},
  ): Promise<ObjectMeta> {
    const dir = await this.uploadDir(bucket, key, uploadId);
    const { attributes } = JSON.parse(await readFile(join(dir, 'upload.json'), 'utf8')) as {
      attributes: ObjectAttributes;
    };
    if (parts.length === 0 || parts.length > MAX_PARTS)
      throw new S3Error('MalformedXML', 400, `A multipart upload is completed with 1 to ${MAX_PARTS} parts.`);
    // The list is checked before any part (S3 answers InvalidPartOrder first).
    if (parts.some((part, i) => i > 0 && part.partNumber <= (parts[i - 1]?.partNumber ?? 0)))
      throw new S3Error('InvalidPartOrder', 400, 'The list of parts was not in ascending order.');
    const opened: OpenObject[] = [];
    const temp = this.tempPath();
    try {
      for (const [index, part] of parts.entries()) {
        const object = await openPart(join(dir, String(part.partNumber)));
        if (!object || object.meta.etag !== normalizeEtag(part.etag)) {
          await object?.close();
          throw new S3Error(
            'InvalidPart',
            400,
            "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
            { UploadId: uploadId, PartNumber: String(part.partNumber), ETag: part.etag },
          );
        }
        opened.push(object);
        if (index < parts.length - 1 && object.meta.size < MIN_PART_BYTES)
          throw new S3Error(
            'EntityTooSmall',
            400,
            'Your proposed upload is smaller than the minimum allowed object size.',
            {
              PartNumber: String(part.partNumber),
              ProposedSize: String(object.meta.size),
              MinSizeAllowed: String(MIN_PART_BYTES),
            },
          );
      }
      const partDigests = createHash('md5');
      for (const part of opened) partDigests.update(Buffer.from(part.meta.etag.slice(1, -1), 'hex'));
      const etag = `"${partDigests.digest('hex')}-${parts.length}"`;
      await writeObjectFile(
        temp,
        opened.map((part) => part.stream()),
        (_digest, size) => ({ ...attributes, etag, size, lastModified: Date.now() }),
      );
      await publish(temp, this.objectPath(bucket, key), options.createOnly === true);
      await rm(dir, { recursive: true, force: true });
      return await this.head(bucket, key);
    } finally {
      await Promise.all(opened.map((part) => part.close().catch(() => {})));
      await rm(temp, { force: true });
    }
  }

  async abortUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    await rm(await this.uploadDir(bucket, key, uploadId), { recursive: true, force: true });
  }

  private async uploadDir(bucket: string, key: string, uploadId: string): Promise<string> {
    await this.requireBucket(bucket);
    if (!UPLOAD_ID.test(uploadId)) throw noSuchUpload(uploadId);
    const dir = join(this.uploadsDir, uploadId);
    let upload: { bucket: string; key: string };
    try {
      upload = JSON.parse(await readFile(join(dir, 'upload.json'), 'utf8')) as typeof upload;
    } catch (error) {
      if (isCode(error, 'ENOENT')) throw noSuchUpload(uploadId);
      throw error;
    }
    // An upload id is valid only for the bucket and key it was created for.
    if (upload.bucket !== bucket || upload.key !== key) throw noSuchUpload(uploadId);
    return dir;
  }

  // Paths -----------------------------------------------------------------------------

  private objectPath(bucket: string, key: string): string {
    const segments = key.split('/').map(encodeSegment);
    const last = segments.pop() ?? '%';
    return join(this.root, bucket, ...segments, `${last}${OBJECT_SUFFIX}`);
  }

  private tempPath(): string {
    return join(this.tmpDir, randomBytes(12).toString('hex'));
  }

  private async keysUnder(dir: string, segments: string[]): Promise<string[]> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isCode(error, 'ENOENT') || isCode(error, 'ENOTDIR')) return [];
      throw error;
    }
    const keys: string[] = [];
    for (const entry of entries) {
      if (entry.isDirectory()) {
        const segment = decodeSegment(entry.name);
        if (segment !== undefined)
          keys.push(...(await this.keysUnder(join(dir, entry.name), [...segments, segment])));
      } else if (entry.name.endsWith(OBJECT_SUFFIX)) {
        const segment = decodeSegment(entry.name.slice(0, -OBJECT_SUFFIX.length));
        if (segment !== undefined) keys.push([...segments, segment].join('/'));
      }
    }
    return keys;
  }

  /** Removes the folders a delete emptied, up to (not including) the bucket's. */
  private async pruneDirs(dir: string, bucketDir: string): Promise<void> {
    let current = dir;
    while (relative(bucketDir, current) !== '' && !relative(bucketDir, current).startsWith('..')) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (or a put is filling it again)
      }
      current = dirname(current);
    }
  }
}

// Object files ------------------------------------------------------------------------

/**
 * Writes `sources` one after the other into a new file, then the metadata `describe` makes
 * from the data's MD5 and size; flushed to disk before the promise resolves.
 */
async function writeObjectFile(
  path: string,
  sources: Readable[],
  describe: (md5: Buffer, size: number) => ObjectMeta,
): Promise<{ md5: Buffer; size: number }> {
  const hash = createHash('md5');
  let size = 0;
  let md5 = Buffer.alloc(0);
  await pipeline(
    async function* () {
      for (const source of sources)
        for await (const chunk of source as AsyncIterable<Buffer>) {
          hash.update(chunk);
          size += chunk.length;
          yield chunk;
        }
      md5 = hash.digest();
      const json = Buffer.from(JSON.stringify(describe(md5, size)));
      const footer = Buffer.alloc(FOOTER_BYTES);
      footer.writeUInt32BE(json.length, 0);
      MAGIC.copy(footer, 4);
      yield Buffer.concat([json, footer]);
    },
    createWriteStream(path, { flags: 'wx', mode: 0o600, flush: true }),
  );
  return { md5, size };
}

async function readFooter(handle: FileHandle, key: string): Promise<ObjectMeta> {
  const { size: fileSize } = await handle.stat();
  const corrupt = () =>
    new S3Error('InternalError', 500, `the stored object '${key}' is damaged (no metadata footer)`);
  if (fileSize < FOOTER_BYTES) throw corrupt();
  const footer = Buffer.alloc(FOOTER_BYTES);
  await handle.read(footer, 0, FOOTER_BYTES, fileSize - FOOTER_BYTES);
  const length = footer.readUInt32BE(0);
  if (!footer.subarray(4).equals(MAGIC) || length > fileSize - FOOTER_BYTES) throw corrupt();
  const json = Buffer.alloc(length);
  await handle.read(json, 0, length, fileSize - FOOTER_BYTES - length);
  const meta = JSON.parse(json.toString('utf8')) as ObjectMeta;
  if (meta.size !== fileSize - FOOTER_BYTES - length) throw corrupt();
  return meta;
}

async function openPart(path: string): Promise<OpenObject | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if (isCode(error, 'ENOENT')) return undefined;
    throw error;
  }
  const meta = await readFooter(handle, path);
  return {
    meta,
    stream: () => handle.createReadStream({ start: 0, end: meta.size - 1, autoClose: false }),
    close: () => handle.close(),
  };
}

/** Moves the finished temp file into place; a create-only write links, which fails if the key exists. */
async function publish(temp: string, target: string, createOnly: boolean): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    await mkdir(dirname(target), { recursive: true });
    try {
      if (createOnly) await link(temp, target);
      else await rename(temp, target);
      return;
    } catch (error) {
      if (createOnly && isCode(error, 'EEXIST')) throw preconditionFailed('If-None-Match');
      // A delete pruned the folder between mkdir and rename: make it again.
      if (!isCode(error, 'ENOENT') || attempt > 3) throw error;
    }
  }
}

// Keys ------------------------------------------------------------------------------------

function encodeSegment(segment: string): string {
  if (segment === '') return '%';
  if (/^\.+$/.test(segment)) return segment.replace(/\./g, '%2E');
  return encodeURIComponent(segment).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function decodeSegment(name: string): string | undefined {
  if (name === '%') return '';
  try {
    return decodeURIComponent(name);
  } catch {
    return undefined; // not one of ours
  }
}

/** S3 orders keys by their UTF-8 bytes (JS compares UTF-16 units, which differs above U+FFFF). */
function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function normalizeEtag(etag: string): string {
  const bare = etag.trim().replace(/^"|"$/g, '');
  return `"${bare.toLowerCase()}"`;
}

function isCode(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}
