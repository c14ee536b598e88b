/**
 * Data dirs written by s3rver (the local S3 before infra/local/s3) stay readable: at start,
 * each object s3rver left (`<bucket>/<key>._S3rver_object`, its `._S3rver_metadata.json` and
 * `.md5`) is put into the store in its own format, then s3rver's files are removed. An
 * import cut short is redone at the next start (the put replaces, the removal comes last).
 * s3rver's unfinished multipart uploads and bucket configurations are dropped.
 */
import { createReadStream, type Dirent } from 'node:fs';
import { readdir, readFile, rm, unlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { type ObjectAttributes, type ObjectStore, STORED_HEADERS } from './store.ts';

const LEGACY = '._S3rver_';
const OBJECT = `${LEGACY}object`;

/** Imports every s3rver object under `root`; returns how many. */
export async function importS3rverObjects(store: ObjectStore, root: string): Promise<number> {
  let imported = 0;
  for (const bucket of await store.listBuckets()) {
    const bucketDir = join(root, bucket.name);
    for (const path of await legacyFiles(bucketDir)) {
      if (!path.endsWith(OBJECT)) continue;
      const key = relative(bucketDir, path.slice(0, -OBJECT.length)).split(sep).join('/');
      const metaPath = `${path.slice(0, -OBJECT.length)}${LEGACY}metadata.json`;
      const stored = await readFile(metaPath, 'utf8').then(
        (text) => JSON.parse(text) as Record<string, string>,
        () => ({}) as Record<string, string>,
      );
      await store.put(bucket.name, key, createReadStream(path), attributesOf(stored));
      await Promise.all([path, `${path}.md5`, metaPath].map((file) => unlink(file).catch(() => {})));
      imported++;
    }
    // What is left of s3rver's: unfinished uploads, bucket configurations.
    for (const path of await legacyFiles(bucketDir)) await rm(path, { recursive: true, force: true });
  }
  return imported;
}

function attributesOf(stored: Record<string, string>): ObjectAttributes {
  const headers: Record<string, string> = {};
  const userMetadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(stored)) {
    if (name.startsWith('x-amz-meta-')) userMetadata[name.slice('x-amz-meta-'.length)] = String(value);
    else if (STORED_HEADERS.includes(name)) headers[name] = String(value);
  }
  return { contentType: stored['content-type'] ?? 'binary/octet-stream', headers, userMetadata };
}

/** Paths under `dir` whose name carries s3rver's marker (a marked folder is not entered). */
async function legacyFiles(dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.name.includes(LEGACY)) found.push(path);
    else if (entry.isDirectory()) found.push(...(await legacyFiles(path)));
  }
  return found;
}
