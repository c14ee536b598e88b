import { statSync } from 'node:fs';
import { UsageError } from '../../shared/cli/command.ts';

/** A path that must name a readable file, or a usage error that says which flag is wrong. */
export function existingFile(path: string, what: string): string {
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    throw new UsageError(`${what}: no such file '${path}'`);
  }
  if (!isFile) throw new UsageError(`${what}: '${path}' is not a file`);
  return path;
}
