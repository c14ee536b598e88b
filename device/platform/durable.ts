/** Small durable-file helpers: fsynced writes and atomic replace-by-rename. */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Writes and fsyncs `path`; several buffers are written one after the other (one writev).
 * Callback fs underneath: the outbox writes a file per batch, and the promise FileHandle
 * API costs the main thread about three times as much per file.
 */
export function writeFileDurable(path: string, bytes: Uint8Array | string | Uint8Array[]): Promise<void> {
  const buffers = Array.isArray(bytes) ? bytes : [typeof bytes === 'string' ? Buffer.from(bytes) : bytes];
  return new Promise((resolve, reject) => {
    fs.open(path, 'w', (openError, fd) => {
      if (openError) return reject(openError);
      const finish = (error: Error | null) =>
        fs.close(fd, (closeError) => {
          const failed = error ?? closeError;
          if (failed) reject(failed);
          else resolve();
        });
      const writeFrom = (pieces: Uint8Array[]) => {
        if (pieces.length === 0) fs.fsync(fd, finish);
        else
          fs.writev(fd, pieces, (writeError, written) =>
            writeError ? finish(writeError) : writeFrom(unwritten(pieces, written)),
          );
      };
      writeFrom(buffers);
    });
  });
}

/** What a short write left of `pieces`. */
export function unwritten(pieces: Uint8Array[], written: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  let skip = written;
  for (const piece of pieces) {
    if (skip >= piece.length)
      skip -= piece.length; // written in full (or empty)
    else {
      rest.push(piece.subarray(skip));
      skip = 0;
    }
  }
  return rest;
}

/** fs.rename (callback fs, for the outbox's per-batch cost like writeFileDurable). */
export function renameFile(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) =>
    fs.rename(from, to, (error) => (error ? reject(error) : resolve())),
  );
}

export function fsyncDir(dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.open(dir, 'r', (openError, fd) => {
      if (openError) return reject(openError);
      fs.fsync(fd, (syncError) =>
        fs.close(fd, (closeError) => {
          const failed = syncError ?? closeError;
          if (failed) reject(failed);
          else resolve();
        }),
      );
    });
  });
}

/** Atomically replaces `path`: temp file + fsync + rename + directory fsync. */
export async function replaceFileAtomic(
  dir: string,
  name: string,
  bytes: Uint8Array | string,
): Promise<void> {
  const temp = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFileDurable(temp, bytes);
    await rename(temp, join(dir, name));
  } catch (error) {
    // A full or failing disk must not keep a half-written temp file on top.
    await rm(temp, { force: true }).catch(() => undefined);
    throw error;
  }
  await fsyncDir(dir);
}

export async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
