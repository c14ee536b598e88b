/**
 * Scheduled functions in the local stack, in place of an EventBridge rate rule: one handler
 * invocation per interval, never two at once (a slow run skips ticks). Runs outside the
 * invoker's event stream, so a once-a-second controller does not flood `edgeloop up` logs;
 * failures are logged.
 */
import { errorMessage } from '../../shared/errors.ts';
import type { FunctionName } from '../../shared/topology.ts';
import type { Handler } from './invoker.ts';

export interface Schedule {
  /** Runs the handler now (or waits for the run in flight) and returns its result. */
  runNow(): Promise<unknown>;
  /** Stops the timer and waits for a run in flight. */
  stop(): Promise<void>;
}

export function startSchedule(options: {
  fn: FunctionName;
  intervalMs: number;
  load: () => Promise<Handler>;
  log: (line: string) => void;
}): Schedule {
  let running: Promise<unknown> | undefined;
  let stopped = false;
  const run = (): Promise<unknown> => {
    running ??= (async () => {
      try {
        const handler = await options.load();
        return await handler({ source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {} });
      } catch (error) {
        options.log(`${options.fn} (scheduled) failed: ${errorMessage(error)}`);
        return undefined;
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  const timer = options.intervalMs > 0 ? setInterval(() => void run(), options.intervalMs) : undefined;
  timer?.unref();
  return {
    runNow: () => (stopped ? Promise.resolve(undefined) : run()),
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
