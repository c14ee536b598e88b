import { describe, expect, it } from 'vitest';
import { FunctionInvoker, handlerFile, type InvokedEvent } from '../../infra/local/invoker.ts';

function deferred() {
  let resolve = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

describe('function invoker', () => {
  it('maps function names to the handler files in functions/', () => {
    // Act / Assess
    expect(handlerFile('train')).toBe('train.ts');
    expect(handlerFile('aggregateResults')).toBe('aggregate-results.ts');
    expect(handlerFile('aggregateStatus')).toBe('aggregate-status.ts');
  });

  it('runs at most `concurrency` invocations of a function at once and queues the rest', async () => {
    // Prepare
    const gate = deferred();
    let active = 0;
    let peak = 0;
    const invoker = new FunctionInvoker({
      concurrency: 2,
      handlers: {
        aggregateResults: async () => {
          active++;
          peak = Math.max(peak, active);
          await gate.promise;
          active--;
        },
      },
    });

    // Act
    for (let i = 0; i < 5; i++) invoker.invokeAsync('aggregateResults', { i });
    await new Promise((resolve) => setImmediate(resolve));
    const activeBeforeRelease = active;
    gate.resolve();
    await invoker.idle();

    // Assess
    expect(activeBeforeRelease).toBe(2);
    expect(peak).toBe(2);
    expect(active).toBe(0);
  });

  it('reports a failing handler through events and keeps going', async () => {
    // Prepare
    const logged: string[] = [];
    const invoked: InvokedEvent[] = [];
    const seen: unknown[] = [];
    const invoker = new FunctionInvoker({
      log: (line) => logged.push(line),
      handlers: {
        train: async (event) => {
          seen.push(event);
          if ((event as { fail?: boolean }).fail) throw new Error('dataset has no label column');
        },
      },
    });
    invoker.events.on('invoked', (event: InvokedEvent) => invoked.push(event));

    // Act
    invoker.invokeAsync('train', { fail: true });
    invoker.invokeAsync('train', { fail: false });
    await invoker.idle();

    // Assess
    expect(seen).toEqual([{ fail: true }, { fail: false }]);
    expect(invoked.map((event) => event.error)).toEqual(['dataset has no label column', undefined]);
    expect(logged).toEqual(['train failed: dataset has no label column']);
  });

  it('loads a handler lazily at its first invocation and retries a failed load later', async () => {
    // Prepare
    let loads = 0;
    const calls: unknown[] = [];
    const invoker = new FunctionInvoker({
      load: async () => {
        loads++;
        if (loads === 1) throw new Error('functions/aggregate-status.ts does not exist yet');
        return async (event) => {
          calls.push(event);
        };
      },
    });
    const errors: (string | undefined)[] = [];
    invoker.events.on('invoked', (event: InvokedEvent) => errors.push(event.error));
    const loadsBeforeInvoke = loads;

    // Act
    invoker.invokeAsync('aggregateStatus', 'first');
    await invoker.idle();
    invoker.invokeAsync('aggregateStatus', 'second');
    invoker.invokeAsync('aggregateStatus', 'third');
    await invoker.idle();

    // Assess
    expect(loadsBeforeInvoke).toBe(0);
    expect(loads).toBe(2);
    expect(errors[0]).toMatch(/does not exist yet/);
    expect(calls).toEqual(['second', 'third']);
  });

  it('passes a Lambda context with a request id to the handler', async () => {
    // Prepare
    const contexts: unknown[] = [];
    const invoker = new FunctionInvoker({
      load: async () => async (_event, context) => {
        contexts.push(context);
      },
    });

    // Act
    invoker.invokeAsync('train', {});
    await invoker.idle();

    // Assess
    expect(contexts[0]).toMatchObject({ functionName: 'TrainFunction', awsRequestId: expect.any(String) });
  });

  it('drops invocations after close and resolves close once running ones finish', async () => {
    // Prepare
    const gate = deferred();
    const calls: unknown[] = [];
    const invoker = new FunctionInvoker({
      handlers: {
        train: async (event) => {
          calls.push(event);
          await gate.promise;
        },
      },
    });
    invoker.invokeAsync('train', 'running');
    await new Promise((resolve) => setImmediate(resolve));

    // Act
    const closing = invoker.close();
    invoker.invokeAsync('train', 'late');
    gate.resolve();
    await closing;

    // Assess
    expect(calls).toEqual(['running']);
  });

  it('forgets queued invocations on dropQueued and lets the running ones finish', async () => {
    // Prepare
    const gate = deferred();
    const calls: unknown[] = [];
    const invoker = new FunctionInvoker({
      concurrency: 1,
      handlers: {
        aggregateResults: async (event) => {
          calls.push(event);
          await gate.promise;
        },
      },
    });
    for (const event of ['running', 'queued-1', 'queued-2']) invoker.invokeAsync('aggregateResults', event);
    await new Promise((resolve) => setImmediate(resolve));
    const closing = invoker.close();

    // Act
    const dropped = invoker.dropQueued();
    gate.resolve();
    await closing;

    // Assess
    expect(dropped).toBe(2);
    expect(calls).toEqual(['running']);
  });
});
