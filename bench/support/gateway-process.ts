/**
 * `edgeloop device` as a user runs it, in a child process whose log the test reads: for the
 * fault tests that kill it, fill its disk or take its local stack away.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cliBin } from './cli.ts';

export interface GatewayProcess {
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** When (ms since the epoch) the first output matching `pattern` arrived after `since`. */
  arrivalOf(pattern: RegExp, since?: number): number | undefined;
  /** Resolves with the first match of `pattern` in its output (rejects after `timeoutMs` or on exit). */
  waitFor(pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpMatchArray>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `edgeloop device ARGS` (no -q: the test reads its log). */
export function startGateway(args: string[], env: NodeJS.ProcessEnv = {}): GatewayProcess {
  const child = spawn(process.execPath, [cliBin, 'device', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  let output = '';
  const arrivals: { at: number; text: string }[] = [];
  let exited = false;
  const watchers = new Set<() => void>();
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    arrivals.push({ at: Date.now(), text: chunk.toString() });
    for (const watcher of watchers) watcher();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      exited = true;
      for (const watcher of watchers) watcher();
      resolve({ code, signal });
    }),
  );
  return {
    child,
    output: () => output,
    arrivalOf: (pattern, since = 0) => arrivals.find((a) => a.at >= since && pattern.test(a.text))?.at,
    exit,
    waitFor(pattern, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${output.slice(-3000)}`)),
          timeoutMs,
        );
        const check = () => {
          const match = output.match(pattern);
          if (match) finish(undefined, match);
          else if (exited) finish(new Error(`the gateway exited before ${what}:\n${output.slice(-3000)}`));
        };
        function finish(error?: Error, match?: RegExpMatchArray) {
          clearTimeout(timer);
          watchers.delete(check);
          if (error) reject(error);
          else resolve(match as RegExpMatchArray);
        }
        watchers.add(check);
        check();
      });
    },
  };
}
