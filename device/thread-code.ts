/**
 * A worker thread's code, bundled once per process into plain JavaScript: a worker does not
 * inherit the main thread's TypeScript loader, and registering tsx again in it costs the
 * gateway some 20 MB more than the bundle. The device package resolves the esbuild import
 * here to the threads it prebuilt (device/packaging/build.ts).
 */
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

/** The device's worker threads, by entry file (in device/). */
export const THREAD_ENTRIES = ['result-writer-thread.ts'] as const;
export type ThreadEntry = (typeof THREAD_ENTRIES)[number];

const bundled = new Map<ThreadEntry, string>();

export function threadCode(entry: ThreadEntry): string {
  let code = bundled.get(entry);
  if (code === undefined) {
    code = buildSync({
      entryPoints: [fileURLToPath(new URL(`./${entry}`, import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      write: false,
    }).outputFiles[0]?.text;
    if (!code) throw new Error(`esbuild produced no code for the ${entry} worker thread`);
    bundled.set(entry, code);
  }
  return code;
}
