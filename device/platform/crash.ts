/**
 * The device process owns how it dies. tfjs-backend-wasm's emscripten glue registers global
 * `uncaughtException` and `unhandledRejection` handlers that rethrow (and its own attempt to
 * remove them only runs on dispose), so any stray error printed some 30 KB of minified wasm
 * glue and decided the exit itself. `loadTfWithoutItsCrashHandlers` loads the backend and
 * takes those handlers off again; `ownCrashes` installs the device's: one log line with the
 * error and the step the device was in, the state saved (bounded), then exit code 70
 * (EX_SOFTWARE) for systemd or Greengrass to restart it. A restart resumes from the outbox
 * and its checkpoint as after any crash.
 *
 * Only the CLI process does this: tests and tools that start a device in-process keep
 * their own handlers.
 */
import { errorMessage } from '../../shared/errors.ts';
import { initTf } from '../../shared/tf.ts';

export const CRASH_EXIT_CODE = 70;
/** How long saving the state may take before the process exits anyway. */
const SAVE_TIMEOUT_MS = 2_000;

type ProcessErrorEvent = 'uncaughtException' | 'unhandledRejection';
const EVENTS: readonly ProcessErrorEvent[] = ['uncaughtException', 'unhandledRejection'];

let currentStep = 'start';

/** What the device is doing now, for the crash line ("start", "serve", "update v3", "stop"). */
export function enterStep(step: string): void {
  currentStep = step;
}

/** Loads the TensorFlow.js backend and removes the process-wide error handlers it added. */
export async function loadTfWithoutItsCrashHandlers(): Promise<number> {
  const listeners = (event: ProcessErrorEvent) =>
    process.listeners(event as 'uncaughtException') as unknown[];
  const before = new Map(EVENTS.map((event) => [event, listeners(event)]));
  await initTf();
  let removed = 0;
  for (const event of EVENTS) {
    for (const listener of listeners(event)) {
      if (before.get(event)?.includes(listener)) continue;
      process.removeListener(event, listener as () => void);
      removed++;
    }
  }
  return removed;
}

/** One line for any thrown value: its name, code, message and where it was thrown. */
export function crashLine(kind: string, error: unknown): string {
  const where =
    error instanceof Error
      ? error.stack
          ?.split('\n')
          .slice(1)
          .find((line) => line.trim().startsWith('at '))
          ?.trim()
      : undefined;
  const code = (error as { code?: unknown } | undefined)?.code;
  const name = error instanceof Error ? error.name : typeof error;
  const message = errorMessage(error).replace(/\s+/g, ' ').slice(0, 500);
  return `edgeloop device: unexpected ${kind} during step '${currentStep}': ${name}${
    typeof code === 'string' ? ` ${code}` : ''
  }: ${message}${where ? ` (${where.slice(0, 200)})` : ''}; saving the state and exiting ${CRASH_EXIT_CODE} to be restarted`;
}

/**
 * Installs the device's handlers for errors nothing caught; returns what removes them.
 * `save` persists what it can (bounded by SAVE_TIMEOUT_MS); `exit` is process.exit.
 */
export function ownCrashes(o: {
  log: (line: string) => void;
  save: () => Promise<void>;
  exit?: (code: number) => void;
}): () => void {
  const exit = o.exit ?? ((code: number) => process.exit(code));
  let crashing = false;
  const handler = (kind: string) => (error: unknown) => {
    if (crashing) return; // a second error while saving changes nothing
    crashing = true;
    o.log(crashLine(kind, error));
    const timer = setTimeout(() => exit(CRASH_EXIT_CODE), SAVE_TIMEOUT_MS);
    void o
      .save()
      .catch(() => undefined)
      .finally(() => {
        clearTimeout(timer);
        exit(CRASH_EXIT_CODE);
      });
  };
  const onException = handler('error');
  const onRejection = handler('rejection');
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return () => {
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
  };
}
