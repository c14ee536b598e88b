/**
 * Runs the product's Lambda handlers in-process, like Lambda's asynchronous invoke: the
 * caller (an S3 event, a topic rule) does not wait, failures are logged, not thrown back.
 * Handlers are loaded lazily from functions/ by the names in the topology, or overridden.
 * Invocations per function are capped (like reserved concurrency) and queue beyond it.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Context } from 'aws-lambda';
import { errorMessage } from '../../shared/errors.ts';
import { type FunctionName, functions } from '../../shared/topology.ts';

export type Handler = (event: unknown, context?: Context) => Promise<unknown>;
export type HandlerOverrides = Partial<Record<FunctionName, (event: unknown) => Promise<unknown>>>;

export interface InvokeEvent {
  fn: FunctionName;
}
export interface InvokedEvent {
  fn: FunctionName;
  ms: number;
  error?: string;
}

export interface InvokerOptions {
  handlers?: HandlerOverrides;
  log?: (line: string) => void;
  /** Concurrent invocations per function; more wait in a queue. */
  concurrency?: number;
  /** Loads a function's module; defaults to importing functions/<kebab-name>.ts. */
  load?: (fn: FunctionName) => Promise<Handler>;
}

/** functions/<file> that holds a function's handler: aggregateResults -> aggregate-results.ts. */
export function handlerFile(fn: FunctionName): string {
  return `${fn.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}.ts`;
}

export async function importHandler(fn: FunctionName): Promise<Handler> {
  const url = new URL(`../../functions/${handlerFile(fn)}`, import.meta.url);
  let module: { handler?: unknown };
  try {
    module = (await import(url.href)) as { handler?: unknown };
  } catch (error) {
    const missing =
      (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' &&
      errorMessage(error).includes(url.pathname);
    if (missing)
      throw new Error(`functions/${handlerFile(fn)} is missing: the ${fn} function has no handler`);
    throw error;
  }
  if (typeof module.handler !== 'function') {
    throw new Error(`functions/${handlerFile(fn)} does not export a function named 'handler'`);
  }
  return module.handler as Handler;
}

export class FunctionInvoker {
  /** 'invoke' (InvokeEvent) when a handler starts, 'invoked' (InvokedEvent) when it ends. */
  readonly events = new EventEmitter();
  private readonly loaded = new Map<FunctionName, Promise<Handler>>();
  private readonly queues = new Map<FunctionName, unknown[]>();
  private readonly running = new Map<FunctionName, number>();
  private pending = 0;
  private idleWaiters: (() => void)[] = [];
  private closed = false;
  private readonly concurrency: number;
  private readonly log: (line: string) => void;
  private readonly load: (fn: FunctionName) => Promise<Handler>;

  constructor(private readonly options: InvokerOptions = {}) {
    this.concurrency = options.concurrency ?? 4;
    this.log = options.log ?? (() => {});
    this.load = options.load ?? importHandler;
  }

  /** Queues one asynchronous invocation. */
  invokeAsync(fn: FunctionName, event: unknown): void {
    if (this.closed) {
      this.log(`dropped ${fn} invocation: the local stack is stopping`);
      return;
    }
    this.pending++;
    const queue = this.queues.get(fn) ?? [];
    this.queues.set(fn, queue);
    queue.push(event);
    this.drain(fn);
  }

  /**
   * One synchronous invocation (RequestResponse, as an event source mapping makes): resolves
   * with what the handler returned, rejects with what it threw. Not queued behind the async
   * ones: the caller (one poller per shard) bounds its own concurrency.
   */
  async invoke(fn: FunctionName, event: unknown): Promise<unknown> {
    if (this.closed) throw new Error(`${fn} was not invoked: the local stack is stopping`);
    this.pending++;
    try {
      const outcome = await this.run(fn, event);
      if ('error' in outcome) throw outcome.error;
      return outcome.result;
    } finally {
      this.pending--;
      if (this.pending === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** Resolves when no invocation is queued or running. */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuses new invocations and waits for the queued and running ones. */
  async close(): Promise<void> {
    this.closed = true;
    await this.idle();
  }

  /** Forgets the invocations that have not started (a stop that cannot wait); returns how many. */
  dropQueued(): number {
    let dropped = 0;
    for (const queue of this.queues.values()) dropped += queue.splice(0).length;
    this.pending -= dropped;
    if (this.pending === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    return dropped;
  }

  private handler(fn: FunctionName): Promise<Handler> {
    const override = this.options.handlers?.[fn];
    if (override) return Promise.resolve(override);
    let loading = this.loaded.get(fn);
    if (!loading) {
      loading = this.load(fn);
      // A failed load is retried at the next invocation (the file may appear later).
      loading.catch(() => this.loaded.delete(fn));
      this.loaded.set(fn, loading);
    }
    return loading;
  }

  private drain(fn: FunctionName): void {
    const queue = this.queues.get(fn) ?? [];
    while (queue.length > 0 && (this.running.get(fn) ?? 0) < this.concurrency) {
      const event = queue.shift();
      this.running.set(fn, (this.running.get(fn) ?? 0) + 1);
      void this.run(fn, event).finally(() => {
        this.running.set(fn, (this.running.get(fn) ?? 1) - 1);
        this.pending--;
        this.drain(fn);
        if (this.pending === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
    }
  }

  private async run(fn: FunctionName, event: unknown): Promise<{ result: unknown } | { error: unknown }> {
    const started = performance.now();
    this.events.emit('invoke', { fn } satisfies InvokeEvent);
    let outcome: { result: unknown } | { error: unknown };
    let error: string | undefined;
    try {
      const handler = await this.handler(fn);
      outcome = { result: await handler(event, lambdaContext(fn)) };
    } catch (caught) {
      outcome = { error: caught };
      error = errorMessage(caught);
      this.log(`${fn} failed: ${error}`);
    }
    const ms = Math.round(performance.now() - started);
    this.events.emit('invoked', { fn, ms, ...(error === undefined ? {} : { error }) } satisfies InvokedEvent);
    return outcome;
  }
}

/** The Lambda context a handler may read (request id, names); timeouts are not enforced. */
function lambdaContext(fn: FunctionName): Context {
  const functionName = functions[fn].id;
  const deadline = Date.now() + 15 * 60_000;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}
