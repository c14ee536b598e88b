/** Small durable-file helpers: fsynced writes and atomic replace-by-rename. */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

export async function writeFileDurable(path: string, bytes: Uint8Array | string): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Atomically replaces `path`: temp file + fsync + rename + directory fsync. */
export async function replaceFileAtomic(
  dir: string,
  name: string,
  bytes: Uint8Array | string,
): Promise<void> {
  const temp = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  await writeFileDurable(temp, bytes);
  await rename(temp, join(dir, name));
  await fsyncDir(dir);
}

/** Writes a small JSON file atomically (used for checkpoints and counters). */
export async function writeJsonAtomic(dir: string, name: string, value: unknown): Promise<void> {
  await replaceFileAtomic(dir, name, JSON.stringify(value));
}

export async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
